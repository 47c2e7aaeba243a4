import { buildNumericProfile } from '@driftline/stats';
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import { type EventPlacement, PartitionWindows, referenceSet, type WindowedEvent } from '../src/index.js';

const SIZE = 1_000;
const ref = referenceSet('m', 'v1', new Map([['x', buildNumericProfile([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])]]));

const event = (t: number): WindowedEvent => ({
  model: 'm',
  model_version: 'v1',
  event_time: t,
  features: { x: 1 },
  prediction: 0,
});

/** Windows whose `add` resolved a reference for each event (undefined: none asked, i.e. replayed). */
function recording(restored?: { closedUntil: number; offset: number; lateFrom?: number }) {
  let asked: number | undefined;
  const windows = new PartitionWindows(
    { sizeMs: SIZE, latenessMs: 500, maxAheadMs: 2_000 },
    (_m, _v, w) => {
      asked = w;
      return ref;
    },
    restored,
  );
  const add = (t: number, offset: number, now: number) => {
    asked = undefined;
    const outcome = windows.add(event(t), offset, now);
    return { outcome, window: asked };
  };
  return { windows, add };
}

/** A seeded stream: mostly in order, some late by up to 10 windows, some ahead of the clock. */
function stream(seed: number, n: number) {
  const rng = new SeededRandom(seed);
  const out: Array<{ t: number; now: number }> = [];
  let now = 100_000;
  for (let i = 0; i < n; i++) {
    now += rng.int(300);
    const kind = rng.int(10);
    const t = kind < 2 ? now - rng.int(10 * SIZE) : kind < 3 ? now + 2_000 + rng.int(5 * SIZE) : now - rng.int(400);
    out.push({ t, now });
  }
  return out;
}

describe('PartitionWindows.placement: the window add counts an event in, known before it is added', () => {
  it('event by event: the window add resolves in, replayed ones none, and the clock it leaves', () => {
    for (let seed = 1; seed <= 20; seed++) {
      // A restored frontier: the replay of events before offset 40 meets windows the previous owner emitted.
      const { windows, add } = recording({ closedUntil: 100_000 + 3 * SIZE, offset: 40 });
      const outcomes = new Set<string>();
      for (const [offset, { t, now }] of stream(seed, 120).entries()) {
        const placed = windows.placement(t, offset, now);
        const { outcome, window } = add(t, offset, now);
        outcomes.add(outcome);
        expect(window).toBe(placed.windowStart);
        expect(outcome === 'replayed').toBe(placed.windowStart === undefined);
        expect(windows.eventClock()).toBe(placed.eventClock);
      }
      if (seed === 1) expect([...outcomes].sort()).toEqual(['added', 'ahead', 'late', 'replayed']);
    }
  });

  it('a batch placed in order before any of it is added (as the drift monitor does) gives the same windows', () => {
    for (let seed = 21; seed <= 40; seed++) {
      const { windows, add } = recording();
      const events = stream(seed, 200);
      for (let start = 0; start < events.length; start += 25) {
        const batch = events.slice(start, start + 25);
        let clock = windows.eventClock();
        const planned: EventPlacement[] = batch.map(({ t, now }, i) => {
          const placed = windows.placement(t, start + i, now, clock);
          clock = placed.eventClock;
          return placed;
        });
        const counted = batch.map(({ t, now }, i) => add(t, start + i, now).window);
        expect(counted).toEqual(planned.map((p) => p.windowStart));
        windows.closeReady();
      }
    }
  });

  it('changes nothing: placing an event leaves the clock and the windows as they were', () => {
    const { windows, add } = recording();
    add(10_000, 0, 10_000);
    const placed = windows.placement(20_000, 1, 20_000);
    expect(placed.eventClock).toBe(20_000);
    expect(windows.eventClock()).toBe(10_000);
    expect(windows.openWindows()).toBe(1);
    // Late at the clock the placement left, not at the partition's own.
    expect(windows.placement(10_000, 2, 20_000, placed.eventClock)).toMatchObject({ late: true, windowStart: 19_000 });
    expect(windows.placement(10_000, 2, 20_000)).toMatchObject({ late: false, windowStart: 10_000 });
  });
});
