import { envField, type RedisConnectionConfig, toRedisConnectionConfig } from '@driftline/core';
import { type FeatureViews, loadFeatureViews } from '@driftline/features';
import { defaultBackoff } from '@driftline/kafka';
import { onlineStoreEnvShape } from '@driftline/online-store';
import { createRedisOnlineStore } from '@driftline/online-store/redis';
import { deadLetterTopic } from '@driftline/schemas';
import { defineService } from '@driftline/service';
import { z } from 'zod';
import { startFeatureMaterializer } from './materializer.js';

export const materializerEnvShape = {
  ...onlineStoreEnvShape,
  /** Consumer group of the materializer (every instance of one deployment shares it). */
  DRIFTLINE_MATERIALIZER_GROUP: z.string().min(1).default('driftline-feature-materializer'),
  /** Partitions processed concurrently by one instance (each still strictly in order). */
  DRIFTLINE_MATERIALIZER_CONCURRENCY: envField.int(1, 64).default(6),
  DRIFTLINE_MATERIALIZER_MAX_BYTES_PER_PARTITION: envField.int(1_024, 64 * 1_048_576).default(1_048_576),
  /** Consumer session timeout: how long a dead instance holds its partitions before a rebalance. */
  DRIFTLINE_MATERIALIZER_SESSION_TIMEOUT_MS: envField.int(6_000, 300_000).default(30_000),
  /** Longest pause between retries of a batch while Redis fails (exponential from 100 ms). */
  DRIFTLINE_MATERIALIZER_BACKOFF_MAX_MS: envField.int(100, 600_000).default(10_000),
};

export interface MaterializerConfig {
  readonly views: FeatureViews;
  readonly redis: RedisConnectionConfig;
  readonly keyPrefix: string;
  readonly groupId: string;
  readonly concurrency: number;
  readonly maxBytesPerPartition: number;
  readonly sessionTimeoutMs: number;
  readonly backoffMaxMs: number;
}

/** The feature-materializer service: feature events from Kafka into the Redis online store. */
export const featureMaterializer = defineService({
  name: 'feature-materializer',
  description: 'Materializes feature events into Redis (event-time last-write-wins, window aggregates)',
  needs: ['kafka', 'registry', 'redis'],
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
    };
  },
  async start(ctx, config) {
    const prefix = ctx.common.topicPrefix;
    // Views may read from other topics than the contract's default one: create every source (and its DLQ).
    await ctx.ensureTopics(
      config.views.sources.flatMap((s) => [
        { topic: `${prefix}${s}`, partitions: ctx.common.topicPartitions },
        { topic: deadLetterTopic(`${prefix}${s}`), partitions: 1 },
      ]),
    );
    const store = createRedisOnlineStore(config.redis, {
      use: 'online-write',
      keyPrefix: config.keyPrefix,
      name: 'driftline-feature-materializer',
      onConnectionError: (error) => ctx.logger.warn({ err: error.message }, 'redis connection error'),
    });
    try {
      const handle = await startFeatureMaterializer({
        kafka: ctx.kafka(),
        producer: await ctx.producer(),
        codec: ctx.codec(),
        store,
        views: config.views,
        eventTime: ctx.common.eventTime,
        logger: ctx.logger,
        registry: ctx.registry,
        groupId: config.groupId,
        topicPrefix: prefix,
        partitionsConsumedConcurrently: config.concurrency,
        maxBytesPerPartition: config.maxBytesPerPartition,
        sessionTimeoutMs: config.sessionTimeoutMs,
        backoff: { ...defaultBackoff, maxMs: config.backoffMaxMs },
      });
      ctx.logger.info(
        { topics: handle.topics, views: config.views.views.map((v) => v.name), group: config.groupId },
        'feature materializer consuming',
      );
      return {
        ready: handle.ready,
        async stop() {
          await handle.stop();
          await store.close();
        },
      };
    } catch (error) {
      await store.close();
      throw error;
    }
  },
});
