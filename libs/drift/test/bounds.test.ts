import { DEFAULT_EVENT_TIME_BOUNDS, PoisonRecordError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { checkPartialsTime, type PartialsMessage, restoredFrontierProblem } from '../src/index.js';

const NOW = Date.UTC(2024, 11, 2, 12, 0, 0);
const B = DEFAULT_EVENT_TIME_BOUNDS;
const MIN = 60_000;

describe('restored frontiers', () => {
  it('accepts a frontier up to one window past the event-time bounds', () => {
    const aligned = Math.floor((NOW + B.maxFutureMs) / MIN) * MIN + MIN; // closedUntil of the latest accepted event
    expect(restoredFrontierProblem(aligned, MIN, NOW, B)).toBeUndefined();
    expect(restoredFrontierProblem(NOW - 86_400_000, MIN, NOW, B)).toBeUndefined();
  });

  it('refuses the frontier a µs event_time left in drift_progress, and one before the minimum', () => {
    expect(restoredFrontierProblem(NOW * 1000, MIN, NOW, B)).toMatch(/^position \d+ is [\d,]+ years in the future/);
    expect(restoredFrontierProblem(0, MIN, NOW, B)).toMatch(/before the minimum 1999-12-31T23:59:00.000Z/);
  });
});

describe('partials messages', () => {
  const closed = (windowStart: number, closedUntil: number): PartialsMessage => ({
    type: 'closed',
    format: 'driftline.drift-partials/1',
    source: { topic: 'p', partition: 0, partitions: 1 },
    windowStart,
    windowEnd: windowStart + MIN,
    closedUntil,
    models: [],
  });

  it('passes a window within the bounds', () => {
    const m = closed(NOW - MIN, NOW);
    expect(checkPartialsTime(m, NOW, B)).toBe(m);
  });

  it('a window (or frontier) of a µs event is poison with the reason', () => {
    const far = Math.floor((NOW * 1000) / MIN) * MIN;
    expect(() => checkPartialsTime(closed(far, far + MIN), NOW, B)).toThrow(PoisonRecordError);
    expect(() => checkPartialsTime(closed(far, far + MIN), NOW, B)).toThrow(/drift partials: windowStart \d+ is/);
    expect(() => checkPartialsTime(closed(NOW - MIN, far), NOW, B)).toThrow(/closedUntil \d+ is [\d,]+ years/);
  });
});
