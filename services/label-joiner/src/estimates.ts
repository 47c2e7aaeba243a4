import { randomUUID } from 'node:crypto';
import { SinkUnavailableError } from '@driftline/core';
import { type JoinStore, joinKey, type PredictionOutcome } from '@driftline/join';
import { counter, gauge, type Registry } from '@driftline/observability';
import {
  addScore,
  type BusinessOutcome,
  businessOutcome,
  type CalibrationMap,
  type CbpeEstimate,
  emptyScoreHistogram,
  estimateCbpeFromHistogram,
  identityCalibration,
  parseWindowKey,
  type ScoreHistogram,
  type WindowRef,
} from '@driftline/performance';
import type { HistogramFlush, PerformanceEstimateStore } from '@driftline/warehouse';
import type { JoinerRecord } from './engine.js';

/**
 * The first transition of a prediction in the join (absent → pending, or a waiting label → joined)
 * happens once per (model, prediction id): replays and duplicates come back `replayed`/`duplicate`.
 * Counting a score there counts it once, whatever Kafka redelivers.
 */
const FIRST: ReadonlySet<PredictionOutcome> = new Set(['pending', 'pending-late-label', 'joined']);

/**
 * Score histograms per (model, version, window), counted at the join's first transition of each
 * prediction and flushed to ClickHouse `score_histograms` by the recompute loop.
 *
 * Between the join step (Redis) and the flush, increments live in this process: a hard crash
 * (SIGKILL) loses at most what was counted since the last flush — never a double count, because the
 * replayed records are `duplicate` by then. A failed flush keeps its rows and their `flush_id`s and
 * sends them again first; a retried insert that had in fact landed replaces itself. Memory is
 * bounded by `maxWindows` buffered windows (16 KB each): past it, batches are refused BEFORE the
 * join step (retriable: the consumer pauses) until a flush succeeds.
 */
export class ScoreCounter {
  private buffered = new Map<string, ScoreHistogram>();
  private inFlight: HistogramFlush[] | undefined;
  private readonly scores = new Map<string, number>();
  private readonly metrics;

  constructor(
    private readonly options: {
      readonly threshold: number;
      readonly maxWindows: number;
      /** Only binary classifiers are estimated. */
      readonly counts: (model: string) => boolean;
    },
    registry: Registry,
  ) {
    this.metrics = {
      counted: counter(registry, 'driftline_joiner_scores_counted_total', 'Prediction scores counted for CBPE', []),
      windows: gauge(registry, 'driftline_joiner_score_windows_buffered', 'Score histograms not yet flushed', []),
    };
  }

  /** Runs one batch of the engine with its prediction scores known to {@link countingStore}. */
  async around<T>(records: readonly JoinerRecord[], run: () => Promise<T>): Promise<T> {
    const keys: string[] = [];
    for (const r of records) {
      if (r.kind !== 'prediction' || !this.options.counts(r.event.model)) continue;
      const key = joinKey({ model: r.event.model, id: r.event.prediction_id });
      this.scores.set(key, r.event.prediction);
      keys.push(key);
    }
    try {
      return await run();
    } finally {
      for (const k of keys) this.scores.delete(k);
    }
  }

  /** The join store, counting the scores of predictions at their first transition. */
  countingStore<P, L>(inner: JoinStore<P, L>): JoinStore<P, L> {
    const applyPredictions: JoinStore<P, L>['applyPredictions'] = async (inputs, now) => {
      const windows = this.buffered.size + (this.inFlight?.length ?? 0);
      if (inputs.length > 0 && windows >= this.options.maxWindows) {
        throw new SinkUnavailableError(
          `${windows} score histograms wait for ClickHouse (DRIFTLINE_JOINER_SCORE_WINDOWS=${this.options.maxWindows})`,
        );
      }
      const applied = await inner.applyPredictions(inputs, now);
      applied.forEach((a, i) => {
        const input = inputs[i];
        if (input === undefined || !FIRST.has(a.outcome)) return;
        const score = this.scores.get(joinKey(input));
        if (score === undefined) return;
        let h = this.buffered.get(input.windowKey);
        if (h === undefined) {
          h = emptyScoreHistogram();
          this.buffered.set(input.windowKey, h);
        }
        addScore(h, score, this.options.threshold);
        this.metrics.counted.inc();
      });
      this.metrics.windows.set(this.buffered.size + (this.inFlight?.length ?? 0));
      return applied;
    };
    // Everything else passes through untouched (methods bound to the adapter).
    return new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop === 'applyPredictions') return applyPredictions;
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  }

  /** Sends the buffered increments; returns the windows they touched (to recompute). */
  async flush(sink: Pick<PerformanceEstimateStore, 'insertHistograms'>): Promise<WindowRef[]> {
    if (this.inFlight === undefined) {
      if (this.buffered.size === 0) return [];
      this.inFlight = [...this.buffered].map(([key, histogram]) => ({
        ref: parseWindowKey(key),
        threshold: this.options.threshold,
        flushId: randomUUID(),
        histogram,
      }));
      this.buffered = new Map();
    }
    const sending = this.inFlight;
    await sink.insertHistograms(sending);
    this.inFlight = undefined;
    this.metrics.windows.set(this.buffered.size);
    return sending.map((f) => f.ref);
  }
}

export interface WindowExtras {
  readonly estimate?: { readonly value: CbpeEstimate; readonly calibrationId: string };
  readonly business: BusinessOutcome | null;
}

const CALIBRATION_CACHE = 1_000;

/**
 * Per window: the CBPE estimate from the summed score histogram and the version's calibration map
 * (cached `cacheMs`, so a new reference's map is picked up), and the business outcome of its
 * labeled rows. A version without a stored map is estimated on its raw scores (`calibration_id`
 * '' in the row): right for a calibrated model, optimistic for an over-confident one.
 */
export class WindowEstimator {
  private readonly maps = new Map<string, { at: number; map: CalibrationMap; id: string }>();

  constructor(
    private readonly store: PerformanceEstimateStore,
    private readonly counter: ScoreCounter,
    private readonly options: {
      readonly threshold: number;
      readonly falseAlarmCost: number | undefined;
      readonly cacheMs: number;
    },
  ) {}

  flush(): Promise<WindowRef[]> {
    return this.counter.flush(this.store);
  }

  private async calibration(model: string, version: string, now: number) {
    const key = JSON.stringify([model, version]);
    const hit = this.maps.get(key);
    if (hit !== undefined && now - hit.at < this.options.cacheMs) return hit;
    const stored = await this.store.calibration(model, version);
    const entry = { at: now, map: stored?.map ?? identityCalibration(), id: stored?.referenceId ?? '' };
    this.maps.delete(key);
    this.maps.set(key, entry);
    if (this.maps.size > CALIBRATION_CACHE) this.maps.delete(this.maps.keys().next().value as string);
    return entry;
  }

  async extras(ref: WindowRef, windowMs: number, now = Date.now()): Promise<WindowExtras> {
    const histogram = await this.store.histogram(ref, this.options.threshold);
    let estimate: WindowExtras['estimate'];
    if (histogram !== undefined) {
      const c = await this.calibration(ref.model, ref.modelVersion, now);
      estimate = { value: estimateCbpeFromHistogram(histogram, c.map, this.options.threshold), calibrationId: c.id };
    }
    const business = businessOutcome(await this.store.valuedPoints(ref, windowMs), {
      threshold: this.options.threshold,
      ...(this.options.falseAlarmCost === undefined ? {} : { falseAlarmCost: this.options.falseAlarmCost }),
    });
    return estimate === undefined ? { business } : { estimate, business };
  }
}
