import { setTimeout as sleep } from 'node:timers/promises';
import { KafkaJSConnectionError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { type BatchSource, drainToEnd, ReadWatch, readCrashed, type SourceBatch } from '../src/read-to-end.js';
import type { InboundRecord } from '../src/records.js';

function recordAt(partition: number, offset: number): InboundRecord {
  return { topic: 't', partition, offset: String(offset), key: null, value: null, headers: {}, timestamp: 0 };
}

/**
 * A source that hands over the given batches one after the other, awaiting each (as kafkajs does),
 * each from an answered fetch of broker 1. Then, as a live broker, it answers an empty fetch every
 * 20 ms until `stop` — or, `silentAfter` batches in, answers nothing more at all (a hung broker).
 */
function sourceOf(
  batches: ReadonlyArray<{ partition: number; offsets: number[] }>,
  stop: AbortSignal,
  silentAfter = Number.POSITIVE_INFINITY,
): BatchSource {
  let listener: Parameters<BatchSource['onAnswer']>[0] = () => {};
  const fetch = async (then: () => Promise<void>) => {
    listener({ kind: 'fetchBegun', node: 1 });
    await sleep(5);
    listener({ kind: 'answer' });
    listener({ kind: 'fetchAnswered', node: 1 });
    await then();
  };
  return {
    onCrash: () => {},
    onAnswer: (l) => {
      listener = l;
    },
    run: async (eachBatch) => {
      for (const [i, b] of batches.entries()) {
        if (i >= silentAfter) {
          listener({ kind: 'fetchBegun', node: 1 }); // never answered
          return;
        }
        const batch: SourceBatch = {
          partition: b.partition,
          lastOffset: String(b.offsets.at(-1)),
          records: b.offsets.map((o) => recordAt(b.partition, o)),
          resolveOffset: () => {},
          heartbeat: async () => {},
        };
        await fetch(() => eachBatch(batch));
      }
      void (async () => {
        while (!stop.aborted) await fetch(() => sleep(15));
      })();
    },
  };
}

describe('drainToEnd (readToEnd)', () => {
  it('does not count a slow handler as idleness nor silence: every batch is read', async () => {
    const stop = new AbortController();
    const source = sourceOf(
      [
        { partition: 0, offsets: [0, 1] },
        { partition: 1, offsets: [0, 1] },
      ],
      stop.signal,
    );
    const seen: string[] = [];
    const { unreached } = await drainToEnd(
      source,
      new Map([
        [0, 2n],
        [1, 2n],
      ]),
      async (records) => {
        await sleep(300); // far longer than both limits: a DLQ replay's send
        for (const r of records) seen.push(`${r.partition}:${r.offset}`);
      },
      { idleMs: 50, answerTimeoutMs: 100 },
    );
    stop.abort();
    expect(unreached).toEqual([]);
    expect(seen).toEqual(['0:0', '0:1', '1:0', '1:1']);
  });

  it('ends a partition that never delivers its end once the broker answered with nothing more for the idle limit', async () => {
    const stop = new AbortController();
    const source = sourceOf([{ partition: 0, offsets: [0, 1] }], stop.signal);
    const { unreached } = await drainToEnd(
      source,
      new Map([
        [0, 2n],
        [1, 5n],
      ]),
      async () => {},
      { idleMs: 50, answerTimeoutMs: 200 },
    );
    stop.abort();
    expect(unreached).toEqual([1]);
  });

  it('fails when the broker stops answering, within the bound: never a success with fewer records', async () => {
    const stop = new AbortController();
    const source = sourceOf(
      [
        { partition: 0, offsets: [0, 1] },
        { partition: 0, offsets: [2, 3] },
      ],
      stop.signal,
      1,
    );
    const started = performance.now();
    const outcome = await drainToEnd(source, new Map([[0, 4n]]), async () => {}, {
      idleMs: 50,
      answerTimeoutMs: 200,
    }).then(
      (value) => ({ resolved: value }),
      (error: unknown) => ({ rejected: error }),
    );
    stop.abort();
    // Before: resolved after the idle limit with partition 0 unreached, half of it read.
    expect(outcome).toEqual({ rejected: expect.objectContaining({ message: 'no answer from Kafka' }) });
    expect(performance.now() - started).toBeLessThan(200 + 3_000); // the 200 ms bound, slack for a loaded run
  });
});

describe('ReadWatch', () => {
  const IDLE = 30_000;
  const BOUND = 15_000;

  it('is silent past the bound with no answer at all (a hung broker, one refusing connections)', () => {
    const watch = new ReadWatch(IDLE, BOUND, 0);
    watch.observe({ kind: 'fetchBegun', node: 1 }, 10);
    expect(watch.verdict(BOUND - 1)).toEqual({ kind: 'reading' });
    expect(watch.verdict(BOUND)).toEqual({ kind: 'unanswered', silentMs: BOUND });
  });

  it('names a broker whose fetch went unanswered while another broker answers', () => {
    const watch = new ReadWatch(IDLE, BOUND, 0);
    watch.observe({ kind: 'fetchBegun', node: 2 }, 0);
    for (let t = 0; t < BOUND; t += 1_000) {
      watch.observe({ kind: 'fetchBegun', node: 1 }, t);
      watch.observe({ kind: 'fetchAnswered', node: 1 }, t + 500);
    }
    expect(watch.verdict(BOUND - 1)).toEqual({ kind: 'reading' });
    expect(watch.verdict(BOUND)).toEqual({ kind: 'unanswered', silentMs: BOUND, node: 2 });
  });

  it('ends after the idle limit of empty fetch answers (transaction markers, a compacted tail)', () => {
    const watch = new ReadWatch(IDLE, BOUND, 0);
    for (let t = 0; t <= IDLE + 5_000; t += 5_000) {
      watch.observe({ kind: 'fetchBegun', node: 1 }, t);
      watch.observe({ kind: 'answer' }, t + 4_999);
      watch.observe({ kind: 'fetchAnswered', node: 1 }, t + 4_999);
      expect(watch.verdict(t + 4_999)).toEqual(t + 4_999 >= IDLE ? { kind: 'ended' } : { kind: 'reading' });
    }
  });

  it('does not end while a broker fetched from in the window has not answered: the bound decides', () => {
    const idle = 10_000; // below the bound: the end would come first
    const watch = new ReadWatch(idle, BOUND, 0);
    watch.observe({ kind: 'fetchBegun', node: 2 }, 0);
    for (let t = 0; t < BOUND; t += 1_000) {
      watch.observe({ kind: 'fetchBegun', node: 1 }, t);
      watch.observe({ kind: 'fetchAnswered', node: 1 }, t + 500);
    }
    expect(watch.verdict(idle + 1_000)).toEqual({ kind: 'reading' });
    expect(watch.verdict(BOUND)).toMatchObject({ kind: 'unanswered', node: 2 });
  });

  it('does not end on other answers alone (no fetch answered in the window): unanswered past idle + bound', () => {
    const watch = new ReadWatch(IDLE, BOUND, 0);
    const heartbeatsUntil = (end: number, from: number) => {
      for (let t = from; t <= end; t += 3_000) watch.observe({ kind: 'answer' }, t);
    };
    heartbeatsUntil(IDLE, 0);
    expect(watch.verdict(IDLE + 1)).toEqual({ kind: 'reading' });
    heartbeatsUntil(IDLE + BOUND, IDLE + 3_000);
    expect(watch.verdict(IDLE + BOUND)).toEqual({ kind: 'unanswered', silentMs: IDLE + BOUND });
  });

  it("counts a handler's time for neither clock, and starts both again when it is done", () => {
    const watch = new ReadWatch(IDLE, BOUND, 0);
    watch.observe({ kind: 'fetchBegun', node: 1 }, 0);
    watch.observe({ kind: 'fetchAnswered', node: 1 }, 100);
    watch.batchBegun();
    expect(watch.verdict(10 * IDLE)).toEqual({ kind: 'reading' });
    watch.batchDone(10 * IDLE);
    expect(watch.verdict(10 * IDLE + BOUND - 1)).toEqual({ kind: 'reading' });
    expect(watch.verdict(10 * IDLE + BOUND)).toMatchObject({ kind: 'unanswered' });
  });
});

describe('a read whose consumer crashed', () => {
  it('is retriable for an outage, not for a refusal retrying cannot mend (found by a review: exit 69 for a group not authorized)', () => {
    const refused = new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9092');
    const outage = readCrashed(
      't.dlq',
      3,
      new KafkaJSNumberOfRetriesExceeded(refused, { retryCount: 5, retryTime: 3_000 }),
    );
    expect(outage).toMatchObject({ code: 'SOURCE_UNAVAILABLE', retriable: true });
    expect(outage.message).toMatch(
      /^reading t\.dlq: the consumer crashed: .*; 3 record\(s\) read before, the read is incomplete$/,
    );
    const denied = new KafkaJSProtocolError({
      message: 'Not authorized to access group: Group authorization failed',
      type: 'GROUP_AUTHORIZATION_FAILED',
      code: 30,
      retriable: false,
    } as never);
    expect(readCrashed('t.dlq', 0, denied)).toMatchObject({ code: 'SOURCE_UNAVAILABLE', retriable: false });
  });
});
