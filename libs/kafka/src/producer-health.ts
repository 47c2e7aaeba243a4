/**
 * When the producer behind {@link createProducer} is replaced by a fresh one. kafkajs keeps an
 * idempotent producer's id and sequence numbers, and its connections, across failures; after a
 * broker restart they can stay wrong (every send failing) or a request can stay unanswered, and
 * retrying through the same producer then never recovers. A fresh producer (a new producer id)
 * does; the price is that a send of unknown outcome before it may be written twice (the broker
 * deduplicates a resend only from the same producer id). So a fresh producer only where it can
 * help:
 *
 * - Sends failing without a success for `replaceAfterMs`: replace before the next attempt, then at
 *   most once per `replaceAfterMs` while they keep failing (an outage of minutes opens a producer
 *   a few times, not on every retry). When the last failure was a broker that could not be reached
 *   (refused or dropped connections), only if a broker now accepts connections: while Kafka is
 *   down a fresh producer cannot connect either, and keeping the old one lets the broker drop the
 *   resend of a batch that landed just before the crash. And only once the producer failed to
 *   reach Kafka again after a broker was seen accepting ({@link ProducerHealth.brokerAccepts}):
 *   the first check after an outage finds Kafka just back, and the old producer's resend goes
 *   first (a replacement there wrote the batch in flight at the outage twice).
 * - A send (or a connect) unanswered for `sendDeadlineMs` while a broker accepts connections (a
 *   hung broker, a wedged connection): it counts as failed, and the producer is replaced at once
 *   (the abandoned send may still be retried by the old producer: it must not share a producer
 *   with the next one). See {@link awaitAnswer} for one unanswered while no broker accepts.
 */
export interface ProducerHealthPolicy {
  readonly replaceAfterMs: number;
  readonly sendDeadlineMs: number;
}

export const defaultProducerHealth: ProducerHealthPolicy = { replaceAfterMs: 30_000, sendDeadlineMs: 60_000 };

/** Whether the next attempt goes through a fresh producer: no, yes, or only when a broker accepts connections. */
export type Replacement = 'keep' | 'replace' | 'replace-if-reachable';

export class ProducerHealth {
  /** Start of the current run of failures (undefined: the last send succeeded). */
  private failingSince: number | undefined;
  private replaceNow = false;
  private lastUnreachable = false;
  /** A broker accepted connections at the last check, and the producer was kept to try once more. */
  private acceptedAtCheck = false;
  private checkNow = false;

  constructor(readonly policy: ProducerHealthPolicy = defaultProducerHealth) {}

  succeeded(): void {
    this.failingSince = undefined;
    this.replaceNow = false;
    this.lastUnreachable = false;
    this.acceptedAtCheck = false;
    this.checkNow = false;
  }

  /** A send failed; `unreachable` when no broker could be reached (see {@link isBrokerUnreachable}). */
  failed(now: number, unreachable = false): void {
    this.failingSince ??= now;
    this.lastUnreachable = unreachable;
    // Kafka unreachable for this producer right after a broker accepted connections: check again at once.
    if (unreachable && this.acceptedAtCheck) this.checkNow = true;
  }

  /**
   * The answer to 'replace-if-reachable' (whether a broker accepts connections now): true when the
   * producer is to be replaced, that is when it failed to reach Kafka since a broker was last seen
   * accepting. The first time, the same producer tries again: Kafka may just be back.
   */
  brokerAccepts(accepts: boolean): boolean {
    const replace = accepts && this.acceptedAtCheck;
    this.acceptedAtCheck = accepts && !replace;
    return replace;
  }

  timedOut(now: number): void {
    this.failed(now);
    this.replaceNow = true;
  }

  /** The broker no longer accepts this producer's id or sequence numbers: the next send goes through a fresh one. */
  stateLost(now: number): void {
    this.timedOut(now);
  }

  /** What the next attempt goes through; when not 'keep', the clock of the run restarts. */
  shouldReplace(now: number): Replacement {
    if (this.replaceNow) {
      this.replaceNow = false;
      this.failingSince = now;
      return 'replace';
    }
    if (this.checkNow) {
      this.checkNow = false;
      this.failingSince = now;
      return 'replace-if-reachable';
    }
    if (this.failingSince === undefined || now - this.failingSince < this.policy.replaceAfterMs) return 'keep';
    this.failingSince = now;
    return this.lastUnreachable ? 'replace-if-reachable' : 'replace';
  }
}

/** kafkajs errors that mean no broker answered the connection (refused, reset, closed, DNS). */
const CONNECTION_ERRORS = new Set(['KafkaJSConnectionError', 'KafkaJSConnectionClosedError', 'KafkaJSBrokerNotFound']);

/** True when a failed send never got a broker to talk to: the cause chain ends in a connection error. */
export function isBrokerUnreachable(error: unknown, depth = 0): boolean {
  if (error === null || typeof error !== 'object' || depth > 4) return false;
  const e = error as { name?: unknown; cause?: unknown; originalError?: unknown };
  if (typeof e.name === 'string' && CONNECTION_ERRORS.has(e.name)) return true;
  return isBrokerUnreachable(e.cause ?? e.originalError, depth + 1);
}

const FIRST_RETRY_MS = 100;
/** kafkajs's randomisation of a retry delay: up to +20 %. */
const RETRY_JITTER = 1.2;

/**
 * The producer's own retries (kafkajs doubles the delay from 100 ms) fit in half the send
 * deadline: a send against a broker that refuses connections then fails as unreachable before
 * its deadline calls it unanswered, which would replace the producer.
 */
export function producerRetries(sendDeadlineMs: number): number {
  let retries = 0;
  while (FIRST_RETRY_MS * (2 ** (retries + 1) - 1) * RETRY_JITTER <= sendDeadlineMs / 2) retries++;
  return retries;
}

/** kafkajs retry options, every one stated (the shape of its `RetryOptions`). */
export interface RetryTiming {
  readonly initialRetryTime: number;
  readonly retries: number;
  readonly multiplier: number;
  readonly factor: number;
  readonly maxRetryTime: number;
}

/**
 * A producer's retries for its send deadline: its own (`send`: {@link producerRetries}) and its
 * cluster's (`cluster`), which kafkajs runs inside a send — connecting and reading metadata, up to
 * twice in a send to a broker that refuses connections — each within a quarter of the deadline.
 * The cluster's were the client's 8 (doubling from 100 ms: ~25 s), so a send to a broker down for
 * longer than the deadline went unanswered past it and the producer was replaced; its batch of
 * unknown outcome was then written again under a new producer id (found by a review: 30 records
 * twice in a 15 s outage). Every timing is stated: what is left out kafkajs takes from defaults
 * that differ under NODE_ENV=test (1.5× and at most 1 s apart), where this never showed.
 */
export function producerRetryTiming(sendDeadlineMs: number): { send: RetryTiming; cluster: RetryTiming } {
  const timing = { initialRetryTime: FIRST_RETRY_MS, multiplier: 2, factor: 0.2, maxRetryTime: 30_000 };
  return {
    send: { ...timing, retries: producerRetries(sendDeadlineMs) },
    cluster: { ...timing, retries: producerRetries(sendDeadlineMs / 2) },
  };
}

/** A send (or connect) left unanswered: see {@link awaitAnswer}. */
export class SendUnanswered extends Error {
  constructor(readonly waitedMs: number) {
    super(`no answer within ${waitedMs} ms`);
  }
}

/**
 * The outcome of `send`, or a {@link SendUnanswered} once it is left unanswered: past `deadlineMs`
 * while `brokerAccepts()` (a broker that takes connections and does not answer is hung), else past
 * twice `deadlineMs`. While no broker accepts connections the send is kafkajs retrying a broker that
 * is down, and it fails by itself (its retries fit the deadline); abandoned, it could still land
 * after a fresh producer had sent its records again, under a new producer id.
 */
export async function awaitAnswer<T>(
  send: Promise<T>,
  deadlineMs: number,
  brokerAccepts: () => Promise<boolean>,
): Promise<T> {
  let settled = false;
  send.then(
    () => {
      settled = true;
    },
    () => {
      settled = true; // abandoned, it may still reject later
    },
  );
  const late = Symbol('late');
  const within = async (ms: number): Promise<T | typeof late> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      const deadline = new Promise<typeof late>((resolve) => {
        timer = setTimeout(() => resolve(late), ms);
      });
      return await Promise.race([send, deadline]);
    } finally {
      clearTimeout(timer);
    }
  };
  const first = await within(deadlineMs);
  if (first !== late) return first;
  if (!(await brokerAccepts()) || settled) {
    const second = await within(deadlineMs);
    if (second !== late) return second;
    throw new SendUnanswered(2 * deadlineMs);
  }
  throw new SendUnanswered(deadlineMs);
}
