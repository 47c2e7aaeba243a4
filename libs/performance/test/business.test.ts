import { describe, expect, it } from 'vitest';
import { businessMetrics, businessOutcome } from '../src/business.js';

// Worked by hand: threshold 0.5.
const points = [
  { score: 0.9, label: 1, value: 100 }, // TP
  { score: 0.7, label: 1, value: 40 }, // TP
  { score: 0.2, label: 1, value: 250 }, // FN
  { score: 0.6, label: 0, value: 15 }, // FP
  { score: 0.55, label: 0, value: null }, // FP, no value
  { score: 0.1, label: 0, value: 999 }, // TN: worth nothing either way
  { score: 0.8, label: 1, value: null }, // TP, no value
];

describe('businessOutcome', () => {
  it('values of true positives are caught, of false negatives missed; FP × cost when configured', () => {
    const o = businessOutcome(points, { threshold: 0.5, falseAlarmCost: 5 });
    expect(o).toEqual({
      valueCaught: 140,
      valueMissed: 250,
      falseAlarmCost: 10,
      net: 130,
      truePositives: 3,
      falseNegatives: 1,
      falsePositives: 2,
      valued: 5,
    });
  });

  it('without a configured cost a false alarm costs its label value', () => {
    const o = businessOutcome(points, { threshold: 0.5 });
    expect(o?.falseAlarmCost).toBe(15);
    expect(o?.net).toBe(125);
    expect(businessMetrics(o)).toEqual({
      value_caught: 140,
      value_missed: 250,
      false_alarm_cost: 15,
      business_net: 125,
    });
  });

  it('decides at the threshold (score >= threshold is positive)', () => {
    const o = businessOutcome(points, { threshold: 0.85 });
    expect(o?.valueCaught).toBe(100);
    expect(o?.valueMissed).toBe(290);
    expect(o?.falsePositives).toBe(0);
  });

  it('is null when any label is not 0 or 1, as the classification metrics are (found by a review)', () => {
    // Labels −1/+1: the outcome of the +1s alone had read as the model's (net 10 − 0 false alarms).
    const plusMinusOne = [
      { score: 0.55, label: 1, value: 10 },
      { score: 0.55, label: -1, value: 5 },
      { score: 0.55, label: -1, value: 5 },
    ];
    expect(businessOutcome(plusMinusOne, { threshold: 0.5, falseAlarmCost: 3 })).toBeNull();
    expect(businessOutcome([...points, { score: 0.95, label: 7, value: 1e6 }], { threshold: 0.5 })).toBeNull();
  });

  it('is null when nothing carries a value and no cost is configured (unknown, not zero)', () => {
    expect(businessOutcome([{ score: 0.9, label: 1, value: null }], { threshold: 0.5 })).toBeNull();
    expect(businessMetrics(null).business_net).toBeNull();
    expect(businessOutcome([], { threshold: 0.5, falseAlarmCost: 5 })).toBeNull();
    expect(businessOutcome([{ score: 0.9, label: 0, value: null }], { threshold: 0.5, falseAlarmCost: 2 })?.net).toBe(
      -2,
    );
    expect(() => businessOutcome([], { threshold: 0.5, falseAlarmCost: -1 })).toThrow(/false alarm cost/);
  });
});
