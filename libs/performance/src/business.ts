import { DriftlineError } from '@driftline/core';
import { CompensatedSum } from '@driftline/stats';

/** One labeled prediction with the business value its label carries (labels.v1 `value`, optional). */
export interface ValuedPoint {
  readonly score: number;
  readonly label: number;
  /** Amount at stake (a fraud's amount, the cost of a miss); null when the label carried none. */
  readonly value: number | null;
}

export interface BusinessOptions {
  /** Class = score >= threshold, as everywhere else. */
  readonly threshold: number;
  /**
   * Cost of one false alarm (a positive decision on a negative). When undefined, a false alarm
   * costs its label's own `value` (e.g. the friction of blocking that customer's purchase).
   */
  readonly falseAlarmCost?: number;
}

/** The business outcome of a window's decisions at the model's threshold. */
export interface BusinessOutcome {
  /** Σ value of true positives: what the model's positive decisions caught. */
  readonly valueCaught: number;
  /** Σ value of false negatives: what it let through. */
  readonly valueMissed: number;
  /** FP × falseAlarmCost, or Σ value of false positives when no cost is configured. */
  readonly falseAlarmCost: number;
  /** valueCaught − falseAlarmCost: the model's decisions against not deciding at all. */
  readonly net: number;
  readonly truePositives: number;
  readonly falseNegatives: number;
  readonly falsePositives: number;
  /** Labeled points whose label carried a value. */
  readonly valued: number;
}

export const BUSINESS_METRICS = ['value_caught', 'value_missed', 'false_alarm_cost', 'business_net'] as const;
export type BusinessMetricName = (typeof BUSINESS_METRICS)[number];

/**
 * Business outcome of binary decisions. A missing value adds 0 to the sums but the point still
 * counts in the confusion counts. Null without labeled points, when any label is not 0 or 1 (as the
 * window's classification metrics: what it meant is unknown, and the outcome of the rest is not the
 * model's; labels −1/+1 had left the positives only), or when none carried a value and no
 * false-alarm cost is configured: nothing is known about money then, and 0 would read as "no loss".
 */
export function businessOutcome(points: Iterable<ValuedPoint>, options: BusinessOptions): BusinessOutcome | null {
  const cost = options.falseAlarmCost;
  if (cost !== undefined && !(Number.isFinite(cost) && cost >= 0)) {
    throw new DriftlineError('VALIDATION_FAILED', `false alarm cost must be a finite number >= 0 (got ${cost})`);
  }
  const caught = new CompensatedSum();
  const missed = new CompensatedSum();
  const falseAlarmValues = new CompensatedSum();
  let tp = 0;
  let fn = 0;
  let fp = 0;
  let valued = 0;
  let judged = 0;
  for (const p of points) {
    if (p.label !== 0 && p.label !== 1) return null;
    judged++;
    const v = p.value !== null && Number.isFinite(p.value) ? p.value : null;
    if (v !== null) valued++;
    const positive = p.score >= options.threshold;
    if (p.label === 1) {
      if (positive) {
        tp++;
        if (v !== null) caught.add(v);
      } else {
        fn++;
        if (v !== null) missed.add(v);
      }
    } else if (positive) {
      fp++;
      if (v !== null) falseAlarmValues.add(v);
    }
  }
  if (judged === 0 || (valued === 0 && cost === undefined)) return null;
  const falseAlarm = cost === undefined ? falseAlarmValues.value() : fp * cost;
  return {
    valueCaught: caught.value(),
    valueMissed: missed.value(),
    falseAlarmCost: falseAlarm,
    net: caught.value() - falseAlarm,
    truePositives: tp,
    falseNegatives: fn,
    falsePositives: fp,
    valued,
  };
}

/**
 * The outcome of a uniform sample scaled to the whole it was drawn from (`factor` = rows of the
 * whole / rows of the sample): each sum and count × factor (counts rounded), an estimate of the
 * whole's. A factor of 1 gives the outcome unchanged.
 */
export function scaledBusinessOutcome(o: BusinessOutcome | null, factor: number): BusinessOutcome | null {
  if (!(Number.isFinite(factor) && factor >= 1)) {
    throw new DriftlineError(
      'VALIDATION_FAILED',
      `a sample's scale factor must be a finite number >= 1 (got ${factor})`,
    );
  }
  if (o === null || factor === 1) return o;
  const count = (n: number) => Math.round(n * factor);
  return {
    valueCaught: o.valueCaught * factor,
    valueMissed: o.valueMissed * factor,
    falseAlarmCost: o.falseAlarmCost * factor,
    net: o.net * factor,
    truePositives: count(o.truePositives),
    falseNegatives: count(o.falseNegatives),
    falsePositives: count(o.falsePositives),
    valued: count(o.valued),
  };
}

/** The outcome as named metrics (`business_net`, …), the names alert bounds and the retrain policy use. */
export function businessMetrics(o: BusinessOutcome | null): Record<BusinessMetricName, number | null> {
  return {
    value_caught: o?.valueCaught ?? null,
    value_missed: o?.valueMissed ?? null,
    false_alarm_cost: o?.falseAlarmCost ?? null,
    business_net: o?.net ?? null,
  };
}
