/**
 * When the producer behind {@link createProducer} is replaced by a fresh one. kafkajs keeps an
 * idempotent producer's id and sequence numbers, and its connections, across failures; after a
 * broker restart they can stay wrong (every send failing) or a request can stay unanswered, and
 * retrying through the same producer then never recovers. A fresh producer (a new producer id)
 * does; the price is that a send of unknown outcome before it may be written twice (at-least-once,
 * as every sink here already assumes).
 *
 * - Sends failing without a success for `replaceAfterMs`: replace before the next attempt, then at
 *   most once per `replaceAfterMs` while they keep failing (an outage of minutes opens a producer
 *   a few times, not on every retry).
 * - A send (or a connect) unanswered for `sendDeadlineMs`: it counts as failed, and the producer is
 *   replaced at once.
 */
export interface ProducerHealthPolicy {
  readonly replaceAfterMs: number;
  readonly sendDeadlineMs: number;
}

export const defaultProducerHealth: ProducerHealthPolicy = { replaceAfterMs: 30_000, sendDeadlineMs: 60_000 };

export class ProducerHealth {
  /** Start of the current run of failures (undefined: the last send succeeded). */
  private failingSince: number | undefined;
  private replaceNow = false;

  constructor(readonly policy: ProducerHealthPolicy = defaultProducerHealth) {}

  succeeded(): void {
    this.failingSince = undefined;
    this.replaceNow = false;
  }

  failed(now: number): void {
    this.failingSince ??= now;
  }

  timedOut(now: number): void {
    this.failed(now);
    this.replaceNow = true;
  }

  /** True when the next attempt should go through a fresh producer; the clock of the run restarts. */
  shouldReplace(now: number): boolean {
    const due =
      this.replaceNow || (this.failingSince !== undefined && now - this.failingSince >= this.policy.replaceAfterMs);
    if (due) {
      this.replaceNow = false;
      this.failingSince = now;
    }
    return due;
  }
}
