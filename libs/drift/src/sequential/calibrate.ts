import { ConfigError } from '@driftline/core';
import { type SequentialStatistic, type SequentialThresholds, sequentialStatistic } from './detector.js';

export interface CalibrationOptions {
  readonly statistic: SequentialStatistic;
  /** Sliding window W (values). */
  readonly window: number;
  /** A check every this many values once the window is full. */
  readonly every: number;
  /** Expected run time between false alarms, in values (counted from the window's first fill). */
  readonly ert: number;
  /** Simulated null streams. */
  readonly bootstraps: number;
  readonly seed: number;
  /**
   * Values of the stationary segment the threshold h∞ is fitted on (default min(ert, 20·W)):
   * longer is more precise for a large ERT and costs proportionally more.
   */
  readonly stationaryValues?: number;
}

/** Fewest expected exceedances for a per-check quantile to be estimated rather than taken from h∞. */
const MIN_EXCEEDANCES = 5;

/** Bounds on calibration inputs: its cost is bootstraps × (4W + stationaryValues) bin draws. */
export const SEQUENTIAL_BOUNDS = {
  window: [5, 10_000],
  every: [1, 1_000],
  ert: [10, 10_000_000],
  bootstraps: [100, 100_000],
} as const;

/** mulberry32: deterministic across platforms, so every instance calibrates the same thresholds. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1) >>> 0;
    t = (t ^ (t + (Math.imul(t ^ (t >>> 7), t | 61) >>> 0))) >>> 0;
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

/** Vose's alias table: O(1) draws of a bin with the reference's shares. */
function aliasTable(counts: ArrayLike<number>, n: number): { prob: Float64Array; alias: Int32Array } {
  const k = counts.length;
  const prob = new Float64Array(k);
  const alias = new Int32Array(k);
  const scaled = Float64Array.from({ length: k }, (_, i) => (counts[i]! * k) / n);
  const small: number[] = [];
  const large: number[] = [];
  for (let i = 0; i < k; i++) (scaled[i]! < 1 ? small : large).push(i);
  while (small.length > 0 && large.length > 0) {
    const s = small.pop()!;
    const l = large.pop()!;
    prob[s] = scaled[s]!;
    alias[s] = l;
    scaled[l] = scaled[l]! + scaled[s]! - 1;
    (scaled[l]! < 1 ? small : large).push(l);
  }
  for (const i of [...small, ...large]) {
    prob[i] = 1;
    alias[i] = i;
  }
  return { prob, alias };
}

function normal(rng: () => number): number {
  const u = 1 - rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

/** Binomial(n, q): waiting times when n·q is small (exact), a rounded normal otherwise. */
function binomial(rng: () => number, n: number, q: number): number {
  if (n <= 0 || q <= 0) return 0;
  if (q >= 1) return n;
  if (q > 0.5) return n - binomial(rng, n, 1 - q);
  if (n * q < 30) {
    const lq = Math.log1p(-q);
    let x = 0;
    let sum = 0;
    for (;;) {
      sum += Math.ceil(Math.log(1 - rng()) / lq);
      if (sum > n) return x;
      x++;
    }
  }
  const x = Math.round(n * q + Math.sqrt(n * q * (1 - q)) * normal(rng));
  return x < 0 ? 0 : Math.min(x, n);
}

/** A bootstrap reference: n draws from the reference's own shares (multinomial by binomial splits). */
function resample(rng: () => number, counts: ArrayLike<number>, n: number, out: Int32Array): void {
  let left = n;
  let mass = 0;
  for (let b = 0; b < counts.length; b++) mass += counts[b]!;
  for (let b = 0; b < counts.length; b++) {
    const c = counts[b]!;
    const x = b === counts.length - 1 ? left : binomial(rng, left, mass > 0 ? c / mass : 0);
    out[b] = x;
    left -= x;
    mass -= c;
  }
}

/** Smallest value v with at least `q` of the sorted sample at or below it. */
function upperQuantile(sorted: Float64Array, q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export function checkCalibrationOptions(o: CalibrationOptions): void {
  for (const [field, [lo, hi]] of Object.entries(SEQUENTIAL_BOUNDS)) {
    const v = o[field as keyof typeof SEQUENTIAL_BOUNDS];
    if (!Number.isInteger(v) || v < lo || v > hi) throw new ConfigError(field, `must be an integer in [${lo}, ${hi}]`);
  }
  if (o.ert <= o.every) throw new ConfigError('ert', `must exceed every (${o.every})`);
}

/** Per-check false-alarm probability that makes the mean run length ERT under a constant hazard. */
export function hazardFor(ert: number, every: number): number {
  // Checks at run lengths 1, 1+k, 1+2k, …: mean run length k·(1/β − 1) + 1 = ERT.
  return every / (ert - 1 + every);
}

/**
 * Thresholds per check calibrated by simulation to an expected run time between false alarms,
 * as Alibi Detect's `_configure_thresholds` does, with a bootstrap from the reference: each
 * simulated stream draws its own reference of size n from the reference's bin counts (so the
 * reference's own sampling noise is accounted for, as Alibi's simulation of both samples does) and
 * a stream from the same counts, and runs exactly the detector's statistic.
 *
 * - Warm-up checks j < J0 = ⌈W/k⌉ + 1 (until the window no longer overlaps its first fill):
 *   h_j = the (1 − β) quantile of check j over the streams that did not alarm before (eqn. 2 of
 *   Ross & Adams 2012), β = k/(ERT − 1 + k); where fewer than 5 exceedances are expected the
 *   estimate is noise and h∞ is used instead.
 * - Stationary checks (the last value, repeated): h∞ solves P(no alarm in segment B | none in
 *   segment A) = (1 − β)^M, A the 2W values after the warm-up and B the next M checks — the
 *   hazard once the stream forgot its start, without the burst of a segment's first checks
 *   biasing it (exceedances cluster in overlapping windows, so an unconditioned segment's first
 *   check alarms more often than later ones). This uses every
 *   check of every stream, rather than one quantile at a far tail, so it stays precise for an ERT
 *   well beyond the number of streams: relative precision ≈ 1/√(bootstraps · M·k/ERT).
 *
 * Pure and deterministic in `seed`. Cost: bootstraps × (4W + stationaryValues) bin draws.
 */
export function calibrateThresholds(
  refCounts: ArrayLike<number>,
  n: number,
  options: CalibrationOptions,
): SequentialThresholds {
  checkCalibrationOptions(options);
  const { window: w, every: k, ert, bootstraps, statistic } = options;
  if (n < 1) throw new ConfigError('reference', 'has no finite values to calibrate against');
  const bins = refCounts.length;
  const beta = hazardFor(ert, k);
  const j0 = Math.ceil(w / k) + 1;
  const m = Math.max(1, Math.ceil((options.stationaryValues ?? Math.min(ert, 20 * w)) / k));
  // Segment A only has to outlast the clustering of exceedances in overlapping windows (~W).
  const ma = Math.ceil((2 * w) / k);
  const checks = j0 + ma + m;
  const rng = prng(options.seed);
  const { prob, alias } = aliasTable(refCounts, n);
  const warm = new Float64Array(bootstraps * j0);
  const maxA = new Float64Array(bootstraps);
  const maxB = new Float64Array(bootstraps);
  const ref = new Int32Array(bins);
  const win = new Int32Array(bins);
  const ring = new Int32Array(w);
  for (let s = 0; s < bootstraps; s++) {
    resample(rng, refCounts, n, ref);
    win.fill(0);
    let pos = 0;
    let filled = 0;
    let a = Number.NEGATIVE_INFINITY;
    let b = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < checks; j++) {
      const draws = j === 0 ? w : k;
      for (let d = 0; d < draws; d++) {
        const u = rng() * bins;
        const i = Math.floor(u);
        const bin = u - i < prob[i]! ? i : alias[i]!;
        if (filled >= w) win[ring[pos]!]!--;
        else filled++;
        ring[pos] = bin;
        win[bin]!++;
        pos = pos + 1 === w ? 0 : pos + 1;
      }
      const stat = sequentialStatistic(statistic, ref, n, win, w);
      if (j < j0) warm[s * j0 + j] = stat;
      else if (j < j0 + ma) a = Math.max(stat, a);
      else b = Math.max(stat, b);
    }
    maxA[s] = a;
    maxB[s] = b;
  }
  const hInf = stationaryThreshold(maxA, maxB, (1 - beta) ** m);
  const values = new Float64Array(j0 + 1);
  let alive = Int32Array.from({ length: bootstraps }, (_, i) => i);
  for (let j = 0; j < j0; j++) {
    let h = hInf;
    if (alive.length * beta >= MIN_EXCEEDANCES) {
      const vals = Float64Array.from(alive, (s) => warm[s * j0 + j]!).sort();
      h = upperQuantile(vals, 1 - beta);
    }
    values[j] = h;
    alive = alive.filter((s) => warm[s * j0 + j]! <= h);
  }
  values[j0] = hInf;
  return { statistic, window: w, every: k, ert, values };
}

/** Smallest h with #(A ≤ h and B ≤ h) / #(A ≤ h) ≥ target (bisection over the sorted candidates). */
function stationaryThreshold(maxA: Float64Array, maxB: Float64Array, target: number): number {
  const candidates = Float64Array.from([...maxA, ...maxB]).sort();
  const ratio = (h: number): number => {
    let sa = 0;
    let sab = 0;
    for (let i = 0; i < maxA.length; i++) {
      if (maxA[i]! <= h) {
        sa++;
        if (maxB[i]! <= h) sab++;
      }
    }
    return sa === 0 ? 0 : sab / sa;
  };
  let lo = 0;
  let hi = candidates.length - 1;
  if (ratio(candidates[hi]!) < target) return candidates[hi]!;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ratio(candidates[mid]!) >= target) hi = mid;
    else lo = mid + 1;
  }
  return candidates[lo]!;
}
