import { describe, expect, it } from 'vitest';
import {
  acceptDeferral,
  type DeferralEvent,
  type DeferralWait,
  earlierDeferral,
  MAX_DEFER_MS,
  processedUpTo,
  stepDeferral,
  waitsBehind,
  waitsOnDeferral,
} from '../src/deferral.js';
import { ProgressTracker } from '../src/stall.js';

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

describe("a partition's wait on a deferral (stepDeferral) and its stall clock, as consumer.ts applies them", () => {
  const T = 60_000;
  /** kafkajs' fetch wait (maxWaitTimeInMs), as consumer.ts sets it. */
  const W = 500;
  /** One partition: the wait, kafkajs' paused state and the stall tracker, moved as consumer.ts's onDeferral does. */
  function partition() {
    const progress = new ProgressTracker(T);
    let wait: DeferralWait | undefined;
    let paused = false;
    let rechecks = 0;
    return {
      progress,
      on(event: DeferralEvent, now: number) {
        const next = stepDeferral(wait, event, now);
        wait = next.wait;
        if (next.pause) paused = true;
        if (next.recheckLog) rechecks++;
        if (next.resume) paused = false;
        if (next.restartStallClock) progress.working('r', 0, now);
      },
      /** consumer.ts's stalls(): a partition waiting on its deferral is left out. */
      stalled: (now: number) => progress.stalls(now).filter(() => !waitsOnDeferral(wait, now, T, W)),
      state: () => ({ wait, paused, rechecks }),
    };
  }
  /** A batch at 10 (high watermark 12) deferred at 10 at time 0: nothing committed past 10, lag 2. */
  function deferredAt0() {
    const p = partition();
    p.progress.observe('r', 0, { committed: 10n, highWatermark: 12n, caughtUp: false }, 0);
    p.on({ kind: 'deferred', offset: 10n, current: true }, 0);
    return p;
  }

  it('a join that keeps the deferred partition starts its stall clock again (a38f2da): not stalled at once', () => {
    const p = deferredAt0();
    expect(p.stalled(50 * T)).toEqual([]); // a known wait, however long
    p.on({ kind: 'joined' }, 50 * T);
    expect(p.state()).toEqual({ wait: undefined, paused: false, rechecks: 0 });
    // Before a38f2da the clock still ran from before the wait: stalled (an error line, /healthz 503)
    // from the join until the processor answered again.
    expect(p.stalled(50 * T + 1)).toEqual([]);
    // Its batch must come within the stall timeout, as after any other wait.
    expect(p.stalled(51 * T)).toEqual([{ topic: 'r', partition: 0, lag: 2, stalledForMs: T }]);
  });

  it('the delay passing resumes it and re-reads its log; a known wait until its batch begins, for a stall timeout and a fetch wait at most', () => {
    const p = deferredAt0();
    p.on({ kind: 'delayPassed' }, 10 * T);
    expect(p.state()).toEqual({ wait: { offset: 10n, resumedAt: 10 * T }, paused: false, rechecks: 1 });
    // kafkajs adds the resumed partition to its broker's next fetch, which may begin only when the
    // current long poll ends, a fetch wait later: before, reported stalled here (a review).
    expect(p.stalled(11 * T + 1)).toEqual([]);
    expect(p.stalled(11 * T + W - 1)).toEqual([]);
    expect(p.stalled(11 * T + W)).toHaveLength(1); // resumed, and no batch came: still reported
    p.on({ kind: 'batch' }, 11 * T + W);
    expect(p.stalled(11 * T + W + 1)).toEqual([]);
    p.on({ kind: 'delayPassed' }, 12 * T); // a timer of a wait that is over: nothing
    expect(p.state()).toEqual({ wait: undefined, paused: false, rechecks: 1 });
  });

  it('a stop ends the wait without resuming; a deferral after a join since its batch began pauses nothing', () => {
    const stopped = deferredAt0();
    stopped.on({ kind: 'stopping' }, T);
    expect(stopped.state()).toEqual({ wait: undefined, paused: true, rechecks: 0 });
    const late = partition();
    late.on({ kind: 'deferred', offset: 3n, current: false }, 0);
    expect(late.state()).toEqual({ wait: undefined, paused: false, rechecks: 0 });
  });

  it('a batch is processed up to the deferred record, else past its last', () => {
    expect(processedUpTo(12n, { offset: 10n, delayMs: 0, reason: '' })).toBe(10n);
    expect(processedUpTo(12n, undefined)).toBe(13n);
  });
});
