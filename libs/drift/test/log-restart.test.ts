import { buildNumericProfile } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import { PartitionWindows, referenceSet, type WindowedEvent } from '../src/index.js';

const ref = referenceSet('m', 'v1', new Map([['x', buildNumericProfile([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])]]));
const event = (t: number): WindowedEvent => ({
  model: 'm',
  model_version: 'v1',
  event_time: t,
  features: { x: 1 },
  prediction: 0,
});

/**
 * Restored from a previous owner of the old log (windows to 10 s emitted, by records before
 * offset 1000), then the old log's 1000-1002 (window 10 s closes, 11 s stays open).
 */
function restoredThenOldLog() {
  const windows = new PartitionWindows({ sizeMs: 1_000, latenessMs: 0 }, () => ref, {
    closedUntil: 10_000,
    offset: 1_000,
    lateFrom: 1_000,
  });
  expect([10_100, 10_200, 11_100].map((t, i) => windows.add(event(t), 1_000 + i))).toEqual(['added', 'added', 'added']);
  expect(windows.closeReady().windows.map((w) => w.windowStart)).toEqual([10_000]);
  return windows;
}

describe('PartitionWindows.logRestarted: the source log started over (found by a review of db1feb7)', () => {
  it("the new log's events dated in closed windows are late in the open window, not replays; closed windows stay closed", () => {
    const windows = restoredThenOldLog();
    const clock = windows.eventClock();
    windows.logRestarted();
    expect(windows.eventClock()).toBe(clock);
    expect(windows.closedUntil()).toBe(11_000);
    // Offsets 0-2 are below the restored 1000 (and its lateFrom): replays before the restart.
    expect([5_100, 5_200, 10_500].map((t, i) => windows.add(event(t), i))).toEqual(['late', 'late', 'late']);
    expect(windows.add(event(11_200), 3)).toBe('added');
    expect(windows.replayedEvents).toBe(0);
    expect(windows.add(event(12_500), 4)).toBe('added');
    const closed = windows.closeReady().windows;
    expect(closed.map((w) => [w.windowStart, w.partials[0]!.events, w.partials[0]!.late])).toEqual([[11_000, 2, 3]]);
  });

  it("the frontier's lateFrom after the restart is an offset of the new log", () => {
    const windows = restoredThenOldLog();
    windows.logRestarted();
    // The watermark had passed 11 s before the new log's first record.
    expect(windows.lateFrom(11_000, 3)).toBe(0);
    windows.add(event(12_500), 3);
    expect(windows.lateFrom(12_000, 4)).toBe(3);
    expect(windows.restored).toEqual({ closedUntil: 10_000, offset: 0 });
  });

  it("the commit is not held at an old log's offset: no replay of the new log rebuilds its events", () => {
    const windows = restoredThenOldLog(); // window 11 s open since offset 1002
    expect(windows.commitOffset(1_003)).toBe(1_002);
    windows.logRestarted();
    expect(windows.commitOffset(1_500)).toBe(1_500);
    windows.add(event(11_300), 1_500); // the new log's first event in it
    expect(windows.commitOffset(1_501)).toBe(1_500);
  });
});
