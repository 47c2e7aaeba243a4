import { type NumericReferenceProfile, profileGrid, type ReferenceProfile } from '@driftline/stats';
import type { WindowedEvent } from '../partition.js';
import { numericValue, PREDICTION_FEATURE, type ReferenceSet } from '../reference.js';
import { windowStartOf } from '../window.js';
import type { SequentialAlarmContext } from './alert.js';
import { calibrateThresholds } from './calibrate.js';
import {
  type SequentialAlarm,
  SequentialDetector,
  type SequentialStatistic,
  type SequentialThresholds,
} from './detector.js';
import { type SequentialGrid, sequentialGrid } from './grid.js';

export interface SequentialConfig {
  readonly statistic: SequentialStatistic;
  readonly window: number;
  readonly every: number;
  readonly ert: number;
  readonly bins: number;
  readonly bootstraps: number;
  /** Detector sets ((model, version) with one detector per numeric feature) kept per partition. */
  readonly maxStreams: number;
  /** Calibrations kept (least recently used evicted; recomputed, identically, on demand). */
  readonly maxCalibrations: number;
}

export const DEFAULT_SEQUENTIAL: SequentialConfig = {
  statistic: 'cvm',
  window: 200,
  every: 10,
  ert: 100_000,
  bins: 32,
  bootstraps: 1000,
  maxStreams: 2000,
  maxCalibrations: 10_000,
};

export interface Calibrated {
  readonly grid: SequentialGrid;
  readonly thresholds: SequentialThresholds;
  /**
   * The detector bin of each slot of the profile's fine grid (`slotBins`), undefined where the
   * grid's edges are not cuts of the profile. Made once per profile and shared (read only) by
   * every stream: a copy per (model, version) was 2 KB per feature, 2.4× the detector itself.
   */
  readonly slotBins: Uint8Array | undefined;
}

/** FNV-1a of text: the calibration seed, so every instance derives the same thresholds. */
function seedOf(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * Calibrations per numeric profile (content-addressed by the profile id, so shared by every
 * version, partition and instance measuring against the same reference data), least recently
 * used evicted beyond `maxCalibrations`. Deterministic: an evicted entry is recomputed identically.
 */
export class CalibrationCache {
  private readonly entries = new Map<string, Calibrated | null>();
  /** Calibrations computed (misses), for metrics and tests. */
  computed = 0;

  constructor(readonly config: SequentialConfig) {}

  has(profile: ReferenceProfile): boolean {
    return this.entries.has(profile.id);
  }

  /** The calibration if computed (undefined: not yet), without computing it. */
  peek(profile: ReferenceProfile): Calibrated | null | undefined {
    const hit = this.entries.get(profile.id);
    if (hit !== undefined) {
      this.entries.delete(profile.id);
      this.entries.set(profile.id, hit);
    }
    return hit;
  }

  /** The calibration of a profile; null for profiles the detector does not watch (categorical, empty). */
  get(profile: ReferenceProfile): Calibrated | null {
    const hit = this.entries.get(profile.id);
    if (hit !== undefined) {
      this.entries.delete(profile.id);
      this.entries.set(profile.id, hit);
      return hit;
    }
    const made = profile.kind === 'numeric' && profile.n > 0 ? this.calibrate(profile) : null;
    this.entries.set(profile.id, made);
    if (this.entries.size > this.config.maxCalibrations) this.entries.delete(this.entries.keys().next().value!);
    return made;
  }

  get size(): number {
    return this.entries.size;
  }

  private calibrate(profile: NumericReferenceProfile): Calibrated {
    const c = this.config;
    const grid = sequentialGrid(profile, c.bins);
    this.computed++;
    const thresholds = calibrateThresholds(grid.refCounts, grid.n, {
      statistic: c.statistic,
      window: c.window,
      every: c.every,
      ert: c.ert,
      bootstraps: c.bootstraps,
      seed: seedOf(`${profile.id}/${c.statistic}/${c.window}/${c.every}/${c.ert}/${c.bins}/${c.bootstraps}`),
    });
    return { grid, thresholds, slotBins: slotBins(profile.cuts, grid) };
  }
}

/** An alarm kept (the first of its feature and drift window on this partition). */
export interface SequentialDetection {
  readonly context: SequentialAlarmContext;
  readonly alarm: SequentialAlarm;
  readonly thresholds: SequentialThresholds;
}

interface ModelStreams {
  readonly ref: ReferenceSet;
  /**
   * Aligned with the reference set's features; null where nothing is watched (categorical, empty),
   * undefined while the feature's calibration is not computed yet (its values are skipped until then).
   */
  readonly detectors: (SequentialDetector | null | undefined)[];
  /** Per feature, its profile's calibration (grid and slot table, shared by every stream of the profile). */
  readonly calibrations: (Calibrated | null | undefined)[];
  /** Drift window of the last kept alarm per feature (NaN: none). */
  readonly lastAlarmWindow: Float64Array;
}

/**
 * The detectors of ONE source partition, in offset order: per (model, version) one detector per
 * numeric feature of its reference (the prediction included), started once the feature's
 * calibration is in the cache (`CalibrationCache.get` computes it; values before are skipped).
 * Memory per (model, version): per numeric feature a detector, W + 4·bins bytes of counters plus
 * their objects (see the README); grids and slot tables are the calibration's, shared. At most
 * `maxStreams` of them (the oldest created evicted: its detectors restart empty if it comes
 * back). A new reference for the pair restarts its detectors.
 * Pure: no I/O, no clock.
 */
export class SequentialStreams {
  private readonly streams = new Map<string, ModelStreams>();
  /** The previous event's streams: consecutive events of one (model, version) skip the look-up. */
  private last: { model: string; version: string; s: ModelStreams } | undefined;
  /** Alarms after the first of their (feature, drift window): counted, not returned. */
  suppressed = 0;
  values = 0;

  constructor(
    private readonly calibrations: CalibrationCache,
    private readonly windowMs: number,
    private readonly partition: number,
  ) {}

  get size(): number {
    return this.streams.size;
  }

  /**
   * The fine slot → bin table the detector of `feature` of (model, version) reads: its profile's
   * calibration's, never a copy (undefined before the detector started, or without a table).
   */
  slotTableOf(model: string, version: string, feature: string): Uint8Array | undefined {
    const s = this.streams.get(`${model}\u0000${version}`);
    const i = s?.ref.features.indexOf(feature) ?? -1;
    return i < 0 ? undefined : s!.calibrations[i]?.slotBins;
  }

  /**
   * Feeds one event's values; kept alarms are appended to `out`. `slots` (optional): per feature of
   * `ref`, the slot of the value on its profile's grid as `NumericSummary.add` returned it (-1 for a
   * missing or infinite value) — the bin is then a table look-up instead of a second read and search.
   */
  observe(
    event: WindowedEvent,
    offset: number,
    ref: ReferenceSet,
    out: SequentialDetection[],
    slots?: ArrayLike<number>,
  ): void {
    const last = this.last;
    let s =
      last !== undefined && last.s.ref === ref && last.model === event.model && last.version === event.model_version
        ? last.s
        : undefined;
    if (s === undefined) {
      const key = `${event.model}\u0000${event.model_version}`;
      s = this.streams.get(key);
      if (s === undefined || s.ref.referenceId !== ref.referenceId) {
        s = this.create(ref);
        this.streams.delete(key);
        this.streams.set(key, s);
        if (this.streams.size > this.calibrations.config.maxStreams)
          this.streams.delete(this.streams.keys().next().value!);
      }
      this.last = { model: event.model, version: event.model_version, s };
    }
    const features = ref.features;
    const detectors = s.detectors;
    let fed = 0;
    for (let i = 0; i < features.length; i++) {
      let d = detectors[i];
      if (d === undefined) d = this.attach(s, i);
      if (d === null || d === undefined) continue;
      const calibrated = s.calibrations[i]!;
      const table = calibrated.slotBins;
      let bin: number;
      if (table !== undefined && slots !== undefined) {
        const slot = slots[i]!;
        if (slot < 0) continue;
        bin = table[slot]!;
      } else {
        const f = features[i]!;
        const x = f === PREDICTION_FEATURE ? event.prediction : numericValue(event.features[f]);
        if (x === null || !Number.isFinite(x)) continue;
        // The slot as the summaries read the value (at the reference's float width, if any).
        bin =
          table !== undefined
            ? table[profileGrid(ref.profiles[i] as NumericReferenceProfile).slot(x)]!
            : calibrated.grid.index.lowerBound(x);
      }
      fed++;
      const alarm = d.push(bin);
      if (alarm === undefined) continue;
      const windowStart = windowStartOf(event.event_time, this.windowMs);
      if (s.lastAlarmWindow[i] === windowStart) {
        this.suppressed++;
        continue;
      }
      s.lastAlarmWindow[i] = windowStart;
      out.push({
        context: {
          model: event.model,
          version: event.model_version,
          referenceId: ref.referenceId,
          feature: features[i]!,
          partition: this.partition,
          offset,
          eventTime: event.event_time,
          windowStart,
          windowEnd: windowStart + this.windowMs,
        },
        alarm,
        thresholds: d.thresholds,
      });
    }
    this.values += fed;
  }

  private create(ref: ReferenceSet): ModelStreams {
    const n = ref.profiles.length;
    return {
      ref,
      detectors: new Array<undefined>(n).fill(undefined),
      calibrations: new Array<undefined>(n).fill(undefined),
      lastAlarmWindow: new Float64Array(n).fill(Number.NaN),
    };
  }

  /** Starts feature i's detector once its calibration exists (never computes one: `prepare` does). */
  private attach(s: ModelStreams, i: number): SequentialDetector | null | undefined {
    const c = this.calibrations.peek(s.ref.profiles[i]!);
    if (c === undefined) return undefined;
    const d = c === null ? null : new SequentialDetector(c.grid.refCounts, c.grid.n, c.thresholds);
    s.detectors[i] = d;
    s.calibrations[i] = c;
    return d;
  }
}

/**
 * The detector bin of every slot of a fine grid (2i: the interval below cuts[i], 2i+1: cuts[i]
 * itself, 2m: above the last cut). Every value of slot 2i or 2i+1 lies in (cuts[i−1], cuts[i]];
 * when each detector edge is one of the cuts, no edge falls inside that interval, so all its
 * values share the bin of cuts[i] — exactly what `lowerBound` on the value gives. Undefined when
 * an edge is not a cut (then the bin is searched per value).
 */
export function slotBins(cuts: ArrayLike<number>, grid: SequentialGrid): Uint8Array | undefined {
  const m = cuts.length;
  let k = 0;
  for (const edge of grid.edges) {
    while (k < m && cuts[k]! < edge) k++;
    if (k === m || cuts[k] !== edge) return undefined;
  }
  const table = new Uint8Array(2 * m + 1);
  for (let i = 0; i < m; i++) table[2 * i] = table[2 * i + 1] = grid.index.lowerBound(cuts[i]!);
  table[2 * m] = grid.edges.length;
  return table;
}
