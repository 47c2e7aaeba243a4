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

  /**
   * A quick link whose budgeted calls write their items until the next one would take the call's
   * work past `budget` (the first always), as the feature store's write script does; each reply
   * says how many it wrote. `work[i]`: item i's work (window members it refolds).
   */
  function budgetedLink(work: readonly number[], budget: number) {
    const written: number[] = [];
    const chunks: FakeCall[][] = [];
    const runner: PipelineRunner<FakePipeline> = {
      open: () => new FakePipeline(),
      async exec(pipeline) {
        chunks.push(pipeline.calls);
        return pipeline.calls.map((call): CallResult => {
          let done = 0;
          let spent = 0;
          while (call.from + done < call.to && (done === 0 || spent + work[call.from + done]! <= budget)) {
            spent += work[call.from + done]!;
            written.push(call.from + done);
            done++;
          }
          return [null, { done, spent }];
        });
      },
      failure: (error) => error,
    };
    return { runner, written, chunks };
  }

  const budgetedBatch = (
    sizes: readonly number[],
    itemsPerCall: number,
    runEnds: number[],
    runs: boolean[],
    budgetedPerCall = itemsPerCall,
  ) => ({
    ...batch(sizes, itemsPerCall, runEnds),
    budgeted: { runs, itemsPerCall: budgetedPerCall, itemsDone: (reply: unknown) => (reply as { done: number }).done },
  });

  it("budgeted calls (a windowed view's refold): each alone in its chunk, resumed after the last item written, so no chunk blocks Redis past the budget", async () => {
    // Run 0: 50 plain items; run 1: 300 windowed entities, the first 100 hot (a full set of 1,000
    // members), then 200 of 5; run 2: 40 plain. A budget of 2,000 members.
    const work = [
      ...Array.from({ length: 50 }, () => 1),
      ...Array.from({ length: 100 }, () => 1_000),
      ...Array.from({ length: 200 }, () => 5),
      ...Array.from({ length: 40 }, () => 1),
    ];
    const link = budgetedLink(work, 2_000);
    const chunked = new ChunkedPipeline({ timeoutMs: 10_000 }, () => 0);
    // Plain calls of 10 items, budgeted ones of up to 100.
    const calls = budgetedBatch(
      work.map(() => 100),
      10,
      [50, 350, 390],
      [false, true, false],
      100,
    );
    const replies = await chunked.send(calls, link.runner);
    // Every item written once, in order.
    expect(link.written).toEqual(work.map((_, i) => i));
    for (const chunk of link.chunks) {
      const windowed = chunk.filter((c) => c.from < 350 && c.to > 50);
      // A budgeted call never shares its chunk (Redis would run the chunk's calls back to back).
      if (windowed.length > 0) expect(chunk).toHaveLength(1);
    }
    for (const call of link.chunks.flat().filter((c) => c.from < 50 || c.from >= 350)) {
      expect(call.to - call.from).toBeLessThanOrEqual(10);
    }
    const spent = replies.map((r) => (r as { spent: number }).spent);
    expect(Math.max(...spent)).toBeLessThanOrEqual(2_000);
    // The first call was sent 100 hot entities and wrote 2; the next ones were sent 2 or 4 (not the
    // rest of the run each time), then the cold ones in calls doubling back.
    const windowedCalls = link.chunks.flat().filter((c) => c.from >= 50 && c.from < 350);
    expect(windowedCalls[0]).toEqual({ from: 50, to: 150, bytes: 10_000 });
    const hot = windowedCalls.filter((c) => c.from > 50 && c.from < 150);
    expect(hot).toHaveLength(49);
    expect(Math.max(...hot.map((c) => c.to - c.from))).toBe(4);
    expect(windowedCalls.filter((c) => c.from >= 150).map((c) => c.to - c.from)).toEqual([4, 8, 16, 32, 64, 76]);
    expect(chunked.budgetedCallItems).toBeGreaterThanOrEqual(100);
  });

  it('a budgeted call whose reply says it wrote none, or more than it was sent, fails the batch (INTERNAL)', async () => {
    for (const done of [0, 3, Number.NaN]) {
      const runner: PipelineRunner<FakePipeline> = {
        open: () => new FakePipeline(),
        exec: async (pipeline) => pipeline.calls.map((): CallResult => [null, { done }]),
        failure: (error) => error,
      };
      const calls = budgetedBatch([10, 10], 2, [2], [true]);
      await expect(new ChunkedPipeline({ timeoutMs: 1_000 }).send(calls, runner)).rejects.toMatchObject({
        code: 'INTERNAL',
      });
    }
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
