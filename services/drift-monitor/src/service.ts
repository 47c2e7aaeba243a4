import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError } from '@driftline/core';
import { type ConsumerHandle, ensureTopics, startConsumer } from '@driftline/kafka';
import { contracts, type DriftAlert, deadLetterTopic, type ModelEvent } from '@driftline/schemas';
import { defineService, type ServiceContext } from '@driftline/service';
import { type DriftConfig, driftEnvShape, toDriftConfig } from './config.js';
import { mergeProcessor } from './merge-stage.js';
import { driftMetrics } from './metrics.js';
import { ClickHouseProgressStore } from './progress-store.js';
import { ReferenceCache } from './reference-cache.js';
import { ClickHouseReferenceStore } from './reference-store.js';
import { stageOneProcessor } from './stage-one.js';

/** Internal topic between the stages (with the topic prefix). */
export const PARTIALS_TOPIC = 'drift.partials.v1';
/** Large enough for one model's partials: ~11 KB per numeric feature on the default 1000-cut grid. */
const PARTIALS_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

async function partitionCount(ctx: ServiceContext, topic: string): Promise<number> {
  const admin = ctx.kafka.admin();
  await admin.connect();
  try {
    // Metadata of a topic created a moment ago may not have reached every broker yet.
    for (let attempt = 0; ; attempt++) {
      try {
        const meta = await admin.fetchTopicMetadata({ topics: [topic] });
        const n = meta.topics[0]?.partitions.length ?? 0;
        if (n > 0) return n;
      } catch (error) {
        if (attempt >= 20) throw error;
      }
      if (attempt >= 20) throw new ConfigError('DRIFTLINE_TOPIC_PREFIX', `topic ${topic} has no partitions`);
      await sleep(250);
    }
  } finally {
    await admin.disconnect();
  }
}

export const driftMonitorService = defineService({
  name: 'drift-monitor',
  description: 'Event-time drift windows over predictions (two-stage aggregation) into drift_windows and alerts',
  envShape: driftEnvShape,
  configure: toDriftConfig,
  async start(ctx: ServiceContext, config: DriftConfig) {
    const logger = ctx.logger;
    const metrics = driftMetrics(ctx.registry);
    const ch = await ctx.clickhouse();
    const references = new ReferenceCache(new ClickHouseReferenceStore(ch));
    const loaded = await references.preload(); // a malformed profile fails start-up here, naming it
    const progress = new ClickHouseProgressStore(ch);

    const prefix = ctx.common.topicPrefix;
    const predictionsTopic = ctx.topic('prediction');
    const partialsTopic = `${prefix}${PARTIALS_TOPIC}`;
    const group = `${prefix}${config.group}`;
    const mergeGroupId = `${group}-merge`;
    const specs = [
      {
        topic: partialsTopic,
        partitions: config.partialsPartitions ?? ctx.common.topicPartitions,
        config: { 'max.message.bytes': String(PARTIALS_MAX_MESSAGE_BYTES) },
      },
      { topic: deadLetterTopic(partialsTopic), partitions: 1 },
    ];
    // kafkajs' createTopics(waitForLeaders) gives up when the fresh topic's metadata still says
    // UNKNOWN_TOPIC_OR_PARTITION (seen on KRaft under load); the topic exists by then, so retry.
    for (let attempt = 0; ; attempt++) {
      try {
        await ensureTopics(ctx.kafka, specs);
        break;
      } catch (error) {
        if (attempt >= 5) throw error;
        logger.warn({ err: (error as Error).message, attempt }, 'creating the partials topic failed; retrying');
        await sleep(250 * (attempt + 1));
      }
    }
    const sourcePartitions = await partitionCount(ctx, predictionsTopic);
    const mergePartitions = await partitionCount(ctx, partialsTopic);

    const predictionCodec = ctx.codec.forTopic(contracts.prediction, predictionsTopic);
    const alertsTopic = ctx.topic('alert');
    const alertCodec = ctx.codec.forTopic(contracts.alert, alertsTopic);
    const modelCodec = ctx.codec.forTopic(contracts.model, ctx.topic('model'));

    const consumers: ConsumerHandle[] = [];
    const stop = async () => {
      clearInterval(timer);
      for (const c of consumers.reverse()) await c.stop().catch(() => {});
    };

    // Promotions: every instance reads all of models.v1 (its own group) to know every swap.
    consumers.push(
      await startConsumer<ModelEvent>({
        kafka: ctx.kafka,
        groupId: `${group}-models-${randomUUID().slice(0, 8)}`,
        topics: [ctx.topic('model')],
        producer: ctx.producer,
        logger,
        registry: ctx.registry,
        fromBeginning: true,
        processor: {
          decode: (r) => modelCodec.decode(r.value),
          async process(items) {
            for (const { value: e } of items) {
              if (e.kind !== 'PROMOTED') continue;
              const set = await references.promoted(e.model, e.version, e.event_time);
              if (set === undefined)
                logger.warn({ model: e.model, version: e.version }, 'promoted version has no reference profile');
              else
                logger.info({ model: e.model, version: e.version, referenceId: set.referenceId }, 'reference swapped');
            }
          },
        },
      }),
    );

    const merge = mergeProcessor({
      ch,
      references,
      progress,
      group: mergeGroupId,
      idleTimeoutMs: config.idleTimeoutMs,
      thresholds: config.thresholds,
      primary: config.primary,
      alertShare: config.alertShare,
      logger,
      metrics,
      async sendAlerts(alerts: readonly DriftAlert[]) {
        const messages = [];
        for (const a of alerts) messages.push({ key: contracts.alert.key(a), value: await alertCodec.encode(a) });
        await ctx.producer.send(alertsTopic, messages);
      },
    });
    consumers.push(
      await startConsumer({
        kafka: ctx.kafka,
        groupId: mergeGroupId,
        topics: [partialsTopic],
        producer: ctx.producer,
        logger,
        registry: ctx.registry,
        processor: merge,
        maxBytesPerPartition: PARTIALS_MAX_MESSAGE_BYTES,
      }),
    );
    const timer = setInterval(() => void merge.tick(), Math.max(100, Math.min(1000, config.idleTimeoutMs / 4)));
    timer.unref();

    consumers.push(
      await startConsumer({
        kafka: ctx.kafka,
        groupId: group,
        topics: [predictionsTopic],
        producer: ctx.producer,
        logger,
        registry: ctx.registry,
        processor: stageOneProcessor({
          spec: { sizeMs: config.windowMs, latenessMs: config.latenessMs },
          references,
          progress,
          group,
          sourceTopic: predictionsTopic,
          sourcePartitions,
          mergePartitions,
          metrics,
          decode: (v) => predictionCodec.decode(v),
          emit: (messages) =>
            ctx.producer.send(
              partialsTopic,
              messages.map((m) => ({ key: m.key, value: m.value, partition: m.partition })),
            ),
        }),
      }),
    );
    logger.info(
      {
        references: loaded,
        sourcePartitions,
        mergePartitions,
        windowMs: config.windowMs,
        latenessMs: config.latenessMs,
      },
      'drift-monitor started',
    );
    return { ready: () => consumers.every((c) => c.ready()), stop };
  },
});
