/**
 * Sequential, self-sizing pipelines for the stores' batch writes.
 *
 * A batch used to be one pipeline: thousands of script calls written at once, each with the
 * client's command timeout (10 s) running from that moment. When Redis is slow (a slow link, a
 * loaded server, hot windowed entities) the calls at the back time out before Redis reaches them,
 * and the consumer's retry of the same batch times out the same way, for ever (a review: rows
 * stuck, lag for good, health green). Here a batch goes out in chunks, one pipeline at a time,
 * each bounded by items and bytes. The byte bound starts small and doubles after a chunk answered
 * within a quarter of the timeout (to twice what it carried, so under the same load the next one
 * takes under half of it); a chunk that times out sets it to half of what Redis answered within
 * the timeout (half the chunk if nothing), down to one item. So a retried batch passes at any
 * throughput at which one item's call fits in the timeout. A timed-out call is still on its way
 * to Redis (ioredis only stops waiting): after a timeout, the next batch first waits for a PING's
 * answer, so its chunks do not queue behind that backlog and time out too. Script calls are
 * idempotent (last write wins; the join's applied marker and tombstones), so re-sending the front
 * of a batch that a failed attempt applied is safe. Redis being quick, a normal batch is one or a
 * few round trips (a few more for a connection's first batches).
 * A call that bounds its own run time in Redis (budgeted: a windowed view's refold, which Redis
 * runs without serving anyone else) goes alone in its chunk and may write only its first items;
 * the next call starts after them.
 */

import { DriftlineError } from '@driftline/core';
import { COMMAND_TIMED_OUT } from './client.js';

/** Items (entities, records) one chunk carries at most. */
export const CHUNK_MAX_ITEMS = 2_000;
/** Request bytes one chunk carries at most. */
const CHUNK_MAX_BYTES = 1_048_576;
/** The byte bound a connection starts with: a slow link's first chunk leaves little backlog. */
const CHUNK_START_BYTES = 65_536;

/** A batch of script calls over items in order, each call over consecutive items of one run. */
export interface ChunkedCalls<P> {
  /**
   * Where each run of items ends (exclusive, ascending, the last one the item count): a call never
   * crosses a run's end (a feature view's entities). No items (`[0]`): one call of none.
   */
  readonly runEnds: readonly number[];
  /** Request bytes of each item's arguments (see {@link argBytes}). */
  readonly itemBytes: readonly number[];
  /** Items one call holds at most. */
  readonly itemsPerCall: number;
  /** Queues the call over items [from, to) on the pipeline. */
  queue(pipeline: P, from: number, to: number): void;
  /**
   * Calls that bound their own work in Redis (the feature store's windowed views: a script call
   * refolds at most a budget of window members) and may write only the first items of their range.
   * Such a call goes alone in its chunk, and the next one starts after the last item it wrote.
   * Redis runs the commands it has read from a connection back to back (up to 16 KB of them at a
   * time: tens of small calls) before it serves another client, so bounding each call would not
   * bound what a chunk of them blocks.
   */
  readonly budgeted?: BudgetedRuns;
}

/** See {@link ChunkedCalls.budgeted}. */
export interface BudgetedRuns {
  /** Per run (as `runEnds`): whether its calls are budgeted. */
  readonly runs: readonly boolean[];
  /**
   * Items a budgeted call holds at most (instead of the batch's itemsPerCall): its work bounds its
   * run time, and larger calls are fewer round trips (one each).
   */
  readonly itemsPerCall: number;
  /** How many of the call's first items its reply says it wrote (1 to the items it was sent). */
  itemsDone(reply: unknown): number;
}

/** What ChunkedPipeline needs of a pipeline besides the calls: a PING (see ChunkedPipeline). */
export interface Pingable {
  ping(): unknown;
}

/** One call's outcome in a pipeline's results: its error, or null and its reply. */
export type CallResult = [Error | null, unknown];

/** How the store opens and runs a pipeline (its own error classification and stall watch). */
export interface PipelineRunner<P extends Pingable> {
  open(): P;
  /** Runs the pipeline: every call's outcome, in order (throws when the pipeline fails as a whole). */
  exec(pipeline: P): Promise<CallResult[]>;
  /** The error a failed call fails the batch with (the store's classification). */
  failure(error: Error): Error;
}

/** Request bytes of one argument on the wire (RESP bulk string: `$<length>\r\n<bytes>\r\n`). */
export function argBytes(arg: string | number | Buffer): number {
  return bulkBytes(
    typeof arg === 'number' ? String(arg).length : typeof arg === 'string' ? Buffer.byteLength(arg) : arg.length,
  );
}

/** Request bytes of a bulk string of `bytes` bytes: `$<bytes>\r\n`, the bytes, `\r\n`. */
export function bulkBytes(bytes: number): number {
  return bytes + (bytes < 10 ? 1 : bytes < 100 ? 2 : bytes < 1000 ? 3 : String(bytes).length) + 5;
}

/** Request bytes of arguments on the wire. */
export function argsBytes(args: ReadonlyArray<string | number | Buffer>): number {
  let bytes = 0;
  for (const arg of args) bytes += argBytes(arg);
  return bytes;
}

/** Whether an error (or one it was caused by) is a command timeout. */
export function isCommandTimeout(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e.message === COMMAND_TIMED_OUT) return true;
  }
  return false;
}

interface ChunkLimits {
  /** The client's command timeout (ms): a chunk answered within a quarter of it lets the bound grow. */
  readonly timeoutMs: number;
  readonly maxItems?: number;
  readonly maxBytes?: number;
  readonly startBytes?: number;
}

/**
 * Sends batches of script calls in sequential chunks; one per connection (the byte bound it
 * learns is the connection's throughput within the command timeout).
 */
export class ChunkedPipeline {
  private readonly maxItems: number;
  private readonly maxBytes: number;
  private readonly timeoutMs: number;
  private bound: number;
  /**
   * Items a budgeted call is sent (at most its runs' itemsPerCall): what the last call that
   * stopped early wrote, doubled after each call that wrote all it was sent, so a run of hot
   * entities is not sent again and again in full calls of which Redis writes one or two.
   */
  private budgetedItems: number;
  /** A chunk timed out: calls of it may still be queued on the connection, ahead of any new one. */
  private backlog = false;

  constructor(
    limits: ChunkLimits,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.timeoutMs = limits.timeoutMs;
    this.maxItems = Math.max(1, limits.maxItems ?? CHUNK_MAX_ITEMS);
    this.maxBytes = Math.max(1, limits.maxBytes ?? CHUNK_MAX_BYTES);
    this.bound = Math.min(this.maxBytes, Math.max(1, limits.startBytes ?? CHUNK_START_BYTES));
    this.budgetedItems = this.maxItems;
  }

  /** Items the next budgeted call may carry (before its runs' itemsPerCall). */
  get budgetedCallItems(): number {
    return this.budgetedItems;
  }

  /** The request bytes the next chunk may carry (at least one item whatever its size). */
  get chunkBytes(): number {
    return this.bound;
  }

  /** Sends every call, chunk after chunk; the replies of all calls in order. */
  async send<P extends Pingable>(calls: ChunkedCalls<P>, runner: PipelineRunner<P>): Promise<unknown[]> {
    if (this.backlog) {
      // Answered once Redis has read everything sent before it; a timeout keeps the backlog flag.
      const ping = runner.open();
      ping.ping();
      await this.exec(runner, ping, []);
      this.backlog = false;
    }
    const { runEnds, itemBytes, itemsPerCall } = calls;
    const total = runEnds[runEnds.length - 1] ?? 0;
    if (total === 0) {
      const pipeline = runner.open();
      calls.queue(pipeline, 0, 0);
      return this.exec(runner, pipeline, []);
    }
    const perCall = Math.max(1, itemsPerCall);
    const replies: unknown[] = [];
    let from = 0;
    let run = 0;
    while (from < total) {
      const pipeline = runner.open();
      const callBytes: number[] = [];
      let items = 0;
      let bytes = 0;
      let full = false;
      /** The chunk's one budgeted call: its first item and how many it was sent (of `limit`). */
      let budgeted: { from: number; size: number; limit: number } | undefined;
      while (!full && from < total && items < this.maxItems) {
        while (runEnds[run]! <= from) run++;
        const isBudgeted = calls.budgeted?.runs[run] === true;
        if (isBudgeted && items > 0) break;
        const limit = isBudgeted ? Math.min(Math.max(1, calls.budgeted!.itemsPerCall), this.budgetedItems) : perCall;
        const callEnd = Math.min(runEnds[run]!, from + limit, from + this.maxItems - items);
        let to = from;
        let size = 0;
        while (to < callEnd && (items + to - from === 0 || bytes + size + itemBytes[to]! <= this.bound)) {
          size += itemBytes[to]!;
          to++;
        }
        full = to < callEnd || isBudgeted;
        if (to === from) break;
        calls.queue(pipeline, from, to);
        callBytes.push(size);
        bytes += size;
        items += to - from;
        if (isBudgeted) budgeted = { from, size: to - from, limit };
        from = to;
      }
      const chunk = await this.exec(runner, pipeline, callBytes);
      for (const reply of chunk) replies.push(reply);
      if (budgeted !== undefined) from = this.afterBudgeted(calls.budgeted!, budgeted, chunk[0]);
    }
    return replies;
  }

  /** Where the batch goes on after a budgeted call (its first item not written), learning its size. */
  private afterBudgeted(
    budgeted: BudgetedRuns,
    call: { from: number; size: number; limit: number },
    reply: unknown,
  ): number {
    const done = budgeted.itemsDone(reply);
    if (!Number.isInteger(done) || done < 1 || done > call.size) {
      throw new DriftlineError('INTERNAL', `a budgeted call of ${call.size} items says it wrote ${String(done)}`);
    }
    if (done < call.size) this.budgetedItems = done;
    else if (call.size === call.limit) this.budgetedItems = Math.min(this.maxItems, 2 * this.budgetedItems);
    return call.from + done;
  }

  /** Runs one chunk (`callBytes`: request bytes of each of its calls) and adapts the bound to it. */
  private async exec<P extends Pingable>(
    runner: PipelineRunner<P>,
    pipeline: P,
    callBytes: readonly number[],
  ): Promise<unknown[]> {
    const started = this.now();
    const results = await runner.exec(pipeline);
    const bytes = callBytes.reduce((sum, b) => sum + b, 0);
    const timedOut = results.findIndex(([error]) => isCommandTimeout(error));
    if (timedOut >= 0) {
      this.backlog = true;
      // Half of what Redis answered within the timeout (half of the chunk when it answered
      // nothing): a retry of the batch goes out in chunks that take about half the timeout.
      const answered = callBytes.slice(0, timedOut).reduce((sum, b) => sum + b, 0);
      if (bytes > 0) this.bound = Math.max(1, Math.floor((answered > 0 ? answered : bytes) / 2));
    } else if (bytes > 0 && this.now() - started < this.timeoutMs / 4) {
      // Twice what was answered quickly: under the same load it takes at most half the timeout.
      this.bound = Math.min(this.maxBytes, Math.max(this.bound, 2 * bytes));
    }
    const failed = results.find(([error]) => error !== null);
    if (failed !== undefined) throw runner.failure(failed[0]!);
    return results.map(([, reply]) => reply);
  }
}
