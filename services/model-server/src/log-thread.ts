import type { Logger } from '@driftline/core';
import type { PredictionEvent } from '@driftline/schemas';
import { awaitStarted, startWorker } from '@driftline/service/worker';
import { addPredictionSizes, createAdmission, logNotRunning } from './admission.js';
import type { FromLogThread, LogThreadData, LogThreadSendPolicy, ToLogThread } from './log-thread-protocol.js';
import { packPredictions, transferred } from './packed-predictions.js';
import type { PredictionLog } from './prediction-log.js';

export type { LogThreadData } from './log-thread-protocol.js';

export interface ThreadLogOptions extends LogThreadSendPolicy {
  /** Most records held (handed over and not yet acknowledged by Kafka); beyond it, requests wait. */
  readonly maxBuffered: number;
  /** Most bytes held (approxRecordBytes of those records); beyond it, requests wait. Unset: unbounded. */
  readonly maxBufferedBytes?: number;
  /** Most UTF-8 bytes of string feature values (stringValueBytes) of one request's records: above it, a 413. Unset: no cap. */
  readonly maxRequestBytes?: number;
  /** Longest wait for room before a request's records are refused (503); 0 refuses at once. */
  readonly maxWaitMs: number;
  /** Called with the backlog after every change (a gauge). */
  readonly onBacklog?: (records: number) => void;
  /**
   * Called with the count of records lost for sure: never sent (left queued by a close), or never
   * handed to the thread when it exited.
   */
  readonly onLost?: (records: number) => void;
  /**
   * Called with the count of records that may have reached Kafka: sent without an answer at a
   * close, or handed to the thread and not acknowledged when it exited or was stopped (the serving
   * thread cannot tell which of those the thread had sent).
   */
  readonly onUnknown?: (records: number) => void;
  /** Called with the count of records sent to the dead-letter topic (see createPredictionLog). */
  readonly onRejected?: (records: number) => void;
}

/**
 * Longest wait for the thread to answer a close beyond the drain deadline (it disconnects its
 * producer within PRODUCER_DISCONNECT_MS of log-worker.ts), then it is stopped.
 */
const CLOSE_GRACE_MS = 5_000;

/**
 * Records wait up to HAND_OFF_DELAY_MS on the serving thread, so that one message carries several
 * requests' (one per request cost the serving thread ~60 µs of postMessage each, and woke the log
 * thread once per request); HAND_OFF_RECORDS waiting go at the end of the event-loop turn.
 */
const HAND_OFF_DELAY_MS = 5;
const HAND_OFF_RECORDS = 1_000;

/**
 * The prediction log on a worker thread of its own (log-worker.ts): its queue, flush policy,
 * retries, Avro encoding and Kafka producer all run there. The serving thread keeps the bound:
 * `append` counts the records against those Kafka acknowledged (the thread reports after every
 * send); beyond `maxBuffered` a request waits for room (createAdmission) and is refused with a 503
 * after `maxWaitMs`. Admitted records are handed over after at most HAND_OFF_DELAY_MS, or at the
 * end of the event-loop turn once HAND_OFF_RECORDS wait — after the answers of that turn are
 * written, and in bounded pieces: handing over tens of thousands of records in one message (a
 * structured clone of ~2 µs per record) stalled the serving thread for 4–12 ms. They travel packed
 * (packed-predictions.ts).
 *
 * Loss window: what is held when the process dies (at most `maxBuffered`; in steady state about a
 * flush interval of traffic plus one send, plus HAND_OFF_DELAY_MS); a graceful close drains first. While a full
 * buffer that does not drain refuses requests (a wait that ran out with nothing acknowledged), readiness fails
 * (`ready`) until the log takes records again. If the thread exits,
 * every later append is a 503, readiness and liveness fail (the service restarts), and the records it
 * held are logged and counted: those never handed to it lost, those handed to it unknown (it may
 * have sent them).
 */
export async function startThreadLog(
  data: LogThreadData,
  options: ThreadLogOptions,
  logger: Logger,
): Promise<PredictionLog> {
  const policy: LogThreadSendPolicy = { flushIntervalMs: options.flushIntervalMs, maxBatch: options.maxBatch };
  const worker = startWorker(import.meta.url, 'log-worker', { ...data, policy });
  let handedOver = 0;
  let acked = 0;
  let pending: PredictionEvent[] = [];
  let handOffScheduled: 'no' | 'later' | 'soon' = 'no';
  let handOffTimer: NodeJS.Timeout | undefined;
  let exited = false;
  let nextId = 0;
  const drains = new Map<number, (left: number) => void>();
  let closed: ((left: number) => void) | undefined;
  /** The thread answered `close` (and logged what its close lost itself). */
  let closedReported = false;
  /** What a close could not drain: lost (never sent) and unknown (may have reached Kafka). */
  let leftAtClose = { lost: 0, unknown: 0 };
  const backlog = () => handedOver + pending.length - acked;
  const report = () => options.onBacklog?.(backlog());
  const send = (message: ToLogThread) => worker.postMessage(message);
  const admission = createAdmission<PredictionEvent>({
    bound: { records: options.maxBuffered, bytes: options.maxBufferedBytes ?? Number.POSITIVE_INFINITY },
    maxWaitMs: options.maxWaitMs,
    backlog,
    sizesOf: addPredictionSizes,
    ...(options.maxRequestBytes === undefined ? {} : { maxRequestBytes: options.maxRequestBytes }),
    enqueue(events) {
      for (const e of events) pending.push(e);
      report();
      if (pending.length >= HAND_OFF_RECORDS && handOffScheduled !== 'soon') {
        clearTimeout(handOffTimer);
        handOffScheduled = 'soon';
        setImmediate(handOff);
      } else if (handOffScheduled === 'no') {
        handOffScheduled = 'later';
        handOffTimer = setTimeout(handOff, HAND_OFF_DELAY_MS);
      }
    },
  });

  worker.on('message', (message: FromLogThread) => {
    if (message.type === 'log') logger[message.level](message.obj, message.msg);
    else if (message.type === 'acked') {
      const settled = message.records - acked;
      acked = message.records;
      report();
      admission.settled(settled);
    } else if (message.type === 'rejected') options.onRejected?.(message.records);
    else if (message.type === 'drained') {
      drains.get(message.id)?.(message.left);
      drains.delete(message.id);
    } else if (message.type === 'closed') {
      closedReported = true;
      leftAtClose = { lost: message.lost, unknown: message.unknown };
      closed?.(message.left);
    }
  });
  worker.on('error', (error) => logger.error({ err: error }, 'prediction log thread failed'));
  worker.on('exit', () => {
    exited = true;
    const left = backlog();
    // Records still on this thread were never sent: lost. Those handed over and not acknowledged
    // may have been sent by the thread before it ended: unknown (counting them lost had an operator
    // backfill records that had landed, found by a review).
    const split = { lost: pending.length, unknown: left - pending.length };
    const counts = (what: string) =>
      `${what} with ${left} records not acknowledged by Kafka: ${split.lost} never handed to the thread, they are lost; ${split.unknown} handed to it without an acknowledgement, they may have reached Kafka (at-least-once)`;
    if (left > 0 && closed === undefined) {
      logger.error({ ...split, unacknowledged: left }, counts('prediction log thread exited'));
      if (split.lost > 0) options.onLost?.(split.lost);
      if (split.unknown > 0) options.onUnknown?.(split.unknown);
    } else if (left > 0 && !closedReported) {
      // Terminated at close past its deadline (a send that never settled): the thread logged nothing.
      logger.error(
        { ...split, unacknowledged: left },
        counts('prediction log thread did not close in time and was stopped'),
      );
      leftAtClose = split;
    }
    const lost = left;
    for (const resolve of drains.values()) resolve(lost);
    drains.clear();
    admission.refuseAll(logNotRunning());
    closed?.(lost);
  });

  await awaitStarted<FromLogThread, 'ready'>(worker, 'ready', 'prediction log thread');

  const handOff = () => {
    handOffScheduled = 'no';
    clearTimeout(handOffTimer);
    if (pending.length === 0 || exited) return;
    // Packed (packed-predictions.ts): a third of the structured clone's cost on this thread.
    const packed = packPredictions(pending);
    if (packed === undefined) send({ type: 'append', events: pending });
    else worker.postMessage({ type: 'append-packed', packed } satisfies ToLogThread, transferred(packed));
    handedOver += pending.length;
    pending = [];
  };
  let closing: Promise<number> | undefined;

  return {
    append(events, refresh, signal) {
      if (exited || closing !== undefined) return Promise.reject(logNotRunning());
      return admission.admit(events, refresh, signal);
    },
    backlog,
    alive: () => !exited,
    ready: () => !exited && closing === undefined && !admission.refusing(),
    async drain(deadlineMs) {
      handOff();
      if (exited) return backlog();
      const id = nextId++;
      const left = await new Promise<number>((resolve) => {
        drains.set(id, resolve);
        send({ type: 'drain', id, deadlineMs });
      });
      return left;
    },
    close(deadlineMs = 10_000) {
      closing ??= (async () => {
        admission.refuseAll(logNotRunning());
        handOff();
        if (exited) return backlog();
        const left = new Promise<number>((resolve) => {
          closed = resolve;
        });
        send({ type: 'close', deadlineMs });
        const timer = setTimeout(() => void worker.terminate(), deadlineMs + CLOSE_GRACE_MS);
        const result = await left;
        clearTimeout(timer);
        await worker.terminate();
        // The thread logged the split itself (its log's close), or the exit above when it was stopped.
        if (leftAtClose.lost > 0) options.onLost?.(leftAtClose.lost);
        if (leftAtClose.unknown > 0) options.onUnknown?.(leftAtClose.unknown);
        return result;
      })();
      return closing.then(() => {});
    },
  };
}
