import { DriftlineError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { defaultDeadLetterLimits, sendDeadLetters } from '../src/dead-letters.js';
import {
  boundedRuns,
  type DeadLetter,
  type DeadLetterBounds,
  DLQ_HEADERS,
  deadLetterMessage,
  type InboundRecord,
  messageSize,
  type OutboundMessage,
} from '../src/records.js';

function letter(offset: number, valueBytes = 40, reason = 'feature view "x" is not declared'): DeadLetter {
  const record: InboundRecord = {
    topic: 'features.v1',
    partition: 0,
    offset: String(offset),
    key: Buffer.from(`entity-${offset}`),
    value: Buffer.alloc(valueBytes, 'v'),
    headers: {},
    timestamp: 0,
  };
  return { record, code: 'VALIDATION_FAILED', reason };
}

const build = (d: DeadLetter, bounds: DeadLetterBounds) => deadLetterMessage(d, 'group', 0, bounds);
const offsetOf = (m: OutboundMessage) => String(m.headers?.[DLQ_HEADERS.offset]);

/** A stand-in for the broker's size checks (message.max.bytes per request), recording what it accepted. */
function broker(maxRequestBytes: number) {
  const accepted: OutboundMessage[] = [];
  const requests: number[] = [];
  let refused = 0;
  return {
    accepted,
    requests,
    refusedCount: () => refused,
    async send(messages: readonly OutboundMessage[]) {
      const bytes = messages.reduce((sum, m) => sum + messageSize(m), 64);
      if (bytes > maxRequestBytes) {
        refused++;
        throw new DriftlineError('SINK_REJECTED', 'MESSAGE_TOO_LARGE', {
          details: { kafkaError: 'MESSAGE_TOO_LARGE' },
        });
      }
      requests.push(messages.length);
      accepted.push(...messages);
    },
  };
}

describe('boundedRuns', () => {
  it('bounds runs by count and by bytes, keeping order', () => {
    expect(boundedRuns([1, 1, 1, 1, 1], 2, 100)).toEqual([
      [0, 2],
      [2, 4],
      [4, 5],
    ]);
    expect(boundedRuns([40, 40, 40, 10], 100, 100)).toEqual([
      [0, 2],
      [2, 4],
    ]);
  });

  it('gives an item larger than the bound a run of its own', () => {
    expect(boundedRuns([10, 500, 10], 100, 100)).toEqual([
      [0, 1],
      [1, 2],
      [2, 3],
    ]);
    expect(boundedRuns([], 10, 10)).toEqual([]);
  });
});

describe('sendDeadLetters', () => {
  it('sends a burst of 6,000 dead letters in requests bounded by count and bytes', async () => {
    const letters = Array.from({ length: 6_000 }, (_, i) => letter(i));
    const b = broker(1024 * 1024);
    await sendDeadLetters(letters, build, (m) => b.send(m), defaultDeadLetterLimits);
    expect(b.refusedCount()).toBe(0);
    expect(b.accepted.map(offsetOf)).toEqual(letters.map((l) => l.record.offset));
    expect(Math.max(...b.requests)).toBeLessThanOrEqual(defaultDeadLetterLimits.maxBatchRecords);

    const small = broker(1024 * 1024);
    await sendDeadLetters(letters, build, (m) => small.send(m), {
      ...defaultDeadLetterLimits,
      maxBatchBytes: 64 * 1024,
      maxBatchRecords: 100_000,
    });
    expect(small.accepted).toHaveLength(6_000);
    expect(small.requests.length).toBeGreaterThan(6_000 / 1_000);
  });

  it('splits a request the broker refuses as too large and truncates further a letter still refused', async () => {
    // The DLQ topic accepts only 8 KiB, far below the configured bound.
    const letters = [letter(0), letter(1, 300 * 1024), ...Array.from({ length: 50 }, (_, i) => letter(i + 2, 1_000))];
    const b = broker(8 * 1024);
    await sendDeadLetters(letters, build, (m) => b.send(m), defaultDeadLetterLimits);
    expect(b.refusedCount()).toBeGreaterThan(0);
    expect(b.accepted.map(offsetOf)).toEqual(letters.map((l) => l.record.offset));
    const huge = b.accepted[1]!;
    expect(huge.headers?.[DLQ_HEADERS.truncated]).toBe(String(300 * 1024));
    expect(messageSize(huge)).toBeLessThanOrEqual(8 * 1024);
  });

  it('rethrows an outage (retriable) as it is', async () => {
    const down = new DriftlineError('SINK_UNAVAILABLE', 'broker down', { retriable: true });
    await expect(
      sendDeadLetters([letter(0)], build, async () => Promise.reject(down), defaultDeadLetterLimits),
    ).rejects.toBe(down);
  });

  it('gives up retriably, never looping, when the DLQ refuses even a minimal letter', async () => {
    let calls = 0;
    const refuseAll = async () => {
      calls++;
      throw new DriftlineError('SINK_REJECTED', 'MESSAGE_TOO_LARGE', { details: { kafkaError: 'MESSAGE_TOO_LARGE' } });
    };
    await expect(
      sendDeadLetters([letter(0, 100_000)], build, refuseAll, defaultDeadLetterLimits),
    ).rejects.toMatchObject({
      code: 'SINK_UNAVAILABLE',
      retriable: true,
    });
    expect(calls).toBeLessThan(10);
  });
});
