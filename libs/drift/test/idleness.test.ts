import { buildNumericProfile } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import { idleAdvance, PartitionWindows, REPLAY_TRAIL_MS, referenceSet, type SourceClock } from '../src/index.js';

const clock = (over: Partial<SourceClock>): SourceClock => ({
  latestEventTime: Number.NEGATIVE_INFINITY,
  eventClock: Number.NEGATIVE_INFINITY,
  recordClock: 0,
  quietMs: 0,
  ...over,
});

describe('idleAdvance (source idleness)', () => {
  const now = 10_000_000;
  it('a partition with events moves by its silence, less the idle time', () => {
    const p = clock({ latestEventTime: 9_955_000, eventClock: 9_955_000, recordClock: now - 40_000, quietMs: 40_000 });
    expect(idleAdvance(p, [], now, 30_000)).toBe(9_955_000 + 40_000 - 30_000);
    // Silent for less than the idle time: it waits for its next event.
    expect(idleAdvance({ ...p, recordClock: now - 29_999 }, [], now, 30_000)).toBeUndefined();
    expect(idleAdvance({ ...p, quietMs: 29_999 }, [], now, 30_000)).toBeUndefined();
  });

  it('counts only the silence it saw: a broker outage is not a pause of the producers', () => {
    // Its last record was written 5 minutes ago, but the member could read it again 40 s ago only
    // (the broker was down: producers buffered, and write what they held in a moment).
    const p = clock({
      latestEventTime: now - 300_000,
      eventClock: now - 300_000,
      recordClock: now - 300_000,
      quietMs: 40_000,
    });
    expect(idleAdvance(p, [], now, 30_000)).toBe(now - 300_000 + 10_000);
    // Nor more than the time since its last record was written (a record fetched after a wait).
    const q = clock({ latestEventTime: 9_960_000, eventClock: 9_960_000, recordClock: now - 35_000, quietMs: 90_000 });
    expect(idleAdvance(q, [], now, 30_000)).toBe(9_960_000 + 5_000);
  });

  it('a partition without events follows the furthest clock of those with events, once quiet for the idle time', () => {
    const busy = clock({ latestEventTime: 9_900_000, eventClock: 9_905_000, recordClock: now });
    const other = clock({ latestEventTime: 9_800_000, eventClock: 9_800_000, recordClock: now });
    const empty = clock({ quietMs: 30_000 });
    expect(idleAdvance(empty, [other, busy], now, 30_000)).toBe(9_905_000 - 30_000);
    expect(idleAdvance({ ...empty, quietMs: 29_000 }, [busy], now, 30_000)).toBeUndefined();
    // Other followers (no events of their own) are not followed: nothing to start from.
    expect(idleAdvance(empty, [clock({ eventClock: 9_990_000, quietMs: 60_000 })], now, 30_000)).toBeUndefined();
  });

  it('after a restart, a partition without live events follows the others, or moves from its restored frontier', () => {
    const p = clock({ restoredClock: 9_000_000, eventClock: 9_000_000, recordClock: now - 3_600_000, quietMs: 45_000 });
    expect(idleAdvance(p, [], now, 30_000)).toBe(9_000_000 + 15_000);
    const busy = clock({ latestEventTime: 9_990_000, eventClock: 9_990_000, recordClock: now });
    expect(idleAdvance(p, [busy], now, 30_000)).toBe(9_990_000 - 30_000);
    expect(idleAdvance({ ...p, quietMs: 10_000 }, [busy], now, 30_000)).toBeUndefined();
  });

  it('events over an hour behind their Kafka time (a replay, a backfill) do not move on processing time', () => {
    const backfill = clock({
      latestEventTime: now - 60_000 - REPLAY_TRAIL_MS - 1,
      eventClock: now - 60_000 - REPLAY_TRAIL_MS - 1,
      recordClock: now - 60_000,
      quietMs: 60_000,
    });
    expect(idleAdvance(backfill, [], now, 30_000)).toBeUndefined();
    // A live stream with a steady lag of 20 minutes (event times set upstream) keeps it.
    const lagging = { ...backfill, latestEventTime: now - 60_000 - 20 * 60_000 };
    expect(idleAdvance(lagging, [], now, 30_000)).toBe(lagging.latestEventTime + 30_000);
    // The same after a restart, its records all replayed from before the restored frontier.
    const restored = clock({ restoredClock: backfill.latestEventTime, recordClock: now - 60_000, quietMs: 300_000 });
    expect(idleAdvance(restored, [], now, 30_000)).toBeUndefined();
  });

  it('0 turns it off', () => {
    const p = clock({ latestEventTime: 1, eventClock: 1, recordClock: 1, quietMs: 1e9 });
    expect(idleAdvance(p, [], now, 0)).toBeUndefined();
  });
});

describe('PartitionWindows.advanceTo', () => {
  const ref = referenceSet('m', 'v1', new Map([['x', buildNumericProfile([1, 2, 3, 4])]]));
  const event = (t: number) => ({
    model: 'm',
    model_version: 'v1',
    event_time: t,
    features: { x: 1 },
    prediction: 0,
  });

  it('closes the windows behind the new clock; a later event behind it is late; the events clock stays', () => {
    const w = new PartitionWindows({ sizeMs: 1000, latenessMs: 100 }, () => ref);
    expect(w.add(event(1_500), 0)).toBe('added');
    expect(w.closeReady().windows).toEqual([]);
    w.advanceTo(2_100); // watermark 2,000: window [1000, 2000) closes
    const flush = w.closeReady();
    expect(flush.windows.map((x) => [x.windowStart, x.partials[0]?.events])).toEqual([[1000, 1]]);
    expect(flush.closedUntil).toBe(2000);
    expect(w.latestEventTime()).toBe(1_500);
    expect(w.eventClock()).toBe(2_100);
    expect(w.add(event(1_900), 1)).toBe('late');
    w.advanceTo(1_000); // never back
    expect(w.eventClock()).toBe(2_100);
  });

  it('a partition without events announces its frontier', () => {
    const w = new PartitionWindows({ sizeMs: 1000, latenessMs: 0 }, () => ref);
    w.advanceTo(5_500);
    expect(w.closeReady()).toEqual({ windows: [], closedUntil: 5000, advanced: true });
    expect(w.latestEventTime()).toBe(Number.NEGATIVE_INFINITY);
  });
});
