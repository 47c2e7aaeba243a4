import type { BatchContext, DecodedRecord } from '@driftline/kafka';
import type { ModelEvent } from '@driftline/schemas';

/**
 * How the model server applies models.v1: the events of each model in order, reduced and swapped
 * once per batch — and the whole start-up replay as one batch.
 *
 * - The start-up replay is held until the topic is read to its end (`finishReplay`), then applied
 *   at once. Applied batch by batch, a replay longer than one fetch swapped in the production of
 *   its first batch (an old version served until the rest arrived), and watched that one as "the
 *   previous production" instead of the version the controller watches.
 * - The follower's group keeps no offsets, so a rejoin (a broker restart) reads the topic from its
 *   start again: records at or below the last offset applied per partition are skipped. Replayed on
 *   top of today's stages, an old PROMOTED took production back to a retired version. A log that
 *   restarted (`logRestarted`, from the consumer) starts that count over.
 */
export interface ModelsFollower {
  process(items: ReadonlyArray<DecodedRecord<ModelEvent>>, context: Pick<BatchContext, 'partition'>): Promise<void>;
  /** Applies the held start-up replay (once); later batches are applied as they come. */
  finishReplay(): Promise<number>;
  /**
   * The consumer's `logRestarted`: models.v1 was deleted and created again, its offsets start
   * over. The last offset applied of the partition is forgotten (the new log's events were skipped
   * up to it); what was applied stays applied.
   */
  logRestarted(partition: number): void;
}

/** `apply` enqueues a model's events (applied per model in call order) and resolves once applied. */
export function modelsFollower(apply: (model: string, events: ModelEvent[]) => Promise<unknown>): ModelsFollower {
  const applied = new Map<number, bigint>();
  let replay: Map<string, ModelEvent[]> | undefined = new Map();
  // Every model's events enqueued before any await: a later batch cannot overtake them.
  const applyAll = (byModel: ReadonlyMap<string, ModelEvent[]>) =>
    Promise.all([...byModel].map(([model, events]) => apply(model, events)));
  return {
    async process(items, context) {
      const done = applied.get(context.partition) ?? -1n;
      const byModel = replay ?? new Map<string, ModelEvent[]>();
      for (const { record, value } of items) {
        if (BigInt(record.offset) <= done) continue; // a re-read after a rejoin
        const list = byModel.get(value.model);
        if (list === undefined) byModel.set(value.model, [value]);
        else list.push(value);
      }
      const last = items[items.length - 1];
      if (last !== undefined && BigInt(last.record.offset) > done)
        applied.set(context.partition, BigInt(last.record.offset));
      if (replay === undefined) await applyAll(byModel);
    },
    logRestarted(partition) {
      applied.delete(partition);
    },
    async finishReplay() {
      const held = replay;
      if (held === undefined) return 0;
      replay = undefined;
      await applyAll(held);
      return held.size;
    },
  };
}
