import { readFileSync } from 'node:fs';
import { envField, type RedisConnectionConfig, toRedisConnectionConfig } from '@driftline/core';
import { type FeatureViews, loadFeatureViews } from '@driftline/features';
import { MAX_READ_BATCH, onlineReadEnvShape, onlineStoreEnvShape } from '@driftline/online-store';
import type { RedisClient } from '@driftline/online-store/redis';
import { defineService } from '@driftline/service';
import { maxConnectionsField, serverTimeoutsEnvShape, serverTimeoutsFromEnv } from '@driftline/service/http';
import { z } from 'zod';
import { type ServerTimeouts, startFeatureApi } from './api.js';
import { DEFAULT_LIMITS, type RequestLimits } from './http.js';
import { startFeatureApiThread } from './thread.js';

export const featureApiEnvShape = {
  ...onlineStoreEnvShape,
  ...onlineReadEnvShape,
  /** Port of the feature API (0 picks a free one). */
  DRIFTLINE_FEATURE_API_PORT: envField.int(0, 65_535).default(8080),
  DRIFTLINE_FEATURE_API_HOST: envField.name().default('127.0.0.1'),
  /** Most entities one batch request may ask for, over all its views. */
  // Capped at what the store reads in one batch: beyond it a request the API allows was refused
  // with the store's limit in its message.
  DRIFTLINE_FEATURE_API_MAX_BATCH: envField.int(1, MAX_READ_BATCH).default(DEFAULT_LIMITS.maxBatchEntities),
  /** Largest request body in bytes (413 above). */
  DRIFTLINE_FEATURE_API_MAX_BODY_BYTES: envField.int(1_024, 64 * 1_048_576).default(DEFAULT_LIMITS.maxBodyBytes),
  /** Most feature names one read may select (repeats are refused). */
  DRIFTLINE_FEATURE_API_MAX_FEATURES: envField.int(1, 10_000).default(DEFAULT_LIMITS.maxFeatures),
  /** When set, /v1 routes need `Authorization: Bearer <token>`; at least 16 characters. */
  DRIFTLINE_FEATURE_API_TOKEN: envField.name().pipe(z.string().min(16, 'must be at least 16 characters')).optional(),
  ...serverTimeoutsEnvShape('DRIFTLINE_FEATURE_API'),
  /** Connections held at once (8 to 65,535); at the cap a new one closes the longest-idle one. */
  DRIFTLINE_FEATURE_API_MAX_CONNECTIONS: maxConnectionsField(),
  /**
   * `worker`: the HTTP server and its Redis reads run on a worker thread (own event loop and heap),
   * so services co-hosted in the process (the materializer) cannot stall reads; `main`: on the
   * main thread (one thread less, for a process that runs the feature API alone).
   */
  DRIFTLINE_FEATURE_API_THREAD: z.enum(['worker', 'main']).default('worker'),
};

export interface FeatureApiConfig {
  readonly views: FeatureViews;
  /** The view file (the worker thread parses it again). */
  readonly viewsPath: string;
  readonly thread: 'worker' | 'main';
  readonly redis: RedisConnectionConfig;
  readonly keyPrefix: string;
  readonly readV1: boolean;
  /** The store's bound on its reads in flight (DRIFTLINE_FEATURE_READ_IN_FLIGHT_ENTITIES, _BYTES). */
  readonly readsInFlight: { readonly maxReadEntitiesInFlight: number; readonly maxReadBytesInFlight: number };
  readonly port: number;
  readonly host: string;
  readonly limits: RequestLimits;
  readonly timeouts: ServerTimeouts;
  readonly maxConnections: number;
  readonly token?: string;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
const LISTEN_VARIABLES = { port: 'DRIFTLINE_FEATURE_API_PORT', host: 'DRIFTLINE_FEATURE_API_HOST' };

/** The feature-api service: online features from Redis over HTTP, single and batch. */
export const featureApi = defineService({
  name: 'feature-api',
  description: 'Serves online features from Redis over HTTP (single and batch reads)',
  needs: ['redis'],
  envShape: featureApiEnvShape,
  configure(env): FeatureApiConfig {
    const timeouts = serverTimeoutsFromEnv('DRIFTLINE_FEATURE_API', env);
    return {
      views: loadFeatureViews(env.DRIFTLINE_FEATURE_VIEWS),
      viewsPath: env.DRIFTLINE_FEATURE_VIEWS,
      thread: env.DRIFTLINE_FEATURE_API_THREAD,
      redis: toRedisConnectionConfig(env),
      keyPrefix: env.DRIFTLINE_FEATURE_KEY_PREFIX,
      readV1: env.DRIFTLINE_FEATURE_READ_V1,
      readsInFlight: {
        maxReadEntitiesInFlight: env.DRIFTLINE_FEATURE_READ_IN_FLIGHT_ENTITIES,
        maxReadBytesInFlight: env.DRIFTLINE_FEATURE_READ_IN_FLIGHT_BYTES,
      },
      port: env.DRIFTLINE_FEATURE_API_PORT,
      host: env.DRIFTLINE_FEATURE_API_HOST,
      limits: {
        maxBatchEntities: env.DRIFTLINE_FEATURE_API_MAX_BATCH,
        maxBodyBytes: env.DRIFTLINE_FEATURE_API_MAX_BODY_BYTES,
        maxFeatures: env.DRIFTLINE_FEATURE_API_MAX_FEATURES,
      },
      timeouts,
      maxConnections: env.DRIFTLINE_FEATURE_API_MAX_CONNECTIONS,
      ...(env.DRIFTLINE_FEATURE_API_TOKEN === undefined ? {} : { token: env.DRIFTLINE_FEATURE_API_TOKEN }),
    };
  },
  async start(ctx, config) {
    if (config.token === undefined && !LOOPBACK.has(config.host)) {
      ctx.logger.warn(
        { host: config.host },
        'feature API listens beyond loopback without DRIFTLINE_FEATURE_API_TOKEN: anyone who reaches it can read every feature',
      );
    }
    const bounds = {
      ...config.limits,
      ...config.timeouts,
      maxConnections: config.maxConnections,
      ...(config.token === undefined ? {} : { token: config.token }),
    };
    // Loaded here, not at module load: importing this package (unit tests) never loads ioredis.
    const {
      checkRedisDatabase,
      corruptRowReporter,
      createRedisClient,
      createRedisOnlineStore,
      watchFeaturesStateMarker,
      watchRedisServer,
    } = await import('@driftline/online-store/redis');
    // Redis emptied, or a key prefix other than the materializer's: every read answers "not found"
    // while the API looks healthy. A gauge and a warning, not readiness: a fresh deployment has no
    // marker until the materializer's first start (see the README).
    const watchMarker = (client: RedisClient) =>
      watchFeaturesStateMarker(client, {
        reader: 'feature-api',
        keyPrefix: config.keyPrefix,
        consequence: 'every read answers {"found":false}',
        logger: ctx.logger,
        registry: ctx.registry,
      });
    // A database the server refuses (`/99` of 16) ends the process (exit 78) once Redis answers, in
    // the thread's mode too: ioredis would go on in database 0. The start never waits for Redis (503
    // while it is down); not ready before the database is accepted.
    const database = checkRedisDatabase(config.redis, { onRefused: ctx.fatal, logger: ctx.logger });
    const watchServer = (client: RedisClient) =>
      // A Redis Cluster (every batch read answered 500, CROSSSLOT/MOVED, with /healthz 200) or one
      // older than 7.0: one line naming DRIFTLINE_REDIS_URL, liveness fails.
      watchRedisServer({
        client,
        databaseAccepted: database.whenAccepted,
        logger: ctx.logger,
        consequence: 'Redis cannot serve the feature reads: /healthz fails',
      });
    if (config.thread === 'worker') {
      // The thread's connection serves reads; the main thread checks the marker and the server on its own.
      const markerClient = createRedisClient(config.redis, 'online-read', { name: 'driftline-feature-api-marker' });
      markerClient.on('error', () => {}); // the thread's connection reports Redis errors
      const marker = watchMarker(markerClient);
      const serverCheck = watchServer(markerClient);
      const stopMarker = () => {
        marker.stop();
        serverCheck.stop();
        markerClient.disconnect();
      };
      const server = await startFeatureApiThread({
        redis: config.redis,
        keyPrefix: config.keyPrefix,
        readV1: config.readV1,
        ...config.readsInFlight,
        viewsText: readFileSync(config.viewsPath, 'utf8'),
        port: config.port,
        host: config.host,
        listenVariables: LISTEN_VARIABLES,
        ...bounds,
        registry: ctx.registry,
        logger: ctx.logger,
      }).catch((error: unknown) => {
        database.stop();
        stopMarker();
        throw error;
      });
      ctx.logger.info({ port: server.port, host: config.host, thread: 'worker' }, 'feature API listening');
      return {
        port: server.port,
        ready: () => database.accepted() && server.ready(),
        healthy: () => server.healthy() && serverCheck.supported(),
        stop: () => {
          database.stop();
          stopMarker();
          return server.close();
        },
      };
    }
    const store = createRedisOnlineStore(config.redis, {
      use: 'online-read',
      keyPrefix: config.keyPrefix,
      readV1: config.readV1,
      ...config.readsInFlight,
      name: 'driftline-feature-api',
      onConnectionError: (error) => ctx.logger.warn({ err: error.message }, 'redis connection error'),
      onCorruptRow: corruptRowReporter(ctx.logger),
    });
    const marker = watchMarker(store.client);
    const serverCheck = watchServer(store.client);
    try {
      const server = await startFeatureApi({
        store,
        views: config.views,
        registry: ctx.registry,
        logger: ctx.logger,
        port: config.port,
        host: config.host,
        listenVariables: LISTEN_VARIABLES,
        ...bounds,
      });
      ctx.logger.info({ port: server.port, host: config.host }, 'feature API listening');
      return {
        port: server.port,
        ready: () => database.accepted() && store.ready(),
        healthy: serverCheck.supported,
        async stop() {
          database.stop();
          marker.stop();
          serverCheck.stop();
          await server.close();
          await store.close();
        },
      };
    } catch (error) {
      database.stop();
      marker.stop();
      serverCheck.stop();
      await store.close();
      throw error;
    }
  },
});
