import { randomUUID } from 'node:crypto';
import { type DriftlineError, type Logger, SinkUnavailableError, toDriftlineError } from '@driftline/core';
import type { GroupTally, JoinStore, TallyInput } from '@driftline/join';
import { counter, gauge, type Registry } from '@driftline/observability';
import {
  type BusinessOutcome,
  type CalibrationMap,
  type CbpeEstimate,
  currentWindow,
  emptyScoreHistogram,
  estimateCbpeFromHistogram,
  identityCalibration,
  MAX_OUT_OF_RANGE_SHARE,
  mergeScoreHistograms,
  OUT_OF_RANGE_SLOT,
  parseWindowKey,
  SCORE_SLOTS,
  type ScoreHistogram,
  scoreSlot,
  slotValue,
  type WindowColumns,
  type WindowRef,
  windowBusinessOutcome,
  windowKey,
} from '@driftline/performance';
import type { PredictionEvent } from '@driftline/schemas';
import type { HistogramFlush, PerformanceEstimateStore } from '@driftline/warehouse';
import type { PredictionTallies } from './engine.js';

/** A tally group: one window's histogram at one threshold (the grid splits the threshold's bin). */
const groupOf = (windowKey: string, threshold: number): string => JSON.stringify([threshold, windowKey]);

/** The group's window (the current-size window containing its key's start: see currentWindow) and threshold. */
function parseGroup(group: string, windowMs: number): { ref: WindowRef; threshold: number } | undefined {
  let parsed: { ref: WindowRef; threshold: number };
  try {
    const [threshold, key] = JSON.parse(group) as [unknown, unknown];
    if (typeof threshold !== 'number' || typeof key !== 'string') return undefined;
    parsed = { ref: parseWindowKey(key), threshold };
  } catch {
    return undefined;
  }
  return { ref: currentWindow(parsed.ref, windowMs), threshold: parsed.threshold };
}

function histogramOf(tally: GroupTally): ScoreHistogram {
  const h = emptyScoreHistogram();
  for (const [slot, t] of tally.slots) {
    if (slot >= SCORE_SLOTS) continue;
    h.counts[slot] = t.count;
    h.sums[slot] = t.sum;
  }
  return h;
}

/** How often scores outside [0, 1] of one (model, version) are logged at most. */
export const OUT_OF_RANGE_LOG_MS = 10 * 60_000;
/** Versions whose last such warning is remembered (the oldest forgotten first). */
const OUT_OF_RANGE_LOGGED = 10_000;

/**
 * CBPE score histograms per (model, version, window), tallied by the join store in the same atomic
 * step as each prediction's first transition (see @driftline/join tally.ts): a prediction's score is
 * counted exactly once, whatever Kafka redelivers and wherever a process is killed. The recompute
 * loop moves the tallies to ClickHouse `score_histograms_v2`: take (a batch with a fixed `flush_id`),
 * insert, acknowledge. A crash or a failed insert in between leaves the batch in flight, and the
 * next take (by any instance) sends it again under the same id, which replaces itself.
 *
 * While ClickHouse is away, tallies wait in Redis, bounded by `maxWindows` windows (each at most
 * 45 KB: the grid's slots): past it, batches are refused BEFORE the join step (retriable: the consumer pauses) until
 * a flush succeeds. The count is the one seen at the last take, so it may overshoot by the windows
 * opened within one recompute interval.
 */
export class ScoreCounter implements PredictionTallies {
  private waiting = 0;
  private readonly metrics;
  /** (model, version) → when scores outside [0, 1] of it were last logged. */
  private readonly outOfRangeLogged = new Map<string, number>();

  constructor(
    private readonly options: {
      readonly threshold: number;
      readonly maxWindows: number;
      /** DRIFTLINE_JOINER_WINDOW: tallies keyed under another size are written as of this one. */
      readonly windowMs: number;
      /** Only binary classifiers are estimated. */
      readonly counts: (model: string) => boolean;
      /** Scores outside [0, 1] are logged, per (model, version) at most every OUT_OF_RANGE_LOG_MS. */
      readonly logger?: Logger;
      readonly now?: () => number;
    },
    registry: Registry,
  ) {
    this.metrics = {
      flushed: counter(
        registry,
        'driftline_joiner_scores_flushed_total',
        'Prediction scores written to ClickHouse score_histograms_v2 for CBPE',
        [],
      ),
      // Their windows have no estimate (null): see OUT_OF_RANGE_SLOT of @driftline/performance.
      outOfRange: counter(
        registry,
        'driftline_joiner_scores_out_of_range_total',
        'Prediction scores outside [0, 1] written to score_histograms_v2: left out of CBPE and realized log loss/Brier; over 1% of a window, those are null',
        [],
      ),
      windows: gauge(
        registry,
        'driftline_joiner_score_windows_waiting',
        'Score histograms in Redis waiting for ClickHouse, at the last take',
        [],
      ),
    };
  }

  admit(): void {
    if (this.waiting >= this.options.maxWindows) {
      throw new SinkUnavailableError(
        `${this.waiting} score histograms wait for ClickHouse (DRIFTLINE_JOINER_SCORE_WINDOWS=${this.options.maxWindows})`,
      );
    }
  }

  tallyOf(event: PredictionEvent, windowKey: string): TallyInput | undefined {
    if (!this.options.counts(event.model)) return undefined;
    const { threshold } = this.options;
    return {
      group: groupOf(windowKey, threshold),
      slot: scoreSlot(event.prediction, threshold),
      value: slotValue(event.prediction),
    };
  }

  /**
   * Moves the tallies to the sink; returns the windows they touched. The acknowledgement marks those
   * windows dirty in the same Redis step, so their recompute is owed by Redis, not by this process.
   */
  async flush(
    store: Pick<JoinStore<unknown, unknown>, 'takeTallies' | 'ackTallies'>,
    sink: Pick<PerformanceEstimateStore, 'insertHistograms'>,
  ): Promise<WindowRef[]> {
    const { batch, buffered } = await store.takeTallies(randomUUID());
    this.setWaiting(buffered + (batch?.groups.length ?? 0));
    if (batch === undefined) return [];
    // One row per (window, threshold): groups of one window under two keys (a key of another size
    // or of ce65220's four elements beside the current one) are summed, as two rows with one
    // score_histograms_v2 key in a flush replace each other and lose the counts of one (found by a review).
    const byWindow = new Map<string, HistogramFlush>();
    let scores = 0;
    let outOfRange = 0;
    const outOfRangeOf = new Map<string, { ref: WindowRef; n: number }>();
    for (const tally of batch.groups) {
      const group = parseGroup(tally.group, this.options.windowMs);
      if (group === undefined) continue; // not a group of ours: nothing to send for it
      const histogram = histogramOf(tally);
      for (const c of histogram.counts) scores += c;
      const bad = histogram.counts[OUT_OF_RANGE_SLOT]!;
      outOfRange += bad;
      if (bad > 0) {
        const version = JSON.stringify([group.ref.model, group.ref.modelVersion]);
        outOfRangeOf.set(version, { ref: group.ref, n: (outOfRangeOf.get(version)?.n ?? 0) + bad });
      }
      const id = JSON.stringify([group.threshold, windowKey(group.ref)]);
      const same = byWindow.get(id)?.histogram;
      const summed = same === undefined ? histogram : mergeScoreHistograms(same, histogram);
      byWindow.set(id, { ...group, flushId: batch.flushId, histogram: summed });
    }
    const flushes = [...byWindow.values()];
    await sink.insertHistograms(flushes);
    await store.ackTallies(batch.flushId, [...new Set(flushes.map((f) => windowKey(f.ref)))]);
    this.metrics.flushed.inc(scores);
    this.metrics.outOfRange.inc(outOfRange);
    for (const [version, { ref, n }] of outOfRangeOf) this.logOutOfRange(version, ref, n);
    this.setWaiting(buffered);
    return flushes.map((f) => f.ref);
  }

  /** A warning per (model, version) at most every OUT_OF_RANGE_LOG_MS (a model emitting logits scores every request). */
  private logOutOfRange(version: string, ref: WindowRef, n: number): void {
    const logger = this.options.logger;
    if (logger === undefined) return;
    const now = (this.options.now ?? Date.now)();
    const last = this.outOfRangeLogged.get(version);
    if (last !== undefined && now - last < OUT_OF_RANGE_LOG_MS) return;
    this.outOfRangeLogged.delete(version);
    this.outOfRangeLogged.set(version, now);
    if (this.outOfRangeLogged.size > OUT_OF_RANGE_LOGGED) {
      this.outOfRangeLogged.delete(this.outOfRangeLogged.keys().next().value as string);
    }
    logger.warn(
      { model: ref.model, model_version: ref.modelVersion, out_of_range: n, max_share: MAX_OUT_OF_RANGE_SHARE },
      'prediction scores outside [0, 1]: left out of the CBPE estimate and realized log loss/Brier; a window with more than max_share of them has none (a model emitting logits or margins?)',
    );
  }

  private setWaiting(n: number): void {
    this.waiting = n;
    this.metrics.windows.set(n);
  }
}

export interface WindowExtras {
  readonly estimate?: { readonly value: CbpeEstimate; readonly calibrationId: string };
  readonly business: BusinessOutcome | null;
}

const CALIBRATION_CACHE = 1_000;

/**
 * Versions whose refusal was logged, remembered so each is logged once. Larger than the map cache:
 * a set that cannot hold every refused version forgets each before its next window comes round
 * (1,500 versions recomputed in turn past a bound of 1,000: one warning per window), whether it is
 * cleared or its oldest entry evicted. Only versions with a stored map count; 10,000 keys cost
 * about 0.8 MB (8 MB at the 256-character name limit).
 */
const REFUSALS_LOGGED = 10_000;

type CachedCalibration =
  | { readonly at: number; readonly map: CalibrationMap; readonly id: string }
  | { readonly at: number; readonly refused: DriftlineError };

/**
 * Per window: the CBPE estimate from the summed score histogram and the version's calibration map
 * (cached `cacheMs`, so a new reference's map is picked up), and the business outcome of its
 * labeled rows. A version without a stored map is estimated on its raw scores (`calibration_id`
 * '' in the row): right for a calibrated model, optimistic for an over-confident one.
 *
 * An estimate refused for good — a stored calibration map this joiner cannot parse (CONFIG_INVALID
 * from parseCalibrationMap), such as a newer format a trainer one release ahead writes — leaves the
 * window without an estimate: its realized metrics, business outcome and PERFORMANCE alerts are
 * written as usual. The refusal is cached like a map, logged once per version and counted. It used
 * to fail the whole recompute: that version's windows got no realized rows and no PERFORMANCE
 * alert, requeued every pass, silently (found by a review). Any other error — an outage, or a read
 * the warehouse cannot classify (INTERNAL, not retriable) — fails the recompute, which is
 * requeued: taken for a refusal, it had written windows without their estimate for good.
 */
export class WindowEstimator {
  private readonly maps = new Map<string, CachedCalibration>();
  /** Versions whose refusal was logged (until a read of theirs succeeds again), least recent first. */
  private readonly refusedVersions = new Set<string>();
  private readonly refusals;

  constructor(
    private readonly store: PerformanceEstimateStore,
    private readonly scores: ScoreCounter,
    private readonly tallies: Pick<JoinStore<unknown, unknown>, 'takeTallies' | 'ackTallies'>,
    private readonly options: {
      readonly threshold: number;
      readonly falseAlarmCost: number | undefined;
      readonly cacheMs: number;
      readonly logger?: Logger;
      /** A sampled window's business outcome needs this many valued labels in the sample (windowBusinessOutcome). */
      readonly minSampled?: number;
    },
    registry?: Registry,
  ) {
    this.refusals =
      registry === undefined
        ? undefined
        : counter(
            registry,
            'driftline_joiner_estimates_refused_total',
            'Window recomputes written without their CBPE estimate: the estimator refused it for good (a calibration map this joiner cannot parse)',
            [],
          );
  }

  flush(): Promise<WindowRef[]> {
    return this.scores.flush(this.tallies, this.store);
  }

  /** The version's map, or its refusal (a stored map this joiner cannot parse); anything else throws. */
  private async calibration(model: string, version: string, now: number): Promise<CachedCalibration> {
    const key = JSON.stringify([model, version]);
    let entry = this.maps.get(key);
    if (entry === undefined || now - entry.at >= this.options.cacheMs) {
      // A refusal is cached like a map: its version's windows do not read ClickHouse again each pass.
      try {
        const stored = await this.store.calibration(model, version);
        entry = { at: now, map: stored?.map ?? identityCalibration(), id: stored?.referenceId ?? '' };
      } catch (thrown) {
        const error = toDriftlineError(thrown);
        if (error.code !== 'CONFIG_INVALID') throw thrown;
        entry = { at: now, refused: error };
      }
      this.maps.delete(key);
      this.maps.set(key, entry);
      if (this.maps.size > CALIBRATION_CACHE) this.maps.delete(this.maps.keys().next().value as string);
    }
    return entry;
  }

  /** The window's estimate and business outcome; `window`: its rows, as the recompute read them. */
  async extras(ref: WindowRef, window: WindowColumns, now = Date.now()): Promise<WindowExtras> {
    const estimate = await this.estimate(ref, now);
    // From the rows the recompute read: a read of its own (one object per row, unpaged) had undone
    // the window's bound on memory.
    // A sample (a window over DRIFTLINE_JOINER_MAX_WINDOW_ROWS): scaled to the window, null when
    // any of its labels is not 0 or 1, when the read was cut, or on too few valued labels.
    const business = windowBusinessOutcome(window, {
      threshold: this.options.threshold,
      ...(this.options.falseAlarmCost === undefined ? {} : { falseAlarmCost: this.options.falseAlarmCost }),
      ...(this.options.minSampled === undefined ? {} : { minSampled: this.options.minSampled }),
    });
    return estimate === undefined ? { business } : { estimate, business };
  }

  /** The window's CBPE estimate: undefined without scores, or when refused for good (see the class). */
  private async estimate(ref: WindowRef, now: number): Promise<WindowExtras['estimate']> {
    // Outside any catch: a failed read of the histogram fails the recompute (requeued), whatever its code.
    const histogram = await this.store.histogram(ref, this.options.threshold);
    if (histogram === undefined) return undefined;
    const c = await this.calibration(ref.model, ref.modelVersion, now);
    const version = JSON.stringify([ref.model, ref.modelVersion]);
    if ('refused' in c) {
      this.refused(ref, version, c.refused);
      return undefined;
    }
    const value = estimateCbpeFromHistogram(histogram, c.map, this.options.threshold);
    this.refusedVersions.delete(version); // a later refusal is logged again
    return { value, calibrationId: c.id };
  }

  private refused(ref: WindowRef, version: string, error: DriftlineError): void {
    this.refusals?.inc();
    if (this.refusedVersions.delete(version)) {
      this.refusedVersions.add(version); // most recent last: the oldest is forgotten first
      return;
    }
    // The oldest forgotten, not all: a clear at the bound had logged every refused version again.
    if (this.refusedVersions.size >= REFUSALS_LOGGED) {
      this.refusedVersions.delete(this.refusedVersions.values().next().value as string);
    }
    this.refusedVersions.add(version);
    this.options.logger?.warn(
      { model: ref.model, model_version: ref.modelVersion, code: error.code, err: error.message },
      "no CBPE estimate for this version's windows (refused for good); their realized metrics and PERFORMANCE alerts are written without it",
    );
  }
}
