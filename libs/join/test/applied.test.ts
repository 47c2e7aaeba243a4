import { describe, expect, it } from 'vitest';
import { coveredBy, markerHolds, markerOffset, nextMarker } from '../src/applied.js';

describe('applied-through marker', () => {
  const marker = { from: 10, through: 20, maxAppendTime: 1_000 };
  const span = { first: 21, last: 25, maxAppendTime: 1_100 };

  it('holds unless a record at or below its end is newer than all it applied, or has no time', () => {
    expect(
      markerHolds(
        marker,
        [
          { offset: 15, appendTime: 900 },
          { offset: 21, appendTime: 5_000 },
        ],
        span,
      ),
    ).toBe(true);
    expect(markerHolds(marker, [{ offset: 3, appendTime: 1_001 }], span)).toBe(false); // a new log from 0
    expect(markerHolds(marker, [{ offset: 15 }], span)).toBe(false);
    expect(markerHolds(marker, [{ offset: 15, appendTime: -1 }], span)).toBe(false);
    expect(markerHolds(marker, [{ offset: 15, appendTime: 900 }], { ...span, restart: true })).toBe(false);
    expect(markerHolds(marker, [{ offset: 15, appendTime: 900 }])).toBe(false); // no span: no marker
    expect(markerHolds(undefined, [], span)).toBe(false);
  });

  it('covers its span only', () => {
    expect([9, 10, 20, 21].map((offset) => coveredBy(marker, { offset }))).toEqual([false, true, true, false]);
    expect(coveredBy(marker, {})).toBe(false);
    expect(coveredBy(undefined, { offset: 15 })).toBe(false);
  });

  it('merges spans that touch or overlap; a gap starts over; no time drops it', () => {
    const now = 10_000;
    expect(nextMarker(marker, span, now)).toEqual({ from: 10, through: 25, maxAppendTime: 1_100 });
    expect(nextMarker(marker, { first: 5, last: 9, maxAppendTime: 500 }, now)).toEqual({
      from: 5,
      through: 20,
      maxAppendTime: 1_000,
    });
    expect(nextMarker(marker, { first: 22, last: 30, maxAppendTime: 1_200 }, now)).toEqual({
      from: 22,
      through: 30,
      maxAppendTime: 1_200,
    });
    expect(nextMarker(undefined, span, now)).toEqual({ from: 21, through: 25, maxAppendTime: 1_100 });
    expect(nextMarker(marker, { first: 21, last: 25 }, now)).toBeUndefined();
  });

  it('records a future-dated timestamp as the clock of the step, so a new log stamped later is not a replay', () => {
    // One record of the old log stamped an hour ahead of the clock that applied it.
    const applied = nextMarker(undefined, { first: 0, last: 9, maxAppendTime: 1_000 + 3_600_000 }, 1_000);
    expect(applied?.maxAppendTime).toBe(1_000);
    expect(nextMarker(marker, { first: 21, last: 25, maxAppendTime: 5_000 }, 2_000)?.maxAppendTime).toBe(2_000);
    // The topic recreated a minute later: its offset 3, stamped with the real time, proves a new log.
    expect(
      markerHolds(applied, [{ offset: 3, appendTime: 61_000 }], { first: 3, last: 3, maxAppendTime: 61_000 }),
    ).toBe(false);
  });

  it('takes Kafka offsets it can hold exactly', () => {
    expect(markerOffset('42')).toBe(42);
    expect(markerOffset(7)).toBe(7);
    expect(markerOffset('9007199254740993')).toBeUndefined();
    expect(markerOffset('-1')).toBeUndefined();
    expect(markerOffset(undefined)).toBeUndefined();
  });
});
