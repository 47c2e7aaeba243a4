import type { BatchContext, DecodedRecord } from '@driftline/kafka';
import { EMPTY_STAGES, reduceStages, type StageEvent } from '@driftline/policy';
import type { ModelEvent } from '@driftline/schemas';
import type { ReplayedStages } from './stage-retry.js';

/**
 * How the model server applies models.v1: the events of each model in order, reduced and swapped
 * once per batch — and the whole start-up replay as one batch.
 *
 * - The start-up replay is applied at once when the topic is read to its end (`finishReplay`).
 *   Applied batch by batch, a replay longer than one fetch swapped in the production of its first
 *   batch (an old version served until the rest arrived), and watched that one as "the previous
 *   production" instead of the version the controller watches.
 * - Until then it is folded as it is read: each model's events reduced to its stages
 *   (`reduceStages`, libs/policy), which is what applying them all at the end reduced them to.
 *   models.v1 keeps every event of every model for good, and the replay was held event by event
 *   (decoded, ~0.8 KB each: 200,000 events held 166 MB until the end; found by a review). The
 *   stages are bounded per model (its ended and production versions, at most 1,000 each).
 * - The follower's group keeps no offsets, so a rejoin (a broker restart) reads the topic from its
 *   start again: records at or below the last offset applied per partition are skipped. Replayed on
 *   top of today's stages, an old PROMOTED took production back to a retired version. A log that
 *   restarted (`logRestarted`, from the consumer) starts that count over.
 */
export interface ModelsFollower {
  process(items: ReadonlyArray<DecodedRecord<ModelEvent>>, context: Pick<BatchContext, 'partition'>): Promise<void>;
  /** Applies the folded start-up replay (once); later batches are applied as they come. */
  finishReplay(): Promise<number>;
  /**
   * The consumer's `logRestarted`: models.v1 was deleted and created again, its offsets start
   * over. The last offset applied of the partition is forgotten (the new log's events were skipped
   * up to it); what was applied stays applied.
   */
  logRestarted(partition: number): void;
  /**
   * What the start-up replay holds until it is applied (all 0 after): its models, the events folded
   * into their stages, and the entries those stages hold (versions with a role, ended, been
   * production, and when each took its role): bounded per model, whatever the events. For tests.
   */
  held(): { models: number; events: number; entries: number };
}

export interface ModelsFollowerOptions {
  /**
   * The replayed events of a model to fold (the stage applier's `admit`: those dated too far ahead
   * refused, as `apply` refuses them); all of them when absent.
   */
  readonly admit?: (model: string, events: readonly StageEvent[]) => readonly StageEvent[];
  /** A replayed event the stages ignore, with why (the serving table's warning, said as it is read). */
  readonly ignored?: (model: string, event: StageEvent, reason: string) => void;
}

/**
 * `apply` enqueues a model's events (applied per model in call order) and resolves once applied;
 * the start-up replay comes as `replay` (its stages folded as read), with no events.
 */
export function modelsFollower(
  apply: (model: string, events: readonly StageEvent[], replay?: ReplayedStages) => Promise<unknown>,
  options: ModelsFollowerOptions = {},
): ModelsFollower {
  const applied = new Map<number, bigint>();
  let replay: Map<string, ReplayedStages> | undefined = new Map();
  return {
    async process(items, context) {
      const done = applied.get(context.partition) ?? -1n;
      const byModel = new Map<string, ModelEvent[]>();
      for (const { record, value } of items) {
        if (BigInt(record.offset) <= done) continue; // a re-read after a rejoin
        const list = byModel.get(value.model);
        if (list === undefined) byModel.set(value.model, [value]);
        else list.push(value);
      }
      const last = items[items.length - 1];
      if (last !== undefined && BigInt(last.record.offset) > done)
        applied.set(context.partition, BigInt(last.record.offset));
      if (replay === undefined) {
        // Every model's events enqueued before any await: a later batch cannot overtake them.
        await Promise.all([...byModel].map(([model, events]) => apply(model, events)));
        return;
      }
      for (const [model, events] of byModel) {
        const admitted = options.admit?.(model, events) ?? events;
        if (admitted.length === 0) continue;
        const held = replay.get(model);
        const reduced = reduceStages(held?.stages ?? EMPTY_STAGES, admitted);
        for (const { index, reason } of reduced.ignored) options.ignored?.(model, admitted[index]!, reason);
        replay.set(model, { stages: reduced.stages, events: (held?.events ?? 0) + admitted.length });
      }
    },
    logRestarted(partition) {
      applied.delete(partition);
    },
    async finishReplay() {
      const held = replay;
      if (held === undefined) return 0;
      replay = undefined;
      await Promise.all([...held].map(([model, folded]) => apply(model, [], folded)));
      return held.size;
    },
    held() {
      let events = 0;
      let entries = 0;
      for (const { stages: s, events: n } of replay?.values() ?? []) {
        events += n;
        entries +=
          (s.production === undefined ? 0 : 1) +
          (s.canary === undefined ? 0 : 1) +
          s.shadows.length +
          s.watched.length +
          s.ended.length +
          s.entered.length +
          s.productions.length;
      }
      return { models: replay?.size ?? 0, events, entries };
    },
  };
}
