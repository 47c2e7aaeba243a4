import { once } from 'node:events';
import type { Worker } from 'node:worker_threads';
import type { Logger } from '@driftline/core';
import { connectionsShedCounter, type Registry } from '@driftline/observability';
import { awaitStarted, startWorker } from '@driftline/service/worker';
import type { FeatureApiServer } from './api.js';
import type { FeatureApiThreadData, FromThread, ThreadMetrics, ToThread } from './thread-protocol.js';

export type { FeatureApiThreadData } from './thread-protocol.js';

export interface FeatureApiThreadOptions extends FeatureApiThreadData {
  /** The process' registry: the thread's metrics are exposed through it. */
  readonly registry: Registry;
  readonly logger: Logger;
  /** Called with the thread's Worker before its start is awaited (tests end it as a crash would, or await its exit). */
  readonly onWorker?: (worker: Worker) => void;
  /** Default {@link THREAD_METRICS_TIMEOUT_MS}. */
  readonly metricsTimeoutMs?: number;
  /** Default {@link THREAD_HEARTBEAT_MS}. */
  readonly heartbeatMs?: number;
  /** Default {@link THREAD_STALE_AFTER_MS}. */
  readonly staleAfterMs?: number;
}

export interface FeatureApiThread extends FeatureApiServer {
  /** The thread's Redis connection is ready. */
  ready(): boolean;
  /**
   * False once the thread exited without being closed (out of memory, a crash), or while it has
   * left a heartbeat unanswered for `staleAfterMs` (its event loop wedged): nothing serves.
   */
  healthy(): boolean;
}

/** How long a scrape waits for the thread's metrics; after it, the scrape goes on without them. */
export const THREAD_METRICS_TIMEOUT_MS = 2_000;
/** How often the thread is asked for a heartbeat (a metrics request: its answer needs the thread's event loop). */
export const THREAD_HEARTBEAT_MS = 5_000;
/**
 * A heartbeat unanswered this long fails liveness: 30 s is six heartbeats, beyond any pause of a
 * healthy thread (a full GC of its small heap, a burst of requests) and well within the minutes a
 * wedged API would otherwise go unnoticed while /healthz said 200.
 */
export const THREAD_STALE_AFTER_MS = 30_000;

/** Names of the metrics the handler (handler.ts) and its listener create; proxied into the main registry. */
const THREAD_METRICS = [
  'driftline_feature_api_request_seconds',
  'driftline_feature_api_rows_total',
  'driftline_feature_api_store_overloaded_total',
  'driftline_http_connections_shed_total',
] as const;

/**
 * The feature API on a worker thread of its own: HTTP server, request handling and its Redis
 * read connection run on their own event loop and heap, so a co-hosted materializer's batch work
 * and garbage collection cannot delay a read (the cause of the tail measured in bench/features).
 * Logs go to `logger`; the metrics appear in `registry` (fetched from the thread at each scrape).
 */
export async function startFeatureApiThread(options: FeatureApiThreadOptions): Promise<FeatureApiThread> {
  const { registry, logger, onWorker, metricsTimeoutMs, heartbeatMs, staleAfterMs, ...data } = options;
  const metricsTimeout = metricsTimeoutMs ?? THREAD_METRICS_TIMEOUT_MS;
  const staleAfter = staleAfterMs ?? THREAD_STALE_AFTER_MS;
  const worker = startWorker(import.meta.url, 'thread-worker', data);
  let ready = false;
  let nextId = 0;
  const pending = new Map<number, (metrics: ThreadMetrics) => void>();
  const send = (message: ToThread) => worker.postMessage(message);
  /** The oldest heartbeat not answered yet: its id and when it was sent. */
  let awaiting: { id: number; since: number } | undefined;
  let stale = false;
  // Set once started (an exit before then, a failed start, has none to clear).
  let heartbeat: NodeJS.Timeout | undefined;
  worker.on('message', (message: FromThread) => {
    if (message.type === 'ready') ready = message.ready;
    else if (message.type === 'failed') closeAsked = true;
    else if (message.type === 'log') logger[message.level](message.obj, message.msg);
    else if (message.type === 'metrics') {
      pending.get(message.id)?.(message.metrics);
      pending.delete(message.id);
      // An answer to a request sent at or after the oldest heartbeat awaited: the thread's loop ran since.
      if (awaiting !== undefined && message.id >= awaiting.id) {
        awaiting = undefined;
        if (stale) logger.info({}, 'feature API thread answers again');
        stale = false;
      }
    }
  });
  worker.on('error', (error) => logger.error({ err: error }, 'feature API thread failed'));
  let exited = false;
  // Asked to close, or terminated after a failed start (reported once, by the error awaitStarted throws).
  let closeAsked = false;
  worker.on('exit', (code) => {
    exited = true;
    ready = false;
    clearInterval(heartbeat);
    for (const resolve of pending.values()) resolve([]);
    pending.clear();
    if (!closeAsked) logger.error({ code }, 'feature API thread exited: nothing serves; liveness fails');
  });

  onWorker?.(worker);
  const started = await awaitStarted<FromThread, 'listening'>(worker, 'listening', 'feature API thread');

  // An exited or wedged thread answers nothing: after the deadline its metrics are empty (and
  // the request forgotten), not a scrape that never returns while requests pile up.
  const request = () =>
    new Promise<ThreadMetrics>((resolve) => {
      if (exited) return resolve([]);
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        resolve([]);
      }, metricsTimeout);
      timer.unref();
      pending.set(id, (metrics) => {
        clearTimeout(timer);
        resolve(metrics);
      });
      send({ type: 'metrics', id });
    });
  // One request in flight, shared by the proxied metrics of a scrape (and by concurrent scrapes).
  let inFlight: Promise<ThreadMetrics> | undefined;
  const threadMetrics = () => {
    inFlight ??= request().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };
  // The process's own listeners count shed connections under the name the thread's listener
  // uses: that metric is made here first (a real counter, whoever asks for it later gets it: a
  // proxy in its place was handed to the model server's listener, whose first shed threw), and
  // the thread's values are served beside its own by wrapping its `get`, undone at close.
  // Registering a proxy over it had failed the start (found by a fresh-clone run).
  connectionsShedCounter(registry);
  const restores: Array<() => void> = [];
  for (const name of THREAD_METRICS) {
    const existing = registry.getSingleMetric(name) as unknown as LocalMetric | undefined;
    if (existing === undefined) {
      registry.registerMetric(proxyMetric(name, threadMetrics) as never);
      restores.push(() => registry.removeSingleMetric(name));
      continue;
    }
    const own = existing.get.bind(existing);
    existing.get = proxyMetric(name, threadMetrics, { get: own }).get as LocalMetric['get'];
    restores.push(() => {
      existing.get = own;
    });
  }

  // The heartbeat: a metrics request whose answer is ignored. A thread whose event loop is
  // wedged (a synchronous loop, a deadlock in native code) kept `exited` false, so liveness said
  // 200 while nothing was served. Sent at every beat, unanswered ones included (one small message
  // per beat queues up at most): any answer to one clears the oldest still awaited.
  heartbeat = setInterval(() => {
    if (exited || closeAsked) return;
    const now = Date.now();
    const id = nextId++;
    awaiting ??= { id, since: now };
    send({ type: 'metrics', id });
    if (!stale && now - awaiting.since >= staleAfter) {
      stale = true;
      logger.error(
        { unansweredMs: now - awaiting.since, staleAfterMs: staleAfter },
        'feature API thread does not answer its heartbeat: wedged; liveness fails',
      );
    }
  }, heartbeatMs ?? THREAD_HEARTBEAT_MS);
  heartbeat.unref();
  const wedged = () => awaiting !== undefined && Date.now() - awaiting.since >= staleAfter;

  let closing: Promise<void> | undefined;
  return {
    port: started.port,
    ready: () => ready,
    healthy: () => closeAsked || (!exited && !wedged()),
    close() {
      closing ??= (async () => {
        closeAsked = true;
        clearInterval(heartbeat);
        if (!exited) {
          const exit = once(worker, 'exit');
          send({ type: 'close' });
          // The thread closes its server and connection, then its port; terminate if it hangs.
          const timer = setTimeout(() => void worker.terminate(), 5_000);
          await exit;
          clearTimeout(timer);
        }
        for (const restore of restores) restore();
      })();
      return closing;
    },
  };
}

/** What the proxy needs of a metric this process registered itself under a thread metric's name. */
interface LocalMetric {
  get: () => Promise<ThreadMetrics[number]> | ThreadMetrics[number];
}

/**
 * A registry entry whose values are the thread's metric of that name (prom-client reads name and
 * get()), and those of `local`, this process's own metric of that name, when there is one.
 */
function proxyMetric(name: string, fetch: () => Promise<ThreadMetrics>, local?: LocalMetric) {
  return {
    name,
    async get() {
      const [found, own] = await Promise.all([
        fetch().then((metrics) => metrics.find((m) => m.name === name)),
        local?.get(),
      ]);
      const shape = found ?? own ?? { name, help: name, type: 'untyped', values: [], aggregator: 'sum' };
      return { ...shape, values: [...(own?.values ?? []), ...(found?.values ?? [])] };
    },
    reset() {},
  };
}
