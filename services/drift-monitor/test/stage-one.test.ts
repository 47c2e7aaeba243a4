import { SinkUnavailableError } from '@driftline/core';
import { decodePartials, type OutboundPartials, type ReferenceSet, referenceSet } from '@driftline/drift';
import type { DecodedRecord } from '@driftline/kafka';
import type { PredictionEvent } from '@driftline/schemas';
import { buildNumericProfile } from '@driftline/stats';
import type { Progress, ProgressStore, ReferenceStore } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { ReferenceCache } from '../src/reference-cache.js';
import { stageOneProcessor } from '../src/stage-one.js';

const ref: ReferenceSet = referenceSet(
  'm',
  'v1',
  new Map([['x', buildNumericProfile(Array.from({ length: 100 }, (_, i) => i))]]),
);
const store: ReferenceStore = {
  save: async () => {},
  latest: async (model, version) => (model === 'm' && version === 'v1' ? ref : undefined),
  byId: async () => ref,
  all: async () => [ref],
};

function items(times: number[], from = 0): DecodedRecord<PredictionEvent>[] {
  return times.map((t, i) => ({
    record: { topic: 'p', partition: 0, offset: String(from + i), key: null, value: null, headers: {}, timestamp: 0 },
    value: {
      prediction_id: `p${i}`,
      model: 'm',
      model_version: 'v1',
      entity_id: 'e',
      event_time: t,
      features: { x: i },
      prediction: 0,
      predicted_class: null,
    },
  }));
}

function setup(failures: number) {
  const sent: OutboundPartials[] = [];
  const saved: Progress[] = [];
  let failing = failures;
  const progress: ProgressStore = {
    load: async () => undefined,
    save: async (_s, _g, _t, _p, p) => {
      saved.push(p);
    },
  };
  const processor = stageOneProcessor({
    spec: { sizeMs: 1000, latenessMs: 0 },
    references: new ReferenceCache(store),
    progress,
    group: 'g',
    sourceTopic: 'p',
    sourcePartitions: 1,
    mergePartitions: 1,
    decode: async () => {
      throw new Error('unused');
    },
    emit: async (messages) => {
      if (failing-- > 0) throw new SinkUnavailableError('kafka down');
      sent.push(...messages);
    },
  });
  return { processor, sent, saved };
}

const ctx = { topic: 'p', partition: 0, highWatermark: '0' };

describe('stage-1 processor', () => {
  it('holds the commit at the oldest open window and emits closed windows', async () => {
    const { processor, sent, saved } = setup(0);
    // Window 0 closes within the batch; window 1000 (first offset 2) stays open.
    expect(await processor.process(items([100, 200, 1100]), ctx)).toEqual({ commitOffset: '2' });
    expect(await processor.process(items([2100], 3), ctx)).toEqual({ commitOffset: '3' });
    const partials = sent.map((m) => decodePartials(m.value)).filter((m) => m.type === 'partial');
    expect(partials.map((p) => [p.windowStart, p.type === 'partial' ? p.events : 0])).toEqual([
      [0, 2],
      [1000, 1],
    ]);
    expect(saved.at(-1)).toEqual({ position: 2000, offset: 4 });
  });

  it('a retried batch after a failed send neither double-counts nor loses a window', async () => {
    const { processor, sent } = setup(1);
    await expect(processor.process(items([100, 200, 1500]), ctx)).rejects.toThrow(SinkUnavailableError);
    expect(sent).toEqual([]);
    await processor.process(items([100, 200, 1500]), ctx); // the loop retries the same batch
    const partials = sent.map((m) => decodePartials(m.value)).filter((m) => m.type === 'partial');
    expect(partials.map((p) => (p.type === 'partial' ? [p.windowStart, p.events] : []))).toEqual([[0, 2]]);
  });
});
