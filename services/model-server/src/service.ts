import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ConfigError,
  envField,
  MAX_TIMER_MS,
  type RedisConnectionConfig,
  toRedisConnectionConfig,
} from '@driftline/core';
import { type FeatureViews, loadFeatureViews } from '@driftline/features';
import type { ConsumerHandle } from '@driftline/kafka';
import { type OnlineStore, onlineReadEnvShape, onlineStoreEnvShape } from '@driftline/online-store';
import type { CanarySpec } from '@driftline/policy';
import { contracts, deadLetterTopic, type ModelEvent } from '@driftline/schemas';
import { defineService } from '@driftline/service';
import {
  maxConnectionsField,
  type ServerTimeouts,
  serverTimeoutsEnvShape,
  serverTimeoutsFromEnv,
} from '@driftline/service/http';
import { z } from 'zod';
import { LOAD_TIMEOUT_MS, MIN_LOAD_TIMEOUT_MS, threadedArtifactLoader } from './load-thread.js';
import { modelsFollower } from './models-follower.js';
import { predictionDeadLetters } from './prediction-log.js';
import { DEFAULT_PREDICT_LIMITS, type PredictLimits } from './request.js';
import { DEFAULT_LOG_BOUNDS, type PredictionLogBounds, startModelServer, THREAD_LOG_BATCH } from './server.js';
import { parseCanaries, parseShadows } from './specs.js';
import { createStageApplier } from './stage-retry.js';

export const modelServerEnvShape = {
  ...onlineStoreEnvShape,
  ...onlineReadEnvShape,
  /** Port of the model server (0 picks a free one). */
  DRIFTLINE_MODEL_SERVER_PORT: envField.int(0, 65_535).default(8081),
  DRIFTLINE_MODEL_SERVER_HOST: envField.name().default('127.0.0.1'),
  /** The trainer's artifact directory: versions are read from <dir>/<model>/<version>/{model,meta}.json. */
  DRIFTLINE_MODEL_SERVER_ARTIFACT_DIR: envField.name().default('.driftline/models'),
  /** Operator override of the staged canaries: `model=version@share,...` (share in (0, 1], sticky per entity). */
  DRIFTLINE_MODEL_SERVER_CANARY: envField.string().default(''),
  /** Operator shadows, added to the staged ones: `model=version,...` (scored and logged on every request, never answered). */
  DRIFTLINE_MODEL_SERVER_SHADOW: envField.string().default(''),
  /** Most instances per batch request. */
  DRIFTLINE_MODEL_SERVER_MAX_BATCH: envField.int(1, 10_000).default(DEFAULT_PREDICT_LIMITS.maxBatch),
  /** Largest request body in bytes (413 above). */
  DRIFTLINE_MODEL_SERVER_MAX_BODY_BYTES: envField
    .int(1_024, 64 * 1_048_576)
    .default(DEFAULT_PREDICT_LIMITS.maxBodyBytes),
  /** Most feature values one instance may pass. */
  DRIFTLINE_MODEL_SERVER_MAX_FEATURES: envField.int(1, 10_000).default(DEFAULT_PREDICT_LIMITS.maxFeatures),
  /** Most prediction records held before Kafka acknowledged them; beyond, requests wait for room. */
  DRIFTLINE_MODEL_SERVER_LOG_BUFFER: envField.int(100, 10_000_000).default(DEFAULT_LOG_BOUNDS.maxBuffered),
  /** Most bytes of prediction records held before Kafka acknowledged them (approximate: UTF-8 string bytes plus a cost per field). */
  DRIFTLINE_MODEL_SERVER_LOG_BUFFER_BYTES: envField
    .int(1_048_576, 64 * 1_073_741_824)
    .default(DEFAULT_LOG_BOUNDS.maxBufferedBytes),
  /** Most UTF-8 bytes of string feature values one request may log (its records of every version); above, a 413. */
  DRIFTLINE_MODEL_SERVER_MAX_REQUEST_LOG_BYTES: envField
    .int(1_048_576, 64 * 1_073_741_824)
    .default(DEFAULT_LOG_BOUNDS.maxRequestBytes),
  /** Longest a request waits for room in a full prediction log before its 503 (0: refuse at once). */
  DRIFTLINE_MODEL_SERVER_LOG_WAIT: envField.duration(0, MAX_TIMER_MS).default(DEFAULT_LOG_BOUNDS.maxWaitMs),
  /** Longest a prediction record waits before it is sent to predictions.v1. */
  DRIFTLINE_MODEL_SERVER_LOG_FLUSH: envField.duration(1, MAX_TIMER_MS).default(DEFAULT_LOG_BOUNDS.flushIntervalMs),
  /** Encode and send prediction records on a worker thread of their own (off: on the serving thread). */
  DRIFTLINE_MODEL_SERVER_LOG_THREAD: envField.bool().default(true),
  /** When set, /v1 routes need `Authorization: Bearer <token>`; at least 16 characters. */
  DRIFTLINE_MODEL_SERVER_TOKEN: envField.name().pipe(z.string().min(16, 'must be at least 16 characters')).optional(),
  ...serverTimeoutsEnvShape('DRIFTLINE_MODEL_SERVER'),
  /** Connections held at once (8 to 65,535); at the cap a new one closes the longest-idle one. */
  DRIFTLINE_MODEL_SERVER_MAX_CONNECTIONS: maxConnectionsField(),
  /**
   * Longest one model version's load may take on the load thread before it is abandoned and
   * retried (at least {@link MIN_LOAD_TIMEOUT_MS}): raise it for huge models on a slow or busy
   * machine, whose loads would otherwise be abandoned and retried for ever.
   */
  DRIFTLINE_MODEL_SERVER_LOAD_TIMEOUT: envField.duration(MIN_LOAD_TIMEOUT_MS, MAX_TIMER_MS).default(LOAD_TIMEOUT_MS),
};

export interface ModelServerConfig {
  readonly views: FeatureViews;
  readonly redis: RedisConnectionConfig;
  readonly keyPrefix: string;
  readonly readV1: boolean;
  /** The store's bound on its reads in flight (DRIFTLINE_FEATURE_READ_IN_FLIGHT_ENTITIES, _BYTES). */
  readonly readsInFlight: { readonly maxReadEntitiesInFlight: number; readonly maxReadBytesInFlight: number };
  readonly port: number;
  readonly host: string;
  readonly artifactDir: string;
  readonly canaries: ReadonlyMap<string, CanarySpec>;
  readonly shadows: ReadonlyMap<string, readonly string[]>;
  readonly limits: PredictLimits;
  readonly logBounds: PredictionLogBounds;
  readonly logThread: boolean;
  readonly timeouts: ServerTimeouts;
  readonly maxConnections: number;
  /** Longest one version's load may take (DRIFTLINE_MODEL_SERVER_LOAD_TIMEOUT). */
  readonly loadTimeoutMs: number;
  readonly token?: string;
}

/**
 * `store` with `onRead` called at each read. It passes every argument on: it dropped `readBatch`'s
 * options, so the request's bound on the rows read (`maxRowBytes`) never reached the store.
 */
export function countingReads(store: OnlineStore, onRead: () => void): OnlineStore {
  return {
    write: (writes) => store.write(writes),
    read: (view, entity, features) => {
      onRead();
      return store.read(view, entity, features);
    },
    readBatch: (requests, options) => {
      onRead();
      return store.readBatch(requests, options);
    },
    ready: () => store.ready(),
    close: () => store.close(),
  };
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
/** How often a start-up replay of models.v1 not read to its end yet is reported (it is waited for). */
const REPLAY_WAIT_MS = 60_000;
/** How often the replay's positions are read (each read opens an admin connection). */
const REPLAY_POLL_MS = 500;
/**
 * Longest a stop waits for the models.v1 follower to leave its group, counted from the stop's start
 * (it stops alongside the HTTP and log drains). Its group is ephemeral and holds no offsets: a
 * follower that cannot leave (Kafka hung or down) loses nothing, and the broker forgets it.
 */
const FOLLOWER_STOP_MS = 10_000;

/** Resolves true once `work` settles, false after `ms` if it has not (it runs on, unawaited). */
async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    work.then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]);
  clearTimeout(timer);
  return outcome;
}

/** The model-server service: scores models as models.v1 stages them, on online features; logs every prediction. */
export const modelServer = defineService({
  name: 'model-server',
  description:
    'Scores the models on online features over HTTP as models.v1 stages them (production, canary, shadows); logs predictions',
  needs: ['kafka', 'registry', 'redis'],
  envShape: modelServerEnvShape,
  configure(env): ModelServerConfig {
    const timeouts = serverTimeoutsFromEnv('DRIFTLINE_MODEL_SERVER', env);
    if (env.DRIFTLINE_MODEL_SERVER_LOG_WAIT >= env.DRIFTLINE_MODEL_SERVER_REQUEST_TIMEOUT) {
      throw new ConfigError(
        'DRIFTLINE_MODEL_SERVER_LOG_WAIT',
        `must be shorter than DRIFTLINE_MODEL_SERVER_REQUEST_TIMEOUT (${env.DRIFTLINE_MODEL_SERVER_REQUEST_TIMEOUT} ms): a request would time out before its 503`,
      );
    }
    const canaries = parseCanaries(env.DRIFTLINE_MODEL_SERVER_CANARY);
    const shadows = parseShadows(env.DRIFTLINE_MODEL_SERVER_SHADOW);
    for (const [model, c] of canaries) {
      if (shadows.get(model)?.includes(c.version)) {
        throw new ConfigError(
          'DRIFTLINE_MODEL_SERVER_SHADOW',
          `${model}=${c.version} is the canary of ${model} already`,
        );
      }
    }
    return {
      views: loadFeatureViews(env.DRIFTLINE_FEATURE_VIEWS),
      redis: toRedisConnectionConfig(env),
      keyPrefix: env.DRIFTLINE_FEATURE_KEY_PREFIX,
      readV1: env.DRIFTLINE_FEATURE_READ_V1,
      readsInFlight: {
        maxReadEntitiesInFlight: env.DRIFTLINE_FEATURE_READ_IN_FLIGHT_ENTITIES,
        maxReadBytesInFlight: env.DRIFTLINE_FEATURE_READ_IN_FLIGHT_BYTES,
      },
      port: env.DRIFTLINE_MODEL_SERVER_PORT,
      host: env.DRIFTLINE_MODEL_SERVER_HOST,
      artifactDir: resolve(env.DRIFTLINE_MODEL_SERVER_ARTIFACT_DIR),
      canaries,
      shadows,
      limits: {
        maxBatch: env.DRIFTLINE_MODEL_SERVER_MAX_BATCH,
        maxBodyBytes: env.DRIFTLINE_MODEL_SERVER_MAX_BODY_BYTES,
        maxFeatures: env.DRIFTLINE_MODEL_SERVER_MAX_FEATURES,
      },
      logBounds: {
        maxBuffered: env.DRIFTLINE_MODEL_SERVER_LOG_BUFFER,
        maxBufferedBytes: env.DRIFTLINE_MODEL_SERVER_LOG_BUFFER_BYTES,
        maxRequestBytes: env.DRIFTLINE_MODEL_SERVER_MAX_REQUEST_LOG_BYTES,
        maxWaitMs: env.DRIFTLINE_MODEL_SERVER_LOG_WAIT,
        flushIntervalMs: env.DRIFTLINE_MODEL_SERVER_LOG_FLUSH,
        // A send to the log thread costs a round trip whatever its size: larger batches keep its
        // throughput above what the serving thread can produce.
        maxBatch: Math.min(
          env.DRIFTLINE_MODEL_SERVER_LOG_THREAD ? THREAD_LOG_BATCH : DEFAULT_LOG_BOUNDS.maxBatch,
          env.DRIFTLINE_MODEL_SERVER_LOG_BUFFER,
        ),
      },
      logThread: env.DRIFTLINE_MODEL_SERVER_LOG_THREAD,
      timeouts,
      maxConnections: env.DRIFTLINE_MODEL_SERVER_MAX_CONNECTIONS,
      loadTimeoutMs: env.DRIFTLINE_MODEL_SERVER_LOAD_TIMEOUT,
      ...(env.DRIFTLINE_MODEL_SERVER_TOKEN === undefined ? {} : { token: env.DRIFTLINE_MODEL_SERVER_TOKEN }),
    };
  },
  async start(ctx, config) {
    if (config.token === undefined && !LOOPBACK.has(config.host)) {
      ctx.logger.warn(
        { host: config.host },
        'model server listens beyond loopback without DRIFTLINE_MODEL_SERVER_TOKEN: anyone who reaches it can score',
      );
    }
    const predictions = ctx.publisher(contracts.prediction);
    // Topic and schema now: a registry refusal fails start-up, not the first prediction. The
    // dead-letter topic too: records Kafka refuses as they are go there (see prediction-log.ts).
    await predictions.prepare();
    await ctx.ensureTopics([{ topic: deadLetterTopic(predictions.topic), partitions: 1 }]);
    const modelCodec = ctx.codec().forTopic(contracts.model, ctx.topic('model'));
    // Loaded here, not at module load: importing this package never loads ioredis.
    const { checkRedisDatabase, createRedisOnlineStore, watchFeaturesStateMarker, watchRedisServer } = await import(
      '@driftline/online-store/redis'
    );
    // A database the server refuses (`/99` of 16) ends the process (exit 78) once Redis answers:
    // ioredis would go on in database 0. The start never waits for Redis (requests carrying every
    // feature never need it).
    const database = checkRedisDatabase(config.redis, { onRefused: ctx.fatal, logger: ctx.logger });
    // No onCorruptRow: a damaged row fails the request as a server fault (500), never "no features"
    // (a client error) nor a score without them.
    const store = createRedisOnlineStore(config.redis, {
      use: 'online-read',
      keyPrefix: config.keyPrefix,
      readV1: config.readV1,
      ...config.readsInFlight,
      name: 'driftline-model-server',
      onConnectionError: (error) => ctx.logger.warn({ err: error.message }, 'redis connection error'),
    });
    // Redis emptied or a key prefix other than the materializer's: every read finds nothing while
    // the instance looks healthy. A gauge and a warning, not readiness (see the README). Only while
    // requests read the store: one whose requests carry every feature needs no materializer, and
    // its missing marker was a critical alert for ever.
    let storeReads = 0;
    const countedStore = countingReads(store, () => storeReads++);
    const marker = watchFeaturesStateMarker(store.client, {
      reader: 'model-server',
      keyPrefix: config.keyPrefix,
      consequence:
        'a request that passes no features answers 422 "no features", one that passes some is scored with the others missing',
      logger: ctx.logger,
      registry: ctx.registry,
      storeReads: () => storeReads,
    });
    // A Redis Cluster (a read of keys on another node: MOVED; several slots in one call: CROSSSLOT)
    // or one older than 7.0: one line naming DRIFTLINE_REDIS_URL once the database is accepted, as
    // the feature API. Liveness fails only once a request has read the store: an instance whose
    // requests carry every feature needs no Redis, and a restart loop would stop answering them.
    const serverCheck = watchRedisServer({
      client: store.client,
      databaseAccepted: database.whenAccepted,
      logger: ctx.logger,
      consequence:
        "Redis cannot serve the feature reads: the runner's /healthz and /readyz (DRIFTLINE_HTTP_PORT) fail once a request reads the store (requests carrying every feature are answered)",
    });
    const redisUsable = () => serverCheck.supported() || storeReads === 0;
    let follower: ConsumerHandle | undefined;
    // Ready once the start-up replay of models.v1 is read to its end and applied (every model
    // reduced once, its versions loaded or being retried); after that, serving does not depend on
    // the follower. Ready on joining, an instance answered 404 "unknown model" to every request
    // until the replay was applied, and a replay longer than one fetch was swapped batch by batch
    // (an older production served meanwhile, and the "previous production" watched was the wrong
    // one). A broker restart makes the follower rejoin, and the broker waits out its old member's
    // session (30 s): readiness stays, the plan stays as it is meanwhile.
    let replayed = false;
    let stopped = false;
    let stopStages = () => {};
    const followerReady = () => replayed;
    let server: Awaited<ReturnType<typeof startModelServer>> | undefined;
    const loader = threadedArtifactLoader(config.artifactDir, { loadTimeoutMs: config.loadTimeoutMs });
    try {
      server = await startModelServer({
        store: countedStore,
        views: config.views,
        load: loader.load,
        log: config.logThread
          ? { thread: { ...ctx.connections(), topic: predictions.topic } }
          : {
              publish: (events) => predictions.publish(events),
              deadLetter: async (rejected) => predictionDeadLetters(await ctx.producer(), predictions.topic)(rejected),
            },
        registry: ctx.registry,
        logger: ctx.logger,
        canaries: config.canaries,
        shadows: config.shadows,
        logBounds: config.logBounds,
        port: config.port,
        host: config.host,
        listenVariables: { port: 'DRIFTLINE_MODEL_SERVER_PORT', host: 'DRIFTLINE_MODEL_SERVER_HOST' },
        ...config.limits,
        ...config.timeouts,
        maxConnections: config.maxConnections,
        ...(config.token === undefined ? {} : { token: config.token }),
        ready: () => followerReady(),
        eventTime: ctx.common.eventTime,
      });
      const table = server.table;
      const stages = createStageApplier({
        apply: (model, events, replayed, from) => table.apply(model, events, replayed, from),
        stagesOf: (model) => table.stagesOf(model),
        givenUp: (model) => table.givenUp(model),
        unserved: (model) => table.unservedProduction(model),
        follows: (model) => table.follows(model),
        forget: (model) => void table.forget(model),
        logger: ctx.logger,
        registry: ctx.registry,
        eventTime: ctx.common.eventTime,
      });
      stopStages = () => stages.stop();
      // The start-up replay is folded as it is read (bounded per model), applied once read to its end.
      const stageEvents = modelsFollower((model, events, replay) => stages.apply(model, events, replay), {
        admit: (model, events) => stages.admit(model, events),
        ignored: (model, e, reason) =>
          ctx.logger.warn({ model, version: e.version, kind: e.kind, reason }, 'models.v1 event ignored'),
      });
      // Stages: every instance reads all of models.v1 on every start (the events of a model, in
      // order, reduce to what it serves) through a group of its own that stores no offsets and is
      // deleted on stop (forgotten by the broker once empty after a crash): restarts leave no groups
      // behind. models.v1 is keyed by model, so a model's events come in order in one partition.
      follower = await ctx.consume<ModelEvent>({
        groupId: `driftline-model-server-models-${randomUUID().slice(0, 8)}`,
        topics: [ctx.topic('model')],
        fromBeginning: true,
        ephemeral: true,
        processor: {
          decode: (r) => modelCodec.decode(r.value),
          process: (items, context) => stageEvents.process(items, context),
          // models.v1 deleted and created again: its offsets start over (a new log, not replays).
          logRestarted: (_topic, partition) => stageEvents.logRestarted(partition),
        },
      });
      // In the background: loading a replay's artifacts may outlast the start-up timeout.
      const reader = follower;
      void (async () => {
        // Not ready until read to its end, however long that takes: ready with a part of it, the
        // instance answered 404 "unknown model" (a client error, not retried) for models it had
        // not read yet. A warning a minute says what it waits for.
        for (let warnAt = Date.now() + REPLAY_WAIT_MS; !stopped; await sleep(REPLAY_POLL_MS)) {
          const positions = await reader.positions().catch(() => []);
          if (positions.length > 0 && positions.every((p) => p.caughtUp)) break;
          if (Date.now() >= warnAt) {
            warnAt = Date.now() + REPLAY_WAIT_MS;
            ctx.logger.warn(
              { partitions: positions.length, caughtUp: positions.filter((p) => p.caughtUp).length },
              'models.v1 not read to its end yet: not ready, predict answers 503',
            );
          }
        }
        if (stopped) return;
        const models = await stageEvents.finishReplay();
        replayed = !stopped;
        if (replayed) ctx.logger.info({ models }, 'models.v1 replay applied: ready');
      })();
    } catch (error) {
      stopped = true;
      database.stop();
      marker.stop();
      serverCheck.stop();
      await server?.close();
      await loader.close();
      await store.close();
      throw error;
    }
    const running = server;
    const handle = follower;
    ctx.logger.info({ port: running.port, host: config.host }, 'model server listening');
    return {
      port: running.port,
      // Not ready while stopping, nor while the prediction log refuses requests for lack of room
      // (Kafka down or hung): a load balancer would keep sending what can only be refused.
      ready: () => !stopped && database.accepted() && store.ready() && followerReady() && running.log.ready(),
      // A log whose thread exited refuses every request for good: liveness fails, the process is
      // restarted. So does a Redis driftline does not support, once requests read the store.
      healthy: () => running.log.alive() && redisUsable(),
      async stop() {
        const stopStarted = Date.now();
        stopped = true;
        database.stop();
        marker.stop();
        serverCheck.stop();
        stopStages();
        // The follower leaves its group alongside, never ahead of the drains: with Kafka hung its
        // stop took minutes, and the HTTP and log drains only began after it.
        const followerStopped = handle.stop();
        // Stops listening and lets requests in flight finish (<= 10 s), then drains the prediction
        // log (<= 10 s) and ends its thread.
        await running.close();
        const left = Math.max(0, FOLLOWER_STOP_MS - (Date.now() - stopStarted));
        if (!(await settlesWithin(followerStopped, left))) {
          ctx.logger.warn(
            { waitedMs: FOLLOWER_STOP_MS },
            'models.v1 follower did not leave its group in time: stopping without it (its group is ephemeral, nothing is lost)',
          );
        }
        await loader.close();
        await store.close();
      },
    };
  },
});
