import { SinkUnavailableError } from '@driftline/core';
import type { PredictionEvent } from '@driftline/schemas';
import { recordingLogger } from '@driftline/test-support';
import { describe, expect, it } from 'vitest';
import { createPredictionLog, unacknowledgedAtClose } from '../src/prediction-log.js';
import { loggedPrediction } from './fixtures.js';

// Found by a review: with Kafka paused and a SIGTERM, the close logged "lost":2000 while 600 of
// them had reached Kafka once it resumed; an operator backfilling from that number writes
// duplicates. The line now tells the records never sent (lost) from those sent without an answer.

const closeLines = (lines: Array<{ obj: object; msg?: string }>) =>
  lines.filter((l) => /closed with/.test(l.msg ?? '')) as Array<{ obj: Record<string, number>; msg: string }>;

function logOver(publish: (events: readonly PredictionEvent[]) => Promise<void>) {
  const lines: Array<{ obj: object; msg?: string }> = [];
  const lost: number[] = [];
  const unknown: number[] = [];
  const log = createPredictionLog({
    publish,
    maxBuffered: 1_000,
    maxWaitMs: 0,
    flushIntervalMs: 5,
    maxBatch: 10,
    deadLetter: async () => {},
    logger: recordingLogger('error', lines),
    onLost: (n) => lost.push(n),
    onUnknown: (n) => unknown.push(n),
  });
  return { log, lines, lost, unknown };
}

describe('what a close could not drain', () => {
  it('unacknowledgedAtClose: the send in flight (or the head a failed send handed over) is unknown, the rest lost', () => {
    expect(unacknowledgedAtClose(5, 10, 0)).toEqual({ lost: 5, unknown: 10 });
    expect(unacknowledgedAtClose(5, 10, 10)).toEqual({ lost: 5, unknown: 10 }); // the resend is the one in flight
    expect(unacknowledgedAtClose(25, 0, 10)).toEqual({ lost: 15, unknown: 10 });
    expect(unacknowledgedAtClose(4, 0, 10)).toEqual({ lost: 0, unknown: 4 });
    expect(unacknowledgedAtClose(7, 0, 0)).toEqual({ lost: 7, unknown: 0 });
    expect(unacknowledgedAtClose(0, 0, 0)).toEqual({ lost: 0, unknown: 0 });
  });

  it('a send hanging at the close: its records are unknown, those never sent lost, each in its own counter', async () => {
    const sent: string[] = [];
    let calls = 0;
    const { log, lines, lost, unknown } = logOver(async (events) => {
      calls++;
      if (calls > 1) return new Promise<void>(() => {}); // Kafka stops answering after the first send
      for (const e of events) sent.push(e.prediction_id);
    });
    await log.append(Array.from({ length: 25 }, (_, i) => loggedPrediction(i)));
    await log.close(300);
    expect(sent).toHaveLength(10);
    const [line, ...more] = closeLines(lines);
    expect(more).toEqual([]);
    expect(line!.obj).toEqual({ lost: 5, unknown: 10, unacknowledged: 15 });
    expect(line!.msg).toBe(
      'prediction log closed with 15 records not acknowledged by Kafka: 5 never sent, they are lost; 10 sent without an answer, they may have reached Kafka (at-least-once)',
    );
    expect(lost).toEqual([5]);
    expect(unknown).toEqual([10]);
  });

  it('sends failing at the close: the batch tried is unknown, the records behind it lost', async () => {
    const { log, lines, lost, unknown } = logOver(async () => {
      throw new SinkUnavailableError('request timed out');
    });
    await log.append(Array.from({ length: 25 }, (_, i) => loggedPrediction(i)));
    await log.close(100);
    expect(closeLines(lines).map((l) => l.obj)).toEqual([{ lost: 15, unknown: 10, unacknowledged: 25 }]);
    expect(lost).toEqual([15]);
    expect(unknown).toEqual([10]);
  });
});
