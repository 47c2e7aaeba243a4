import { SeededRandom } from '@driftline/test-support/random';
import {
  buildNumericProfile,
  createSummary,
  ksFromSummary,
  mergeAll,
  type NumericReferenceProfile,
  type NumericSummary,
  psiFromSummary,
} from '../src/index.js';

/**
 * Micro-benchmark of the streaming drift path (wired into `make bench` elsewhere):
 * - drift.values_per_s: feature values per second through NumericSummary.add (target >= 500,000);
 * - drift.window_close_us_per_feature: µs to compute PSI + KS (with its bound) from a merged summary,
 *   the mean of a not-drifted and a strongly drifted feature (also reported separately);
 * - drift.bytes_per_feature_window: JSON bytes of one numeric summary — checked equal at 10^3 and
 *   10^5 events, because a summary must not grow with traffic.
 * Each figure is the median of several runs. Data come from a seeded generator, no I/O.
 */

export interface StatsBenchOptions {
  readonly runs?: number;
  readonly referenceSize?: number;
  readonly valuesPerRun?: number;
  readonly closesPerRun?: number;
}

/** Seeded normals so every run sees the same data. */
function normals(n: number, seed: number, mean: number): Float64Array {
  const rng = new SeededRandom(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = mean + rng.normal();
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function mergedPartials(profile: NumericReferenceProfile, values: Float64Array): NumericSummary {
  const quarter = Math.floor(values.length / 4);
  const partials = [0, 1, 2, 3].map((p) =>
    createSummary(profile).addAll(values.subarray(p * quarter, (p + 1) * quarter)),
  );
  return mergeAll(partials, profile)!;
}

function summaryBytes(profile: NumericReferenceProfile, events: number): number {
  const s = createSummary(profile).addAll(normals(events, 99, 0.2));
  return Buffer.byteLength(JSON.stringify(s.toJSON()), 'utf8');
}

export async function benchStats(options: StatsBenchOptions = {}): Promise<Record<string, number>> {
  const runs = options.runs ?? 5;
  const referenceSize = options.referenceSize ?? 200_000;
  const valuesPerRun = options.valuesPerRun ?? 1_000_000;
  const closesPerRun = options.closesPerRun ?? 200;

  const profile = buildNumericProfile(normals(referenceSize, 7, 0));
  const values = normals(valuesPerRun, 11, 0.1);

  const rates: number[] = [];
  let sink = 0;
  for (let r = 0; r < runs; r++) {
    const summary = createSummary(profile);
    const t0 = performance.now();
    for (let i = 0; i < values.length; i++) summary.add(values[i]);
    const seconds = (performance.now() - t0) / 1000;
    rates.push(values.length / seconds);
    sink += summary.count;
  }

  // Window close on four partition partials merged as the merge stage would: once for a feature
  // that has not drifted (the common case; p-value in O(1)) and once for a strongly drifted one
  // (scipy's upper-tail p-value sums O(sqrt(n))–O(n) terms). The headline figure is their mean.
  const noDrift = mergedPartials(profile, normals(valuesPerRun, 13, 0));
  const drifted = mergedPartials(profile, values);
  let bound = 0;
  const closeUs = (merged: NumericSummary): number => {
    const times: number[] = [];
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      for (let i = 0; i < closesPerRun; i++) {
        sink += psiFromSummary(profile, merged).value;
        const ks = ksFromSummary(profile, merged);
        sink += ks.pValue;
        bound = Math.max(bound, ks.errorBound);
      }
      times.push(((performance.now() - t0) * 1000) / closesPerRun);
    }
    return median(times);
  };
  const closeNoDrift = closeUs(noDrift);
  const closeDrifted = closeUs(drifted);

  const bytesSmall = summaryBytes(profile, 1_000);
  const bytesLarge = summaryBytes(profile, 100_000);
  if (bytesSmall !== bytesLarge) {
    throw new Error(`summary size depends on event count: ${bytesSmall} B at 1e3 vs ${bytesLarge} B at 1e5`);
  }
  if (Number.isNaN(sink)) throw new Error('benchmark produced NaN');

  return {
    'drift.values_per_s': median(rates),
    'drift.window_close_us_per_feature': (closeNoDrift + closeDrifted) / 2,
    'drift.window_close_us_no_drift': closeNoDrift,
    'drift.window_close_us_drifted': closeDrifted,
    'drift.bytes_per_feature_window': bytesLarge,
    'drift.ks_error_bound': bound,
  };
}
