import { describe, expect, it } from 'vitest';
import { type LabelDelays, labelOrderBiased } from '../src/label-delay.js';

const H = 3_600_000;
const D = 24 * H;
const delays = (
  positives: number,
  positiveMedianMs: number,
  negatives: number,
  negativeMedianMs: number,
): LabelDelays => ({
  positives,
  negatives,
  positiveMedianMs,
  negativeMedianMs,
});

describe('labelOrderBiased: one class labelled much later than the other', () => {
  it('chargebacks (positives in days, negatives when the window closes) are, either way round', () => {
    expect(labelOrderBiased(delays(500, 2 * D, 4_500, 30 * D))).toBe(true);
    expect(labelOrderBiased(delays(500, 30 * D, 4_500, 2 * D))).toBe(true);
    // Labels of one class within the hour, the other's a day later.
    expect(labelOrderBiased(delays(100, 0, 100, D))).toBe(true);
  });

  it('alike delays, delays apart by less than the gap, or a ratio under 2 are not', () => {
    expect(labelOrderBiased(delays(500, D, 4_500, D))).toBe(false);
    expect(labelOrderBiased(delays(500, 10_000, 4_500, 40_000))).toBe(false); // 4× but 30 s apart
    expect(labelOrderBiased(delays(500, 10 * D, 4_500, 15 * D))).toBe(false); // 5 days apart but 1.5×
  });

  it('too few labels of a class give no verdict (NaN medians included)', () => {
    expect(labelOrderBiased(delays(29, D, 4_500, 30 * D))).toBe(false);
    expect(labelOrderBiased(delays(0, Number.NaN, 4_500, 30 * D))).toBe(false);
    expect(labelOrderBiased(delays(500, 2 * D, 0, Number.NaN))).toBe(false);
  });
});
