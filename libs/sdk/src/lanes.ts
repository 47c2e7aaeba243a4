import { DriftlineError, type Logger } from '@driftline/core';

/** What a lane needs of a buffered message: its encoded size (counted against the buffer's byte bound). */
export interface LaneMessage {
  readonly value: Buffer;
}

/** The buffer bound a message finds full: one of the two shared ones, or its topic's share. */
export type FullBound = 'maxBuffered' | 'maxBufferedBytes' | 'topicShare';

export interface SendLanesOptions<M extends LaneMessage> {
  /** Sends one topic's messages in order; a rejection leaves them buffered and retried. */
  readonly send: (topic: string, messages: readonly M[]) => Promise<void>;
  /** Most messages per send. */
  readonly batchSize: number;
  /** Most encoded bytes per send (a bigger message alone). */
  readonly maxSendBytes: number;
  /** How long a partial batch waits for company. */
  readonly lingerMs: number;
  /** Pause before a topic whose send failed is tried again in the background. */
  readonly retryAfterMs: number;
  /** Called after every send, delivered or failed: room may have freed. */
  readonly onSent: () => void;
  readonly logger: Logger;
  /** A send unanswered this long makes its topic hold at most its share again while other topics hold messages (default SLOW_SEND_MS). */
  readonly slowSendMs?: number;
  readonly now?: () => number;
}

/**
 * On a healthy cluster a send is answered in milliseconds, tens under load. One unanswered for a
 * second is a broker that stopped answering (a leader gone quiet, a half-open connection) until
 * kafkajs' request timeout says so, 30 s later.
 */
export const SLOW_SEND_MS = 1_000;

interface Lane<M> {
  readonly topic: string;
  queue: M[];
  inFlight: number;
  /** Encoded bytes queued or in flight. */
  bytes: number;
  /** Messages ever queued and ever delivered: a flush waits for the first count as it was. */
  queuedTotal: number;
  settledTotal: number;
  /** Send loops that ended in a failure, and the last one's error while no send has succeeded since. */
  failedLoops: number;
  failure: unknown;
  /** When `failure` was set, in failures over all topics (which failed last). */
  failureSeq: number;
  /** Whether the topic's last send was delivered: until one is, the topic holds at most its share. */
  lastSendDelivered: boolean;
  /** When the send in flight started (undefined: none in flight). */
  sendStartedAt: number | undefined;
  sending: Promise<void> | undefined;
  linger: NodeJS.Timeout | undefined;
  retry: NodeJS.Timeout | undefined;
}

/** What a flush waits for of one lane: its messages up to `target`, or a failure after `failedLoops`. */
interface FlushTarget<M> {
  readonly lane: Lane<M>;
  readonly target: number;
  readonly failedLoops: number;
}

/**
 * The producer's buffer as one queue per topic, each with its own send loop: one send in flight
 * per topic, in publish order, so order holds per topic (and so per key), and a topic whose sends
 * fail (missing, leader away) holds back only its own messages. With one queue for all topics, a
 * missing labels topic stalled predictions and features for as long as its sends kept failing
 * (found by a review), as the Kafka producers' per-partition batches never do.
 */
export class SendLanes<M extends LaneMessage> {
  private readonly lanes = new Map<string, Lane<M>>();
  /** flush() calls waiting: each looks again at its lanes when woken. */
  private readonly flushWaiters = new Set<() => void>();
  private failures = 0;
  private messages = 0;
  private totalBytes = 0;
  private stopped = false;
  private readonly now: () => number;
  private readonly slowSendMs: number;

  constructor(private readonly options: SendLanesOptions<M>) {
    this.now = options.now ?? Date.now;
    this.slowSendMs = options.slowSendMs ?? SLOW_SEND_MS;
  }

  /** Messages queued or in flight, over all topics. */
  get pending(): number {
    return this.messages;
  }

  /** Encoded bytes queued or in flight, over all topics. */
  get pendingBytes(): number {
    return this.totalBytes;
  }

  /** The error of the topic that failed last among those whose sends are failing now. */
  get lastFailure(): unknown {
    let last: Lane<M> | undefined;
    for (const lane of this.lanes.values()) {
      if (lane.failure !== undefined && lane.failureSeq > (last?.failureSeq ?? -1)) last = lane;
    }
    return last?.failure;
  }

  /**
   * The bound a message of `bytes` for `topic` finds full now, or undefined when it fits. Until
   * its last send was delivered (its first still unanswered, or failing) a topic holds at most half
   * of each bound, and always one message: the other topics keep the rest. A failing topic that
   * filled the shared buffer made every publish call wait again, and so did a missing topic whose
   * first send took seconds to fail. A topic whose last send was delivered may fill the buffer,
   * unless its send in flight has gone unanswered for `slowSendMs` while another topic holds
   * messages: a topic delivered and then hung held every other topic's publish until kafkajs'
   * request timeout failed it (found by a review). Alone, a topic keeps the whole buffer however
   * slow its sends: the half only leaves room for others (a single-topic producer on a slow link
   * had publishes refused at half its buffer, found by the next review).
   */
  fullBound(topic: string, bytes: number, maxBuffered: number, maxBufferedBytes: number): FullBound | undefined {
    if (this.messages >= maxBuffered) return 'maxBuffered';
    if (this.totalBytes + bytes > maxBufferedBytes) return 'maxBufferedBytes';
    const lane = this.lanes.get(topic);
    if (lane === undefined) return undefined;
    if (lane.lastSendDelivered && (this.slowFor(topic) === undefined || !this.othersHold(lane))) return undefined;
    const held = lane.queue.length + lane.inFlight;
    if (held > 0 && (held * 2 >= maxBuffered || (lane.bytes + bytes) * 2 > maxBufferedBytes)) return 'topicShare';
    return undefined;
  }

  /**
   * How long the send in flight of a topic whose last send was delivered has gone unanswered, when
   * that is `slowSendMs` or more (its share applies again while other topics hold messages).
   */
  slowFor(topic: string): number | undefined {
    const lane = this.lanes.get(topic);
    if (lane?.lastSendDelivered !== true || lane.sendStartedAt === undefined) return undefined;
    const waited = this.now() - lane.sendStartedAt;
    return waited >= this.slowSendMs ? waited : undefined;
  }

  private othersHold(lane: Lane<M>): boolean {
    for (const other of this.lanes.values()) if (other !== lane && other.queue.length + other.inFlight > 0) return true;
    return false;
  }

  /** Messages and encoded bytes a topic holds queued or in flight. */
  held(topic: string): { readonly messages: number; readonly bytes: number } {
    const lane = this.lanes.get(topic);
    return { messages: lane === undefined ? 0 : lane.queue.length + lane.inFlight, bytes: lane?.bytes ?? 0 };
  }

  /** The last send failure of a topic whose sends are failing now. */
  failureOf(topic: string): unknown {
    return this.lanes.get(topic)?.failure;
  }

  /** Buffers a message at the end of its topic's queue; sent within `lingerMs` or when a batch is full. */
  push(topic: string, message: M): void {
    const lane = this.laneOf(topic);
    lane.queue.push(message);
    lane.queuedTotal++;
    lane.bytes += message.value.length;
    this.messages++;
    this.totalBytes += message.value.length;
    this.schedule(lane);
  }

  /** Starts every topic's send now (linger cut short, not a failed topic's pause): a caller waits for room. */
  sendNow(): void {
    for (const lane of this.lanes.values()) if (lane.queue.length > 0 && lane.retry === undefined) this.drain(lane);
  }

  /**
   * Resolves once every message pushed before the call is delivered. Topics go independently:
   * when a topic's send fails, the call still waits for the other topics, then rejects with a
   * retriable SINK_UNAVAILABLE naming each failing topic and how many of its messages are not
   * delivered (they stay buffered; a later flush retries them at once). `only` restricts the call
   * to the topics it accepts.
   */
  async flush(only?: (topic: string) => boolean): Promise<void> {
    const targets: FlushTarget<M>[] = [];
    for (const lane of this.lanes.values()) {
      if (lane.settledTotal < lane.queuedTotal && (only === undefined || only(lane.topic))) {
        targets.push({ lane, target: lane.queuedTotal, failedLoops: lane.failedLoops });
      }
    }
    // A topic has failed this flush when a send loop of it ended in a failure since the call, and
    // none of its sends has succeeded since (a background retry that gets through is waited for).
    const failedSince = (t: FlushTarget<M>) => t.lane.failedLoops > t.failedLoops && t.lane.failure !== undefined;
    for (;;) {
      const open = targets.filter((t) => t.lane.settledTotal < t.target);
      if (open.length === 0) return;
      if (open.every(failedSince)) throw undeliveredError(open.map((t) => t.lane));
      // The call's own attempt starts at once, a failed topic's pause cut short.
      for (const t of open) if (!failedSince(t)) this.drain(t.lane);
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.flushWaiters.delete(wake);
          resolve();
        };
        this.flushWaiters.add(wake);
      });
    }
  }

  /** No background retries or lingering sends from now on (the producer is closed). */
  stop(): void {
    this.stopped = true;
    for (const lane of this.lanes.values()) {
      clearTimeout(lane.linger);
      clearTimeout(lane.retry);
    }
  }

  private laneOf(topic: string): Lane<M> {
    let lane = this.lanes.get(topic);
    if (lane === undefined) {
      lane = {
        topic,
        queue: [],
        inFlight: 0,
        bytes: 0,
        queuedTotal: 0,
        settledTotal: 0,
        failedLoops: 0,
        failure: undefined,
        failureSeq: 0,
        lastSendDelivered: false,
        sendStartedAt: undefined,
        sending: undefined,
        linger: undefined,
        retry: undefined,
      };
      this.lanes.set(topic, lane);
    }
    return lane;
  }

  private schedule(lane: Lane<M>): void {
    if (lane.retry !== undefined) return; // a failed topic waits out its pause, then sends everything
    if (lane.queue.length >= this.options.batchSize) {
      this.drain(lane);
      return;
    }
    lane.linger ??= setTimeout(() => {
      lane.linger = undefined;
      this.drain(lane);
    }, this.options.lingerMs);
  }

  /**
   * Starts the topic's send loop unless it runs. Its outcome is handled here, once per loop: a
   * failure is logged and retried after a pause (the messages stay queued; a flush reports it).
   */
  private drain(lane: Lane<M>): void {
    clearTimeout(lane.linger);
    lane.linger = undefined;
    clearTimeout(lane.retry);
    lane.retry = undefined;
    if (lane.sending !== undefined) return;
    let failed = false;
    lane.sending = this.sendQueued(lane)
      .catch((error: unknown) => {
        failed = true;
        lane.failedLoops++;
        lane.failure = error;
        lane.failureSeq = ++this.failures;
        this.options.logger.warn(
          { topic: lane.topic, pending: lane.queue.length + lane.inFlight, err: (error as Error).message },
          'driftline SDK: send failed; retrying',
        );
        if (!this.stopped) {
          lane.retry = setTimeout(() => {
            lane.retry = undefined;
            this.drain(lane);
          }, this.options.retryAfterMs);
          lane.retry.unref();
        }
      })
      .finally(() => {
        lane.sending = undefined;
        // Pushed after the loop's last look at the queue (a publish woken by its last ack pushing a
        // whole batch): their drain() found the loop running and returned, and no timer is left.
        if (!failed && lane.queue.length > 0) this.drain(lane);
        this.wakeFlushes();
      });
  }

  /**
   * Sends everything queued for the topic, in order: requests of up to batchSize messages and
   * maxSendBytes (a message larger than that alone). A failed request goes back to the front.
   */
  private async sendQueued(lane: Lane<M>): Promise<void> {
    while (lane.queue.length > 0) {
      const n = runLength(lane.queue, this.options.batchSize, this.options.maxSendBytes);
      const taken = lane.queue.splice(0, n);
      const bytes = taken.reduce((sum, m) => sum + m.value.length, 0);
      lane.inFlight += n;
      lane.sendStartedAt = this.now();
      try {
        await this.options.send(lane.topic, taken);
        lane.failure = undefined;
        lane.lastSendDelivered = true;
        lane.settledTotal += n;
        lane.bytes -= bytes;
        this.messages -= n;
        this.totalBytes -= bytes;
        this.wakeFlushes();
      } catch (error) {
        lane.queue = [...taken, ...lane.queue]; // keep order; retried
        lane.lastSendDelivered = false;
        throw error;
      } finally {
        lane.inFlight -= n;
        lane.sendStartedAt = undefined;
        this.options.onSent();
      }
    }
  }

  private wakeFlushes(): void {
    for (const wake of [...this.flushWaiters]) wake();
  }
}

/**
 * How many messages of the front of a queue go in one send: at most `batchSize` and
 * `maxSendBytes` encoded bytes, but always the first, however large.
 */
export function runLength(queue: readonly LaneMessage[], batchSize: number, maxSendBytes: number): number {
  let n = 0;
  let bytes = 0;
  while (n < queue.length && n < batchSize) {
    const size = queue[n]!.value.length;
    if (n > 0 && bytes + size > maxSendBytes) break;
    bytes += size;
    n++;
  }
  return n;
}

/** Why a flush fails: per failing topic, how many messages are not delivered and its last send failure. */
function undeliveredError<M>(lanes: readonly Lane<M>[]): DriftlineError {
  const undelivered = Object.fromEntries(lanes.map((l) => [l.topic, l.queue.length + l.inFlight]));
  const parts = lanes.map(
    (l) => `${undelivered[l.topic]} messages to ${l.topic} not delivered: ${(l.failure as Error).message}`,
  );
  const cause = lanes[0]?.failure;
  return new DriftlineError('SINK_UNAVAILABLE', `driftline SDK: ${parts.join('; ')}`, {
    retriable: true,
    ...(cause === undefined ? {} : { cause }),
    details: { undelivered },
  });
}
