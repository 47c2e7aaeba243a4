import { buildCategoricalProfile, buildNumericProfile, type ReferenceProfile } from '@driftline/stats';
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import {
  CalibrationCache,
  calibrateThresholds,
  DEFAULT_SEQUENTIAL,
  DEFAULT_THRESHOLDS,
  meanDetectionDelays,
  nullRunLengths,
  referenceSet,
  type SequentialDetection,
  SequentialDetector,
  SequentialStreams,
  type SequentialThresholds,
  sequentialAlert,
  sequentialGrid,
  sequentialStatistic,
} from '../src/index.js';

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** A null world: a reference of `n` values from the population, then fresh values from it. */
function world(seed: number, n: number, draw: (r: SeededRandom) => number) {
  const r = new SeededRandom(seed);
  const profile = buildNumericProfile(Array.from({ length: n }, () => draw(r)));
  return { profile, sample: () => draw(r) };
}

const gaussian = (r: SeededRandom) => r.normal();
/** Integer-valued (many ties): bins collapse, the statistic is discrete. */
const counts = (r: SeededRandom) => Math.floor(-Math.log(1 - r.uniform()) * 3);

describe('sequential detector: statistic and state', () => {
  it('is zero when the window matches the reference and grows with the shift', () => {
    const ref = [10, 10, 10, 10];
    expect(sequentialStatistic('cvm', ref, 40, [5, 5, 5, 5], 20)).toBeCloseTo(0, 12);
    expect(sequentialStatistic('ks', ref, 40, [5, 5, 5, 5], 20)).toBeCloseTo(0, 12);
    const small = sequentialStatistic('cvm', ref, 40, [3, 5, 6, 6], 20);
    const large = sequentialStatistic('cvm', ref, 40, [0, 2, 8, 10], 20);
    expect(small).toBeGreaterThan(0);
    expect(large).toBeGreaterThan(small);
    // KS: sqrt(nW/(n+W)) · max |R − C| = sqrt(800/60) · |0.5 − 0.1|
    expect(sequentialStatistic('ks', ref, 40, [0, 2, 8, 10], 20)).toBeCloseTo(Math.sqrt(800 / 60) * 0.4, 12);
  });

  it('bins on reference quantiles, right-closed, ties in one bin', () => {
    const r = new SeededRandom(3);
    const grid = sequentialGrid(buildNumericProfile(Array.from({ length: 10_000 }, () => r.uniform())), 10);
    expect(grid.edges.length).toBe(9);
    for (const c of grid.refCounts) expect(Math.abs(c - 1000)).toBeLessThanOrEqual(15);
    expect(grid.index.lowerBound(grid.edges[0]!)).toBe(0);
    expect(grid.index.lowerBound(-1)).toBe(0);
    expect(grid.index.lowerBound(2)).toBe(9);
    const tied = sequentialGrid(
      buildNumericProfile([...Array(900).fill(0), ...Array.from({ length: 100 }, (_, i) => i + 1)]),
      10,
    );
    expect(tied.refCounts[0]).toBe(900); // the 0 atom is one bin, not nine
    expect(tied.refCounts.reduce((a, b) => a + b, 0)).toBe(1000);
  });

  it('keeps only the newest W values, checks every k and restarts after an alarm', () => {
    const th: SequentialThresholds = {
      statistic: 'ks',
      window: 4,
      every: 2,
      ert: 100,
      values: Float64Array.of(0.9, 0.9),
    };
    const d = new SequentialDetector(Int32Array.of(50, 50), 100, th);
    expect([0, 1, 0].map((b) => d.push(b))).toEqual([undefined, undefined, undefined]);
    expect(d.push(1)).toBeUndefined(); // window [0,1,0,1] matches the reference: no alarm at the first check
    expect(d.push(0)).toBeUndefined(); // t = 5: not a check
    const alarm = d.push(0); // window [0,1,0,0]: |0.5 − 0.75| · sqrt(400/104) ≈ 0.49 < 0.9
    expect(alarm).toBeUndefined();
    d.push(0);
    const hit = d.push(0); // [0,0,0,0]: 0.5 · sqrt(400/104) ≈ 0.98 > 0.9
    expect(hit).toMatchObject({ t: 8, check: 2, threshold: 0.9 });
    expect(d.t).toBe(0);
  });

  it('calibrates deterministically in the seed', () => {
    const { profile } = world(5, 2000, gaussian);
    const grid = sequentialGrid(profile, 16);
    const o = { statistic: 'cvm', window: 30, every: 5, ert: 300, bootstraps: 300, seed: 9 } as const;
    const a = calibrateThresholds(grid.refCounts, grid.n, o);
    expect(Array.from(calibrateThresholds(grid.refCounts, grid.n, o).values)).toEqual(Array.from(a.values));
    expect(Array.from(calibrateThresholds(grid.refCounts, grid.n, { ...o, seed: 10 }).values)).not.toEqual(
      Array.from(a.values),
    );
    expect(a.values.length).toBe(Math.ceil(30 / 5) + 2);
    expect(() => calibrateThresholds(grid.refCounts, grid.n, { ...o, window: 1 })).toThrow(/window/);
  });

  it('builds a SEQUENTIAL_DRIFT alert with the evidence and an id per feature and window', () => {
    const th: SequentialThresholds = { statistic: 'cvm', window: 50, every: 5, ert: 500, values: Float64Array.of(1) };
    const ctx = {
      model: 'm',
      version: 'v1',
      referenceId: 'r',
      feature: 'f',
      partition: 2,
      offset: 77,
      eventTime: 1_000,
      windowStart: 0,
      windowEnd: 60_000,
    };
    const a = sequentialAlert(ctx, { statistic: 2, threshold: 1, t: 120, check: 14 }, th);
    expect(a).toMatchObject({ kind: 'SEQUENTIAL_DRIFT', feature: 'f', method: 'sequential_cvm', statistic: 2 });
    expect(JSON.parse(a.evidence)).toMatchObject({ t: 120, run_length: 71, ert: 500, window: 50, partition: 2 });
    const b = sequentialAlert({ ...ctx, partition: 3, offset: 5 }, { statistic: 3, threshold: 1, t: 60, check: 2 }, th);
    expect(b.alert_id).toBe(a.alert_id);
    expect(
      sequentialAlert({ ...ctx, feature: 'g' }, { statistic: 2, threshold: 1, t: 120, check: 14 }, th).alert_id,
    ).not.toBe(a.alert_id);
  });
});

/**
 * Validation by simulation: many references drawn from the population, each calibrated, each then
 * run over a fresh null stream from the same population for several consecutive runs. The mean
 * run length between false alarms must be within 20% of the configured ERT (seeded: ~600 runs, a
 * standard error of ~5%). The same harness must reject a deliberately uncalibrated threshold.
 */
describe('sequential detector: false alarms on null streams (simulation)', () => {
  const W = 50;
  const K = 5;
  const ERT = 500;
  const REFERENCES = 24;
  const RUNS = 25;

  /** References from the population, each calibrated once, with a fresh null stream each. */
  function worlds(draw: (r: SeededRandom) => number) {
    return Array.from({ length: REFERENCES }, (_, i) => {
      const { profile, sample } = world(1000 + i, 5000, draw);
      const grid = sequentialGrid(profile, 16);
      const th = calibrateThresholds(grid.refCounts, grid.n, {
        statistic: 'cvm',
        window: W,
        every: K,
        ert: ERT,
        bootstraps: 1000,
        seed: i,
      });
      return { grid, th, sample };
    });
  }

  function measure(ws: ReturnType<typeof worlds>, change: (t: SequentialThresholds) => SequentialThresholds) {
    const lengths: number[] = [];
    for (const w of ws) lengths.push(...nullRunLengths(w.grid, change(w.th), w.sample, RUNS, 50 * ERT).lengths);
    return mean(lengths) / ERT;
  }
  let cached: ReturnType<typeof worlds> | undefined;
  const gaussianWorlds = () => (cached ??= worlds(gaussian));

  it('continuous feature: mean run length within 20% of the ERT', () => {
    const ratio = measure(gaussianWorlds(), (t) => t);
    console.log(`sequential null run length / ERT (gaussian, W=${W}, k=${K}, ERT=${ERT}): ${ratio.toFixed(3)}`);
    expect(ratio).toBeGreaterThan(0.8);
    expect(ratio).toBeLessThan(1.2);
  }, 60_000);

  it('feature with ties: mean run length within 20% of the ERT', () => {
    const ratio = measure(worlds(counts), (t) => t);
    console.log(`sequential null run length / ERT (integer-valued): ${ratio.toFixed(3)}`);
    expect(ratio).toBeGreaterThan(0.8);
    expect(ratio).toBeLessThan(1.2);
  }, 60_000);

  it('the same check rejects uncalibrated thresholds', () => {
    // Naive: the first check's (1 − β) quantile everywhere, ignoring that overlapping windows make
    // exceedances cluster (the per-check false-alarm rate is then well below β).
    const naive = measure(gaussianWorlds(), (t) => ({ ...t, values: Float64Array.of(t.values[0]!) }));
    // Thresholds 15% too low: the false-alarm rate the ERT promises is exceeded.
    const scaled = measure(gaussianWorlds(), (t) => ({ ...t, values: t.values.map((v) => v * 0.85) }));
    console.log(`uncalibrated: naive ${naive.toFixed(3)}, thresholds × 0.85 ${scaled.toFixed(3)}`);
    expect(naive < 0.8 || naive > 1.2).toBe(true);
    expect(scaled < 0.8 || scaled > 1.2).toBe(true);
  }, 60_000);
});

describe('sequential detector: detection delay next to the fixed-window tests (simulation)', () => {
  it('reports the mean delay on shifted streams beside PSI and KS windows of the same values', () => {
    const window = 500;
    const trials = 30;
    // One reference and its calibration; fresh streams per trial (the same values feed all three).
    const r = new SeededRandom(5000);
    const profile = buildNumericProfile(Array.from({ length: 5000 }, () => r.normal()));
    const grid = sequentialGrid(profile, 32);
    // ERT = 20 windows of values: the fixed-window tests' own false-alarm rate at alpha 0.05.
    const th = calibrateThresholds(grid.refCounts, grid.n, {
      statistic: 'cvm',
      window: 200,
      every: 10,
      ert: 20 * window,
      bootstraps: 1000,
      seed: 1,
    });
    const d = meanDetectionDelays(
      profile,
      grid,
      th,
      DEFAULT_THRESHOLDS,
      { changeAt: 1234, horizon: 4000, windowValues: window },
      trials,
      () => r.normal(),
      () => r.normal() + 0.5,
    );
    console.log(
      `mean detection delay, shift 0.5 sd (values): sequential ${d.sequential.toFixed(0)}, ` +
        `PSI window ${d.psi.toFixed(0)}, KS window ${d.ks.toFixed(0)} (window ${window}, misses ${d.misses})`,
    );
    expect(d.misses).toBe(0);
    expect(d.sequential).toBeLessThan(d.psi);
  }, 60_000);
});

describe('sequential detectors of one partition (SequentialStreams)', () => {
  const r = new SeededRandom(77);
  const x = buildNumericProfile(Array.from({ length: 2000 }, () => r.normal()));
  const color = buildCategoricalProfile(Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? 'a' : 'b')));
  const config = { ...DEFAULT_SEQUENTIAL, window: 20, every: 5, ert: 1000, bins: 8, bootstraps: 300, maxStreams: 2 };
  const event = (i: number, value: number, model = 'm') => ({
    model,
    model_version: 'v1',
    event_time: i * 10,
    features: { x: value, color: 'a' },
    prediction: 0.5,
  });

  it('keeps the first alarm of a feature per drift window, restarts, and skips categoricals', () => {
    const cache = new CalibrationCache(config);
    const ref = referenceSet(
      'm',
      'v1',
      new Map<string, ReferenceProfile>([
        ['x', x],
        ['color', color],
      ]),
    );
    const streams = new SequentialStreams(cache, 1000, 3);
    const skipped: SequentialDetection[] = [];
    streams.observe(event(0, 8), 0, ref, skipped); // not calibrated yet: not watched
    expect(streams.values).toBe(0);
    cache.get(x);
    cache.get(color);
    const out: SequentialDetection[] = [];
    for (let i = 0; i < 400; i++) streams.observe(event(i, 8, 'm'), i, ref, out); // far outside the reference
    // 400 values over 4 drift windows of 100 values: an alarm every ~20 values, one kept per window.
    expect(out.map((d) => d.context.windowStart)).toEqual([0, 1000, 2000, 3000]);
    expect(out.every((d) => d.context.feature === 'x' && d.context.partition === 3)).toBe(true);
    expect(streams.suppressed).toBeGreaterThan(10);
    expect(cache.computed).toBe(1); // color is categorical: not calibrated
    expect(out[0]!.alarm.t).toBe(20); // the first check alarms, then the detector restarts
    expect(out[0]!.context.offset).toBe(19);
  });

  it('bounds the (model, version) sets and shares calibrations by profile', () => {
    const cache = new CalibrationCache(config);
    const streams = new SequentialStreams(cache, 1000, 0);
    const out: SequentialDetection[] = [];
    cache.get(x);
    for (const model of ['a', 'b', 'c']) {
      const ref = referenceSet(model, 'v1', new Map([['x', x]]));
      for (let i = 0; i < 5; i++) streams.observe(event(i, 0, model), i, ref, out);
    }
    expect(streams.size).toBe(2);
    expect(cache.computed).toBe(1);
  });
});
