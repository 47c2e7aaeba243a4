import { envField } from '@driftline/core';
import { type FeatureViews, loadFeatureViews, onlineStoreEnvShape, toRedisConnectionConfig } from '@driftline/features';
import { defineService } from '@driftline/service';
import { createReaderRedis, startFeatureApi } from './api.js';

export const featureApiEnvShape = {
  ...onlineStoreEnvShape,
  /** Port of the feature API (0 picks a free one). */
  DRIFTLINE_FEATURE_API_PORT: envField.int(0, 65_535).default(8080),
  DRIFTLINE_FEATURE_API_HOST: envField.string().default('127.0.0.1'),
  /** Most entities one batch request may ask for, over all its views. */
  DRIFTLINE_FEATURE_API_MAX_BATCH: envField.int(1, 100_000).default(1_000),
};

export interface FeatureApiConfig {
  readonly views: FeatureViews;
  readonly redis: ReturnType<typeof toRedisConnectionConfig>;
  readonly keyPrefix: string;
  readonly port: number;
  readonly host: string;
  readonly maxBatch: number;
}

/** The feature-api service: online features from Redis over HTTP, single and batch. */
export const featureApi = defineService({
  name: 'feature-api',
  description: 'Serves online features from Redis over HTTP (single and batch reads)',
  envShape: featureApiEnvShape,
  configure(env): FeatureApiConfig {
    return {
      views: loadFeatureViews(env.DRIFTLINE_FEATURE_VIEWS),
      redis: toRedisConnectionConfig(env),
      keyPrefix: env.DRIFTLINE_FEATURE_KEY_PREFIX,
      port: env.DRIFTLINE_FEATURE_API_PORT,
      host: env.DRIFTLINE_FEATURE_API_HOST,
      maxBatch: env.DRIFTLINE_FEATURE_API_MAX_BATCH,
    };
  },
  async start(ctx, config) {
    const redis = createReaderRedis(config.redis);
    redis.on('error', (error: Error) => ctx.logger.warn({ err: error.message }, 'redis connection error'));
    try {
      const server = await startFeatureApi({
        redis,
        views: config.views,
        keyPrefix: config.keyPrefix,
        registry: ctx.registry,
        logger: ctx.logger,
        port: config.port,
        host: config.host,
        maxBatchEntities: config.maxBatch,
      });
      ctx.logger.info({ port: server.port, host: config.host }, 'feature API listening');
      return {
        port: server.port,
        ready: () => redis.status === 'ready',
        async stop() {
          await server.close();
          redis.disconnect();
        },
      };
    } catch (error) {
      redis.disconnect();
      throw error;
    }
  },
});
