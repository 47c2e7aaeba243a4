import type { ReferenceSet } from '@driftline/drift';
import { ClickHouseReferenceStore } from '@driftline/drift-monitor';
import { type ConsumerHandle, startConsumer } from '@driftline/kafka';
import { counter } from '@driftline/observability';
import { contracts, type ModelEvent, type RetrainRequest } from '@driftline/schemas';
import { defineService, type ServiceContext } from '@driftline/service';
import { type TrainerConfig, toTrainerConfig, trainerEnvShape } from './config.js';
import { ClickHouseModelRegistry, LabeledPredictionsSource } from './stores.js';
import { handleRequest, type TrainerDeps } from './trainer.js';
import { ensureWorkerPython } from './worker.js';

export const trainerService = defineService({
  name: 'trainer',
  description: 'Retrain requests → dataset (Arrow) → XGBoost worker (GPU when present) → evaluate, register, promote',
  envShape: trainerEnvShape,
  configure: toTrainerConfig,
  async start(ctx: ServiceContext, config: TrainerConfig) {
    // Set the worker's Python environment up first (once per machine; reused afterwards).
    const python = await ensureWorkerPython(ctx.logger, config.python);
    const ch = await ctx.clickhouse();
    const references = new ClickHouseReferenceStore(ch);
    const retrainCodec = ctx.codec.forTopic(contracts.retrain, ctx.topic('retrain'));
    const modelTopic = ctx.topic('model');
    const modelCodec = ctx.codec.forTopic(contracts.model, modelTopic);
    await modelCodec.register();
    const outcomes = counter(ctx.registry, 'driftline_trainer_requests_total', 'Retrain requests handled, by outcome', [
      'model',
      'outcome',
    ]);
    const deps: TrainerDeps = {
      config,
      python,
      source: new LabeledPredictionsSource(ch),
      registry: new ClickHouseModelRegistry(ch),
      logger: ctx.logger,
      async saveReference(set: ReferenceSet) {
        await references.save(set);
        return `clickhouse://${ch.database}.reference_profiles?reference_id=${set.referenceId}`;
      },
      async publish(events: readonly ModelEvent[]) {
        const messages = [];
        for (const e of events) messages.push({ key: contracts.model.key(e), value: await modelCodec.encode(e) });
        await ctx.producer.send(modelTopic, messages);
      },
    };
    const consumer: ConsumerHandle = await startConsumer<RetrainRequest>({
      kafka: ctx.kafka,
      groupId: `${ctx.common.topicPrefix}${config.group}`,
      topics: [ctx.topic('retrain')],
      producer: ctx.producer,
      logger: ctx.logger,
      registry: ctx.registry,
      fromBeginning: true,
      sessionTimeoutMs: config.sessionTimeoutMs,
      processor: {
        decode: (r) => retrainCodec.decode(r.value),
        async process(items, context) {
          // Training takes minutes: keep the group membership alive while it runs. A failed
          // heartbeat (rebalance) is ignored here; the commit after the batch then fails and the
          // request is redelivered, which the trainer recognises by its request id.
          const beat = setInterval(() => void context.heartbeat?.().catch(() => {}), 3_000);
          try {
            for (const { value } of items) {
              const outcome = await handleRequest(deps, value);
              outcomes.inc({ model: value.model, outcome });
            }
          } finally {
            clearInterval(beat);
          }
        },
      },
    });
    ctx.logger.info({ python, device: config.device, artifactDir: config.artifactDir }, 'trainer ready');
    return { ready: () => consumer.ready(), stop: () => consumer.stop() };
  },
});
