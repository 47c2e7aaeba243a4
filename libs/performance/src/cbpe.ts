import { ConfigError, DriftlineError } from '@driftline/core';
import { asProbability, fewOutOfRange } from './metrics.js';

/**
 * Confidence-based performance estimation (CBPE, as NannyML does it) for binary classifiers:
 * scores are calibrated on a labeled reference (isotonic regression), and a window without labels
 * gets the EXPECTED confusion matrix at the model's threshold — a prediction with calibrated
 * probability p counts p as a positive and 1 − p as a negative — and the expected ROC AUC.
 *
 * Two modes over the same formulas: exact (every score of the window) and histogram (counts on a
 * grid of {@link SCORE_BINS} bins of [0, 1], the mergeable state the stream keeps).
 */

export const CALIBRATION_FORMAT = 'driftline.calibration/1' as const;
/** At most this many knots are stored: a map stays under ~40 KB of JSON whatever the reference size. */
export const MAX_CALIBRATION_POINTS = 2048;

/**
 * A monotone calibration map: linear interpolation between knots (x, y), clipped to [x0, xLast]
 * outside — exactly scikit-learn's `IsotonicRegression(out_of_bounds='clip')`, NannyML's default.
 */
export interface CalibrationMap {
  readonly format: typeof CALIBRATION_FORMAT;
  readonly method: 'isotonic' | 'identity';
  /** Strictly increasing knots (empty for `identity`). */
  readonly x: number[];
  readonly y: number[];
  /** Reference rows it was fitted on, and their positives. */
  readonly n: number;
  readonly positives: number;
  /** Largest |thinned − full| on the fitted knots when the map was thinned to the point cap, else 0. */
  readonly thinningError: number;
}

export const identityCalibration = (): CalibrationMap => ({
  format: CALIBRATION_FORMAT,
  method: 'identity',
  x: [],
  y: [],
  n: 0,
  positives: 0,
  thinningError: 0,
});

/** Weighted pool-adjacent-violators: the non-decreasing fit minimising Σ w (y − ŷ)². */
function pav(y: Float64Array, w: Float64Array): Float64Array {
  const n = y.length;
  const value = new Float64Array(n);
  const weight = new Float64Array(n);
  const size = new Int32Array(n);
  let blocks = 0;
  for (let i = 0; i < n; i++) {
    value[blocks] = y[i]!;
    weight[blocks] = w[i]!;
    size[blocks] = 1;
    blocks++;
    while (blocks > 1 && value[blocks - 2]! > value[blocks - 1]!) {
      const a = blocks - 2;
      const b = blocks - 1;
      const total = weight[a]! + weight[b]!;
      value[a] = (value[a]! * weight[a]! + value[b]! * weight[b]!) / total;
      weight[a] = total;
      size[a]! += size[b]!;
      blocks--;
    }
  }
  const out = new Float64Array(n);
  let k = 0;
  for (let b = 0; b < blocks; b++) for (let j = 0; j < size[b]!; j++) out[k++] = value[b]!;
  return out;
}

/** Linear interpolation on sorted knots, clipped to the end values (numpy's `interp`). */
function interpolate(x: readonly number[], y: readonly number[], s: number): number {
  const n = x.length;
  if (s <= x[0]!) return y[0]!;
  if (s >= x[n - 1]!) return y[n - 1]!;
  let lo = 0;
  let hi = n - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (x[mid]! <= s) lo = mid;
    else hi = mid;
  }
  const x0 = x[lo]!;
  const x1 = x[hi]!;
  return y[lo]! + ((y[hi]! - y[lo]!) * (s - x0)) / (x1 - x0);
}

/**
 * Scores closer than this are pooled by the isotonic fit: `np.finfo(np.float64).resolution`, as
 * scikit-learn's `IsotonicRegression` pools float64 inputs (NannyML's). Pooling only equal scores
 * had kept apart float32-saturated reference scores (1e-40 … 1e-16, all one group for scikit-learn):
 * 765 of 5,000 calibrated probabilities differed, by up to 0.079 (found by a review).
 */
const POOL_RESOLUTION = 1e-15;

/**
 * Fits the isotonic calibration of `scores` to binary `labels` as scikit-learn does: scores within
 * {@link POOL_RESOLUTION} of the smallest of their run pooled (mean label, summed weight), PAV, then only the knots where the fitted value
 * changes are kept. More than `maxPoints` knots (continuous scores on a huge reference) are thinned
 * to evenly spaced knots, first and last kept; monotonicity survives and the error is recorded.
 */
export function fitIsotonicCalibration(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  maxPoints = MAX_CALIBRATION_POINTS,
): CalibrationMap {
  if (scores.length !== labels.length) {
    throw new DriftlineError('VALIDATION_FAILED', `calibration: ${labels.length} labels but ${scores.length} scores`);
  }
  if (!Number.isInteger(maxPoints) || maxPoints < 2) {
    throw new DriftlineError('VALIDATION_FAILED', `calibration: maxPoints must be an integer >= 2 (got ${maxPoints})`);
  }
  const order: number[] = [];
  let positives = 0;
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i]!;
    const y = labels[i];
    if (!Number.isFinite(s)) throw new DriftlineError('VALIDATION_FAILED', `calibration: score ${s} at ${i}`);
    if (y !== 0 && y !== 1) throw new DriftlineError('VALIDATION_FAILED', `calibration: label ${y} at ${i}`);
    positives += y;
    order.push(i);
  }
  if (order.length === 0) throw new DriftlineError('VALIDATION_FAILED', 'calibration: no reference rows');
  order.sort((a, b) => scores[a]! - scores[b]!);
  const ux: number[] = [];
  const uy: number[] = [];
  const uw: number[] = [];
  for (let k = 0; k < order.length; ) {
    const s = scores[order[k]!]!;
    let sum = 0;
    let count = 0;
    // scikit-learn's `_make_unique`: a score less than POOL_RESOLUTION above the group's FIRST
    // (smallest) score joins the group, which stands at that first score.
    while (k < order.length && scores[order[k]!]! - s < POOL_RESOLUTION) {
      sum += labels[order[k]!]!;
      count++;
      k++;
    }
    ux.push(s);
    uy.push(sum / count);
    uw.push(count);
  }
  const fitted = pav(Float64Array.from(uy), Float64Array.from(uw));
  const x: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < ux.length; i++) {
    const keep = i === 0 || i === ux.length - 1 || fitted[i] !== fitted[i - 1] || fitted[i] !== fitted[i + 1];
    if (keep) {
      x.push(ux[i]!);
      y.push(fitted[i]!);
    }
  }
  let thinningError = 0;
  let kx = x;
  let ky = y;
  if (x.length > maxPoints) {
    kx = [];
    ky = [];
    for (let j = 0; j < maxPoints; j++) {
      const i = Math.round((j * (x.length - 1)) / (maxPoints - 1));
      kx.push(x[i]!);
      ky.push(y[i]!);
    }
    for (let i = 0; i < x.length; i++)
      thinningError = Math.max(thinningError, Math.abs(interpolate(kx, ky, x[i]!) - y[i]!));
  }
  return {
    format: CALIBRATION_FORMAT,
    method: 'isotonic',
    x: kx,
    y: ky,
    n: order.length,
    positives,
    thinningError,
  };
}

/** The calibrated probability of one score. */
export function calibrate(map: CalibrationMap, score: number): number {
  if (map.method === 'identity' || map.x.length === 0) return Math.min(1, Math.max(0, score));
  return interpolate(map.x, map.y, score);
}

/** Validates a stored map (JSON); errors name `field`. */
export function parseCalibrationMap(json: unknown, field: string): CalibrationMap {
  const bad = (why: string) => new ConfigError(field, why);
  if (typeof json !== 'object' || json === null) throw bad('is not an object');
  const o = json as Record<string, unknown>;
  if (o.format !== CALIBRATION_FORMAT) throw bad(`format must be ${CALIBRATION_FORMAT}`);
  if (o.method !== 'isotonic' && o.method !== 'identity') throw bad('method must be isotonic or identity');
  const nums = (v: unknown, name: string): number[] => {
    if (!Array.isArray(v) || v.length > MAX_CALIBRATION_POINTS || !v.every((e) => Number.isFinite(e))) {
      throw bad(`${name} must be at most ${MAX_CALIBRATION_POINTS} finite numbers`);
    }
    return v as number[];
  };
  const x = nums(o.x, 'x');
  const y = nums(o.y, 'y');
  if (x.length !== y.length) throw bad('x and y differ in length');
  if (o.method === 'isotonic' && x.length === 0) throw bad('an isotonic map needs at least one knot');
  for (let i = 1; i < x.length; i++) {
    if (!(x[i]! > x[i - 1]!)) throw bad('x must be strictly increasing');
    if (y[i]! < y[i - 1]!) throw bad('y must be non-decreasing');
  }
  if (y.some((v) => v < 0 || v > 1)) throw bad('y must lie in [0, 1]');
  const count = (v: unknown, name: string) => {
    if (!Number.isInteger(v) || (v as number) < 0) throw bad(`${name} must be a non-negative integer`);
    return v as number;
  };
  const thinningError = o.thinningError === undefined ? 0 : Number(o.thinningError);
  return {
    format: CALIBRATION_FORMAT,
    method: o.method,
    x,
    y,
    n: count(o.n, 'n'),
    positives: count(o.positives, 'positives'),
    thinningError: Number.isFinite(thinningError) ? thinningError : 0,
  };
}

/** Expected confusion counts and the metrics CBPE estimates from them. */
export interface CbpeEstimate {
  /** Predictions the estimate is over. */
  readonly n: number;
  readonly tp: number;
  readonly fp: number;
  readonly tn: number;
  readonly fn: number;
  readonly accuracy: number | null;
  readonly precision: number | null;
  readonly recall: number | null;
  readonly f1: number | null;
  readonly roc_auc: number | null;
}

export const ESTIMATED_METRICS = ['accuracy', 'precision', 'recall', 'f1', 'roc_auc'] as const;
export type EstimatedMetricName = (typeof ESTIMATED_METRICS)[number];

/**
 * Groups in ascending raw-score order: `count` predictions whose calibrated probability is `p`,
 * all on one side of the threshold, tied with each other in score.
 */
interface Group {
  readonly count: number;
  readonly p: number;
  readonly positive: boolean;
}

function estimateFromGroups(groups: Iterable<Group>): CbpeEstimate {
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  let n = 0;
  // Expected AUC: the probability that a random positive outranks a random negative, with each
  // prediction positive with probability p; score ties count one half (NannyML's trapezoid over
  // rows sorted by raw score is the same sum, without the ties).
  let aucNumerator = 0;
  let negativesBelow = 0;
  for (const g of groups) {
    if (g.count === 0) continue;
    const pos = g.count * g.p;
    const neg = g.count - pos;
    n += g.count;
    if (g.positive) {
      tp += pos;
      fp += neg;
    } else {
      fn += pos;
      tn += neg;
    }
    // Scanning upwards: each expected positive of this group outranks the expected negatives
    // below it, and half of its own group's negatives (score ties).
    aucNumerator += pos * (negativesBelow + neg / 2);
    negativesBelow += neg;
  }
  const positives = tp + fn;
  const negatives = fp + tn;
  if (n === 0) {
    return { n, tp, fp, tn, fn, accuracy: null, precision: null, recall: null, f1: null, roc_auc: null };
  }
  const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b);
  return {
    n,
    tp,
    fp,
    tn,
    fn,
    accuracy: (tp + tn) / n,
    precision: ratio(tp, tp + fp),
    recall: ratio(tp, tp + fn),
    f1: ratio(2 * tp, 2 * tp + fp + fn),
    roc_auc: positives > 0 && negatives > 0 ? aucNumerator / (positives * negatives) : null,
  };
}

/**
 * Exact-array mode: the estimate over every score of a window. `threshold` makes the decision
 * (class = raw score ≥ threshold, as the model decided); calibration gives the probabilities.
 */
export function estimateCbpe(scores: ArrayLike<number>, map: CalibrationMap, threshold: number): CbpeEstimate {
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  const groups: Group[] = [];
  for (let k = 0; k < order.length; ) {
    const s = scores[order[k]!]!;
    let count = 0;
    while (k < order.length && scores[order[k]!] === s) {
      count++;
      k++;
    }
    groups.push({ count, p: calibrate(map, s), positive: s >= threshold });
  }
  return estimateFromGroups(groups);
}

/** The logistic function, accurate in both tails (e^z / (1 + e^z) below 0: no overflow to 0/0). */
function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

/**
 * A grid of bins of [0, 1] in ascending score order: bin k holds the scores s with
 * `edges[k] <= s < edges[k + 1]`, the last bin every s >= its edge. Edges are non-decreasing (a
 * bin the doubles cannot separate stays empty).
 */
interface Grid {
  readonly edges: Float64Array;
  /** Slot of bin 0; bin k is slot `first + k`. */
  readonly first: number;
  /** The slot holding the scores of the threshold's bin that are >= threshold. */
  readonly split: number;
}

const binCount = (g: Grid): number => g.edges.length;

/** The bin of a score in [0, 1] (largest k with edges[k] <= s; 0 below the first edge). */
function binIn(g: Grid, score: number): number {
  const e = g.edges;
  if (!(score >= e[0]!)) return 0;
  let lo = 0;
  let hi = e.length;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (e[mid]! <= score) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** [low, high] of a bin (high = 1 for the last). */
function binBounds(g: Grid, bin: number): { low: number; high: number } {
  const n = binCount(g);
  return { low: g.edges[bin]!, high: bin + 1 < n ? g.edges[bin + 1]! : 1 };
}

/**
 * The grid scores are written on (slots {@link GRID_SLOT_OFFSET} …): logit bins wide enough for
 * over-confident and saturated models, and slots of their own for scores exactly 0 and exactly 1.
 * In ascending order: exactly 0; {@link TAIL_BINS} bins equal on the logit scale from the smallest
 * double (logit −745) to logit −{@link LOGIT_RANGE}; {@link MAIN_BINS} bins equal on the logit
 * scale over ±{@link LOGIT_RANGE} (width 0.0274, as the first grid's; the top one ends at 1, as no
 * double below 1 has a logit above 36.8); exactly 1. The 1,000 bins over scores 1e-6 … 1 − 1e-6 of the first grid put
 * every score beyond into an end bin standing for ONE mean score, tied for ROC AUC, though their
 * calibrated probabilities differ: on a model with logits stretched 8x (27 % of scores beyond) the
 * stored ROC AUC was 0.025 under the exact one, 0.074 with 15x in float32 (found by a review).
 * Below 1e-15 scikit-learn's isotonic fit pools the reference scores, so the tail bins can be coarse.
 */
export const LOGIT_RANGE = 37;
const MAIN_BINS = 2700;
const TAIL_BINS = 118;
const TAIL_LOGIT = -745;

/** Slots below this are the first grid's (read only) and {@link OUT_OF_RANGE_SLOT}. */
export const GRID_SLOT_OFFSET = 1002;

const grid: Grid = (() => {
  const edges: number[] = [0, Number.MIN_VALUE];
  const tailWidth = (-LOGIT_RANGE - TAIL_LOGIT) / TAIL_BINS;
  for (let j = 1; j <= TAIL_BINS; j++) edges.push(sigmoid(TAIL_LOGIT + j * tailWidth));
  const width = (2 * LOGIT_RANGE) / MAIN_BINS;
  for (let j = 1; j < MAIN_BINS; j++) edges.push(sigmoid(-LOGIT_RANGE + j * width));
  edges.push(1);
  for (let k = 1; k < edges.length; k++) edges[k] = Math.max(edges[k]!, edges[k - 1]!);
  return { edges: Float64Array.from(edges), first: GRID_SLOT_OFFSET, split: GRID_SLOT_OFFSET + edges.length };
})();

/** Bins of the current grid (exactly 0, the tail, the main bins, exactly 1). */
export const SCORE_BINS = binCount(grid);

/**
 * The first grid (written by earlier releases; read only, so stored windows keep their estimate): 1,000 bins
 * equal on the logit scale over scores 1e-6 … 1 − 1e-6, the end bins reaching 0 and 1, in slots
 * 0 … 999, and slot 1000 splitting the threshold's bin.
 */
const LEGACY_BINS = 1000;
const legacyGrid: Grid = (() => {
  const range = Math.log((1 - 1e-6) / 1e-6);
  const width = (2 * range) / LEGACY_BINS;
  const edges = [0];
  for (let k = 1; k < LEGACY_BINS; k++) edges.push(1 / (1 + Math.exp(-(-range + k * width))));
  return { edges: Float64Array.from(edges), first: 0, split: LEGACY_BINS };
})();

/**
 * Slot of the scores outside [0, 1] (and NaN), on both grids: logits or margins of a model deciding
 * at a threshold such as 0. The grid cannot place them, and clipping them to 0 or 1 had put most of
 * them on the wrong side of the threshold (estimated accuracy 0.271, realized 0.939). Counted, never
 * estimated: a histogram with more than MAX_OUT_OF_RANGE_SHARE (1%) of them is estimated null, as
 * log loss is for such scores; fewer are left out and the others estimated (one score of 1.5 among
 * 10,000 had voided the window's estimate: found by a review). Binning raw
 * scores would need a grid over every real number, which these logit bins, fitted to probabilities, are not.
 */
export const OUT_OF_RANGE_SLOT = LEGACY_BINS + 1;
/**
 * Slots of a histogram: the first grid's (read only), {@link OUT_OF_RANGE_SLOT}, the current grid's
 * bins and its split slot. A slot number says its grid, so stored rows, Redis tallies in flight and
 * sums of both (a window across the upgrade) are each read on their own grid.
 */
export const SCORE_SLOTS = grid.split + 1;

const gridOfSlot = (slot: number): Grid | undefined =>
  slot >= grid.first && slot < SCORE_SLOTS ? grid : slot >= 0 && slot <= legacyGrid.split ? legacyGrid : undefined;

/** The slot a score counts in, for a model deciding at `threshold` ({@link OUT_OF_RANGE_SLOT} outside [0, 1]). */
export function scoreSlot(score: number, threshold: number): number {
  return slotOn(grid, score, threshold);
}

/** {@link scoreSlot} on the first grid: what earlier releases stored (tests build such rows). */
export function legacyScoreSlot(score: number, threshold: number): number {
  return slotOn(legacyGrid, score, threshold);
}

function slotOn(g: Grid, score: number, threshold: number): number {
  // Within PROBABILITY_TOLERANCE of [0, 1] (float rounding), clipped: it had voided the window's estimate.
  const p = asProbability(score);
  if (p === undefined) return OUT_OF_RANGE_SLOT;
  const bin = binIn(g, p);
  if (bin === binIn(g, threshold) && p >= threshold) return g.split;
  return g.first + bin;
}

/** [low, high) of a slot's scores (high included for the bin of exactly 1) and its side of the threshold. */
export function slotRange(slot: number, threshold: number): { low: number; high: number; positive: boolean } {
  const g = gridOfSlot(slot);
  if (g === undefined || slot === OUT_OF_RANGE_SLOT) {
    throw new DriftlineError('VALIDATION_FAILED', `score histogram: slot ${slot} is on no grid`);
  }
  const tb = binIn(g, threshold);
  if (slot === g.split) {
    const b = binBounds(g, tb);
    return { low: Math.max(threshold, b.low), high: b.high, positive: true };
  }
  const bin = slot - g.first;
  const b = binBounds(g, bin);
  return { low: b.low, high: bin === tb ? Math.min(threshold, b.high) : b.high, positive: bin > tb };
}

/** A grid's slots in ascending score order: the split slot sits right after the threshold's own bin. */
function slotOrder(g: Grid, threshold: number): number[] {
  const tb = binIn(g, threshold);
  const out: number[] = [];
  for (let b = 0; b < binCount(g); b++) {
    out.push(g.first + b);
    if (b === tb) out.push(g.split);
  }
  return out;
}

/**
 * A window's scores on the grid: per slot the count and the sum of the scores in it. The sum makes
 * the slot's representative its mean score rather than its midpoint: calibration is piecewise
 * linear, so inside a slot where the map is linear the mean gives the exact expected counts.
 * Both merge by addition (instances, flushes).
 */
export interface ScoreHistogram {
  readonly counts: number[];
  readonly sums: number[];
}

export const emptyScoreHistogram = (): ScoreHistogram => ({
  counts: new Array<number>(SCORE_SLOTS).fill(0),
  sums: new Array<number>(SCORE_SLOTS).fill(0),
});

/** What a score adds to its slot's sum: the score as its slot takes it, 0 outside [0, 1] (that slot's sum is never used). */
export const slotValue = (score: number): number => asProbability(score) ?? 0;

/** Adds one score. */
export function addScore(h: ScoreHistogram, score: number, threshold: number): void {
  const slot = scoreSlot(score, threshold);
  h.counts[slot]! += 1;
  h.sums[slot]! += slotValue(score);
}

export function scoreHistogram(scores: Iterable<number>, threshold: number): ScoreHistogram {
  const h = emptyScoreHistogram();
  for (const s of scores) addScore(h, s, threshold);
  return h;
}

export function mergeScoreHistograms(a: ScoreHistogram, b: ScoreHistogram): ScoreHistogram {
  return { counts: a.counts.map((c, i) => c + b.counts[i]!), sums: a.sums.map((c, i) => c + b.sums[i]!) };
}

/** The groups of one grid's slots, ascending, each standing for its mean score (`at`). */
function gridGroups(h: ScoreHistogram, g: Grid, map: CalibrationMap, threshold: number): Array<Group & { at: number }> {
  const groups: Array<Group & { at: number }> = [];
  for (const slot of slotOrder(g, threshold)) {
    const count = h.counts[slot]!;
    if (count === 0) continue;
    const r = slotRange(slot, threshold);
    // The mean stays inside the slot (float rounding aside): clamp so the side never flips.
    const mean = Math.min(Math.max(h.sums[slot]! / count, r.low), r.high);
    groups.push({ count, p: calibrate(map, mean), positive: r.positive, at: mean });
  }
  return groups;
}

/**
 * Histogram mode: the estimate from a window's {@link ScoreHistogram}. Slots of the first grid (rows
 * and tallies written by earlier releases) are read on that grid; a window with slots of both (written across the
 * upgrade) has the groups of both merged in order of their mean scores.
 */
export function estimateCbpeFromHistogram(h: ScoreHistogram, map: CalibrationMap, threshold: number): CbpeEstimate {
  if (h.counts.length !== SCORE_SLOTS || h.sums.length !== SCORE_SLOTS) {
    throw new DriftlineError('VALIDATION_FAILED', `score histogram must have ${SCORE_SLOTS} slots`);
  }
  const outOfRange = h.counts[OUT_OF_RANGE_SLOT]!;
  const total = h.counts.reduce((a, c) => a + c, 0);
  if (!fewOutOfRange(outOfRange, total)) {
    // Over every scored prediction (the row's `scored`), with no metric: see OUT_OF_RANGE_SLOT.
    return {
      n: total,
      tp: 0,
      fp: 0,
      tn: 0,
      fn: 0,
      accuracy: null,
      precision: null,
      recall: null,
      f1: null,
      roc_auc: null,
    };
  }
  // A few (MAX_OUT_OF_RANGE_SHARE at most) are left out: the estimate and its n are the others'.
  const current = gridGroups(h, grid, map, threshold);
  let legacy = false;
  for (let slot = 0; slot <= legacyGrid.split && !legacy; slot++) legacy = h.counts[slot]! > 0;
  if (!legacy) return estimateFromGroups(current);
  // Stable: equal means keep the negative side first within each grid's order.
  const groups = [...gridGroups(h, legacyGrid, map, threshold), ...current].sort(
    (a, b) => a.at - b.at || Number(a.positive) - Number(b.positive),
  );
  return estimateFromGroups(groups);
}
