import type { PredictionEvent } from '@driftline/schemas';
import { HttpError } from '@driftline/service/http';

/** What a prediction log holds at most: records, and their approximate bytes. */
export interface LogBound {
  readonly records: number;
  readonly bytes: number;
}

/** The 503 of a full prediction log. */
export const backlogFull = (bound: LogBound, waitedMs = 0) =>
  new HttpError(
    503,
    'SINK_UNAVAILABLE',
    `prediction log backlog full (${bound.records} records or ${bound.bytes} bytes not yet acknowledged by Kafka${waitedMs > 0 ? ` after waiting ${waitedMs} ms` : ''}); retry later`,
  );

/** Default of DRIFTLINE_MODEL_SERVER_MAX_REQUEST_LOG_BYTES: the most bytes one request may log (README). */
export const DEFAULT_MAX_REQUEST_LOG_BYTES = 64 * 1_048_576;

/** The 413 of a request whose records would exceed the log bytes one request may take. */
export const requestLogTooLarge = (bytes: number, records: number, cap: number) =>
  new HttpError(
    413,
    'BAD_REQUEST',
    `request would log ${bytes} bytes of predictions (${records} records, all versions), over DRIFTLINE_MODEL_SERVER_MAX_REQUEST_LOG_BYTES (${cap}): send fewer instances`,
  );

/** The 503 of a prediction log that is closing or whose thread has exited. */
export const logNotRunning = () => new HttpError(503, 'SINK_UNAVAILABLE', 'prediction log is not running; retry later');

/** Bytes of a prediction record's fixed fields and framing beyond its strings (an estimate). */
const RECORD_OVERHEAD_BYTES = 64;
/** Bytes of a number, boolean or null feature value, or of a score, beside its name. */
const VALUE_BYTES = 9;

/**
 * About how many bytes a prediction record holds in the log: its strings' lengths in UTF-16 code
 * units plus a fixed cost per field. The count the byte bound is kept in: what matters there are
 * string feature values (up to 65,536 characters each), which a record count alone leaves unbounded.
 */
export function approxRecordBytes(e: PredictionEvent): number {
  let bytes =
    RECORD_OVERHEAD_BYTES + e.prediction_id.length + e.model.length + e.model_version.length + e.entity_id.length;
  const features = e.features;
  for (const name in features) {
    const v = features[name];
    bytes += name.length + (typeof v === 'string' ? v.length : VALUE_BYTES);
  }
  const scores = e.scores;
  if (scores != null) for (const version in scores) bytes += version.length + VALUE_BYTES;
  return bytes;
}

export interface Admission<R> {
  /**
   * Enqueues a request's records at once when they fit under the bound and nobody waits before
   * them; else waits, first come first served, until acknowledgements make room, and rejects with
   * a 503 after `maxWaitMs` (at once when it is 0). More than the bound fits an empty backlog.
   */
  admit(records: readonly R[]): Promise<void>;
  /**
   * Call when the log's oldest `records` left it (acknowledged or dead-lettered, in the order
   * they were enqueued): frees their bytes and admits the waiters that now fit, in order.
   */
  settled(records: number): void;
  /** Bytes held: enqueued and not yet settled. */
  heldBytes(): number;
  /** Rejects every waiter (the log closes or its thread died). */
  refuseAll(error: Error): void;
  /**
   * True from a refusal for lack of room until the log takes records again: a request is admitted,
   * or acknowledgements leave room under the bound with nobody waiting (the instance, out of its
   * load balancer meanwhile, gets no request to admit).
   */
  refusing(): boolean;
}

/**
 * The bound of a prediction log as back-pressure: under a backlog, requests wait for room (their
 * answers slow down to what Kafka acknowledges) before any is refused. A client that sends as fast
 * as it can then settles at the log's pace instead of getting 503s; only a backlog that does not
 * move for `maxWaitMs` refuses. Waiting records sit outside the bound, one request's worth each.
 *
 * Two bounds hold at once: records (`backlog`, counted by the log) and bytes (`bytesOf` of what was
 * enqueued, freed as the oldest records settle). A log records leave in the order they came
 * (one send at a time, from the head of its queue), so a FIFO of requests frees exactly; a request
 * partly settled keeps its bytes until it is wholly settled (the bound errs on the safe side).
 */
export function createAdmission<R>(options: {
  readonly bound: LogBound;
  readonly maxWaitMs: number;
  readonly backlog: () => number;
  readonly enqueue: (records: readonly R[]) => void;
  /** A record's bytes for the byte bound (approxRecordBytes); without it, only records are bounded. */
  readonly bytesOf?: (record: R) => number;
  /**
   * Most bytes (`bytesOf`) of one request's records: above it, `admit` rejects with a 413 at once,
   * without waiting. Unset: no cap (a request larger than the bound is then admitted alone).
   */
  readonly maxRequestBytes?: number;
}): Admission<R> {
  const { bound, maxWaitMs, backlog, enqueue, bytesOf, maxRequestBytes } = options;
  const waiters: Array<{
    readonly events: readonly R[];
    readonly bytes: number;
    readonly resolve: () => void;
    readonly reject: (e: Error) => void;
    readonly timer: NodeJS.Timeout;
  }> = [];
  /** Enqueued requests not yet wholly settled, oldest first: records left unsettled, bytes. */
  const held: Array<{ records: number; readonly bytes: number }> = [];
  let heldBytes = 0;
  let refusing = false;
  // A request larger than the bound (a full batch times its shadows, long string features) could
  // never fit: it is admitted alone, once the backlog is empty, rather than refused every time
  // (below `maxRequestBytes`, when set: above it, a 413).
  const fits = (records: number, bytes: number) => {
    const n = backlog();
    return (n + records <= bound.records && heldBytes + bytes <= bound.bytes) || (n === 0 && heldBytes === 0);
  };
  const take = (events: readonly R[], bytes: number) => {
    refusing = false;
    held.push({ records: events.length, bytes });
    heldBytes += bytes;
    enqueue(events);
  };
  const sizeOf = (events: readonly R[]) => {
    let bytes = 0;
    if (bytesOf !== undefined) for (const e of events) bytes += bytesOf(e);
    return bytes;
  };

  const release = () => {
    while (waiters.length > 0 && fits(waiters[0]!.events.length, waiters[0]!.bytes)) {
      const w = waiters.shift()!;
      clearTimeout(w.timer);
      take(w.events, w.bytes);
      w.resolve();
    }
  };

  return {
    admit(events) {
      const bytes = sizeOf(events);
      // A request of a few KB naming one entity with a 64 KB string 1,000 times queued 3,000 records
      // of 64 KB (~200 MB) and slowed every other request (found by a review): refused as too large.
      if (maxRequestBytes !== undefined && bytes > maxRequestBytes) {
        return Promise.reject(requestLogTooLarge(bytes, events.length, maxRequestBytes));
      }
      if (waiters.length === 0 && fits(events.length, bytes)) {
        take(events, bytes);
        return Promise.resolve();
      }
      if (maxWaitMs <= 0) {
        refusing = true;
        return Promise.reject(backlogFull(bound));
      }
      return new Promise<void>((resolve, reject) => {
        const waiter = {
          events,
          bytes,
          resolve,
          reject,
          timer: setTimeout(() => {
            waiters.splice(waiters.indexOf(waiter), 1);
            refusing = true;
            reject(backlogFull(bound, maxWaitMs));
            release(); // those behind it may fit now
          }, maxWaitMs),
        };
        waiters.push(waiter);
      });
    },
    settled(records) {
      let left = records;
      while (left > 0 && held.length > 0) {
        const oldest = held[0]!;
        const n = Math.min(left, oldest.records);
        oldest.records -= n;
        left -= n;
        if (oldest.records === 0) {
          held.shift();
          heldBytes -= oldest.bytes;
        }
      }
      release();
      if (waiters.length === 0 && backlog() < bound.records && heldBytes < bound.bytes) refusing = false;
    },
    heldBytes: () => heldBytes,
    refusing: () => refusing,
    refuseAll(error) {
      for (const w of waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(error);
      }
    },
  };
}
