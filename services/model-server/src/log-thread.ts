import type { Logger } from '@driftline/core';
import type { PredictionEvent } from '@driftline/schemas';
import { awaitStarted, startWorker } from '@driftline/service/worker';
import { approxRecordBytes, createAdmission, logNotRunning } from './admission.js';
import type { FromLogThread, LogThreadData, LogThreadSendPolicy, ToLogThread } from './log-thread-protocol.js';
import { packPredictions, transferred } from './packed-predictions.js';
import type { PredictionLog } from './prediction-log.js';

export type { LogThreadData } from './log-thread-protocol.js';

export interface ThreadLogOptions extends LogThreadSendPolicy {
  /** Most records held (handed over and not yet acknowledged by Kafka); beyond it, requests wait. */
  readonly maxBuffered: number;
  /** Most bytes held (approxRecordBytes of those records); beyond it, requests wait. Unset: unbounded. */
  readonly maxBufferedBytes?: number;
  /** Most bytes (approxRecordBytes) of one request's records: above it, a 413. Unset: no cap. */
  readonly maxRequestBytes?: number;
  /** Longest wait for room before a request's records are refused (503); 0 refuses at once. */
  readonly maxWaitMs: number;
  /** Called with the backlog after every change (a gauge). */
  readonly onBacklog?: (records: number) => void;
  /** Called with the count of records lost: left by a close, or held when the thread exited. */
  readonly onLost?: (records: number) => void;
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
 * buffer refuses requests, readiness fails (`ready`) until the log takes records again. If the thread exits,
 * every later append is a 503, readiness and liveness fail (the service restarts), and the records it
 * held are lost (logged, counted).
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
  const backlog = () => handedOver + pending.length - acked;
  const report = () => options.onBacklog?.(backlog());
  const send = (message: ToLogThread) => worker.postMessage(message);
  const admission = createAdmission<PredictionEvent>({
    bound: { records: options.maxBuffered, bytes: options.maxBufferedBytes ?? Number.POSITIVE_INFINITY },
    maxWaitMs: options.maxWaitMs,
    backlog,
    bytesOf: approxRecordBytes,
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
      closed?.(message.left);
    }
  });
  worker.on('error', (error) => logger.error({ err: error }, 'prediction log thread failed'));
  worker.on('exit', () => {
    exited = true;
    const lost = backlog();
    if (lost > 0 && closed === undefined) {
      logger.error({ lost }, 'prediction log thread exited; its records are lost');
      options.onLost?.(lost);
    } else if (lost > 0 && !closedReported) {
      // Terminated at close past its deadline (a send that never settled): the thread logged nothing.
      logger.error({ lost }, 'prediction log thread did not close in time and was stopped; its records are lost');
    }
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
    append(events) {
      if (exited || closing !== undefined) return Promise.reject(logNotRunning());
      return admission.admit(events);
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
        // The thread logged the lost count itself (its log's close).
        if (result > 0) options.onLost?.(result);
        return result;
      })();
      return closing.then(() => {});
    },
  };
}
