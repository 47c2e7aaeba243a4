import { once } from 'node:events';
import type { Worker } from 'node:worker_threads';
import type { Logger } from '@driftline/core';
import type { Registry } from '@driftline/observability';
import { awaitStarted, startWorker } from '@driftline/service/worker';
import type { FeatureApiServer } from './api.js';
import type { FeatureApiThreadData, FromThread, ThreadMetrics, ToThread } from './thread-protocol.js';

export type { FeatureApiThreadData } from './thread-protocol.js';

export interface FeatureApiThreadOptions extends FeatureApiThreadData {
  /** The process' registry: the thread's metrics are exposed through it. */
  readonly registry: Registry;
  readonly logger: Logger;
  /** Called with the thread's Worker once started (tests end it as a crash would). */
  readonly onWorker?: (worker: Worker) => void;
}

export interface FeatureApiThread extends FeatureApiServer {
  /** The thread's Redis connection is ready. */
  ready(): boolean;
  /** False once the thread exited without being closed (out of memory, a crash): nothing serves. */
  healthy(): boolean;
}

/** Names of the metrics the handler creates (handler.ts); proxied into the main registry. */
const THREAD_METRICS = ['driftline_feature_api_request_seconds', 'driftline_feature_api_rows_total'] as const;

/**
 * The feature API on a worker thread of its own: HTTP server, request handling and its Redis
 * read connection run on their own event loop and heap, so a co-hosted materializer's batch work
 * and garbage collection cannot delay a read (the cause of the tail measured in bench/features).
 * Logs go to `logger`; the metrics appear in `registry` (fetched from the thread at each scrape).
 */
export async function startFeatureApiThread(options: FeatureApiThreadOptions): Promise<FeatureApiThread> {
  const { registry, logger, onWorker, ...data } = options;
  const worker = startWorker(import.meta.url, 'thread-worker', data);
  let ready = false;
  let nextId = 0;
  const pending = new Map<number, (metrics: ThreadMetrics) => void>();
  const send = (message: ToThread) => worker.postMessage(message);
  worker.on('message', (message: FromThread) => {
    if (message.type === 'ready') ready = message.ready;
    else if (message.type === 'log') logger[message.level](message.obj, message.msg);
    else if (message.type === 'metrics') {
      pending.get(message.id)?.(message.metrics);
      pending.delete(message.id);
    }
  });
  worker.on('error', (error) => logger.error({ err: error }, 'feature API thread failed'));
  let exited = false;
  let closeAsked = false;
  worker.on('exit', (code) => {
    exited = true;
    ready = false;
    for (const resolve of pending.values()) resolve([]);
    pending.clear();
    if (!closeAsked) logger.error({ code }, 'feature API thread exited: nothing serves; liveness fails');
  });

  const started = await awaitStarted<FromThread, 'listening'>(worker, 'listening', 'feature API thread');
  onWorker?.(worker);

  // An exited thread answers nothing: its metrics are empty, not a scrape that never returns.
  const threadMetrics = () =>
    new Promise<ThreadMetrics>((resolve) => {
      if (exited) return resolve([]);
      const id = nextId++;
      pending.set(id, resolve);
      send({ type: 'metrics', id });
    });
  for (const name of THREAD_METRICS) registry.registerMetric(proxyMetric(name, threadMetrics) as never);

  let closing: Promise<void> | undefined;
  return {
    port: started.port,
    ready: () => ready,
    healthy: () => !exited || closeAsked,
    close() {
      closing ??= (async () => {
        closeAsked = true;
        if (!exited) {
          const exit = once(worker, 'exit');
          send({ type: 'close' });
          // The thread closes its server and connection, then its port; terminate if it hangs.
          const timer = setTimeout(() => void worker.terminate(), 5_000);
          await exit;
          clearTimeout(timer);
        }
        for (const name of THREAD_METRICS) registry.removeSingleMetric(name);
      })();
      return closing;
    },
  };
}

/** A registry entry whose values are the thread's metric of that name (prom-client reads name and get()). */
function proxyMetric(name: string, fetch: () => Promise<ThreadMetrics>) {
  return {
    name,
    async get() {
      const found = (await fetch()).find((m) => m.name === name);
      return found ?? { name, help: name, type: 'untyped', values: [], aggregator: 'sum' };
    },
    reset() {},
  };
}
