import { DriftlineError, type Logger, toDriftlineError } from '@driftline/core';
import { deadLetterUnsent, type EventProducer, isolateRejected } from '@driftline/kafka';
import type { PredictionEvent } from '@driftline/schemas';
import { createAdmission, logNotRunning, type RecordSizes } from './admission.js';

/**
 * The log's options; `R` is what it queues for each prediction: the event itself, or (on the log's
 * thread) its value already encoded.
 */
export interface PredictionLogOptions<R = PredictionEvent> {
  /** Sends one batch to predictions.v1 and resolves once Kafka acknowledged it (acks=all). */
  readonly publish: (records: readonly R[]) => Promise<void>;
  /** Most records held (buffered and in flight); a request that would exceed it waits for room. */
  readonly maxBuffered: number;
  /** Most bytes held (`sizesOf`'s `bytes` of the records buffered and in flight); unbounded when either is unset. */
  readonly maxBufferedBytes?: number;
  /** Adds a record's sizes (addPredictionSizes): `bytes` for the byte bound, `capped` for `maxRequestBytes`. */
  readonly sizesOf?: (record: R, sizes: RecordSizes) => void;
  /** Most `capped` bytes of one request's records: above it, `append` rejects with a 413. Unset: no cap. */
  readonly maxRequestBytes?: number;
  /** Longest wait for room before a request's records are refused (503); 0 refuses at once. */
  readonly maxWaitMs: number;
  /** Longest time a record waits before its batch is sent. */
  readonly flushIntervalMs: number;
  /** Most records per send; a full batch is sent at once, without waiting for the interval. */
  readonly maxBatch: number;
  /**
   * Sends records that can never be written as they are (refused by the broker as too large, or
   * failing to encode) to the dead-letter topic; throws (retriable) when it cannot.
   */
  readonly deadLetter: (rejected: ReadonlyArray<Rejected<R>>) => Promise<void>;
  /** The prediction id of a record, named in the log line of a dead letter. */
  readonly idOf?: (record: R) => string;
  readonly logger: Logger;
  /** Called with the count of records sent to the dead-letter topic instead. */
  readonly onRejected?: (records: number) => void;
  /** Called with the count of records that left the log for good: acknowledged, or dead-lettered. */
  readonly onSettled?: (records: number) => void;
  /** Called with the backlog after every change (a gauge). */
  readonly onBacklog?: (records: number) => void;
  /** Called with the count of records a close could not drain and never sent: lost (see `unacknowledgedAtClose`). */
  readonly onLost?: (records: number) => void;
  /** Called with the count of records a close could not drain that were sent without an answer: they may have reached Kafka. */
  readonly onUnknown?: (records: number) => void;
}

/** What a close left unacknowledged, split by what may have reached Kafka. */
export interface UnacknowledgedAtClose {
  /** Never handed to the producer: lost for sure (resend them). */
  readonly lost: number;
  /**
   * Handed to the producer without an answer — the send in flight, or the head of the queue whose
   * last send failed: they may have reached Kafka (at-least-once). Look for them before resending.
   */
  readonly unknown: number;
}

/**
 * Splits what a close left: `queued` records waiting, `inFlight` in the send not answered (0 when
 * none), and `resendExactly` at the head of the queue that a failed send had handed over.
 * Counting them all lost (found by a review: "lost":2000 where 600 had reached Kafka) made an
 * operator who backfills from that number write duplicates.
 */
export function unacknowledgedAtClose(queued: number, inFlight: number, resendExactly: number): UnacknowledgedAtClose {
  const unknown = inFlight > 0 ? inFlight : Math.min(resendExactly, queued);
  return { lost: queued + inFlight - unknown, unknown };
}

/**
 * A publish that failed after its first `sent` records were acknowledged: the log keeps only the
 * others, so a retry does not write those again. Retriable as the failure it wraps.
 */
export class PartialPublishError extends DriftlineError {
  constructor(
    readonly sent: number,
    cause: unknown,
  ) {
    const failure = toDriftlineError(cause);
    super(failure.code, failure.message, { cause, retriable: failure.retriable, details: { sent } });
    this.name = 'PartialPublishError';
  }
}

const sentBefore = (error: unknown) => (error instanceof PartialPublishError ? error.sent : 0);

/** A record the log could not write, with the error that said so. */
export interface Rejected<R> {
  readonly record: R;
  readonly error: DriftlineError;
}

export type RejectedPrediction = Rejected<PredictionEvent>;

/** Who the prediction log's dead letters name as their producer (`driftline.dlq.consumer.group`). */
const PRODUCED_BY = 'driftline-model-server';

/**
 * The log's `deadLetter` over a producer: each rejected record to `<topic>.dlq`, keyed by its
 * prediction id, its value the record's JSON (its Avro may not exist).
 */
export const predictionDeadLetters =
  (producer: Pick<EventProducer, 'send'>, topic: string) =>
  (rejected: ReadonlyArray<RejectedPrediction>): Promise<void> =>
    deadLetterUnsent(
      producer,
      topic,
      rejected.map(({ record, error }) => ({
        key: record.prediction_id,
        value: Buffer.from(JSON.stringify(record)),
        code: error.code,
        reason: error.message,
      })),
      PRODUCED_BY,
    );

export interface PredictionLog<R = PredictionEvent> {
  /**
   * Queues the records of one request: at once when they fit under the bound, else after waiting
   * for room (back-pressure); rejects with a 503 when there is none within the wait. `refresh`:
   * see Admission.admit (the records to queue instead, given when they are taken); `signal`: the
   * request's, a waiting request leaves the waiting room once it aborts (Admission.admit).
   */
  append(records: readonly R[], refresh?: () => readonly R[], signal?: AbortSignal): Promise<void>;
  /** Records held: queued plus in flight. */
  backlog(): number;
  /** False once the log can no longer send (its thread exited): liveness fails. */
  alive(): boolean;
  /**
   * Alive and not refusing requests for a log that does not drain (a wait for room that ran out
   * with nothing acknowledged during it, until the log takes records again; a full waiting room
   * alone is a 503, not this): readiness, so a load balancer stops sending what can only be refused.
   */
  ready(): boolean;
  /** Sends everything queued now, retrying until it is sent or `deadlineMs` passed; returns what is left. */
  drain(deadlineMs: number): Promise<number>;
  /** Stops the timer after draining (what cannot be sent before the deadline is logged as lost). */
  close(deadlineMs?: number): Promise<void>;
}

/**
 * The prediction log: a bounded in-memory queue sent to predictions.v1 in batches, at least every
 * `flushIntervalMs` and at once when `maxBatch` records wait. One send at a time; a failed send
 * keeps the records not yet acknowledged at the head of the queue and is retried on the next tick
 * (a resend after an unknown outcome is at-least-once, never lost); records Kafka refuses as they
 * are go to the dead-letter topic instead (`deadLetter`). When the queue is
 * full, requests wait for room (createAdmission) and are refused (503) after the wait rather than
 * answered unlogged. What a kill loses: the records
 * queued or in flight at that moment, at most `maxBuffered` and in steady state about
 * `flushIntervalMs` worth of traffic plus one send's round trip; a graceful stop drains first.
 */
export function createPredictionLog<R = PredictionEvent>(options: PredictionLogOptions<R>): PredictionLog<R> {
  const { publish, maxBuffered, maxWaitMs, flushIntervalMs, maxBatch, logger } = options;
  let queue: R[] = [];
  let inFlight = 0;
  let sending: Promise<void> | undefined;
  let lastFailureLog = 0;
  let closed = false;
  const backlog = () => queue.length + inFlight;
  const report = () => options.onBacklog?.(backlog());

  // A refusal that can never succeed (too large, not encodable) would hold the queue forever and
  // then refuse every request: its records are isolated by halving the batch and dead-lettered,
  // and the others sent. A retriable failure during that is rethrown and the whole batch retried
  // (the halves already sent are sent again: at-least-once).
  const publishOrDeadLetter = async (batch: readonly R[]): Promise<void> => {
    let sent = 0;
    try {
      await publish(batch);
      return;
    } catch (error) {
      if (toDriftlineError(error).retriable) throw error;
      sent = sentBefore(error);
    }
    // The records before the refusal were acknowledged: only the rest is halved and sent again.
    // Whatever fails from here keeps those `sent` out of the retry.
    try {
      const rest = batch.slice(sent);
      const rejected = (await isolateRejected(rest, publish)).map(({ item, error }) => ({ record: item, error }));
      await options.deadLetter(rejected);
      options.onRejected?.(rejected.length);
      const first = rejected[0];
      logger.error(
        {
          rejected: rejected.length,
          code: first?.error.code,
          reason: first?.error.message,
          prediction_id: first === undefined ? undefined : options.idOf?.(first.record),
        },
        'prediction records Kafka will never take as they are went to the dead-letter topic',
      );
    } catch (error) {
      throw sent > 0 ? new PartialPublishError(sent, error) : error;
    }
  };

  // After a failed send, the next one is exactly its unacknowledged rest, nothing appended since:
  // if the failed attempt did land (a broker killed before it answered), the idempotent producer
  // sends the same records under the same sequence numbers and the broker drops the copy.
  let resendExactly = 0;
  const sendOnce = async (): Promise<void> => {
    if (queue.length === 0) return;
    const size = resendExactly > 0 ? resendExactly : maxBatch;
    const batch = queue.length <= size ? queue : queue.slice(0, size);
    queue = queue.length <= size ? [] : queue.slice(size);
    inFlight = batch.length;
    let settled = 0;
    try {
      await publishOrDeadLetter(batch);
      resendExactly = 0;
      settled = batch.length;
      options.onSettled?.(settled);
    } catch (error) {
      const sent = sentBefore(error);
      settled = sent;
      if (sent > 0) options.onSettled?.(sent);
      queue = batch.slice(sent).concat(queue);
      resendExactly = batch.length - sent;
      if (Date.now() - lastFailureLog >= 1_000) {
        lastFailureLog = Date.now();
        logger.warn({ err: error, backlog: backlog() }, 'prediction log send failed; retrying');
      }
      throw error;
    } finally {
      inFlight = 0;
      report();
      admission.settled(settled);
    }
  };
  const kick = (): Promise<void> => {
    sending ??= sendOnce().then(
      () => {
        sending = undefined;
        // A full batch waiting goes now, not at the next tick, but after the requests already
        // waiting on the event loop: encoding is CPU work on the serving thread.
        if (queue.length >= maxBatch) setImmediate(() => void kick());
      },
      () => {
        // A failed send waits for the next tick: no busy retry loop against a broker that is down.
        sending = undefined;
      },
    );
    return sending;
  };
  const admission = createAdmission<R>({
    bound: { records: maxBuffered, bytes: options.maxBufferedBytes ?? Number.POSITIVE_INFINITY },
    maxWaitMs,
    backlog,
    ...(options.sizesOf === undefined ? {} : { sizesOf: options.sizesOf }),
    ...(options.maxRequestBytes === undefined ? {} : { maxRequestBytes: options.maxRequestBytes }),
    enqueue(events) {
      for (const e of events) queue.push(e);
      report();
      if (queue.length >= maxBatch && sending === undefined) setImmediate(() => void kick());
    },
  });
  const timer = setInterval(() => void kick(), flushIntervalMs);
  timer.unref();

  async function drain(deadlineMs: number): Promise<number> {
    const until = Date.now() + deadlineMs;
    while (backlog() > 0 && Date.now() < until) {
      // A send in flight is waited for until the deadline only: it may hang up to the producer's
      // own deadline (60 s), and a stop must not wait that long.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        sending ?? kick(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, Math.max(0, until - Date.now()));
        }),
      ]);
      clearTimeout(timer);
      if (queue.length > 0 && sending === undefined) {
        // A failed send: wait a little before the next attempt.
        await new Promise((r) => setTimeout(r, Math.min(100, flushIntervalMs)));
      }
    }
    return backlog();
  }

  return {
    // Refused once closing: nothing would send what it queued, nor count it lost.
    append: (events, refresh, signal) =>
      closed ? Promise.reject(logNotRunning()) : admission.admit(events, refresh, signal),
    backlog,
    alive: () => !closed,
    ready: () => !closed && !admission.refusing(),
    drain,
    async close(deadlineMs = 10_000) {
      closed = true;
      admission.refuseAll(logNotRunning());
      const left = await drain(deadlineMs);
      clearInterval(timer);
      if (left > 0) {
        const { lost, unknown } = unacknowledgedAtClose(queue.length, inFlight, resendExactly);
        logger.error(
          { lost, unknown, unacknowledged: left },
          `prediction log closed with ${left} records not acknowledged by Kafka: ${lost} never sent, they are lost; ${unknown} sent without an answer, they may have reached Kafka (at-least-once)`,
        );
        if (lost > 0) options.onLost?.(lost);
        if (unknown > 0) options.onUnknown?.(unknown);
      }
    },
  };
}
