import { describe, expect, it } from 'vitest';
import {
  argBytes,
  type CallResult,
  CHUNK_MAX_ITEMS,
  type ChunkedCalls,
  ChunkedPipeline,
  isCommandTimeout,
  type PipelineRunner,
} from '../src/redis/chunked-pipeline.js';

/** A queued call of items [from, to), or a PING. */
interface FakeCall {
  readonly from: number;
  readonly to: number;
  readonly bytes: number;
}

class FakePipeline {
  readonly calls: FakeCall[] = [];
  ping(): void {
    this.calls.push({ from: -1, to: -1, bytes: 0 });
  }
}

/**
 * A connection carrying `bytesPerMs` on a virtual clock, its commands timing out `timeoutMs` after
 * they are sent, as ioredis' are; a timed-out command still reaches Redis later (the backlog).
 */
function slowLink(bytesPerMs: number, timeoutMs: number) {
  let clock = 0;
  let busyUntil = 0;
  const applied: FakeCall[] = [];
  const chunks: FakeCall[][] = [];
  const runner: PipelineRunner<FakePipeline> = {
    open: () => new FakePipeline(),
    async exec(pipeline) {
      const sent = clock;
      let done = Math.max(clock, busyUntil);
      let last = sent;
      const results: CallResult[] = pipeline.calls.map((call) => {
        done += call.bytes / bytesPerMs;
        if (call.from >= 0) applied.push(call);
        if (done - sent > timeoutMs) return [new Error('Command timed out'), undefined];
        last = done;
        return [null, call.to - call.from];
      });
      busyUntil = done;
      clock = results.some(([e]) => e !== null) ? sent + timeoutMs : last;
      chunks.push(pipeline.calls);
      return results;
    },
    failure: (error) => new Error(`classified: ${error.message}`),
  };
  return {
    runner,
    applied,
    chunks,
    now: () => clock,
    /** Time passes (the consumer's backoff). */
    wait: (ms: number) => {
      clock += ms;
    },
  };
}

/** A batch of `sizes.length` items of those request bytes, in runs ending at `runEnds`. */
function batch(sizes: readonly number[], itemsPerCall: number, runEnds = [sizes.length]): ChunkedCalls<FakePipeline> {
  return {
    runEnds,
    itemBytes: sizes,
    itemsPerCall,
    queue: (pipeline, from, to) => {
      let bytes = 0;
      for (let i = from; i < to; i++) bytes += sizes[i]!;
      pipeline.calls.push({ from, to, bytes });
    },
  };
}

/** Sends a batch until it passes, as the consumer loop retries one: unchanged, after a pause. */
async function untilSent(
  chunked: ChunkedPipeline,
  calls: ChunkedCalls<FakePipeline>,
  link: ReturnType<typeof slowLink>,
  maxAttempts: number,
): Promise<{ attempts: number; replies: unknown[]; lastChunks: FakeCall[][] }> {
  for (let attempts = 1; ; attempts++) {
    const before = link.chunks.length;
    try {
      const replies = await chunked.send(calls, link.runner);
      return { attempts, replies, lastChunks: link.chunks.slice(before) };
    } catch (error) {
      if (attempts >= maxAttempts) throw error;
      link.wait(1_000);
    }
  }
}

describe('ChunkedPipeline', () => {
  it('Redis quick: calls stay within a run and itemsPerCall, cover every item once, in a few round trips', async () => {
    const link = slowLink(1e6, 10_000);
    const chunked = new ChunkedPipeline({ timeoutMs: 10_000 }, link.now);
    const sizes = Array.from({ length: 5_000 }, () => 250);
    const calls = batch(sizes, 100, [120, 4_000, 5_000]);
    for (let round = 0; round < 2; round++) {
      link.chunks.length = 0;
      link.applied.length = 0;
      const replies = await chunked.send(calls, link.runner);
      expect(replies.reduce((sum: number, n) => sum + (n as number), 0)).toBe(5_000);
      let next = 0;
      for (const call of link.applied) {
        expect(call.from).toBe(next);
        expect(call.to - call.from).toBeLessThanOrEqual(100);
        expect([120, 4_000].some((end) => call.from < end && call.to > end)).toBe(false);
        next = call.to;
      }
      expect(next).toBe(5_000);
    }
    // Warmed up: chunks of the item bound (1.25 MB of items would be two of the byte bound).
    expect(link.chunks.length).toBe(Math.ceil(5_000 / CHUNK_MAX_ITEMS));
  });

  it('a slow link: a batch needing 5 timeouts of transfer passes on a retry, every chunk then within the timeout', async () => {
    // 1 byte/ms, 1 s timeout: 1,000 bytes fit; the batch is 5,000 (its calls of 10 items = 1,000).
    const link = slowLink(1, 1_000);
    const chunked = new ChunkedPipeline({ timeoutMs: 1_000 }, link.now);
    const sizes = Array.from({ length: 50 }, () => 100);
    const { attempts, replies, lastChunks } = await untilSent(chunked, batch(sizes, 10), link, 10);
    expect(attempts).toBeGreaterThan(1);
    expect(replies.reduce((sum: number, n) => sum + (n as number), 0)).toBe(50);
    // The attempt that passed sent the whole batch in order, in chunks that fit the timeout.
    const sent = lastChunks.flat().filter((c) => c.from >= 0);
    let next = 0;
    for (const call of sent) {
      expect(call.from).toBe(next);
      next = call.to;
    }
    expect(next).toBe(50);
    expect(lastChunks.length).toBeGreaterThan(5);
    for (const chunk of lastChunks) expect(chunk.reduce((sum, c) => sum + c.bytes, 0)).toBeLessThanOrEqual(1_000);
  });

  it('shrinks to one item per call when only one fits in the timeout, and grows back when Redis is quick again', async () => {
    const link = slowLink(1, 1_000);
    const chunked = new ChunkedPipeline({ timeoutMs: 1_000 }, link.now);
    // Items of 600 bytes: 0.6 of the timeout each; calls of 100 items.
    const sizes = Array.from({ length: 8 }, () => 600);
    const { replies } = await untilSent(chunked, batch(sizes, 100), link, 10);
    expect(replies.reduce((sum: number, n) => sum + (n as number), 0)).toBe(8);
    expect(
      link.chunks
        .at(-1)!
        .filter((c) => c.from >= 0)
        .map((c) => c.to - c.from),
    ).toEqual([1]);

    // A quick Redis again (a fresh link, the same store): the bound doubles with each quick chunk.
    const quick = slowLink(1e6, 1_000);
    const before = chunked.chunkBytes;
    await chunked.send(
      batch(
        Array.from({ length: 64 }, () => 600),
        100,
      ),
      quick.runner,
    );
    expect(chunked.chunkBytes).toBeGreaterThan(8 * before);
  });

  it('halves to what Redis answered within the timeout, not the whole chunk', async () => {
    const link = slowLink(1, 1_000);
    const chunked = new ChunkedPipeline({ timeoutMs: 1_000, startBytes: 10_000 }, link.now);
    // Calls of 3 items (300 bytes): three are answered within the timeout (900 bytes).
    await expect(
      chunked.send(
        batch(
          Array.from({ length: 100 }, () => 100),
          3,
        ),
        link.runner,
      ),
    ).rejects.toThrow('classified: Command timed out');
    expect(chunked.chunkBytes).toBe(450);
  });

  it('after a timeout, the next batch waits for a PING behind the backlog first; a PING timing out sends nothing', async () => {
    const link = slowLink(1, 1_000);
    const chunked = new ChunkedPipeline({ timeoutMs: 1_000, startBytes: 10_000 }, link.now);
    const calls = batch(
      Array.from({ length: 100 }, () => 100),
      100,
    );
    await expect(chunked.send(calls, link.runner)).rejects.toThrow('Command timed out');
    // 9 s of the chunk still on its way: the PING waits behind it and times out.
    const applied = link.applied.length;
    await expect(chunked.send(calls, link.runner)).rejects.toThrow('Command timed out');
    expect(link.chunks.at(-1)).toEqual([{ from: -1, to: -1, bytes: 0 }]);
    expect(link.applied.length).toBe(applied);
    link.wait(10_000);
    const { replies } = await untilSent(chunked, calls, link, 20);
    expect(replies.reduce((sum: number, n) => sum + (n as number), 0)).toBe(100);
  });

  it('a batch of no items is one call of none (the join store: a span of records it skips)', async () => {
    const link = slowLink(1e6, 1_000);
    const replies = await new ChunkedPipeline({ timeoutMs: 1_000 }, link.now).send(batch([], 500, [0]), link.runner);
    expect(link.chunks).toEqual([[{ from: 0, to: 0, bytes: 0 }]]);
    expect(replies).toEqual([0]);
  });

  it('counts request bytes as RESP bulk strings and finds a timeout behind a classified error', () => {
    expect(argBytes('abc')).toBe('$3\r\nabc\r\n'.length);
    expect(argBytes(1234567890)).toBe('$10\r\n1234567890\r\n'.length);
    expect(argBytes('é')).toBe('$2\r\n\u00e9\r\n'.length + 1);
    expect(argBytes(Buffer.alloc(100))).toBe(100 + '$100\r\n\r\n'.length);
    expect(isCommandTimeout(new Error('Redis write failed', { cause: new Error('Command timed out') }))).toBe(true);
    expect(isCommandTimeout(new Error('Connection is closed.'))).toBe(false);
  });
});
