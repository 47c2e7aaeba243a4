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
 *   resend of a batch that landed just before the crash.
 * - A send (or a connect) unanswered for `sendDeadlineMs`: it counts as failed, and the producer is
 *   replaced at once (the abandoned send may still be retried by the old producer: it must not
 *   share a producer with the next one).
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

  constructor(readonly policy: ProducerHealthPolicy = defaultProducerHealth) {}

  succeeded(): void {
    this.failingSince = undefined;
    this.replaceNow = false;
    this.lastUnreachable = false;
  }

  /** A send failed; `unreachable` when no broker could be reached (see {@link isBrokerUnreachable}). */
  failed(now: number, unreachable = false): void {
    this.failingSince ??= now;
    this.lastUnreachable = unreachable;
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
