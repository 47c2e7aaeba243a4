import { DriftlineError } from '@driftline/core';
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

/**
 * Default of DRIFTLINE_MODEL_SERVER_MAX_REQUEST_LOG_BYTES: the most UTF-8 bytes of string feature
 * values one request may log, over all versions' records (README).
 */
export const DEFAULT_MAX_REQUEST_LOG_BYTES = 64 * 1_048_576;

/** The 413 of a request whose records would carry more string feature bytes than one request may. */
export const requestLogTooLarge = (bytes: number, records: number, cap: number) =>
  new HttpError(
    413,
    'BAD_REQUEST',
    `request would log ${bytes} bytes of string feature values (${records} records, all versions), over DRIFTLINE_MODEL_SERVER_MAX_REQUEST_LOG_BYTES (${cap}): send fewer instances`,
  );

/** The 503 of a prediction log that is closing or whose thread has exited. */
export const logNotRunning = () => new HttpError(503, 'SINK_UNAVAILABLE', 'prediction log is not running; retry later');

/** A request that left the waiting room because its signal aborted (its client went away): nothing taken. */
export class AdmissionAbortedError extends DriftlineError {
  constructor() {
    super('BAD_REQUEST', "left the prediction log's waiting room: its client went away; nothing logged");
    this.name = 'AdmissionAbortedError';
  }
}

/** Bytes of a prediction record's fixed fields and framing beyond its strings (an estimate). */
const RECORD_OVERHEAD_BYTES = 64;
/** Bytes of a number, boolean or null feature value, or of a score, beside its name. */
const VALUE_BYTES = 9;

/**
 * UTF-8 bytes of a string: its length while every code unit is ASCII (the common case, no copy),
 * else Buffer.byteLength (up to 3 bytes a code unit: counting UTF-16 units undercounted a string of
 * `€` 3×, found by a review).
 */
export function utf8Bytes(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return Buffer.byteLength(s, 'utf8');
  return s.length;
}

/** Sizes of records, summed: `bytes` for the log's byte bound, `capped` for the per-request cap. */
export interface RecordSizes {
  bytes: number;
  capped: number;
}

/**
 * Adds a prediction record's sizes, in one walk of its features (two walks were a second pass over
 * every record of every request):
 * - `bytes`, about what it holds in the log: its strings' UTF-8 bytes plus a fixed cost per field.
 *   The byte bound is kept in it: string feature values (up to 65,536 characters each) leave a
 *   record count alone unbounded.
 * - `capped`, the UTF-8 bytes of its string feature values: what
 *   DRIFTLINE_MODEL_SERVER_MAX_REQUEST_LOG_BYTES caps, over a request's records. Only strings are
 *   unbounded per record: numbers, names and ids are bounded by DRIFTLINE_MODEL_SERVER_MAX_BATCH ×
 *   MAX_FEATURES × versions already (capping whole records refused ordinary numeric batches the
 *   settings allow, 10,000 instances of 256 doubles on 3 versions; found by a review).
 */
export function addPredictionSizes(e: PredictionEvent, sizes: RecordSizes): void {
  // Names, models and versions by their length (bounded, ASCII by their grammars); entity ids and
  // string values in UTF-8 (any text): scanning every name cost 3-5x (a regression review).
  let bytes =
    RECORD_OVERHEAD_BYTES + e.prediction_id.length + e.model.length + e.model_version.length + utf8Bytes(e.entity_id);
  let strings = 0;
  const features = e.features;
  for (const name in features) {
    const v = features[name];
    if (typeof v === 'string') {
      const n = utf8Bytes(v);
      strings += n;
      bytes += name.length + n;
    } else bytes += name.length + VALUE_BYTES;
  }
  const scores = e.scores;
  if (scores != null) for (const version in scores) bytes += version.length + VALUE_BYTES;
  sizes.bytes += bytes;
  sizes.capped += strings;
}

/** A prediction record's `bytes` (see addPredictionSizes). */
export function approxRecordBytes(e: PredictionEvent): number {
  const sizes = { bytes: 0, capped: 0 };
  addPredictionSizes(e, sizes);
  return sizes.bytes;
}

/** A prediction record's `capped` bytes: its string feature values in UTF-8 (see addPredictionSizes). */
export function stringValueBytes(e: PredictionEvent): number {
  const sizes = { bytes: 0, capped: 0 };
  addPredictionSizes(e, sizes);
  return sizes.capped;
}

export interface Admission<R> {
  /**
   * Enqueues a request's records at once when they fit under the bound and nobody waits before
   * them; else waits, first come first served, until acknowledgements make room, and rejects with
   * a 503 after `maxWaitMs` (at once when it is 0, or when the waiters already hold a bound's
   * worth of records or bytes). More than the bound fits an empty backlog.
   * `refresh`, when given, is called synchronously at the moment the records are taken (after any
   * wait) and returns the records to take instead (the same when nothing changed); if it throws,
   * nothing is taken and `admit` rejects with its error. `signal` (the request's): once it
   * aborts, a waiting request leaves the waiting room at once (its place freed for those behind)
   * and `admit` rejects with an AdmissionAbortedError; already aborted, nothing is taken.
   */
  admit(records: readonly R[], refresh?: () => readonly R[], signal?: AbortSignal): Promise<void>;
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
   * True from a refusal of a log that is not draining until it takes records again: a wait that
   * ran out with no record settled during it (or any refusal when `maxWaitMs` is 0), cleared when
   * a request is admitted or acknowledgements leave room under the bound with nobody waiting (the
   * instance, out of its load balancer meanwhile, gets no request to admit). A request refused
   * because the waiting room is full is a 503 only: a log that drains as fast as Kafka
   * acknowledges, with more clients than the waiting room holds, is busy, not out of service
   * (setting it there made a healthy instance unready 73 % of the time under 128 clients of
   * 1,000-record requests, Kafka keeping up; found by a review).
   */
  refusing(): boolean;
}

/**
 * The bound of a prediction log as back-pressure: under a backlog, requests wait for room (their
 * answers slow down to what Kafka acknowledges) before any is refused. A client that sends as fast
 * as it can then settles at the log's pace instead of getting 503s; only a backlog that does not
 * move for `maxWaitMs` refuses. Waiting records sit outside the bound, in a waiting room of one
 * bound's worth (records and bytes; the first waiter whatever its size): a request finding it full
 * is refused at once (a 503, readiness unchanged), and a waiter whose request's signal aborts
 * leaves it at once (a departed client held its place until `maxWaitMs`, refusing others).
 *
 * Two bounds hold at once: records (`backlog`, counted by the log) and bytes (`sizesOf` of what was
 * enqueued, freed as the oldest records settle). A log records leave in the order they came
 * (one send at a time, from the head of its queue), so a FIFO of requests frees exactly; a request
 * partly settled keeps its bytes until it is wholly settled (the bound errs on the safe side).
 */
export function createAdmission<R>(options: {
  readonly bound: LogBound;
  readonly maxWaitMs: number;
  readonly backlog: () => number;
  readonly enqueue: (records: readonly R[]) => void;
  /**
   * Adds a record's sizes (addPredictionSizes): `bytes` for the byte bound, `capped` for
   * `maxRequestBytes`. Without it, only records are bounded.
   */
  readonly sizesOf?: (record: R, sizes: RecordSizes) => void;
  /**
   * Most `capped` bytes of one request's records: above it, `admit` rejects with a 413 at once,
   * without waiting. Unset: no cap (a request larger than the bound is then admitted alone).
   */
  readonly maxRequestBytes?: number;
}): Admission<R> {
  const { bound, maxWaitMs, backlog, enqueue, sizesOf, maxRequestBytes } = options;
  const waiters: Array<{
    readonly events: readonly R[];
    readonly bytes: number;
    readonly refresh: (() => readonly R[]) | undefined;
    readonly resolve: () => void;
    readonly reject: (e: Error) => void;
    readonly timer: NodeJS.Timeout;
    /** Removes the waiter's abort listener (it leaves the room some other way). */
    readonly unlisten: () => void;
  }> = [];
  /** Records and bytes of the waiters: at most the bound's worth (see `admit`). */
  let waitingRecords = 0;
  let waitingBytes = 0;
  const leave = (w: { readonly events: readonly R[]; readonly bytes: number }) => {
    waitingRecords -= w.events.length;
    waitingBytes -= w.bytes;
  };
  /** Enqueued requests not yet wholly settled, oldest first: records left unsettled, bytes. */
  const held: Array<{ records: number; readonly bytes: number }> = [];
  let heldBytes = 0;
  let refusing = false;
  /** Records settled so far: a wait that ran out with this unchanged saw a log not draining. */
  let settledTotal = 0;
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
  /**
   * The bytes of a request's records for the bound; throws the 413 of a request over
   * `maxRequestBytes`. A request of a few KB naming one entity with a 64 KB string 1,000 times
   * queued 3,000 records of 64 KB (~200 MB) and slowed every other request (found by a review).
   */
  const sizeOf = (events: readonly R[]): number => {
    if (sizesOf === undefined) return 0;
    const sizes: RecordSizes = { bytes: 0, capped: 0 };
    for (const e of events) sizesOf(e, sizes);
    if (maxRequestBytes !== undefined && sizes.capped > maxRequestBytes) {
      throw requestLogTooLarge(sizes.capped, events.length, maxRequestBytes);
    }
    return sizes.bytes;
  };
  /** Takes the records, or those `refresh` gives instead (it may throw: nothing taken). */
  const takeFresh = (events: readonly R[], bytes: number, refresh: (() => readonly R[]) | undefined) => {
    const fresh = refresh?.() ?? events;
    take(fresh, fresh === events ? bytes : sizeOf(fresh));
  };

  const release = () => {
    while (waiters.length > 0 && fits(waiters[0]!.events.length, waiters[0]!.bytes)) {
      const w = waiters.shift()!;
      leave(w);
      clearTimeout(w.timer);
      w.unlisten();
      try {
        takeFresh(w.events, w.bytes, w.refresh);
      } catch (error) {
        w.reject(error instanceof Error ? error : new Error(String(error)));
        continue;
      }
      w.resolve();
    }
  };

  return {
    admit(events, refresh, signal) {
      if (signal?.aborted === true) return Promise.reject(new AdmissionAbortedError());
      let bytes: number;
      try {
        bytes = sizeOf(events);
      } catch (error) {
        return Promise.reject(error);
      }
      if (waiters.length === 0 && fits(events.length, bytes)) {
        try {
          takeFresh(events, bytes, refresh);
        } catch (error) {
          return Promise.reject(error);
        }
        return Promise.resolve();
      }
      if (maxWaitMs <= 0) {
        refusing = true;
        return Promise.reject(backlogFull(bound));
      }
      // The waiting room holds one bound's worth at most (the first waiter whatever its size):
      // each waiter holds its request's records, and 4,096 requests in flight of 1,000 instances
      // times their versions waiting took the process past a gigabyte (a review). Refused for lack
      // of a place there: a 503, readiness unchanged (see `refusing`).
      const roomless =
        waiters.length > 0 && (waitingRecords + events.length > bound.records || waitingBytes + bytes > bound.bytes);
      if (roomless) return Promise.reject(backlogFull(bound));
      const settledBefore = settledTotal;
      return new Promise<void>((resolve, reject) => {
        /** Out of the room before being taken: its place freed, those behind it may fit now. */
        const quit = (error: Error) => {
          const at = waiters.indexOf(waiter);
          if (at !== -1) waiters.splice(at, 1);
          leave(waiter);
          clearTimeout(waiter.timer);
          waiter.unlisten();
          reject(error);
          release();
        };
        const onAbort = () => quit(new AdmissionAbortedError());
        const waiter = {
          events,
          bytes,
          refresh,
          resolve,
          reject,
          timer: setTimeout(() => {
            // Not ready only when nothing left the log during the whole wait: a log that drains
            // but not fast enough for every waiter is answered with 503s, not taken out of service.
            if (settledTotal === settledBefore) refusing = true;
            quit(backlogFull(bound, maxWaitMs));
          }, maxWaitMs),
          unlisten: () => signal?.removeEventListener('abort', onAbort),
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        waiters.push(waiter);
        waitingRecords += events.length;
        waitingBytes += bytes;
      });
    },
    settled(records) {
      settledTotal += records;
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
        leave(w);
        clearTimeout(w.timer);
        w.unlisten();
        w.reject(error);
      }
    },
  };
}
