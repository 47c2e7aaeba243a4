import { createSummary, type NumericReferenceProfile } from '@driftline/stats';
import { type DriftThresholds, featureResults } from '../decide.js';
import { SequentialDetector, type SequentialThresholds } from './detector.js';
import type { SequentialGrid } from './grid.js';

/**
 * Validation by simulation (used by the unit test and the bench): run lengths between false alarms
 * on null streams, and detection delays on shifted streams next to the fixed-window PSI/KS tests
 * of the drift-monitor on the same values. Streams come from caller-supplied samplers.
 */

/**
 * Run lengths (values from the window's first fill, t − W + 1) of `runs` consecutive runs of one
 * detector over one null stream: after each alarm the detector restarts, as in the service. A run
 * longer than `maxValues` is cut there (counted at that length; `censored` tells how many).
 */
export function nullRunLengths(
  grid: SequentialGrid,
  thresholds: SequentialThresholds,
  sample: () => number,
  runs: number,
  maxValues = Number.POSITIVE_INFINITY,
): { lengths: number[]; censored: number } {
  const detector = new SequentialDetector(grid.refCounts, grid.n, thresholds);
  const lengths: number[] = [];
  let censored = 0;
  while (lengths.length < runs) {
    const alarm = detector.push(grid.index.lowerBound(sample()));
    if (alarm !== undefined) lengths.push(alarm.t - thresholds.window + 1);
    else if (detector.t - thresholds.window + 1 >= maxValues) {
      lengths.push(maxValues);
      censored++;
      detector.reset();
    }
  }
  return { lengths, censored };
}

export interface DelayTrial {
  /** Values before the change (from `pre`), then values from `post`. */
  readonly changeAt: number;
  /** Values observed after the change before giving up (a miss). */
  readonly horizon: number;
  /** Tumbling window of the fixed-window tests, in values (aligned at the stream's start). */
  readonly windowValues: number;
}

export interface DelayResult {
  /** Values from the change to the alarm (1 = the first shifted value), or undefined when missed. */
  readonly sequential: number | undefined;
  readonly psi: number | undefined;
  readonly ks: number | undefined;
  /** Alarms before the change. */
  readonly sequentialFalseAlarms: number;
  readonly psiFalseAlarms: number;
  readonly ksFalseAlarms: number;
}

/**
 * One shifted stream through the sequential detector and through tumbling windows measured with
 * the drift-monitor's own window statistics (`featureResults`: PSI ≥ threshold, KS p < alpha).
 * A fixed window detects at its end, so its delay is windowEnd − changeAt for the first drifted
 * window ending after the change.
 */
export function detectionDelay(
  profile: NumericReferenceProfile,
  grid: SequentialGrid,
  thresholds: SequentialThresholds,
  drift: DriftThresholds,
  trial: DelayTrial,
  pre: () => number,
  post: () => number,
): DelayResult {
  const detector = new SequentialDetector(grid.refCounts, grid.n, thresholds);
  let sequential: number | undefined;
  let psi: number | undefined;
  let ks: number | undefined;
  let seqFalse = 0;
  let psiFalse = 0;
  let ksFalse = 0;
  let summary = createSummary(profile);
  const end = trial.changeAt + trial.horizon;
  for (let i = 0; i < end; i++) {
    const x = i < trial.changeAt ? pre() : post();
    if (sequential === undefined && detector.push(grid.index.lowerBound(x)) !== undefined) {
      if (i < trial.changeAt) seqFalse++;
      else sequential = i - trial.changeAt + 1;
    }
    summary.add(x);
    if ((i + 1) % trial.windowValues !== 0) continue;
    const rows = featureResults('x', profile, summary, drift);
    const after = i + 1 > trial.changeAt;
    for (const r of rows) {
      if (!r.drifted) continue;
      if (r.method === 'psi') {
        if (!after) psiFalse++;
        else psi ??= i + 1 - trial.changeAt;
      } else if (r.method === 'ks') {
        if (!after) ksFalse++;
        else ks ??= i + 1 - trial.changeAt;
      }
    }
    summary = createSummary(profile);
  }
  return {
    sequential,
    psi,
    ks,
    sequentialFalseAlarms: seqFalse,
    psiFalseAlarms: psiFalse,
    ksFalseAlarms: ksFalse,
  };
}

export interface DelayStudy {
  /** Mean delays (values) over the trials that all three detected within the horizon. */
  readonly sequential: number;
  readonly psi: number;
  readonly ks: number;
  /** Trials where at least one of the three missed (left out of the means). */
  readonly misses: number;
}

/** `detectionDelay` over `trials` shifted streams from the same samplers; mean delays. */
export function meanDetectionDelays(
  profile: NumericReferenceProfile,
  grid: SequentialGrid,
  thresholds: SequentialThresholds,
  drift: DriftThresholds,
  trial: DelayTrial,
  trials: number,
  pre: () => number,
  post: () => number,
): DelayStudy {
  const sums = { sequential: 0, psi: 0, ks: 0 };
  let misses = 0;
  for (let i = 0; i < trials; i++) {
    const d = detectionDelay(profile, grid, thresholds, drift, trial, pre, post);
    if (d.sequential === undefined || d.psi === undefined || d.ks === undefined) misses++;
    else {
      sums.sequential += d.sequential;
      sums.psi += d.psi;
      sums.ks += d.ks;
    }
  }
  const n = trials - misses;
  return { sequential: sums.sequential / n, psi: sums.psi / n, ks: sums.ks / n, misses };
}
