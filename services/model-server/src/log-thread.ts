import { DriftlineError, type Logger } from '@driftline/core';
import type { PredictionEvent } from '@driftline/schemas';
import { awaitStarted, startWorker } from '@driftline/service/worker';
import type { FromLogThread, LogThreadData, ToLogThread } from './log-thread-protocol.js';

export type { LogThreadData } from './log-thread-protocol.js';

export interface LogThread {
  /** Sends one batch to predictions.v1 on the thread; resolves once Kafka acknowledged it. */
  publish(events: readonly PredictionEvent[]): Promise<void>;
  /** Disconnects the thread's producer and ends the thread (after the log has drained). */
  close(): Promise<void>;
}

/**
 * The prediction log's sends on a worker thread of their own: the Avro encoding and the Kafka
 * producer's work (record batches, partitioner, CRC, socket writes) were about a third of the
 * serving thread's CPU in bench/model-server, and a send of a full batch delayed the requests
 * queued behind it. The bounded queue and its flush policy stay on the serving thread
 * (prediction-log.ts); a failed send comes back as a DriftlineError with the thread's code, so the
 * log retries it exactly as before. The thread's log records go to `logger`.
 */
export async function startLogThread(data: LogThreadData, logger: Logger): Promise<LogThread> {
  const worker = startWorker(import.meta.url, 'log-worker', data);
  let nextId = 0;
  const pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  let exited = false;
  const send = (message: ToLogThread) => worker.postMessage(message);
  worker.on('message', (message: FromLogThread) => {
    if (message.type === 'log') logger[message.level](message.obj, message.msg);
    else if (message.type === 'sent') {
      pending.get(message.id)?.resolve();
      pending.delete(message.id);
    } else if (message.type === 'error') {
      pending
        .get(message.id)
        ?.reject(new DriftlineError(message.code, message.message, { retriable: message.retriable }));
      pending.delete(message.id);
    }
  });
  worker.on('error', (error) => logger.error({ err: error }, 'prediction log thread failed'));
  worker.on('exit', () => {
    exited = true;
    for (const p of pending.values()) p.reject(new DriftlineError('INTERNAL', 'prediction log thread exited'));
    pending.clear();
  });

  await awaitStarted<FromLogThread, 'ready'>(worker, 'ready', 'prediction log thread');

  let closing: Promise<void> | undefined;
  return {
    publish(events) {
      if (exited) return Promise.reject(new DriftlineError('INTERNAL', 'prediction log thread exited'));
      return new Promise<void>((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        send({ type: 'send', id, events });
      });
    },
    close() {
      closing ??= (async () => {
        if (exited) return;
        const closed = new Promise<void>((resolve) => {
          worker.on('message', (m: FromLogThread) => {
            if (m.type === 'closed') resolve();
          });
          worker.once('exit', () => resolve());
        });
        send({ type: 'close' });
        const timer = setTimeout(() => void worker.terminate(), 10_000);
        await closed;
        clearTimeout(timer);
        await worker.terminate();
      })();
      return closing;
    },
  };
}
