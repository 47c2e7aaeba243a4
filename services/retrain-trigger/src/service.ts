import type { ConsumerHandle } from '@driftline/kafka';
import { servesProduction } from '@driftline/policy';
import { contracts } from '@driftline/schemas';
import { defineService, type ServiceContext } from '@driftline/service';
import { type RetrainTriggerConfig, retrainTriggerEnvShape, toRetrainTriggerConfig } from './config.js';
import { triggerProcessor } from './processor.js';

export const retrainTriggerService = defineService({
  name: 'retrain-trigger',
  description: 'Alerts → retrain requests through a per-model policy (signals, sustain, cooldown, dedupe)',
  needs: ['kafka', 'registry', 'clickhouse'],
  envShape: retrainTriggerEnvShape,
  configure: toRetrainTriggerConfig,
  async start(ctx: ServiceContext, config: RetrainTriggerConfig) {
    const warehouse = await ctx.warehouse();
    const alertCodec = ctx.codec().forTopic(contracts.alert, ctx.topic('alert'));
    const retrain = ctx.publisher(contracts.retrain);
    await retrain.prepare(); // an incompatible schema fails start-up, not the first request
    ctx.logger.info(
      { policy: config.policySource, models: Object.keys(config.policy.models) },
      'retrain policy loaded',
    );
    const consumer: ConsumerHandle = await ctx.consume({
      groupId: `${ctx.common.topicPrefix}${config.group}`,
      topics: [ctx.topic('alert')],
      fromBeginning: true,
      processor: triggerProcessor({
        policy: config.policy,
        store: warehouse.decisions,
        decode: (r) => alertCodec.decode(r.value),
        eventTime: ctx.common.eventTime,
        logger: ctx.logger,
        registry: ctx.registry,
        send: (requests) => retrain.publish(requests),
        isServing: async (model, version) => servesProduction(await warehouse.transitions.history(model), version),
      }),
    });
    return { ready: () => consumer.ready(), stop: () => consumer.stop() };
  },
});
