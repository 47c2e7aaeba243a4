import { CLOCK_SKEW_MS, markerOffset } from '@driftline/join';
import {
  adoptGroupOffsets,
  committedOffsets,
  deadLetterUnsent,
  groupHasCommitted,
  type InboundRecord,
  partitionKey,
  REPLAYED_FROM_HEADER,
} from '@driftline/kafka';
import {
  checkRedisDurability,
  checkRedisServer,
  createRedisJoinStore,
  JOIN_STATE_STAKES,
  type StateMarker,
  waitReady,
  watchStateMarker,
} from '@driftline/online-store/redis';
import { contracts, type DriftAlert, type LabelEvent, type PredictionEvent } from '@driftline/schemas';
import { defineService } from '@driftline/service';
import { labelJoinerEnvShape, toLabelJoinerConfig } from './config.js';
import { JoinEngine, type JoinerRecord, type PayloadDecoder, validateLabel, validatePrediction } from './engine.js';
import { ScoreCounter, WindowEstimator } from './estimates.js';
import { ExpiryScanner, every, type UnwritableExpiry, WindowRecomputer } from './loops.js';
import { RestartedLogs } from './restarts.js';

/** A record's bytes, where it is in its partition (offset, Kafka timestamp), and whether a DLQ replay sent it. */
const positionOf = (record: InboundRecord) => {
  const offset = markerOffset(record.offset);
  return {
    raw: record.value!,
    appendTime: record.timestamp,
    ...(offset === undefined ? {} : { offset }),
    ...(record.headers[REPLAYED_FROM_HEADER] === undefined ? {} : { replayed: true }),
  };
};

/**
 * label-joiner: joins delayed labels to their predictions (state in Redis), writes each joined row
 * once to ClickHouse `labeled_predictions`, counts predictions that expire unlabeled, and keeps
 * `performance_windows` (per model, version, window and segment) current as labels arrive.
 */
export const labelJoinerService = defineService({
  name: 'label-joiner',
  description: 'Joins delayed labels to predictions and measures live model performance',
  needs: ['kafka', 'registry', 'clickhouse', 'redis'],
  envShape: labelJoinerEnvShape,
  configure: toLabelJoinerConfig,
  async start(ctx, config) {
    const logger = ctx.logger;
    const predictionTopic = ctx.topic('prediction');
    const labelTopic = ctx.topic('label');
    const predictions = ctx.codec().forTopic(contracts.prediction, predictionTopic);
    const labels = ctx.codec().forTopic(contracts.label, labelTopic);
    const alerts = ctx.publisher(contracts.alert);
    // An incompatible schema fails start-up: at the first alert it failed every batch of the topic consumed.
    await alerts.prepare();
    // Prefixed like every service's: two deployments on one cluster (other prefixes) shared one
    // group, and kafkajs gave each member partitions of the other's topics, which it dropped unread.
    const groupId = `${ctx.common.topicPrefix}${config.groupId}`;
    // Upgrading from the unprefixed name: resume where that group stopped, not from the beginning.
    await adoptGroupOffsets(ctx.kafka(), {
      from: config.groupId,
      to: groupId,
      topics: [predictionTopic, labelTopic],
      logger,
    });
    const store = createRedisJoinStore(config.redis, {
      prefix: config.keyPrefix,
      // The event-time future bound bounds how early a label may be dated (labelEarlyMs).
      join: { ...config.join, maxFutureMs: ctx.common.eventTime.maxFutureMs },
      onConnectionError: (error) => logger.warn({ err: error.message }, 'redis connection error'),
    });
    // Everything from here may fail at start (ClickHouse, Redis, the consumer): the store's client
    // would otherwise be left reconnecting (and logging) for ever through the runner's retries.
    let marker: StateMarker | undefined;
    try {
      const warehouse = await ctx.warehouse();
      const sink = warehouse.predictions;
      const decoder: PayloadDecoder = {
        prediction: (bytes) => predictions.decode(bytes),
        label: (bytes) => labels.decode(bytes),
      };
      // Key layout v2 keys state by (model, prediction id); states a v1 deployment left move first.
      await waitReady(store.redis);
      // A server its scripts cannot run on fails start-up, naming the variable: it failed every batch.
      await checkRedisServer(store.redis);
      // Offsets are committed once Redis holds the join state: state Redis evicts or loses on a crash
      // is never replayed. A weaker setting is a warning line (managed Redis may forbid CONFIG).
      await checkRedisDurability(store.redis, logger, JOIN_STATE_STAKES);
      const migrated = await store.migrateV1(
        async (side, bytes) =>
          (side === 'prediction' ? await decoder.prediction(bytes) : await decoder.label(bytes)).model,
      );
      if (migrated > 0) logger.info({ migrated }, 'join state moved from key layout v1 to v2');
      // Redis losing the join state (an empty restart, a failover, eviction) is reported, not silent.
      marker = await watchStateMarker(store.redis, {
        key: `${config.keyPrefix}state-marker:join`,
        store: 'join',
        consumedBefore: () => groupHasCommitted(ctx.kafka(), groupId, [predictionTopic, labelTopic]),
        stateExists: () => store.holdsState(),
        recovery:
          'predictions waiting for a label were lost (their labels will be orphans) and performance windows keep their last counts; to rebuild, replay this group from now − max label delay − one window (README, "What the backends must be")',
        logger,
        registry: ctx.registry,
      });
      const taskOf = (model: string) => config.modelTasks.get(model) ?? config.defaultTask;
      // CBPE: scores tallied by the join store at each prediction's first transition (see estimates.ts).
      const scores = config.estimates
        ? new ScoreCounter(
            {
              threshold: config.threshold,
              maxWindows: config.scoreWindows,
              windowMs: config.windowMs,
              counts: (model) => taskOf(model) === 'classification',
              logger,
            },
            ctx.registry,
          )
        : undefined;
      const estimator =
        scores === undefined
          ? undefined
          : new WindowEstimator(
              warehouse.estimates,
              scores,
              store,
              {
                threshold: config.threshold,
                falseAlarmCost: config.falseAlarmCost,
                cacheMs: config.calibrationRefreshMs,
                minSampled: config.alertMinSamples,
                logger,
              },
              ctx.registry,
            );
      // Records that may repeat a prediction joined or expired longer ago than the tombstones last,
      // and labels that may come after their prediction expired, are checked against ClickHouse.
      const sinkCheck = { ...config.join, maxFutureMs: ctx.common.eventTime.maxFutureMs };
      if (sinkCheck.tombstoneMs <= sinkCheck.maxFutureMs + CLOCK_SKEW_MS) {
        logger.warn(
          { tombstoneMs: sinkCheck.tombstoneMs, maxFutureMs: sinkCheck.maxFutureMs },
          'DRIFTLINE_JOINER_TOMBSTONE_TTL is not above DRIFTLINE_EVENT_TIME_MAX_FUTURE plus a minute: every batch of predictions is looked up in ClickHouse (README, "Checked against ClickHouse")',
        );
      }
      const engine = new JoinEngine(
        store,
        decoder,
        sink,
        config.windowMs,
        ctx.registry,
        scores,
        { taskOf, logger },
        // Labels whose prediction is pending or joined are not looked up: their states are read first.
        { config: sinkCheck, states: store, logger },
        // Labels dated before their prediction beyond the event-time future bound: a warning per model.
        { config: sinkCheck, logger },
      );
      // Expired predictions that can never be written go to predictions.v1.dlq, their stored bytes
      // as they are, with the reason; a failure of the DLQ is retriable (the pass acks nothing).
      const producer = await ctx.producer();
      const deadLetterExpiry = async (rows: readonly UnwritableExpiry[]) => {
        await deadLetterUnsent(
          producer,
          predictionTopic,
          rows.map(({ row, error }) => ({
            key: row.id,
            value: row.prediction,
            code: error.code,
            reason: `expiry of an unlabeled prediction: ${error.message}`,
          })),
          'driftline-label-joiner',
        );
        const first = rows[0]!;
        logger.error(
          {
            deadLettered: rows.length,
            model: first.row.model,
            prediction_id: first.row.id,
            reason: first.error.message,
          },
          'expired predictions that can never be written went to the dead-letter topic',
        );
      };
      const recomputer = new WindowRecomputer(
        store,
        warehouse,
        {
          windowMs: config.windowMs,
          taskOf,
          threshold: config.threshold,
          segmentFeatures: config.segmentFeatures,
          maxSegments: config.maxSegments,
          bounds: config.bounds,
          alertMinSamples: config.alertMinSamples,
          alertSegments: config.alertSegments,
          realizedCoverage: config.realizedCoverage,
          maxWindowRows: config.maxWindowRows,
          logger,
          ...(estimator === undefined ? {} : { estimator }),
        },
        {
          publish: (alert: DriftAlert) => alerts.publish([alert]),
        },
        (id) => store.wasAlerted(id),
        // Remembered for as long as labels can still change the window.
        (id) => store.markAlerted(id, config.windowMs + config.join.maxDelayMs + config.join.graceMs),
        ctx.registry,
      );

      // A partition whose log may have started over drops its applied-through marker (restarts.ts).
      const restarts = new RestartedLogs((topic) => committedOffsets(ctx.kafka(), groupId, topic));
      const consumer = await ctx.consume<JoinerRecord>({
        groupId,
        topics: [predictionTopic, labelTopic],
        partitionsConsumedConcurrently: config.concurrency,
        sessionTimeoutMs: config.sessionTimeoutMs,
        maxBytesPerPartition: config.maxBatchBytes,
        fetchBytesField: 'DRIFTLINE_JOINER_MAX_BATCH_BYTES',
        processor: {
          async decode(record) {
            if (record.topic === predictionTopic) {
              const event: PredictionEvent = await predictions.decode(record.value);
              validatePrediction(event, { bounds: ctx.common.eventTime, now: Date.now() });
              return { kind: 'prediction', event, ...positionOf(record) };
            }
            const event: LabelEvent = await labels.decode(record.value);
            validateLabel(event, { bounds: ctx.common.eventTime, now: Date.now() }, taskOf(event.model));
            return { kind: 'label', event, ...positionOf(record) };
          },
          async process(items, context) {
            // Never state written without the marker: a loss since the last check is reported first.
            await marker?.check();
            const records = items.map((i) => i.value);
            const { topic, partition } = context;
            const started = await restarts.check(topic, partition, records[0]?.offset);
            const source = partitionKey(topic, partition);
            const { outcomes } = await engine.process(records, Date.now(), source, { restart: started.restart });
            const skipped = (outcomes['prediction:replay-duplicate'] ?? 0) + (outcomes['label:replay-duplicate'] ?? 0);
            if (skipped > 0) {
              logger.info(
                { source, skipped },
                'replayed dead letters whose prediction is already written were skipped',
              );
            }
            restarts.applied(topic, partition, started, records.at(-1)?.offset);
          },
          rebalanced: () => restarts.rebalanced(),
        },
      });
      // Expiry follows the slowest partition of either topic, over every instance (see loops.ts).
      const scanner = new ExpiryScanner(
        store,
        decoder,
        sink,
        {
          maxDelayMs: config.join.maxDelayMs,
          graceMs: config.join.graceMs,
          positions: async () =>
            (await consumer.positions()).map((p) => ({
              source: partitionKey(p.topic, p.partition),
              caughtUp: p.caughtUp,
            })),
          counts: (source) => source.startsWith(`${predictionTopic}/`) || source.startsWith(`${labelTopic}/`),
          deadLetter: deadLetterExpiry,
          logger,
        },
        ctx.registry,
      );
      // The passes write state too (source reports, tombstones, tallies): each checks the marker first.
      const expiry = every(
        config.expiryIntervalMs,
        async () => {
          await marker?.check();
          await scanner.pass();
        },
        logger,
        'expiry pass',
        { registry: ctx.registry, loop: 'expiry' },
      );
      const windows = every(
        config.recomputeIntervalMs,
        async () => {
          await marker?.check();
          await recomputer.pass();
        },
        logger,
        'window recompute',
        { registry: ctx.registry, loop: 'recompute' },
      );
      logger.info(
        {
          group: groupId,
          maxDelayMs: config.join.maxDelayMs,
          windowMs: config.windowMs,
          segments: config.segmentFeatures,
        },
        'label-joiner consuming',
      );
      return {
        ready: () => consumer.ready() && store.ready(),
        async stop() {
          marker?.stop();
          await consumer.stop();
          await expiry.stop();
          await windows.stop();
          // Leave nothing half-done that a pass could finish now: expiries and dirty windows.
          try {
            await scanner.pass();
            await recomputer.pass();
          } catch (error) {
            logger.warn(
              { err: (error as Error).message },
              'final expiry/recompute pass failed; the next start resumes it',
            );
          }
          await store.close();
        },
      };
    } catch (error) {
      marker?.stop();
      await store.close().catch(() => {});
      throw error;
    }
  },
});
