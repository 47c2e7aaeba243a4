import { DriftlineError } from '@driftline/core';
import { CompensatedSum } from '@driftline/stats';

/** Numeric machine epsilon of float64, the clipping bound scikit-learn uses for log loss and MAPE. */
export const FLOAT64_EPS = 2.220446049250313e-16;

/**
 * How far outside [0, 1] a score is still a probability: float rounding of one (0.56 + 0.34 + 0.1
 * = 1.0000000000000002 in doubles; a float32 model's probabilities summed in float32, one float32
 * step above 1: 1.0000001192092896). Within it a score is clipped into [0, 1]; beyond it (and NaN)
 * it is no probability. One bound for the realized log loss and Brier and for the CBPE grid
 * (cbpe.ts): the grid took 1.0000000000000002 while it nulled the window's realized log loss and
 * Brier, so a bound on them never fired (found by a review).
 */
export const PROBABILITY_TOLERANCE = 1e-6;

const clip01 = (p: number): number => Math.min(1, Math.max(0, p));

/**
 * The largest share of a window's scores that may lie outside [0, 1] (beyond
 * {@link PROBABILITY_TOLERANCE}) for its CBPE estimate and realized log loss and Brier to be
 * computed on the others (1%, so the metrics move by about that much at most): a few bad scores (a bug in one request path, a NaN) are left out
 * of those three and counted (driftline_joiner_scores_out_of_range_total); more, and the model is
 * taken to emit no probabilities (logits, margins, a regression model at the default task) and
 * they are null. One score of 1.5 among 10,000 had voided the window's estimate, one of 1.0001
 * its log loss and Brier (found by a review).
 */
export const MAX_OUT_OF_RANGE_SHARE = 0.01;

/** Whether `outOfRange` of `total` scores still leave the others a probability metric ({@link MAX_OUT_OF_RANGE_SHARE}). */
export const fewOutOfRange = (outOfRange: number, total: number): boolean =>
  outOfRange <= MAX_OUT_OF_RANGE_SHARE * total;

/** The score clipped into [0, 1] when within {@link PROBABILITY_TOLERANCE} of it; undefined beyond (NaN too). */
export function asProbability(score: number): number | undefined {
  if (!(score >= -PROBABILITY_TOLERANCE && score <= 1 + PROBABILITY_TOLERANCE)) return undefined;
  return clip01(score);
}

function checkLengths(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  if (a.length !== b.length) {
    throw new DriftlineError('VALIDATION_FAILED', `${what}: ${a.length} labels but ${b.length} predictions`);
  }
}

function checkBinary(labels: ArrayLike<number>, what: string): void {
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (y !== 0 && y !== 1) {
      throw new DriftlineError('VALIDATION_FAILED', `${what}: label ${String(y)} at ${i} is not 0 or 1`);
    }
  }
}

// A NaN score sorts nowhere (every comparison is false), so the rank walk would count it as
// neither above nor below and return a confident number; scikit-learn refuses such input.
function checkFiniteScores(scores: ArrayLike<number>, what: string): void {
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i] as number;
    if (!Number.isFinite(s)) {
      throw new DriftlineError('VALIDATION_FAILED', `${what}: score ${String(s)} at ${i} is not a finite number`);
    }
  }
}

/** Confusion counts of binary labels against binary predicted classes (positive class = 1). */
export interface Confusion {
  readonly tp: number;
  readonly fp: number;
  readonly tn: number;
  readonly fn: number;
}

export function confusion(labels: ArrayLike<number>, predicted: ArrayLike<number>): Confusion {
  checkLengths(labels, predicted, 'confusion');
  checkBinary(labels, 'confusion');
  checkBinary(predicted, 'confusion (predicted)');
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    const p = predicted[i];
    if (p === 1) {
      if (y === 1) tp++;
      else fp++;
    } else if (y === 1) fn++;
    else tn++;
  }
  return { tp, fp, tn, fn };
}

/** Predicted classes from scores: 1 when score >= threshold. */
export function classesFromScores(scores: ArrayLike<number>, threshold = 0.5): number[] {
  const out = new Array<number>(scores.length);
  for (let i = 0; i < scores.length; i++) out[i] = (scores[i] as number) >= threshold ? 1 : 0;
  return out;
}

// Ratios follow scikit-learn's defaults: an undefined precision/recall/F1 (0/0) is 0
// (`zero_division=0`, what sklearn returns after its warning); an empty sample gives null.
const ratio = (num: number, den: number): number => (den === 0 ? 0 : num / den);

export function accuracyOf(c: Confusion): number | null {
  const n = c.tp + c.fp + c.tn + c.fn;
  return n === 0 ? null : (c.tp + c.tn) / n;
}

export function precisionOf(c: Confusion): number | null {
  return c.tp + c.fp + c.tn + c.fn === 0 ? null : ratio(c.tp, c.tp + c.fp);
}

export function recallOf(c: Confusion): number | null {
  return c.tp + c.fp + c.tn + c.fn === 0 ? null : ratio(c.tp, c.tp + c.fn);
}

/** F1 = 2TP / (2TP + FP + FN), sklearn's formula (0 when there is no positive at all). */
export function f1Of(c: Confusion): number | null {
  return c.tp + c.fp + c.tn + c.fn === 0 ? null : ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn);
}

/**
 * ROC AUC as the Mann-Whitney statistic with tied scores counted one half (equal to sklearn's
 * trapezoidal area under the ROC curve). Null when either class is absent (sklearn raises);
 * a non-finite score throws VALIDATION_FAILED (sklearn raises too).
 * The scores of each class are sorted natively (8 bytes per score; a comparator sort of an index
 * array took seconds and boxed memory on a window of millions) and walked together: every
 * positive counts the negatives below it, and half those tied with it. The counts are exact
 * integers or halves, so the sum is exact up to 2^53.
 */
export function rocAuc(labels: ArrayLike<number>, scores: ArrayLike<number>): number | null {
  checkLengths(labels, scores, 'roc_auc');
  checkBinary(labels, 'roc_auc');
  checkFiniteScores(scores, 'roc_auc');
  let positives = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] === 1) positives++;
  const negatives = labels.length - positives;
  if (positives === 0 || negatives === 0) return null;
  const pos = new Float64Array(positives);
  const neg = new Float64Array(negatives);
  for (let i = 0, p = 0, q = 0; i < labels.length; i++) {
    if (labels[i] === 1) pos[p++] = scores[i] as number;
    else neg[q++] = scores[i] as number;
  }
  pos.sort();
  neg.sort();
  let u = 0;
  let below = 0; // negatives with a score lower than the current positive's
  for (let i = 0; i < positives; ) {
    const s = pos[i] as number;
    let next = i + 1;
    while (next < positives && pos[next] === s) next++;
    while (below < negatives && (neg[below] as number) < s) below++;
    let tied = below;
    while (tied < negatives && neg[tied] === s) tied++;
    u += (next - i) * (below + (tied - below) / 2);
    i = next;
  }
  return u / (positives * negatives);
}

/** Binary cross-entropy; probabilities clipped to [eps, 1 - eps] as sklearn does. */
export function logLoss(labels: ArrayLike<number>, probabilities: ArrayLike<number>): number | null {
  checkLengths(labels, probabilities, 'log_loss');
  checkBinary(labels, 'log_loss');
  checkFiniteScores(probabilities, 'log_loss');
  if (labels.length === 0) return null;
  const sum = new CompensatedSum();
  const hi = 1 - FLOAT64_EPS;
  for (let i = 0; i < labels.length; i++) {
    // Into [0, 1] first (a score within PROBABILITY_TOLERANCE of it; the eps clip below gives the
    // same loss either way), then as sklearn: it forms [1 - p, p] and clips both columns afterwards.
    const p = clip01(probabilities[i] as number);
    const q = labels[i] === 1 ? p : 1 - p;
    sum.add(-Math.log(Math.min(Math.max(q, FLOAT64_EPS), hi)));
  }
  return sum.value() / labels.length;
}

/** Mean squared difference between the probability of the positive class and the outcome. */
export function brierScore(labels: ArrayLike<number>, probabilities: ArrayLike<number>): number | null {
  checkLengths(labels, probabilities, 'brier');
  checkBinary(labels, 'brier');
  if (labels.length === 0) return null;
  const sum = new CompensatedSum();
  for (let i = 0; i < labels.length; i++) {
    // A score within PROBABILITY_TOLERANCE of [0, 1] counts as the probability it rounds.
    const d = clip01(probabilities[i] as number) - (labels[i] as number);
    sum.add(d * d);
  }
  return sum.value() / labels.length;
}

export function meanAbsoluteError(labels: ArrayLike<number>, predictions: ArrayLike<number>): number | null {
  checkLengths(labels, predictions, 'mae');
  if (labels.length === 0) return null;
  const sum = new CompensatedSum();
  for (let i = 0; i < labels.length; i++) sum.add(Math.abs((labels[i] as number) - (predictions[i] as number)));
  return sum.value() / labels.length;
}

export function rootMeanSquaredError(labels: ArrayLike<number>, predictions: ArrayLike<number>): number | null {
  checkLengths(labels, predictions, 'rmse');
  if (labels.length === 0) return null;
  const sum = new CompensatedSum();
  for (let i = 0; i < labels.length; i++) {
    const d = (labels[i] as number) - (predictions[i] as number);
    sum.add(d * d);
  }
  return Math.sqrt(sum.value() / labels.length);
}

/** sklearn's MAPE: mean(|y - ŷ| / max(|y|, eps)), a fraction (not percent); huge when y ≈ 0. */
export function meanAbsolutePercentageError(labels: ArrayLike<number>, predictions: ArrayLike<number>): number | null {
  checkLengths(labels, predictions, 'mape');
  if (labels.length === 0) return null;
  const sum = new CompensatedSum();
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i] as number;
    sum.add(Math.abs(y - (predictions[i] as number)) / Math.max(Math.abs(y), FLOAT64_EPS));
  }
  return sum.value() / labels.length;
}

export const CLASSIFICATION_METRICS = [
  'accuracy',
  'precision',
  'recall',
  'f1',
  'roc_auc',
  'log_loss',
  'brier',
] as const;
export const REGRESSION_METRICS = ['mae', 'rmse', 'mape'] as const;
export const METRIC_NAMES = [...CLASSIFICATION_METRICS, ...REGRESSION_METRICS] as const;
export type MetricName = (typeof METRIC_NAMES)[number];
export type Metrics = Record<MetricName, number | null>;
export type Task = 'classification' | 'regression';

export const emptyMetrics = (): Metrics => ({
  accuracy: null,
  precision: null,
  recall: null,
  f1: null,
  roc_auc: null,
  log_loss: null,
  brier: null,
  mae: null,
  rmse: null,
  mape: null,
});

/**
 * Every classification metric of binary labels and positive-class scores: accuracy, precision,
 * recall and F1 at `threshold` (class = score >= threshold), ROC AUC, and log loss and Brier over
 * the scores that are probabilities, in [0, 1] within {@link PROBABILITY_TOLERANCE} (clipped into
 * it). The others are left out of log loss and Brier while they are at most
 * {@link MAX_OUT_OF_RANGE_SHARE} of the scores; beyond it (logits, a regression model left at the
 * default task) both are null, where scikit-learn raises; before any of this, a score of 1.5 for a
 * positive added 2e-16 of loss, silent garbage.
 */
export function classificationMetrics(labels: ArrayLike<number>, scores: ArrayLike<number>, threshold = 0.5): Metrics {
  const c = confusion(labels, classesFromScores(scores, threshold));
  let outOfRange = 0;
  for (let i = 0; i < scores.length; i++) if (asProbability(scores[i] as number) === undefined) outOfRange++;
  const probabilities = fewOutOfRange(outOfRange, scores.length);
  let [pl, ps]: [ArrayLike<number>, ArrayLike<number>] = [labels, scores];
  if (probabilities && outOfRange > 0) {
    const keptLabels = new Float64Array(scores.length - outOfRange);
    const keptScores = new Float64Array(scores.length - outOfRange);
    let k = 0;
    for (let i = 0; i < scores.length; i++) {
      if (asProbability(scores[i] as number) === undefined) continue;
      keptLabels[k] = labels[i] as number;
      keptScores[k++] = scores[i] as number;
    }
    [pl, ps] = [keptLabels, keptScores];
  }
  return {
    ...emptyMetrics(),
    accuracy: accuracyOf(c),
    precision: precisionOf(c),
    recall: recallOf(c),
    f1: f1Of(c),
    roc_auc: rocAuc(labels, scores),
    log_loss: probabilities ? logLoss(pl, ps) : null,
    brier: probabilities ? brierScore(pl, ps) : null,
  };
}

export function regressionMetrics(labels: ArrayLike<number>, predictions: ArrayLike<number>): Metrics {
  return {
    ...emptyMetrics(),
    mae: meanAbsoluteError(labels, predictions),
    rmse: rootMeanSquaredError(labels, predictions),
    mape: meanAbsolutePercentageError(labels, predictions),
  };
}
