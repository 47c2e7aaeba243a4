import { DriftlineError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { logEndOf } from '../src/log-end.js';

describe("the skew-monitor's read of a partition's log end", () => {
  const offsets = [
    { partition: 0, low: 0n, high: 120n },
    { partition: 1, low: 5n, high: 7n },
  ];

  it("is the partition's high watermark", () => {
    expect(logEndOf(offsets, 'predictions.v1', 1)).toBe(7);
  });

  it('throws a retriable error for a partition not listed, never 0 (found by a review)', () => {
    // Before: 0, which made every row read back "past the log's end": a false new epoch.
    let thrown: unknown;
    try {
      logEndOf(offsets, 'predictions.v1', 2);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(DriftlineError);
    expect(thrown).toMatchObject({
      code: 'SOURCE_UNAVAILABLE',
      retriable: true,
      details: { topic: 'predictions.v1', partition: 2, listed: [0, 1] },
    });
    expect((thrown as Error).message).toBe(
      'reading the end of predictions.v1 partition 2: the partition is not listed (the topic is being recreated?)',
    );
  });
});
