import { DEFAULT_EVENT_TIME_BOUNDS } from '@driftline/core';
import {
  calibrateThresholds,
  DEFAULT_SEQUENTIAL,
  DEFAULT_THRESHOLDS,
  meanDetectionDelays,
  nullRunLengths,
  type ReferenceSet,
  sequentialGrid,
} from '@driftline/drift';
import { expectationSet } from '@driftline/quality';
import type { PredictionEvent } from '@driftline/schemas';
import { buildNumericProfile } from '@driftline/stats';
import { SeededRandom } from '@driftline/test-support/random';
import { ReferenceCache } from '../src/reference-cache.js';
import { type SequentialHook, sequentialMonitor } from '../src/sequential.js';
import { stageOneProcessor } from '../src/stage-one.js';
import { benchStores, events, FEATURES, median, records, reference, WINDOW_MS } from './drift-bench.js';

/**
 * The cost of the monitors in ONE run (`make bench`, entry `monitors`): feature values per second
 * through drift-monitor's stage one with the window drift only, and with every monitor on —
 * data-quality expectations on all 20 features (type, null rate, range, cardinality sketch), the
 * online sequential detector on all 20 (defaults: W 200, a check every 10 values, 32 bins), and
 * the per-prediction CPU work of the monitors that live in other services, given by the caller as
 * `extras` (the skew-monitor's sampling and comparison, the label-joiner's CBPE score histogram)
 * and run in the same timed loop over the same events. I/O of those services (Redis reads,
 * ClickHouse writes) is excluded, as Kafka and Avro decode are for stage one.
 */
export interface MonitorExtra {
  readonly name: string;
  /** The monitor's per-prediction work on one batch of decoded predictions. */
  perBatch(events: readonly PredictionEvent[]): void;
}

const N = 100_000;
const BATCH = 1000;
const RUNS = 6;

interface Variant {
  readonly quality: boolean;
  readonly sequential: SequentialHook | undefined;
  readonly extras: readonly MonitorExtra[];
}

/**
 * Values per second of each variant, medians over RUNS rounds in which every variant runs once
 * (interleaved, so JIT warm-up and the shared machine's load swings hit all variants alike; the
 * first round only warms up).
 */
async function valuesPerSecond(ref: ReferenceSet, variants: readonly Variant[]): Promise<number[]> {
  const { store, progress } = benchStores(ref);
  // No shift: the detectors run their full course (an alarm restarts a detector, which skips checks).
  const evts = events(N, 7, 10 * WINDOW_MS, 0);
  const items = records(evts);
  const expectations = expectationSet(
    ref.features.map((feature, f) => ({
      feature,
      type: 'double' as const,
      maxTypeMismatch: 0,
      maxNullRate: 0.01,
      range: { min: f, max: f + 10, maxShareOutside: 0.01 },
      maxCardinality: 1_000_000,
    })),
  );
  const runs: number[][] = variants.map(() => []);
  let partition = 0;
  for (let round = 0; round < RUNS; round++) {
    for (const [v, variant] of variants.entries()) {
      const references = new ReferenceCache(store);
      await references.preload();
      const processor = stageOneProcessor({
        spec: { sizeMs: WINDOW_MS, latenessMs: 0 },
        references,
        progress,
        group: 'bench',
        sourceTopic: 'predictions',
        sourcePartitions: 1,
        mergePartitions: 1,
        eventTime: DEFAULT_EVENT_TIME_BOUNDS,
        emit: async () => {},
        decode: async () => {
          throw new Error('decode is excluded from this benchmark');
        },
        ...(variant.quality ? { expectations } : {}),
        ...(variant.sequential === undefined ? {} : { sequential: variant.sequential }),
      });
      // A partition of its own per run: the sequential detectors start empty each time.
      const ctx = { topic: 'predictions', partition: partition++, highWatermark: String(N) };
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < N; i += BATCH) {
        await processor.process(items.slice(i, i + BATCH), ctx);
        for (const extra of variant.extras) extra.perBatch(evts.slice(i, i + BATCH));
      }
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (round > 0) runs[v]!.push((N * FEATURES) / seconds);
      processor.revoked?.([{ topic: 'predictions', partition: ctx.partition }]);
    }
  }
  return runs.map(median);
}

/**
 * The sequential detector's validation, longer than the unit test's: null run length / ERT over
 * 100 references (5,000 values each, W 50, k 5, ERT 500, 10 runs each), and the mean detection
 * delay of a 0.5 sd shift next to PSI and KS tumbling windows of 500 values on the same values.
 */
function sequentialValidation(): Record<string, number> {
  const ratios: number[] = [];
  for (let i = 0; i < 100; i++) {
    const r = new SeededRandom(90_000 + i);
    const profile = buildNumericProfile(Array.from({ length: 5000 }, () => r.normal()));
    const grid = sequentialGrid(profile, 16);
    const th = calibrateThresholds(grid.refCounts, grid.n, {
      statistic: 'cvm',
      window: 50,
      every: 5,
      ert: 500,
      bootstraps: 1000,
      seed: i,
    });
    ratios.push(...nullRunLengths(grid, th, () => r.normal(), 10).lengths.map((l) => l / 500));
  }
  const r = new SeededRandom(91_000);
  const profile = buildNumericProfile(Array.from({ length: 5000 }, () => r.normal()));
  const grid = sequentialGrid(profile, 32);
  const window = 500;
  const t0 = process.hrtime.bigint();
  const th = calibrateThresholds(grid.refCounts, grid.n, {
    statistic: 'cvm',
    window: 200,
    every: 10,
    ert: 20 * window,
    bootstraps: 1000,
    seed: 1,
  });
  const calibrationMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const d = meanDetectionDelays(
    profile,
    grid,
    th,
    DEFAULT_THRESHOLDS,
    { changeAt: 1234, horizon: 5000, windowValues: window },
    200,
    () => r.normal(),
    () => r.normal() + 0.5,
  );
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return {
    'sequential.null_run_length_over_ert': Number(mean(ratios).toFixed(3)),
    'sequential.null_runs': ratios.length,
    'sequential.delay_values_shift_0_5sd': Math.round(d.sequential),
    'sequential.psi_window_delay_values_shift_0_5sd': Math.round(d.psi),
    'sequential.ks_window_delay_values_shift_0_5sd': Math.round(d.ks),
    'sequential.delay_misses': d.misses,
    'sequential.calibration_ms_w200_k10_ert10000': Math.round(calibrationMs),
  };
}

export async function benchMonitors(extras: readonly MonitorExtra[] = []): Promise<Record<string, number | string>> {
  const ref = reference();
  const sequential = sequentialMonitor({
    config: DEFAULT_SEQUENTIAL,
    windowMs: WINDOW_MS,
    resolve: () => ref,
    store: { insert: async () => {}, list: async () => [] },
    sendAlerts: async () => {},
    calibrationBudgetMs: Number.POSITIVE_INFINITY, // all before the timed runs
  });
  const t0 = process.hrtime.bigint();
  await sequential.prepare([events(1, 1, 1)[0]!]);
  const calibrationMs = Number(process.hrtime.bigint() - t0) / 1e6 / ref.features.length;
  const [driftOnly, all, sequentialOnly, qualityOnly, extrasOnly] = (await valuesPerSecond(ref, [
    { quality: false, sequential: undefined, extras: [] },
    { quality: true, sequential, extras },
    // Where the cost goes: each monitor beside the windows alone.
    { quality: false, sequential, extras: [] },
    { quality: true, sequential: undefined, extras: [] },
    { quality: false, sequential: undefined, extras },
  ])) as [number, number, number, number, number];
  return {
    'monitors.values_per_s_drift_only': Math.round(driftOnly),
    'monitors.values_per_s_all': Math.round(all),
    'monitors.all_over_drift_only_cost': Number((driftOnly / all).toFixed(2)),
    'monitors.values_per_s_drift_and_sequential': Math.round(sequentialOnly),
    'monitors.values_per_s_drift_and_quality': Math.round(qualityOnly),
    'monitors.values_per_s_drift_and_extras': Math.round(extrasOnly),
    'monitors.all_includes': ['drift', 'data_quality', 'sequential', ...extras.map((e) => e.name)].join(','),
    'sequential.calibration_ms_per_feature': Math.round(calibrationMs),
    ...sequentialValidation(),
  };
}
