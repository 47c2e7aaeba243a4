import { logReferenceFindings, type ReferenceSet } from '@driftline/drift';
import { type ConsumerHandle, partitionKey, recordFingerprint } from '@driftline/kafka';
import { counter, gauge } from '@driftline/observability';
import { contracts, type ModelEvent, type RetrainRequest } from '@driftline/schemas';
import { defineService, type ServiceContext } from '@driftline/service';
import { checkArtifactDir } from './artifact-dir.js';
import { type TrainerConfig, toTrainerConfig, trainerEnvShape } from './config.js';
import { LabelWaits } from './label-wait.js';
import { handleRequest, type TrainerDeps } from './trainer.js';
import { TRAINING_PAGE_ROWS, warehouseTrainingSource } from './training-source.js';
import { ensureWorkerPython } from './worker.js';

export const trainerService = defineService({
  name: 'trainer',
  description: 'Retrain requests → dataset (Arrow) → XGBoost worker (GPU when present) → evaluate, register, promote',
  needs: ['kafka', 'registry', 'clickhouse'],
  envShape: trainerEnvShape,
  configure: toTrainerConfig,
  async start(ctx: ServiceContext, config: TrainerConfig) {
    // An artifact directory the trainer cannot write fails start-up here, not every request later.
    checkArtifactDir(config.artifactDir);
    // Set the worker's Python environment up first (once per machine; reused afterwards).
    const python = await ensureWorkerPython(ctx.logger, config.python);
    const warehouse = await ctx.warehouse();
    const retrainCodec = ctx.codec().forTopic(contracts.retrain, ctx.topic('retrain'));
    const models = ctx.publisher(contracts.model);
    await models.prepare(); // an incompatible schema fails start-up, not the first trained model
    // `model` comes from retrain requests: bounded (MAX_LABEL_VALUES, then `__other__`).
    const outcomes = counter(
      ctx.registry,
      'driftline_trainer_requests_total',
      'Retrain requests handled, by outcome',
      ['model', 'outcome'],
      { bounded: ['model'] },
    );
    const waiting = gauge(
      ctx.registry,
      'driftline_trainer_waiting_for_labels',
      'Retrain requests waiting for labels (fewer than DRIFTLINE_TRAINER_MIN_ROWS labeled rows yet)',
      ['model'],
      { bounded: ['model'] },
    );
    // Aborts a training run at stop: the batch is then left uncommitted and redelivered.
    const stopping = new AbortController();
    const waits = new LabelWaits();
    /** Per partition (partitionKey), the request it defers waiting for labels, and its model. */
    const awaiting = new Map<string, { readonly requestId: string; readonly model: string }>();
    /** The partition's wait is over, or another member's now: the gauge drops with it. */
    /** Revocations so far, and per partition the one that last took it: a wait answered after it is no longer this member's. */
    let revocations = 0;
    const revokedAt = new Map<string, number>();
    const forgetWait = (key: string) => {
      const wait = awaiting.get(key);
      awaiting.delete(key);
      if (wait !== undefined && waits.end(wait.requestId) !== undefined) waiting.set({ model: wait.model }, 0);
    };
    const deps: TrainerDeps = {
      config,
      python,
      source: warehouseTrainingSource(warehouse.predictions, TRAINING_PAGE_ROWS, config.maxCells),
      registry: warehouse.models,
      logger: ctx.logger,
      async saveReference(set: ReferenceSet) {
        // Saved all the same (a version without a reference would borrow another's), but said at
        // once: a set too wide for the partials topic is not measured by the drift monitor.
        logReferenceFindings(ctx.logger, set);
        await warehouse.references.save(set);
        return `clickhouse://${warehouse.database}.reference_profiles?reference_id=${set.referenceId}`;
      },
      publish: (events: readonly ModelEvent[]) => models.publish(events),
      transitions: warehouse.transitions,
      // The model-controller's clock (the same query): the staged rollout's gate records are dated on it.
      modelClock: warehouse.predictions,
      saveCalibration: (model, version, referenceId, map) =>
        warehouse.estimates.saveCalibration(model, version, referenceId, map),
      waits,
      onWaiting: (model, on) => waiting.set({ model }, on ? 1 : 0),
      eventTime: ctx.common.eventTime,
    };
    const consumer: ConsumerHandle = await ctx.consume<RetrainRequest>({
      groupId: `${ctx.common.topicPrefix}${config.group}`,
      topics: [ctx.topic('retrain')],
      fromBeginning: true,
      sessionTimeoutMs: config.sessionTimeoutMs,
      processor: {
        decode: (r) => retrainCodec.decode(r.value),
        async process(items, context) {
          // Training takes minutes: keep the group membership alive while it runs. A lost membership
          // (see membershipLoss) or a stop kills the worker's process group at once (the partition
          // may be another member's now, and two workers on one request would only compete): the
          // batch fails retriable, uncommitted, and the request is redelivered, which the trainer
          // recognises by its request id.
          const rebalanced = new AbortController();
          const signal = AbortSignal.any([stopping.signal, rebalanced.signal]);
          // A request's lines name its partition: a wait for labels holds it (README, step 3).
          const logger = deps.logger.child({ partition: context.partition });
          const key = partitionKey(context.topic, context.partition);
          const lost = membershipLoss();
          const beat = setInterval(
            () =>
              void context.heartbeat?.().then(
                () => lost.beat(),
                (error: unknown) => {
                  if (lost.failed(error)) rebalanced.abort();
                },
              ),
            3_000,
          );
          const revocationsBefore = revocations;
          try {
            for (const { record, value } of items) {
              // Its fingerprint tells a redelivery of the record from another at the same offset
              // (a recreated topic starts again at 0): give-up-record.ts.
              const delivery = {
                position: `${context.topic}/${context.partition}@${record.offset}`,
                fingerprint: recordFingerprint({
                  key: record.key,
                  value: record.value,
                  timestamp: String(record.timestamp),
                }),
              };
              const handled = await handleRequest({ ...deps, signal, logger, delivery }, value);
              if (typeof handled === 'object') {
                // Waiting for labels: only this partition waits, deferred from this request (the
                // later ones queue behind it; requests of one model keep their order). Sleeping
                // here held every partition of the process (kafkajs fetches again only once every
                // batch of a fetch is done).
                const before = awaiting.get(key);
                if (before !== undefined && before.requestId !== value.request_id) forgetWait(key);
                awaiting.set(key, { requestId: value.request_id, model: value.model });
                // Revoked while the request was read (the loop then drops the deferral): the wait
                // is the next owner's, and the gauge set by it would have stayed 1 here (a review).
                if ((revokedAt.get(key) ?? 0) > revocationsBefore) forgetWait(key);
                return { defer: { offset: record.offset, delayMs: handled.retryInMs, reason: handled.shortfall } };
              }
              // Handled: the partition waits no more (a request still waiting, dead-lettered meanwhile, neither).
              forgetWait(key);
              outcomes.inc({ model: value.model, outcome: handled });
            }
          } finally {
            clearInterval(beat);
          }
        },
        // Another member handles the partition's waiting request now (from the commit): its wait is its own.
        revoked(partitions) {
          revocations++;
          for (const p of partitions) {
            revokedAt.set(partitionKey(p.topic, p.partition), revocations);
            forgetWait(partitionKey(p.topic, p.partition));
          }
        },
      },
    });
    ctx.logger.info(
      { python, device: config.device, artifactDir: config.artifactDir, rollout: config.rollout },
      'trainer ready',
    );
    return {
      ready: () => consumer.ready(),
      stop: () => {
        stopping.abort();
        return consumer.stop();
      },
    };
  },
});

/** Group answers that mean this member no longer owns its partitions: the request is another's now. */
const MEMBERSHIP_LOST = new Set([
  'REBALANCE_IN_PROGRESS',
  'UNKNOWN_MEMBER_ID',
  'ILLEGAL_GENERATION',
  'FENCED_INSTANCE_ID',
]);
/** Heartbeats in a row that may fail (a coordinator moving: seconds) before a training is given up. */
const FAILED_BEATS_TOLERATED = 3;

/**
 * Whether a failed heartbeat ends the training: at once when the group says the membership is gone,
 * else after FAILED_BEATS_TOLERATED in a row (a transient coordinator outage killed a 20-minute
 * training, redelivered and run again from the start).
 */
export function membershipLoss(): { beat(): void; failed(error: unknown): boolean } {
  let inARow = 0;
  return {
    beat: () => {
      inARow = 0;
    },
    failed(error) {
      inARow++;
      let cause: unknown = error;
      for (let depth = 0; depth < 4 && cause !== undefined && cause !== null; depth++) {
        const type = (cause as { type?: unknown }).type;
        if (typeof type === 'string' && MEMBERSHIP_LOST.has(type)) return true;
        cause = (cause as { cause?: unknown }).cause;
      }
      return inARow >= FAILED_BEATS_TOLERATED;
    },
  };
}
