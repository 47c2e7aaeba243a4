import { describe, expect, it } from 'vitest';
import { acceptDeferral, earlierDeferral, MAX_DEFER_MS, waitsBehind } from '../src/deferral.js';

describe('a processor deferral (ProcessResult.defer), as the consumer loop takes it', () => {
  const offered = ['10', '11', '12'];

  it('takes a deferral at one of the offered records, its delay bounded to 0…MAX_DEFER_MS', () => {
    expect(acceptDeferral(offered, { offset: '11', delayMs: 1_500.4, reason: 'labels lag' })).toEqual({
      offset: 11n,
      delayMs: 1_500,
      reason: 'labels lag',
    });
    expect(acceptDeferral(offered, { offset: '10', delayMs: -5, reason: '' }).delayMs).toBe(0);
    expect(acceptDeferral(offered, { offset: '12', delayMs: 7 * 86_400_000, reason: '' }).delayMs).toBe(MAX_DEFER_MS);
  });

  it("refuses an offset it was not offered, or a delay that is no number: the processor's bug (INTERNAL), never a skip", () => {
    for (const offset of ['9', '13', 'x']) {
      expect(() => acceptDeferral(offered, { offset, delayMs: 10, reason: '' })).toThrow(
        expect.objectContaining({ code: 'INTERNAL', retriable: false }),
      );
    }
    expect(() => acceptDeferral(offered, { offset: '11', delayMs: Number.NaN, reason: '' })).toThrow(
      expect.objectContaining({ code: 'INTERNAL' }),
    );
  });

  it('keeps the earliest deferral of an attempt (bisection may ask twice); the records from it on wait behind it', () => {
    const at12 = { offset: 12n, delayMs: 5, reason: 'b' };
    const at11 = { offset: 11n, delayMs: 9, reason: 'a' };
    expect(earlierDeferral(undefined, at12)).toBe(at12);
    expect(earlierDeferral(at12, at11)).toBe(at11);
    expect(earlierDeferral(at11, at12)).toBe(at11);
    expect(offered.map((o) => waitsBehind(at11, o))).toEqual([false, true, true]);
    expect(waitsBehind(undefined, '12')).toBe(false);
  });
});
