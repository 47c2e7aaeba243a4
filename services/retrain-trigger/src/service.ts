import { type ConsumerHandle, startConsumer } from '@driftline/kafka';
import { contracts } from '@driftline/schemas';
import { defineService, type ServiceContext } from '@driftline/service';
import { type RetrainTriggerConfig, retrainTriggerEnvShape, toRetrainTriggerConfig } from './config.js';
import { triggerProcessor } from './processor.js';
import { ClickHouseDecisionStore } from './store.js';

export const retrainTriggerService = defineService({
  name: 'retrain-trigger',
  description: 'Alerts → retrain requests through a per-model policy (signals, sustain, cooldown, dedupe)',
  envShape: retrainTriggerEnvShape,
  configure: toRetrainTriggerConfig,
  async start(ctx: ServiceContext, config: RetrainTriggerConfig) {
    const ch = await ctx.clickhouse();
    const alertCodec = ctx.codec.forTopic(contracts.alert, ctx.topic('alert'));
    const retrainTopic = ctx.topic('retrain');
    const retrainCodec = ctx.codec.forTopic(contracts.retrain, retrainTopic);
    await retrainCodec.register();
    ctx.logger.info(
      { policy: config.policySource, models: Object.keys(config.policy.models) },
      'retrain policy loaded',
    );
    const consumer: ConsumerHandle = await startConsumer({
      kafka: ctx.kafka,
      groupId: `${ctx.common.topicPrefix}${config.group}`,
      topics: [ctx.topic('alert')],
      producer: ctx.producer,
      logger: ctx.logger,
      registry: ctx.registry,
      fromBeginning: true,
      processor: triggerProcessor({
        policy: config.policy,
        store: new ClickHouseDecisionStore(ch),
        decode: (r) => alertCodec.decode(r.value),
        logger: ctx.logger,
        registry: ctx.registry,
        async send(requests) {
          const messages = [];
          for (const r of requests)
            messages.push({ key: contracts.retrain.key(r), value: await retrainCodec.encode(r) });
          await ctx.producer.send(retrainTopic, messages);
        },
      }),
    });
    return { ready: () => consumer.ready(), stop: () => consumer.stop() };
  },
});
