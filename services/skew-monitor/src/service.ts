import { type ConsumerHandle, topicOffsets } from '@driftline/kafka';
import {
  checkRedisDatabase,
  corruptRowReporter,
  createRedisOnlineStore,
  watchFeaturesStateMarker,
  watchRedisServer,
} from '@driftline/online-store/redis';
import { contracts } from '@driftline/schemas';
import { defineService, type ServiceContext } from '@driftline/service';
import { featureSources } from '@driftline/skew';
import { type SkewConfig, skewEnvShape, toSkewConfig } from './config.js';
import { logEndOf } from './log-end.js';
import { skewProcessor } from './processor.js';
import { type ReleaseLoop, releaseIntervalMs, startReleaseLoop } from './release.js';

/** Row bytes one store read command answers at most (`readBytesPerCall`): a reply Redis builds in about a millisecond. */
const SKEW_READ_BYTES_PER_CALL = 1 << 20;

/** The skew-monitor service: predictions.v1 × the online store → skew_windows and TRAINING_SERVING_SKEW alerts. */
export const skewMonitorService = defineService({
  name: 'skew-monitor',
  description: 'Training-serving skew: sampled predictions compared with the online store as of their event time',
  needs: ['kafka', 'registry', 'clickhouse', 'redis'],
  envShape: skewEnvShape,
  configure: toSkewConfig,
  async start(ctx: ServiceContext, config: SkewConfig) {
    const warehouse = await ctx.warehouse();
    const sources = featureSources(config.views);
    if (sources.ambiguous.size > 0) {
      ctx.logger.warn(
        { features: [...sources.ambiguous].slice(0, 20) },
        'features declared by several views are not compared (which value a model saw is ambiguous)',
      );
    }
    const predictionsTopic = ctx.topic('prediction');
    const codec = ctx.codec().forTopic(contracts.prediction, predictionsTopic);
    const alerts = ctx.publisher(contracts.alert);
    // An incompatible schema fails start-up: at the first alert it failed every batch of the topic consumed.
    await alerts.prepare();
    // A database the server refuses (`/99` of 16) ends the process (exit 78) once Redis answers:
    // ioredis would go on in database 0. The start never waits for Redis.
    const database = checkRedisDatabase(config.redis, { onRefused: ctx.fatal, logger: ctx.logger });
    // Reads only, failing fast (online-read policy): an outage surfaces to the consumer loop, which
    // pauses the partition and retries without committing.
    const store = createRedisOnlineStore(config.redis, {
      use: 'online-read',
      keyPrefix: config.keyPrefix,
      readV1: config.readV1,
      name: 'driftline-skew-monitor',
      onConnectionError: (error) => ctx.logger.warn({ err: error.message }, 'redis connection error'),
      onCorruptRow: corruptRowReporter(ctx.logger),
      // A background reader: rows read in commands of at most 1 MiB each (lengths asked first), so
      // large rows cost round trips, not a reply past the read timeout that stalls Redis for every
      // client and wedges the partition (1,000 rows of 512 KB: one 512 MB MGET, retried for ever).
      readBytesPerCall: SKEW_READ_BYTES_PER_CALL,
    });
    // Redis emptied (an empty restart, FLUSHALL) or a key prefix other than the materializer's:
    // every comparison is counted missing_in_store while the monitor looks healthy. The
    // feature-api's gauge and warning (alert DriftlineOnlineStoreStateMissing), not readiness: a
    // fresh deployment has no marker until the materializer's first start. Not at rate 0 (no read).
    const marker =
      config.sampleRate > 0
        ? watchFeaturesStateMarker(store.client, {
            reader: 'skew-monitor',
            keyPrefix: config.keyPrefix,
            consequence:
              'every sampled prediction is counted missing_in_store, none compared: no skew is found or alerted',
            logger: ctx.logger,
            registry: ctx.registry,
          })
        : undefined;
    // A Redis Cluster (every batch read refused: CROSSSLOT, MOVED) or one older than 7.0: one line
    // naming DRIFTLINE_REDIS_URL once the database is accepted, and liveness fails, as the feature
    // API. Not at rate 0 either: the store is never read.
    const serverCheck =
      config.sampleRate > 0
        ? watchRedisServer({
            client: store.client,
            databaseAccepted: database.whenAccepted,
            logger: ctx.logger,
            consequence: 'Redis cannot serve the skew comparisons: /healthz fails',
          })
        : undefined;
    const processor = skewProcessor({
      store,
      skew: warehouse.skewWindows,
      sources,
      windowMs: config.windowMs,
      sampleRate: config.sampleRate,
      tolerance: config.tolerance,
      rule: config.rule,
      decode: (v) => codec.decode(v),
      publish: (batch) => alerts.publish(batch),
      eventTime: ctx.common.eventTime,
      logger: ctx.logger,
      registry: ctx.registry,
      recentIds: config.recentIds,
      // Only when rows read back look like another log's (a recreated topic): rare, an admin round trip.
      logEnd: async (topic, partition) => logEndOf(await topicOffsets(ctx.kafka(), topic), topic, partition),
    });
    let consumer: ConsumerHandle | undefined;
    // Alerts whose window end was beyond the event-time bound when their batch ran: raised from
    // skew_windows once it is within, by every instance that owns partitions of the topic (they
    // raise the same ids), whether or not predictions keep coming, and after a restart.
    const release: ReleaseLoop = startReleaseLoop({
      intervalMs: releaseIntervalMs(ctx.common.eventTime.maxFutureMs),
      ownedTopics: async () => {
        const owned = consumer === undefined ? [] : await consumer.positions();
        return [...new Set(owned.map((p) => p.topic))];
      },
      release: (topic) => processor.releaseDue(topic),
      logger: ctx.logger,
    });
    try {
      consumer = await ctx.consume({
        groupId: `${ctx.common.topicPrefix}${config.group}`,
        topics: [predictionsTopic],
        // A sweep at every partition assignment, at start-up too: no tick to wait for.
        processor: { ...processor, rebalanced: () => release.trigger() },
      });
      const started = consumer;
      ctx.logger.info(
        { topic: predictionsTopic, sampleRate: config.sampleRate, windowMs: config.windowMs, rule: config.rule },
        'skew-monitor consuming',
      );
      return {
        ready: () => database.accepted() && started.ready() && store.ready(),
        healthy: () => serverCheck?.supported() ?? true,
        async stop() {
          database.stop();
          marker?.stop();
          serverCheck?.stop();
          await release.stop();
          await started.stop();
          await store.close();
        },
      };
    } catch (error) {
      database.stop();
      marker?.stop();
      serverCheck?.stop();
      await release.stop();
      await store.close();
      throw error;
    }
  },
});
