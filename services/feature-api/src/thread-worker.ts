// Entry point of the feature API's worker thread (see thread.ts): its own event loop, heap and
// Redis connection, so nothing else the process runs (the materializer's batches and GC) can
// stall a read.
import { parentPort, workerData } from 'node:worker_threads';
import { parseFeatureViewsText } from '@driftline/features';
import { createMetricsRegistry } from '@driftline/observability';
import { corruptRowReporter, createRedisOnlineStore } from '@driftline/online-store/redis';
import { forwardingLogger, startFailure } from '@driftline/service/worker';
import { startFeatureApi } from './api.js';
import type { FeatureApiThreadData, FromThread, ToThread } from './thread-protocol.js';

/** How often the thread reports its store's readiness to the main thread when no event did. */
const READY_POLL_MS = 1_000;

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
    ...(data.maxReadEntitiesInFlight === undefined ? {} : { maxReadEntitiesInFlight: data.maxReadEntitiesInFlight }),
    ...(data.maxReadBytesInFlight === undefined ? {} : { maxReadBytesInFlight: data.maxReadBytesInFlight }),
    name: 'driftline-feature-api',
    ...(data.redisPolicy === undefined ? {} : { policy: data.redisPolicy }),
    onConnectionError: (error) => logger.warn({ err: error.message }, 'redis connection error'),
    onCorruptRow: corruptRowReporter(logger),
  });
  // Readiness also changes with no client event (a connection whose commands time out stays
  // `ready` for the client: see StallWatch), and asking drives the stall watch's probe: polled.
  let postedReady: boolean | undefined;
  const postReady = () => {
    const ready = store.ready();
    if (ready === postedReady) return;
    postedReady = ready;
    post({ type: 'ready', ready });
  };
  for (const event of ['ready', 'close', 'end'] as const) store.client.on(event, postReady);
  // The bounds (limits, token, timeouts) pass through as they came; absent ones take the defaults.
  const {
    redis: _redis,
    keyPrefix: _prefix,
    readV1: _readV1,
    maxReadEntitiesInFlight: _entities,
    maxReadBytesInFlight: _bytes,
    viewsText: _text,
    redisPolicy: _policy,
    ...bounds
  } = data;
  const server = await startFeatureApi({ ...bounds, store, views, registry, logger });
  const readyPoll = setInterval(postReady, READY_POLL_MS);
  port.on('message', (message: ToThread) => {
    if (message.type === 'metrics') {
      void registry.getMetricsAsJSON().then((metrics) => post({ type: 'metrics', id: message.id, metrics }));
    } else if (message.type === 'close') {
      clearInterval(readyPoll);
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
  postedReady = undefined;
  postReady();
} catch (error) {
  post(startFailure(error));
}
