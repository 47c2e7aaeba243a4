// Entry point of the feature API's worker thread (see thread.ts): its own event loop, heap and
// Redis connection, so nothing else the process runs (the materializer's batches and GC) can
// stall a read.
import { parentPort, workerData } from 'node:worker_threads';
import { parseFeatureViewsText } from '@driftline/features';
import { createMetricsRegistry } from '@driftline/observability';
import { corruptRowReporter, createRedisOnlineStore } from '@driftline/online-store/redis';
import { forwardingLogger } from '@driftline/service/worker';
import { startFeatureApi } from './api.js';
import type { FeatureApiThreadData, FromThread, ToThread } from './thread-protocol.js';

const port = parentPort!;
const data = workerData as FeatureApiThreadData;
const post = (message: FromThread) => port.postMessage(message);

const logger = forwardingLogger(post, { thread: 'feature-api' });
// No default labels: the main thread's registry adds its own when it exposes these metrics.
const registry = createMetricsRegistry({ service: 'feature-api', defaultMetrics: false });
registry.setDefaultLabels({});

try {
  const views = parseFeatureViewsText(data.viewsText);
  const store = createRedisOnlineStore(data.redis, {
    use: 'online-read',
    keyPrefix: data.keyPrefix,
    ...(data.readV1 === undefined ? {} : { readV1: data.readV1 }),
    name: 'driftline-feature-api',
    ...(data.redisPolicy === undefined ? {} : { policy: data.redisPolicy }),
    onConnectionError: (error) => logger.warn({ err: error.message }, 'redis connection error'),
    onCorruptRow: corruptRowReporter(logger),
  });
  for (const event of ['ready', 'close', 'end'] as const) {
    store.client.on(event, () => post({ type: 'ready', ready: store.ready() }));
  }
  // The bounds (limits, token, timeouts) pass through as they came; absent ones take the defaults.
  const {
    redis: _redis,
    keyPrefix: _prefix,
    readV1: _readV1,
    viewsText: _text,
    redisPolicy: _policy,
    ...bounds
  } = data;
  const server = await startFeatureApi({ ...bounds, store, views, registry, logger });
  port.on('message', (message: ToThread) => {
    if (message.type === 'metrics') {
      void registry.getMetricsAsJSON().then((metrics) => post({ type: 'metrics', id: message.id, metrics }));
    } else if (message.type === 'close') {
      void server
        .close()
        .then(() => store.close())
        .then(() => {
          post({ type: 'closed' });
          port.close();
        });
    }
  });
  post({ type: 'listening', port: server.port });
  post({ type: 'ready', ready: store.ready() });
} catch (error) {
  post({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
}
