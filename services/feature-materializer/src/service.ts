import {
  envField,
  type RedisConnectionConfig,
  SinkUnavailableError,
  toDriftlineError,
  toRedisConnectionConfig,
} from '@driftline/core';
import { type FeatureViews, freshnessSpecs, loadFeatureViews } from '@driftline/features';
import { adoptGroupOffsets, defaultBackoff, groupHasCommitted } from '@driftline/kafka';
import { onlineStoreEnvShape } from '@driftline/online-store';
import {
  checkRedisDatabase,
  checkRedisDurability,
  checkViewDefinitions,
  createRedisOnlineStore,
  featuresStateMarkerKey,
  ONLINE_FEATURES_STAKES,
  type StateMarker,
  watchRedisServer,
  watchStateMarker,
} from '@driftline/online-store/redis';
import type { FreshnessResult } from '@driftline/quality';
import { deadLetterTopic } from '@driftline/schemas';
import { defineService, type ServiceContext } from '@driftline/service';
import { chTime, type DataQualityRow, type Warehouse } from '@driftline/warehouse';
import { startFeatureMaterializer } from './materializer.js';

/** How soon a failed start-up check of the state marker is tried again. */
const MARKER_RETRY_MS = 5_000;

export const materializerEnvShape = {
  ...onlineStoreEnvShape,
  /** Consumer group of the materializer, after the topic prefix (every instance of one deployment shares it). */
  DRIFTLINE_MATERIALIZER_GROUP: envField.name().default('driftline-feature-materializer'),
  /** Partitions processed concurrently by one instance (each still strictly in order). */
  DRIFTLINE_MATERIALIZER_CONCURRENCY: envField.int(1, 64).default(6),
  DRIFTLINE_MATERIALIZER_MAX_BYTES_PER_PARTITION: envField.int(1_024, 64 * 1_048_576).default(1_048_576),
  /** Consumer session timeout: how long a dead instance holds its partitions before a rebalance. */
  DRIFTLINE_MATERIALIZER_SESSION_TIMEOUT_MS: envField.int(6_000, 300_000).default(30_000),
  /** Longest pause between retries of a batch while Redis fails (exponential from 100 ms). */
  DRIFTLINE_MATERIALIZER_BACKOFF_MAX_MS: envField.int(100, 600_000).default(10_000),
  /** Processing-time window of the views' freshness rows (data_quality_windows), when a view declares `freshness`. */
  DRIFTLINE_FRESHNESS_WINDOW: envField.duration(1_000).default(60_000),
};

export interface MaterializerConfig {
  readonly views: FeatureViews;
  readonly redis: RedisConnectionConfig;
  readonly keyPrefix: string;
  /** The group's name as configured: the consumer group is this after the topic prefix. */
  readonly groupId: string;
  readonly concurrency: number;
  readonly maxBytesPerPartition: number;
  readonly sessionTimeoutMs: number;
  readonly backoffMaxMs: number;
  readonly freshnessWindowMs: number;
}

/** The feature-materializer service: feature events from Kafka into the Redis online store. */
export const featureMaterializer = defineService({
  name: 'feature-materializer',
  description: 'Materializes feature events into Redis (event-time last-write-wins, window aggregates)',
  // ClickHouse only for freshness rows: opened (lazily) only when a view declares `freshness`.
  needs: ['kafka', 'registry', 'redis', 'clickhouse'],
  envShape: materializerEnvShape,
  configure(env): MaterializerConfig {
    return {
      // Parsed and validated now, at start-up: a bad file fails before anything connects.
      views: loadFeatureViews(env.DRIFTLINE_FEATURE_VIEWS),
      redis: toRedisConnectionConfig(env),
      keyPrefix: env.DRIFTLINE_FEATURE_KEY_PREFIX,
      groupId: env.DRIFTLINE_MATERIALIZER_GROUP,
      concurrency: env.DRIFTLINE_MATERIALIZER_CONCURRENCY,
      maxBytesPerPartition: env.DRIFTLINE_MATERIALIZER_MAX_BYTES_PER_PARTITION,
      sessionTimeoutMs: env.DRIFTLINE_MATERIALIZER_SESSION_TIMEOUT_MS,
      backoffMaxMs: env.DRIFTLINE_MATERIALIZER_BACKOFF_MAX_MS,
      freshnessWindowMs: env.DRIFTLINE_FRESHNESS_WINDOW,
    };
  },
  async start(ctx, config) {
    const prefix = ctx.common.topicPrefix;
    // Prefixed like every service's: two deployments on one cluster (other prefixes) shared one
    // group, and kafkajs gave each member partitions of the other's topics, which it dropped unread.
    const groupId = `${prefix}${config.groupId}`;
    // Its consumer is started below, not through ctx.consume: its fetch is checked against the heap here.
    ctx.checkFetch({
      groupId,
      maxBytesPerPartition: config.maxBytesPerPartition,
      fetchBytesField: 'DRIFTLINE_MATERIALIZER_MAX_BYTES_PER_PARTITION',
    });
    // Views may read from other topics than the contract's default one: create every source (and its DLQ).
    await ctx.ensureTopics(
      config.views.sources.flatMap((s) => [
        { topic: `${prefix}${s}`, partitions: ctx.common.topicPartitions },
        { topic: deadLetterTopic(`${prefix}${s}`), partitions: 1 },
      ]),
    );
    const sources = config.views.sources.map((s) => `${prefix}${s}`);
    // Upgrading from the unprefixed name: resume where that group stopped, not from the beginning.
    await adoptGroupOffsets(ctx.kafka(), { from: config.groupId, to: groupId, topics: sources, logger: ctx.logger });
    // A database the server refuses (`/99` of 16) ends the process (exit 78) once Redis answers:
    // ioredis would go on in database 0. The start never waits for Redis.
    const database = checkRedisDatabase(config.redis, { onRefused: ctx.fatal, logger: ctx.logger });
    const store = createRedisOnlineStore(config.redis, {
      use: 'online-write',
      keyPrefix: config.keyPrefix,
      name: 'driftline-feature-materializer',
      onConnectionError: (error) => ctx.logger.warn({ err: error.message }, 'redis connection error'),
    });
    // Offsets are committed once Redis holds the features: what it evicts or loses on a crash is not
    // replayed. Checked when Redis first answers, without holding the start (a Redis outage is
    // backed off by the consumer loop); a weaker setting is a warning line.
    // A server the write script cannot run on (older than 7.0: PXAT; a cluster) fails liveness with
    // one error line naming DRIFTLINE_REDIS_URL: every write failed, held one record a minute.
    const server = watchRedisServer({
      client: store.client,
      databaseAccepted: database.whenAccepted,
      logger: ctx.logger,
      consequence: 'Redis cannot run the feature write script: /healthz fails',
    });
    let stopped = false;
    const whenRedisReady = (check: () => void) => {
      if (store.client.status === 'ready') check();
      else store.client.once('ready', check);
    };
    const checkDurability = () => {
      void checkRedisDurability(store.client, ctx.logger, ONLINE_FEATURES_STAKES);
    };
    // Redis losing the features (an empty restart, a failover, eviction) is reported, not silent.
    let marker: StateMarker | undefined;
    const watchMarker = () => {
      watchStateMarker(store.client, {
        key: featuresStateMarkerKey(config.keyPrefix),
        store: 'features',
        consumedBefore: () => groupHasCommitted(ctx.kafka(), groupId, sources),
        stateExists: () => store.holdsRows(),
        recovery:
          'online features were lost: a row comes back with its entity\'s next event, a windowed aggregate is wrong until its longest window has passed; replay this group from Kafka to repair (README, "What the backends must be")',
        logger: ctx.logger,
        registry: ctx.registry,
      }).then(
        (watch) => {
          if (stopped) watch.stop();
          else marker = watch;
        },
        (error: unknown) => {
          // Decided again until it can be: meanwhile no feature is written (see the store below).
          ctx.logger.warn(
            { err: toDriftlineError(error).message },
            'could not check the online store state marker; retrying',
          );
          if (!stopped) setTimeout(watchMarker, MARKER_RETRY_MS).unref();
        },
      );
    };
    // Aggregates redefined since the rows were written are served wrong until a replay or their
    // history has passed: reported at every start meanwhile (an error line per view, a gauge),
    // never a refused start — a rolling deploy would crash-loop.
    const checkDefinitions = () => {
      void checkViewDefinitions(store.client, {
        keyPrefix: config.keyPrefix,
        views: config.views,
        logger: ctx.logger,
        registry: ctx.registry,
      }).catch((error: unknown) => {
        ctx.logger.warn(
          { err: toDriftlineError(error).message },
          "could not check the views' aggregate definitions; retrying",
        );
        if (!stopped) setTimeout(() => whenRedisReady(checkDefinitions), MARKER_RETRY_MS).unref();
      });
    };
    // Once the database is accepted: the marker, which every write waits for, never in database 0.
    void database.whenAccepted.then(() => {
      if (stopped) return;
      whenRedisReady(checkDurability);
      whenRedisReady(watchMarker);
      whenRedisReady(checkDefinitions);
    });
    const specs = freshnessSpecs(config.views);
    try {
      const warehouse = specs.length > 0 ? await freshnessWarehouse(ctx) : undefined;
      const handle = await startFeatureMaterializer({
        kafka: ctx.kafka(),
        producer: await ctx.producer(),
        codec: ctx.codec(),
        // Never features written without the marker: a loss since the last check is reported first.
        store: {
          write: async (writes) => {
            // Before the start-up decision (Redis not answering yet, or the look-up failing), a
            // write is an outage: written first, its rows would be taken for an older version's.
            if (marker === undefined) throw new SinkUnavailableError('online store state marker not checked yet');
            await marker.check();
            return store.write(writes);
          },
          read: (view, entity, features) => store.read(view, entity, features),
          readBatch: (requests) => store.readBatch(requests),
          ready: () => store.ready(),
          close: () => store.close(),
        },
        views: config.views,
        eventTime: ctx.common.eventTime,
        logger: ctx.logger,
        registry: ctx.registry,
        groupId,
        topicPrefix: prefix,
        partitionsConsumedConcurrently: config.concurrency,
        maxBytesPerPartition: config.maxBytesPerPartition,
        sessionTimeoutMs: config.sessionTimeoutMs,
        stallTimeoutMs: ctx.common.stallTimeoutMs,
        backoff: { ...defaultBackoff, maxMs: config.backoffMaxMs },
        ...(warehouse === undefined
          ? {}
          : {
              freshness: {
                specs,
                windowMs: config.freshnessWindowMs,
                sink: async (results) => (await warehouse()).dataQuality.insert(results.map(freshnessRow)),
              },
            }),
      });
      ctx.logger.info(
        { topics: handle.topics, views: config.views.views.map((v) => v.name), group: groupId },
        'feature materializer consuming',
      );
      return {
        // Not ready while its database is unchecked: it writes nothing before (its marker waits).
        ready: () => handle.ready() && database.accepted(),
        healthy: () => server.supported() && handle.healthy(),
        async stop() {
          stopped = true;
          server.stop();
          database.stop();
          marker?.stop();
          await handle.stop();
          await store.close();
        },
      };
    } catch (error) {
      stopped = true;
      server.stop();
      database.stop();
      marker?.stop();
      await store.close();
      throw error;
    }
  },
});

/**
 * ClickHouse holds only the freshness rows here: an outage of it at start-up must not keep features
 * from being materialized (the online store would go stale with it). A retriable failure is one
 * warning line and the rows wait for it (each window opens it again until it answers); a
 * configuration error (credentials, a database it refuses) still fails the start.
 */
async function freshnessWarehouse(ctx: ServiceContext): Promise<() => Promise<Warehouse>> {
  try {
    await ctx.warehouse();
  } catch (thrown) {
    const error = toDriftlineError(thrown);
    if (!error.retriable) throw error;
    ctx.logger.warn(
      { err: error.message },
      'ClickHouse unavailable at start-up: materializing goes on, freshness rows wait for it',
    );
  }
  return () => ctx.warehouse();
}

/** A freshness result as a data_quality_windows row (model and version empty: views serve every model). */
function freshnessRow(r: FreshnessResult): DataQualityRow {
  return {
    model: '',
    version: '',
    feature: r.view,
    expectation: 'freshness',
    scope: r.scope,
    window_start: chTime(r.windowStart),
    window_end: chTime(r.windowEnd),
    observed: r.lagMs,
    bound: r.maxLagMs,
    passed: r.passed ? 1 : 0,
    count: r.events,
    events: r.events,
    // lower_bound: the lag counts from assigned_at (no newer event seen by this owner yet).
    detail: JSON.stringify({
      newest_event_time: r.newestEventTime,
      assigned_at: r.assignedAt,
      lower_bound: r.lowerBound,
    }),
    expectations_id: '',
    computed_at: chTime(r.windowEnd),
  };
}
