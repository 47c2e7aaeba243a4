import { randomUUID } from 'node:crypto';
import { checkEventTime, toDriftlineError } from '@driftline/core';
import { PARTIALS_MAX_BYTES } from '@driftline/drift';
import { type ConsumerHandle, untilCaughtUp } from '@driftline/kafka';
import { contracts, type DriftAlert, deadLetterTopic, type ModelEvent } from '@driftline/schemas';
import { defineService, type ServiceContext } from '@driftline/service';
import { type DriftConfig, driftEnvShape, toDriftConfig } from './config.js';
import { mergeProcessor } from './merge-stage.js';
import { driftMetrics } from './metrics.js';
import { ReferenceCache } from './reference-cache.js';
import { referenceFindingsLog } from './reference-findings.js';
import { sequentialMonitor } from './sequential.js';
import { stageOneProcessor } from './stage-one.js';

/** Internal topic between the stages (with the topic prefix). */
export const PARTIALS_TOPIC = 'drift.partials.v1';
/** Large enough for one model's partials, and what the merge stage parses at most (PARTIALS_MAX_BYTES). */
const PARTIALS_MAX_MESSAGE_BYTES = PARTIALS_MAX_BYTES;
/** How long stage one waits at start-up for the promotions of models.v1 (read whole on every start). */
const MODELS_CATCH_UP_MS = 60_000;

export const driftMonitorService = defineService({
  name: 'drift-monitor',
  description: 'Event-time drift windows over predictions (two-stage aggregation) into drift_windows and alerts',
  needs: ['kafka', 'registry', 'clickhouse'],
  envShape: driftEnvShape,
  configure: toDriftConfig,
  async start(ctx: ServiceContext, config: DriftConfig) {
    const logger = ctx.logger;
    const metrics = driftMetrics(ctx.registry, config.windowMs + config.idleTimeoutMs);
    const warehouse = await ctx.warehouse();
    // Each set loaded is checked once: a reference too wide for the partials topic, or with a
    // saturated tail sketch, is named at load (before, per window or never).
    const references = new ReferenceCache(warehouse.references, Date.now, {}, referenceFindingsLog(logger));
    // A set with a malformed profile is left out, as a running instance leaves it: its model's
    // predictions are dead-lettered (CONFIG_INVALID) when they load it, every other model is
    // measured. It failed start-up for every model.
    const loaded = await references.preload((invalid) => {
      metrics.referencesInvalid.inc();
      logger.error(
        { ...invalid },
        "reference profile cannot be read: left out at start-up; the model's predictions of this version are dead-lettered (CONFIG_INVALID) until its reference is stored again",
      );
    });
    const progress = warehouse.progress;

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
    await ctx.ensureTopics(specs);
    const sourcePartitions = await ctx.partitionCount(predictionsTopic);
    const mergePartitions = await ctx.partitionCount(partialsTopic);

    const predictionCodec = ctx.codec().forTopic(contracts.prediction, predictionsTopic);
    const alerts = ctx.publisher(contracts.alert);
    // An incompatible schema fails start-up: at the first alert it failed every batch of the topic consumed.
    await alerts.prepare();
    const modelCodec = ctx.codec().forTopic(contracts.model, ctx.topic('model'));

    const consumers: ConsumerHandle[] = [];
    const stop = async () => {
      clearInterval(timer);
      clearInterval(idleTimer);
      await stageOne.stopIdle();
      // Together: each is bounded at 10 s, in turn three took 30 s with a hung broker.
      await Promise.all(consumers.map((c) => c.stop().catch(() => {})));
    };

    // Production over time: every instance reads all of models.v1 on every start, in topic order
    // as the model-server does, to know every swap (promotions and rollbacks), through a group of
    // its own that stores no offsets (deleted on stop; forgotten by the broker once empty after a
    // crash): restarts leave no groups behind.
    consumers.push(
      await ctx.consume<ModelEvent>({
        groupId: `${group}-models-${randomUUID().slice(0, 8)}`,
        topics: [ctx.topic('model')],
        fromBeginning: true,
        ephemeral: true,
        processor: {
          async decode(r) {
            const event = await modelCodec.decode(r.value);
            // A promotion's time decides which windows it applies to: out of bounds, it never would.
            checkEventTime(event.event_time, Date.now(), ctx.common.eventTime);
            return event;
          },
          async process(items) {
            for (const { value: e } of items) {
              const step = await references.modelEvent(e.model, e);
              const about = { model: e.model, version: e.version, kind: e.kind };
              // Ignored by the model-server too: what serves stays.
              if (step.outcome === 'ignored') logger.info({ ...about, reason: step.reason }, 'model event ignored');
              if (step.outcome !== 'swapped') continue;
              const serving = step.history.stages.production;
              if (step.set === undefined)
                logger.warn({ ...about, serving }, 'the version serving production has no reference profile');
              else logger.info({ ...about, serving, referenceId: step.set.referenceId }, 'reference swapped');
            }
          },
        },
      }),
    );

    // Stage one resolves versions measured against the serving version's reference from what this
    // reader rebuilt: started before it read models.v1 to its end, their events found no reference, were
    // counted unreferenced and committed, on every start.
    if (!(await untilCaughtUp(consumers[0]!, MODELS_CATCH_UP_MS))) {
      logger.warn(
        { timeoutMs: MODELS_CATCH_UP_MS },
        'models.v1 not read to its end in time: starting anyway; versions promoted since may be measured late',
      );
    }
    const merge = mergeProcessor({
      driftWindows: warehouse.driftWindows,
      quarantine: warehouse.driftQuarantine,
      references,
      progress,
      group: mergeGroupId,
      idleTimeoutMs: config.idleTimeoutMs,
      windowMs: config.windowMs,
      eventTime: ctx.common.eventTime,
      thresholds: config.thresholds,
      primary: config.primary,
      alertShare: config.alertShare,
      alertMinEvents: config.alertMinEvents,
      missingAlert: config.missingAlert,
      missingAlertAlpha: config.missingAlertAlpha,
      logger,
      metrics,
      sendAlerts: (batch: readonly DriftAlert[]) => alerts.publish(batch),
      quality: { expectations: config.expectations, store: warehouse.dataQuality },
    });
    consumers.push(
      await ctx.consume({
        groupId: mergeGroupId,
        topics: [partialsTopic],
        processor: merge,
        maxBytesPerPartition: PARTIALS_MAX_MESSAGE_BYTES,
        // A window's partials are held (commit pinned) until every source partition reported or it idles out.
        stallTimeoutMs: ctx.common.stallTimeoutMs + config.windowMs + config.idleTimeoutMs,
      }),
    );
    const timer = setInterval(() => void merge.tick(), Math.max(100, Math.min(1000, config.idleTimeoutMs / 4)));
    timer.unref();

    // Source idleness: how often the partitions read to their end are looked at.
    const idleCheckMs = Math.max(1_000, Math.min(5_000, config.sourceIdleMs / 3));
    const stageOne = stageOneProcessor({
      spec: { sizeMs: config.windowMs, latenessMs: config.latenessMs, maxAheadMs: config.maxAheadMs },
      references,
      progress,
      group,
      sourceTopic: predictionsTopic,
      sourcePartitions,
      currentSourcePartitions: () => ctx.partitionCount(predictionsTopic),
      mergePartitions,
      metrics,
      eventTime: ctx.common.eventTime,
      logger,
      expectations: config.expectations,
      sourceIdleMs: config.sourceIdleMs,
      sourceIdleCheckMs: idleCheckMs,
      maxBorrowedVersions: config.maxBorrowedVersions,
      recentIds: config.recentIds,
      ...(config.sequential === undefined
        ? {}
        : {
            sequential: sequentialMonitor({
              config: config.sequential,
              windowMs: config.windowMs,
              resolve: (m, v, w) => references.resolve(m, v, w),
              store: warehouse.sequentialDetections,
              sendAlerts: (batch) => alerts.publish(batch),
              registry: ctx.registry,
              logger,
            }),
          }),
      decode: (v) => predictionCodec.decode(v),
      emit: async (messages) =>
        (await ctx.producer()).send(
          partialsTopic,
          messages.map((m) => ({ key: m.key, value: m.value, partition: m.partition })),
        ),
    });
    const stageOneConsumer = await ctx.consume({
      groupId: group,
      topics: [predictionsTopic],
      // The commit is held at the oldest open window until the watermark closes it.
      stallTimeoutMs: ctx.common.stallTimeoutMs + config.windowMs + config.latenessMs,
      processor: stageOne,
    });
    consumers.push(stageOneConsumer);
    // Source idleness: partitions read to their end move their watermark on processing time.
    let idleFailing = false;
    let idleRunning = false;
    const advanceIdle = async () => {
      if (idleRunning) return;
      idleRunning = true;
      try {
        await stageOne.advanceIdle(async () =>
          (await stageOneConsumer.positions())
            .filter((p) => p.topic === predictionsTopic && p.caughtUp)
            .map((p) => p.partition),
        );
        idleFailing = false;
      } catch (error) {
        // Once per failing spell: the next tick retries, and a batch sends what is left unsent.
        if (!idleFailing)
          logger.warn({ err: toDriftlineError(error).message }, 'source idleness check failed; will retry');
        idleFailing = true;
      } finally {
        idleRunning = false;
      }
    };
    const idleTimer = setInterval(() => void advanceIdle(), idleCheckMs);
    idleTimer.unref();
    if (config.sourceIdleMs <= 0) clearInterval(idleTimer);
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
