import { DEFAULT_EVENT_TIME_BOUNDS, type Logger, SinkUnavailableError, silentLogger } from '@driftline/core';
import { decodePartials, type PartialMessage, referenceSet } from '@driftline/drift';
import type { DecodedRecord, ProcessResult } from '@driftline/kafka';
import { expectationSet } from '@driftline/quality';
import type { PredictionEvent } from '@driftline/schemas';
import { buildNumericProfile } from '@driftline/stats';
import type { ProgressStore } from '@driftline/warehouse';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { driftMetrics } from '../src/metrics.js';
import { ReferenceCache } from '../src/reference-cache.js';
import type { SequentialHook } from '../src/sequential.js';
import { stageOneProcessor } from '../src/stage-one.js';
import { memoryProgress, storeOf } from './support.js';

const ref = referenceSet('m', 'v1', new Map([['x', buildNumericProfile(Array.from({ length: 100 }, (_, i) => i))]]));
const expectations = expectationSet([
  { feature: 'x', type: 'double', maxTypeMismatch: 0, maxNullRate: 0, range: { min: 0, max: 10, maxShareOutside: 0 } },
]);
const NOW = Date.UTC(2024, 11, 2, 12, 0, 0);
/** Windows of 1 s from here on. */
const T = NOW - 60_000;
const ctx = { topic: 'p', partition: 0, highWatermark: '0' };

/** Prediction `id` dated `T + ms`, at `offset` of p/0 (a re-send: the same id and time at a later offset). */
const record = (id: string, ms: number, offset: number): DecodedRecord<PredictionEvent> => ({
  record: { topic: 'p', partition: 0, offset: String(offset), key: null, value: null, headers: {}, timestamp: 0 },
  value: {
    prediction_id: id,
    model: 'm',
    model_version: 'v1',
    entity_id: 'e',
    event_time: T + ms,
    features: { x: 1 },
    prediction: 0,
    predicted_class: null,
  },
});

/**
 * Stage one with data-quality expectations and a sequential detector that records what it is
 * fed; `failSends` sends to the partials topic fail first (retriable).
 */
function stageOne(
  options: {
    progress?: ProgressStore;
    recentIds?: number;
    failSends?: number;
    latenessMs?: number;
    heapLimit?: number;
    logger?: Logger;
  } = {},
) {
  const registry = new Registry();
  const partials: PartialMessage[] = [];
  const observed: number[] = [];
  let failing = options.failSends ?? 0;
  const sequential: SequentialHook = {
    prepare: async () => {},
    observe: (_partition, _event, offset) => void observed.push(offset),
    flush: async () => {},
    revoked: () => {},
  };
  const processor = stageOneProcessor({
    spec: { sizeMs: 1000, latenessMs: options.latenessMs ?? 0 },
    references: new ReferenceCache(storeOf(ref)),
    progress: options.progress ?? memoryProgress(),
    group: 'g',
    sourceTopic: 'p',
    sourcePartitions: 1,
    mergePartitions: 1,
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    now: () => NOW,
    metrics: driftMetrics(registry),
    expectations,
    sequential,
    ...(options.recentIds === undefined ? {} : { recentIds: options.recentIds }),
    ...(options.heapLimit === undefined ? {} : { heapLimit: options.heapLimit }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    decode: async () => {
      throw new Error('not used');
    },
    emit: async (messages) => {
      if (failing-- > 0) throw new SinkUnavailableError('kafka down');
      for (const m of messages) {
        const decoded = decodePartials(m.value);
        if (decoded.type === 'partial') partials.push(decoded);
      }
    },
  });
  const outcomes = async () =>
    Object.fromEntries(
      (await registry.getSingleMetric('driftline_drift_events_total')!.get()).values.map((v) => [
        v.labels.outcome,
        v.value,
      ]),
    );
  /** Window (ms after T) → [events, late, quality events] of the partials sent. */
  const windows = () => partials.map((p) => [p.windowStart - T, p.events, p.late, p.quality?.features.x?.events]);
  return { processor, outcomes, windows, observed };
}

describe('stage one: a prediction re-sent by its producer (same prediction_id)', () => {
  it('summarizes it once: copies in the same batch and a later one reach no window, quality or detector, and count as duplicate', async () => {
    const { processor, outcomes, windows, observed } = stageOne();
    await processor.process([record('a', 100, 0), record('b', 200, 1), record('a', 100, 2)], ctx);
    // The whole call retried: both again, then an event that closes the window.
    const result = await processor.process([record('a', 100, 3), record('b', 200, 4), record('c', 1500, 5)], ctx);
    expect(windows()).toEqual([[0, 2, 0, 2]]);
    expect(observed).toEqual([0, 1, 5]);
    expect(await outcomes()).toEqual({ added: 3, duplicate: 3 });
    // The copies hold nothing back: the commit is the open window's first offset.
    expect(result).toEqual({ commitOffset: '5' });
  });

  it('DRIFTLINE_DRIFT_RECENT_IDS=0: every copy counts, as before', async () => {
    const { processor, windows, outcomes } = stageOne({ recentIds: 0 });
    await processor.process([record('a', 100, 0), record('a', 100, 1), record('c', 1500, 2)], ctx);
    expect(windows()).toEqual([[0, 2, 0, 2]]);
    expect((await outcomes()).duplicate).toBeUndefined();
  });

  it('warns once, naming DRIFTLINE_DRIFT_RECENT_IDS, when the partitions owned can outgrow half the heap', async () => {
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (_fields: unknown, message: string) => warnings.push(message) };
    // 100,000 ids × 40 B = 4 MB: over half of a 6 MB heap from the first partition on.
    const { processor } = stageOne({ heapLimit: 6 * 1_048_576, logger });
    await processor.process([record('a', 100, 0)], ctx);
    await processor.process([record('b', 200, 1)], ctx);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('lower DRIFTLINE_DRIFT_RECENT_IDS');
    const quiet: string[] = [];
    const fits = stageOne({
      heapLimit: 8 * 1_048_576,
      logger: { ...silentLogger, warn: (_f: unknown, m: string) => quiet.push(m) },
    });
    await fits.processor.process([record('a', 100, 0)], ctx);
    expect(quiet).toEqual([]);
  });

  it('a retried batch (offsets applied already) is skipped by offset as before, never taken for a re-send', async () => {
    const { processor, windows, observed } = stageOne({ failSends: 1 });
    const batch = [record('a', 100, 0), record('a', 100, 1), record('b', 200, 2), record('c', 1500, 3)];
    await expect(processor.process(batch, ctx)).rejects.toThrow(SinkUnavailableError);
    expect(await processor.process(batch, ctx)).toEqual({ commitOffset: '3' });
    expect(windows()).toEqual([[0, 2, 0, 2]]);
    expect(observed).toEqual([0, 2, 3]);
  });

  it("a new owner's replay from the commit: replayed records are 'replayed' or summarized again, never duplicates; the windows are the uninterrupted run's", async () => {
    // Lateness 500 ms: window 0 stays open while window 1000 fills. `a` is re-sent at offset 2,
    // after window 1000 opened (offset 1): the commit after window 0 closes is 1, past a's first copy.
    const batches = [
      [record('a', 100, 0), record('q', 1200, 1), record('a', 100, 2), record('r', 1600, 3)],
      [record('b', 1300, 4), record('b', 1300, 5), record('s', 2600, 6)],
    ];
    const live = stageOne({ latenessMs: 500 });
    for (const b of batches) await live.processor.process(b, ctx);
    expect(live.windows()).toEqual([
      [0, 1, 0, 1],
      [1000, 3, 0, 3],
    ]);
    expect(await live.outcomes()).toEqual({ added: 5, duplicate: 2 });

    // The first owner stops after the first batch; the next restores its progress and replays.
    const progress = memoryProgress();
    const first = stageOne({ progress, latenessMs: 500 });
    const { commitOffset } = (await first.processor.process(batches[0]!, ctx)) as ProcessResult;
    expect(commitOffset).toBe('1');
    const next = stageOne({ progress, latenessMs: 500 });
    for (const b of batches) {
      const replay = b.filter((r) => Number(r.record.offset) >= Number(commitOffset));
      await next.processor.process(replay, ctx);
    }
    // a's copy (offset 2) belongs to window 0, which the first owner emitted: 'replayed', as any
    // record of it; b's copy (offset 5) is recognised from the replayed records.
    expect(await next.outcomes()).toEqual({ added: 4, replayed: 1, duplicate: 1 });
    expect([...first.windows(), ...next.windows()]).toEqual(live.windows());
  });

  it('the memory is the partition’s: dropped on revoke, and rebuilt by the replay a new assignment starts with', async () => {
    const { processor, windows } = stageOne();
    const result = (await processor.process([record('a', 100, 0), record('b', 1100, 1)], ctx)) as ProcessResult;
    processor.revoked?.([{ topic: 'p', partition: 0 }]);
    // Owned again, read from the commit: b's first copy is replayed (a memory kept across the
    // revoke would take it for a re-send and lose it), its re-send recognised.
    const replay = [record('b', 1100, 1), record('b', 1100, 2), record('c', 2100, 3)];
    await processor.process(
      replay.filter((r) => Number(r.record.offset) >= Number(result.commitOffset)),
      ctx,
    );
    expect(windows()).toEqual([
      [0, 1, 0, 1],
      [1000, 1, 0, 1],
    ]);
  });
});
