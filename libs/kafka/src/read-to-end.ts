import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { DriftlineError, formatDuration, withDeadline } from '@driftline/core';
import { deleteGroup, isTransient, topicOffsets } from './admin.js';
import { type KafkaClient, kafkajsOf } from './client.js';
import { STOP_DEADLINE_MS, subscribe } from './consumer.js';
import { isBrokerUnreachable } from './producer-health.js';
import { type InboundRecord, toBufferHeaders } from './records.js';

/** Default of {@link ReadToEndOptions.idleMs}. */
const DEFAULT_READ_IDLE_MS = 30_000;
/**
 * Default of {@link ReadToEndOptions.answerTimeoutMs}: as the CLI's `--connect-timeout` default. A
 * live broker answers a read's fetch within its wait (5 s at most here) and a fresh group's join
 * within the broker's `group.initial.rebalance.delay.ms` (3 s by default); kafkajs' own request
 * timeout (30 s) and retries left a hung broker unnoticed for 60-90 s.
 */
export const DEFAULT_READ_ANSWER_TIMEOUT_MS = 15_000;
/** Leaving and deleting the group once Kafka stopped answering or went away: it will not answer those. */
const GONE_CLEANUP_MS = 1_000;

export interface ReadToEndOptions {
  /**
   * A partition delivering nothing more for this long while the brokers answer its fetches ends
   * the read there (named in `unreached`). Default 30 s.
   */
  readonly idleMs?: number;
  /**
   * No answer from Kafka for this long (a handler's time not counted) fails the read with a
   * retriable `SOURCE_UNAVAILABLE`. Default 15 s, at least 1 s; keep it above the broker's
   * `group.initial.rebalance.delay.ms` (3 s by default).
   */
  readonly answerTimeoutMs?: number;
}

/** Kafka stopped answering a read (package-internal: `readToEnd` turns it into its typed error). */
class ReadUnanswered extends Error {
  constructor(readonly node: number | undefined) {
    super('no answer from Kafka');
  }
}

function unansweredError(topic: string, boundMs: number, read: number, node?: number): DriftlineError {
  const from = node === undefined ? 'Kafka' : `Kafka (broker ${node})`;
  return new DriftlineError(
    'SOURCE_UNAVAILABLE',
    `reading ${topic}: no complete answer from ${from} for ${formatDuration(boundMs)} (a broker hung or unreachable, or one fetch slower than that); ${read} record(s) read before, the read is incomplete`,
    { retriable: true, details: { topic, recordsRead: read } },
  );
}

/**
 * The error of a read whose consumer crashed: an outage (refused, timed out) is retriable; a crash
 * that retrying cannot mend (the read's group or the topic not authorized, a topic deleted) is
 * not — it was "check that the brokers are up and run it again", exit 69, for an account without
 * rights on the read's group (found by a review).
 */
export function readCrashed(topic: string, read: number, cause: Error): DriftlineError {
  return new DriftlineError(
    'SOURCE_UNAVAILABLE',
    `reading ${topic}: the consumer crashed: ${cause.message}; ${read} record(s) read before, the read is incomplete`,
    { retriable: isTransient(cause) || isBrokerUnreachable(cause), cause, details: { topic, recordsRead: read } },
  );
}

/**
 * Reads a topic from its start to the end it had when the call began, batch by batch, handing each
 * to `onBatch` (awaited: a batch is not read past until its handler is done). A throwaway consumer
 * group, deleted at the end; nothing is committed. For tools that walk a topic once (the DLQ).
 * Records written after the call began are not read. A partition whose last offsets hold no record
 * (transaction markers, a compacted tail) never delivers its end offset: once no batch has come for
 * `idleMs` while the brokers answered every fetch (the time a handler runs does not count), the read
 * ends and names those partitions (`unreached`). Kafka not answering at all for `answerTimeoutMs`
 * (a hung broker, one refusing connections, also while the read sets up) fails it with a retriable
 * `SOURCE_UNAVAILABLE` naming the topic, never a success with fewer records; a crash of the consumer
 * fails it too. Leaving and deleting the group afterwards is bounded (10 s; 1 s after Kafka stopped
 * answering).
 */
export async function readToEnd(
  client: KafkaClient,
  topic: string,
  onBatch: (records: readonly InboundRecord[]) => Promise<void>,
  options: ReadToEndOptions = {},
): Promise<{ readonly unreached: readonly number[] }> {
  const idleMs = options.idleMs ?? DEFAULT_READ_IDLE_MS;
  const answerTimeoutMs = options.answerTimeoutMs ?? DEFAULT_READ_ANSWER_TIMEOUT_MS;
  if (!(idleMs > 0) || !(answerTimeoutMs >= 1_000)) {
    throw new RangeError(
      `readToEnd: idleMs must be > 0 and answerTimeoutMs at least 1000 (got ${idleMs}, ${answerTimeoutMs})`,
    );
  }
  let read = 0;
  const silent = (node?: number) => unansweredError(topic, answerTimeoutMs, read, node);
  let handlerError: { readonly error: unknown } | undefined;
  const counted = async (records: readonly InboundRecord[]) => {
    try {
      await onBatch(records);
    } catch (error) {
      handlerError = { error };
      throw error;
    }
    read += records.length;
  };
  // kafkajs' own failures (a refused connection in its connect, subscribe or fetch loop) come
  // typed, naming the topic; the handler's are its caller's and pass as they are.
  const typed = (error: unknown): unknown => {
    if (error instanceof DriftlineError || (handlerError !== undefined && error === handlerError.error)) return error;
    if (!isTransient(error) && !isBrokerUnreachable(error)) return error;
    return new DriftlineError(
      'SOURCE_UNAVAILABLE',
      `reading ${topic}: ${(error as Error).message}; ${read} record(s) read before, the read is incomplete`,
      { retriable: true, cause: error, details: { topic, recordsRead: read } },
    );
  };
  // Each step before the consumer runs (no events of its own to watch) is bounded by itself.
  const answered = async <T>(step: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    const outcome = await withDeadline(answerTimeoutMs, (signal) =>
      Promise.race([
        step(signal),
        new Promise<never>((_, reject) =>
          signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
        ),
      ]),
    );
    if (outcome.ok) return outcome.value;
    if (outcome.timedOut) throw silent();
    throw outcome.error;
  };
  const ends = new Map<number, bigint>();
  for (const o of await answered(() => topicOffsets(client, topic))) if (o.high > o.low) ends.set(o.partition, o.high);
  if (ends.size === 0) return { unreached: [] };
  const groupId = `driftline-read-${randomUUID().slice(0, 8)}`;
  const consumer = kafkajsOf(client).consumer({
    groupId,
    allowAutoTopicCreation: false,
    // A long poll on a partition with nothing more must be answered well within the bound.
    maxWaitTimeInMs: Math.min(5_000, Math.floor(answerTimeoutMs / 3)),
  });
  let kafkaGone = false;
  try {
    await answered(() => consumer.connect());
    await answered(() => subscribe(consumer, topic, true));
    const source: BatchSource = {
      onCrash: (listener) =>
        consumer.on(consumer.events.CRASH, (event) => listener(readCrashed(topic, read, event.payload.error))),
      onAnswer: (listener) => {
        // REQUEST: any answer read on the consumer's connections (emitted as it is read).
        consumer.on(consumer.events.REQUEST, () => listener({ kind: 'answer' }));
        consumer.on(consumer.events.FETCH_START, (e) => listener({ kind: 'fetchBegun', node: e.payload.nodeId }));
        consumer.on(consumer.events.FETCH, (e) => listener({ kind: 'fetchAnswered', node: e.payload.nodeId }));
      },
      run: (eachBatch) =>
        consumer.run({
          autoCommit: false,
          eachBatch: ({ batch, resolveOffset, heartbeat }) =>
            eachBatch({
              partition: batch.partition,
              lastOffset: batch.lastOffset(),
              records: batch.messages.map((m) => ({
                topic: batch.topic,
                partition: batch.partition,
                offset: m.offset,
                key: m.key,
                value: m.value,
                headers: toBufferHeaders(m.headers),
                timestamp: Number(m.timestamp),
              })),
              resolveOffset,
              heartbeat,
            }),
        }),
    };
    return await drainToEnd(source, ends, counted, { idleMs, answerTimeoutMs });
  } catch (error) {
    const failure = error instanceof ReadUnanswered ? silent(error.node) : typed(error);
    kafkaGone = failure instanceof DriftlineError && failure.code === 'SOURCE_UNAVAILABLE';
    throw failure;
  } finally {
    // Bounded: kafkajs waits for its fetch in flight and the group's leave request, each up to its
    // 30 s request timeout, from a broker that stopped answering. Past it, the broker drops the
    // member at its session timeout and forgets the empty group, which holds no offsets.
    await withDeadline(kafkaGone ? GONE_CLEANUP_MS : STOP_DEADLINE_MS, async (signal) => {
      const left = (async () => {
        await consumer.disconnect();
        if (!signal.aborted) await deleteGroup(client, groupId);
      })();
      left.catch(() => {}); // abandoned past the deadline
      await Promise.race([
        left,
        new Promise<never>((_, reject) =>
          signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
        ),
      ]);
    });
  }
}

/** One fetched batch of a partition, as `drainToEnd` needs it (package-internal). */
export interface SourceBatch {
  readonly partition: number;
  readonly lastOffset: string;
  readonly records: readonly InboundRecord[];
  resolveOffset(offset: string): void;
  heartbeat(): Promise<void>;
}

/**
 * What a read hears from Kafka: any answer on its connections, and each fetch from a broker begun
 * and answered (package-internal).
 */
export type SourceEvent =
  | { readonly kind: 'answer' }
  | { readonly kind: 'fetchBegun'; readonly node: number }
  | { readonly kind: 'fetchAnswered'; readonly node: number };

/** A consumer already subscribed, from the start (package-internal: kafkajs in `readToEnd`, a fake in tests). */
export interface BatchSource {
  run(eachBatch: (batch: SourceBatch) => Promise<void>): Promise<void>;
  onCrash(listener: (error: unknown) => void): void;
  onAnswer(listener: (event: SourceEvent) => void): void;
}

/** What {@link ReadWatch} decides at a moment. */
export type ReadVerdict =
  | { readonly kind: 'reading' }
  | { readonly kind: 'ended' }
  | { readonly kind: 'unanswered'; readonly silentMs: number; readonly node?: number };

/**
 * Tells "the brokers answered with nothing more" (a real end) from "no answer at all" (package-
 * internal, pure: times in ms from the caller's monotonic clock). The time a handler runs counts
 * for neither: each batch handled starts both clocks again.
 * - unanswered: no answer of any kind for `answerTimeoutMs`, or a broker's fetch unanswered that
 *   long (another broker may still answer);
 * - ended: no batch for `idleMs`, and every broker whose fetch was in flight since then answered
 *   one (a fetch answered empty is the broker's word that nothing more is there);
 * - unanswered, too, when neither has come `answerTimeoutMs` past `idleMs` (no fetch answered).
 */
export class ReadWatch {
  private busy = false;
  private lastAnswer: number;
  private windowStart: number;
  /** Broker → when its fetch in flight began (or the clocks last started again). */
  private readonly fetching = new Map<number, number>();
  /** Brokers fetched from in this window, and those of them that answered a fetch in it. */
  private readonly fetchedInWindow = new Set<number>();
  private readonly answeredInWindow = new Set<number>();
  private fetchAnsweredInWindow = false;

  constructor(
    private readonly idleMs: number,
    private readonly answerTimeoutMs: number,
    now: number,
  ) {
    this.lastAnswer = now;
    this.windowStart = now;
  }

  observe(event: SourceEvent, now: number): void {
    if (event.kind === 'answer') {
      this.lastAnswer = now;
    } else if (event.kind === 'fetchBegun') {
      this.fetching.set(event.node, now);
      this.fetchedInWindow.add(event.node);
    } else {
      this.lastAnswer = now;
      this.fetching.delete(event.node);
      this.fetchedInWindow.add(event.node);
      this.answeredInWindow.add(event.node);
      this.fetchAnsweredInWindow = true;
    }
  }

  /** A batch handed over: its handler runs until {@link batchDone}. */
  batchBegun(): void {
    this.busy = true;
  }

  /** A batch's handler is done: the clocks start again, the brokers' fetches in flight count from now. */
  batchDone(now: number): void {
    this.busy = false;
    this.lastAnswer = now;
    this.windowStart = now;
    this.fetchedInWindow.clear();
    this.answeredInWindow.clear();
    this.fetchAnsweredInWindow = false;
    for (const node of this.fetching.keys()) {
      this.fetching.set(node, now);
      this.fetchedInWindow.add(node);
    }
  }

  verdict(now: number): ReadVerdict {
    if (this.busy) return { kind: 'reading' };
    if (now - this.lastAnswer >= this.answerTimeoutMs) return { kind: 'unanswered', silentMs: now - this.lastAnswer };
    for (const [node, since] of this.fetching) {
      if (now - since >= this.answerTimeoutMs) return { kind: 'unanswered', silentMs: now - since, node };
    }
    const quiet = now - this.windowStart;
    if (quiet < this.idleMs) return { kind: 'reading' };
    const everyAnswered = [...this.fetchedInWindow].every((node) => this.answeredInWindow.has(node));
    if (this.fetchAnsweredInWindow && everyAnswered) return { kind: 'ended' };
    if (quiet >= this.idleMs + this.answerTimeoutMs) return { kind: 'unanswered', silentMs: quiet };
    return { kind: 'reading' };
  }
}

/** How often the loop asks its {@link ReadWatch}. */
function checkEveryMs(idleMs: number, answerTimeoutMs: number): number {
  return Math.max(10, Math.min(500, Math.floor(Math.min(idleMs, answerTimeoutMs) / 10)));
}

/**
 * The loop of `readToEnd`: hands each batch below `ends` (per partition) to `onBatch`. Rejects with
 * `ReadUnanswered` when Kafka stops answering (see {@link ReadWatch}).
 */
export async function drainToEnd(
  source: BatchSource,
  ends: ReadonlyMap<number, bigint>,
  onBatch: (records: readonly InboundRecord[]) => Promise<void>,
  bounds: { readonly idleMs: number; readonly answerTimeoutMs: number },
  now: () => number = () => performance.now(),
): Promise<{ readonly unreached: readonly number[] }> {
  const left = new Set(ends.keys());
  const watch = new ReadWatch(bounds.idleMs, bounds.answerTimeoutMs, now());
  let settled = false;
  await new Promise<void>((resolve, reject) => {
    let ticker: NodeJS.Timeout | undefined;
    const finish = (error?: unknown) => {
      if (settled) return;
      settled = true;
      clearInterval(ticker);
      if (error === undefined) resolve();
      else reject(error);
    };
    // The end of what is left: those partitions have no record to deliver.
    const check = () => {
      const verdict = watch.verdict(now());
      if (verdict.kind === 'ended') finish();
      else if (verdict.kind === 'unanswered') finish(new ReadUnanswered(verdict.node));
    };
    ticker = setInterval(check, checkEveryMs(bounds.idleMs, bounds.answerTimeoutMs));
    source.onCrash(finish);
    source.onAnswer((event) => {
      if (!settled) watch.observe(event, now());
    });
    void source
      .run(async (batch) => {
        if (settled) return; // a consumer left running past a failure (its leave bounded, abandoned)
        const end = ends.get(batch.partition);
        if (end === undefined || !left.has(batch.partition)) return;
        const records: InboundRecord[] = [];
        for (const r of batch.records) {
          if (BigInt(r.offset) >= end) break;
          records.push(r);
          batch.resolveOffset(r.offset);
        }
        // A handler at work is no idleness nor silence: a slow one (a DLQ replay's send, up to its
        // 60 s deadline) had the read end early with part replayed, blamed on transaction markers.
        // The heartbeat after it is Kafka's to answer: it counts.
        watch.batchBegun();
        try {
          if (records.length > 0) await onBatch(records);
        } catch (error) {
          finish(error);
          return;
        } finally {
          watch.batchDone(now());
        }
        await batch.heartbeat(); // a rebalance throws here, for kafkajs to handle
        if (BigInt(batch.lastOffset) + 1n >= end || records.length < batch.records.length) {
          left.delete(batch.partition);
          if (left.size === 0) finish();
        }
      })
      .catch(finish);
  });
  return { unreached: [...left].sort((a, b) => a - b) };
}
