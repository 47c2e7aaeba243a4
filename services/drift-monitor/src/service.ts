import { randomUUID } from 'node:crypto';
import {
  admitLine,
  ConfigError,
  checkEventTime,
  type Logger,
  lineLimit,
  PoisonRecordError,
  toDriftlineError,
} from '@driftline/core';
import {
  checkGroupRecord,
  PARTIALS_MAX_BYTES,
  type PartialsMessage,
  partialsGrownWarning,
  partialsWindowProblem,
} from '@driftline/drift';
import { type BatchProcessor, type ConsumerHandle, type InboundRecord, untilCaughtUp } from '@driftline/kafka';
import { contracts, type DriftAlert, deadLetterTopic, type ModelEvent } from '@driftline/schemas';
import { defineService, type ServiceContext } from '@driftline/service';
import { DEFAULT_DRIFT_GROUP, type DriftConfig, driftEnvShape, toDriftConfig } from './config.js';
import { mergeProcessor } from './merge-stage.js';
import { type DriftMetrics, driftMetrics } from './metrics.js';
import { loadGroupRecord, saveGroupRecord } from './progress.js';
import { ReferenceCache } from './reference-cache.js';
import { referenceFindingsLog } from './reference-findings.js';
import { sequentialMonitor } from './sequential.js';
import { stageOneProcessor } from './stage-one.js';

/** Internal topic between the stages of the default group (with the topic prefix): see {@link partialsTopicOf}. */
export const PARTIALS_TOPIC = 'drift.partials.v1';

/**
 * The partials topic of a stage-one group (DRIFTLINE_DRIFT_GROUP, unprefixed): one per group, so
 * the partials of one group never reach another group's merge. Every group shared one before, and
 * the merge identifies a partial by source partition, model and version: a new group (another
 * window size, a recompute) read the old group's partials and dropped its own as duplicates (a
 * review: six 1 s windows rewritten, no 2 s window). The default group keeps the name it had.
 */
export function partialsTopicOf(group: string): string {
  return group === DEFAULT_DRIFT_GROUP ? PARTIALS_TOPIC : `drift.partials.${group}.v1`;
}

/** Longest topic name Kafka accepts. */
const MAX_TOPIC_NAME_LENGTH = 249;
/** At most one line a minute about partials of another window size (each is dead-lettered). */
const OTHER_SIZE_LINE_INTERVAL_MS = 60_000;
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
    const partialsTopic = `${prefix}${partialsTopicOf(config.group)}`;
    const group = `${prefix}${config.group}`;
    if (deadLetterTopic(partialsTopic).length > MAX_TOPIC_NAME_LENGTH) {
      throw new ConfigError(
        'DRIFTLINE_DRIFT_GROUP',
        `names the partials topic ${partialsTopic} (and its .dlq), longer than Kafka's ${MAX_TOPIC_NAME_LENGTH} characters: use a shorter group or prefix`,
      );
    }
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
    // The group's routing and window size: an instance that differs from what the group recorded
    // is refused before it consumes anything.
    const checked = checkGroupRecord(await loadGroupRecord(progress, group, partialsTopic), {
      group,
      partialsTopic,
      topicPartitions: mergePartitions,
      configuredPartitions: config.partialsPartitions,
      windowMs: config.windowMs,
    });
    if (!checked.ok) throw new ConfigError(checked.field, checked.message);
    if (checked.warning !== undefined) logger.warn({ topic: partialsTopic }, checked.warning);
    await saveGroupRecord(progress, group, partialsTopic, {
      partialsPartitions: mergePartitions,
      windowMs: config.windowMs,
    });

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
        processor: guardedMerge(merge, {
          windowMs: config.windowMs,
          metrics,
          logger,
          grown: async () =>
            partialsGrownWarning(partialsTopic, mergePartitions, await ctx.partitionCount(partialsTopic)),
        }),
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

/**
 * The merge processor as the service runs it: a partials message of another window length than
 * this instance's (an instance of the group with another DRIFTLINE_DRIFT_WINDOW) is refused before
 * the merge sees it — dead-lettered to the partials topic's DLQ, counted once in
 * `driftline_drift_partials_dropped_total{reason="window_size"}`, an error line at most once a
 * minute — so no window fuses two sizes. After every rebalance the partials topic's partition count
 * is read again, and a warning logged when it grew past the count the group routes over.
 */
function guardedMerge(
  merge: BatchProcessor<PartialsMessage>,
  deps: {
    readonly windowMs: number;
    readonly metrics: DriftMetrics;
    readonly logger: Logger;
    readonly grown: () => Promise<string | undefined>;
  },
): BatchProcessor<PartialsMessage> {
  const lines = lineLimit();
  // The highest offset refused per partition: a batch retried (or fetched again after a rebalance)
  // decodes its records again, and is not counted again.
  const refusedUpTo = new Map<string, bigint>();
  const firstRefusal = (record: InboundRecord): boolean => {
    const key = `${record.topic}/${record.partition}`;
    const offset = BigInt(record.offset);
    const before = refusedUpTo.get(key);
    if (before !== undefined && offset <= before) return false;
    refusedUpTo.set(key, offset);
    return true;
  };
  let growthWarned = false;
  return {
    ...merge,
    async decode(record) {
      const message = await merge.decode(record);
      const problem = partialsWindowProblem(message, deps.windowMs);
      if (problem === undefined) return message;
      if (firstRefusal(record)) {
        deps.metrics.partialsDropped.inc({ reason: 'window_size' });
        const leftOut = admitLine(lines, Date.now(), OTHER_SIZE_LINE_INTERVAL_MS);
        if (leftOut !== undefined) {
          deps.logger.error(
            {
              topic: record.topic,
              partition: record.partition,
              offset: record.offset,
              windowMs: deps.windowMs,
              messageWindowMs: message.windowEnd - message.windowStart,
              source: message.source.partition,
              ...(message.type === 'partial' ? { model: message.model, events: message.events } : {}),
              refusedSinceLastLine: leftOut,
            },
            `${problem}; dead-lettered`,
          );
        }
      }
      throw new PoisonRecordError('VALIDATION_FAILED', problem);
    },
    rebalanced() {
      merge.rebalanced?.();
      if (growthWarned) return;
      void deps
        .grown()
        .then((warning) => {
          if (warning === undefined || growthWarned) return;
          growthWarned = true;
          deps.logger.warn({}, warning);
        })
        .catch(() => {}); // read again at the next rebalance
    },
  };
}
