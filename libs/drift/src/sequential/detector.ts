/**
 * Online two-sample statistic between a reference and the sliding window of the newest W values,
 * both as counts on the same bins (see grid.ts). Adapted from Alibi Detect's CVMDriftOnline /
 * KSDriftOnline (Ross & Adams 2012): a sliding window, a statistic every `every` values, and a
 * threshold per check index calibrated by simulation (calibrate.ts) — here on reference-quantile
 * bins, so a check is O(B) and a value O(log B).
 */
export type SequentialStatistic = 'cvm' | 'ks';

/**
 * The statistic of window counts `win` (W values) against reference counts `ref` (n values).
 * cvm: n·W/(n+W) · Σ_b h_b (R_b − C_b)², R and C the cumulative shares at bin b's upper edge and
 * h_b the pooled mass of bin b — the two-sample Cramér–von Mises criterion evaluated on the bins.
 * ks: sqrt(n·W/(n+W)) · max_b |R_b − C_b|. Thresholds come from simulating exactly this function,
 * so the binning changes power, never the false-alarm rate.
 */
export function sequentialStatistic(
  kind: SequentialStatistic,
  ref: ArrayLike<number>,
  n: number,
  win: ArrayLike<number>,
  w: number,
): number {
  let cr = 0;
  let cw = 0;
  const last = ref.length - 1; // both CDFs are 1 at the top bin: it adds nothing
  const rn = 1 / n;
  const rw = 1 / w;
  if (kind === 'ks') {
    let d = 0;
    for (let b = 0; b < last; b++) {
      cr += ref[b]!;
      cw += win[b]!;
      const diff = Math.abs(cr * rn - cw * rw);
      if (diff > d) d = diff;
    }
    return d * Math.sqrt((n * w) / (n + w));
  }
  let s = 0;
  for (let b = 0; b < last; b++) {
    const r = ref[b]!;
    const c = win[b]!;
    cr += r;
    cw += c;
    const diff = cr * rn - cw * rw;
    s += (r + c) * diff * diff;
  }
  return (s * n * w) / ((n + w) * (n + w));
}

/** Per-check thresholds: index j for the j-th check after the window filled; the last repeats. */
export interface SequentialThresholds {
  readonly statistic: SequentialStatistic;
  readonly window: number;
  readonly every: number;
  /** Configured expected run time between false alarms, in values. */
  readonly ert: number;
  readonly values: Float64Array;
}

export interface SequentialAlarm {
  readonly statistic: number;
  readonly threshold: number;
  /** Values since the detector (re)started; the run length is t − W + 1. */
  readonly t: number;
  /** Check index (0 when the window first filled). */
  readonly check: number;
}

/**
 * State of one stream (e.g. one (model, version, feature, partition)): a ring of the newest W bin
 * indices and their counts — O(W + B) memory, O(log B) per value plus O(B) every `every` values.
 * After an alarm the detector restarts empty (so "run time between false alarms" is what the
 * calibration targets), like resetting Alibi Detect's online detectors.
 */
export class SequentialDetector {
  private readonly ring: Uint8Array;
  private readonly counts: Int32Array;
  private pos = 0;
  /** Values until the next check (a countdown instead of a modulo per value). */
  private untilCheck: number;
  /** Values since the last (re)start. */
  t = 0;

  constructor(
    readonly refCounts: Int32Array,
    readonly n: number,
    readonly thresholds: SequentialThresholds,
  ) {
    this.ring = new Uint8Array(thresholds.window);
    this.counts = new Int32Array(refCounts.length);
    this.untilCheck = thresholds.window;
  }

  /** Adds one value's bin; returns the alarm when this value completes a check above threshold. */
  push(bin: number): SequentialAlarm | undefined {
    const w = this.thresholds.window;
    if (this.t >= w) this.counts[this.ring[this.pos]!]!--;
    this.ring[this.pos] = bin;
    this.counts[bin]!++;
    this.pos = this.pos + 1 === w ? 0 : this.pos + 1;
    this.t++;
    if (--this.untilCheck > 0) return undefined;
    this.untilCheck = this.thresholds.every;
    const check = (this.t - w) / this.thresholds.every;
    const th = this.thresholds.values;
    const threshold = th[check < th.length ? check : th.length - 1]!;
    const statistic = sequentialStatistic(this.thresholds.statistic, this.refCounts, this.n, this.counts, w);
    if (!(statistic > threshold)) return undefined;
    const alarm = { statistic, threshold, t: this.t, check };
    this.reset();
    return alarm;
  }

  reset(): void {
    this.counts.fill(0);
    this.pos = 0;
    this.t = 0;
    this.untilCheck = this.thresholds.window;
  }
}
