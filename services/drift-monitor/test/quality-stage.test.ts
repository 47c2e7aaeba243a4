import { DEFAULT_EVENT_TIME_BOUNDS } from '@driftline/core';
import { decodePartials, type OutboundPartials, type PartialMessage, referenceSet } from '@driftline/drift';
import type { DecodedRecord } from '@driftline/kafka';
import { expectationSet } from '@driftline/quality';
import type { PredictionEvent } from '@driftline/schemas';
import { buildNumericProfile } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import { ReferenceCache } from '../src/reference-cache.js';
import { stageOneProcessor } from '../src/stage-one.js';
import { storeOf } from './support.js';

const ref = referenceSet('m', 'v1', new Map([['x', buildNumericProfile(Array.from({ length: 100 }, (_, i) => i))]]));
const store = storeOf(ref);
const expectations = expectationSet([
  { feature: 'x', type: 'double', maxTypeMismatch: 0, maxNullRate: 0, range: { min: 0, max: 10, maxShareOutside: 0 } },
]);

function items(values: Array<[number, number | null]>, from = 0): DecodedRecord<PredictionEvent>[] {
  return values.map(([t, x], i) => ({
    record: { topic: 'p', partition: 0, offset: String(from + i), key: null, value: null, headers: {}, timestamp: 0 },
    value: {
      prediction_id: `p${from + i}`,
      model: 'm',
      model_version: 'v1',
      entity_id: 'e',
      event_time: t,
      features: { x },
      prediction: 0,
      predicted_class: null,
    },
  }));
}

function stageOne() {
  const sent: OutboundPartials[] = [];
  const processor = stageOneProcessor({
    spec: { sizeMs: 1000, latenessMs: 0 },
    references: new ReferenceCache(store),
    progress: { load: async () => undefined, save: async () => {} },
    group: 'g',
    sourceTopic: 'p',
    sourcePartitions: 1,
    mergePartitions: 1,
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    expectations,
    decode: async (value) => JSON.parse(String(value)) as PredictionEvent,
    emit: async (messages) => {
      sent.push(...messages);
    },
  });
  const partials = () =>
    sent.map((m) => decodePartials(m.value)).filter((m): m is PartialMessage => m.type === 'partial');
  return { processor, partials };
}

const ctx = { topic: 'p', partition: 0, highWatermark: '0' };
const T = 1_700_000_000_000;

describe('stage one with data-quality expectations', () => {
  it('sends the quality counts of exactly the events its summaries took; a retried batch adds nothing', async () => {
    const { processor, partials } = stageOne();
    const batch = items([
      [T + 100, 1],
      [T + 200, null],
      [T + 300, 50],
      [T + 400, 2],
    ]);
    await processor.process(batch, ctx);
    await processor.process(batch, ctx); // the loop retries a batch after a failure: offsets already applied
    await processor.process(items([[T + 1500, 3]], 4), ctx); // closes window T
    await processor.process(items([[T - 5000, 7]], 5), ctx); // late: not in any window's counts
    await processor.process(items([[T + 2500, 3]], 6), ctx); // closes window T + 1000 (its late count included)
    const [first, second] = partials();
    expect(first?.quality?.id).toBe(expectations.id);
    expect(first?.quality?.features.x).toMatchObject({ events: 4, nulls: 1, numbers: 3, outside: 1 });
    expect(second?.late).toBe(1);
    expect(second?.quality?.features.x).toMatchObject({ events: 1, nulls: 0, numbers: 1, outside: 0 });
  });

  it('a new owner replaying from the committed offset rebuilds the same quality section', async () => {
    const events = items([
      [T + 100, 1],
      [T + 600, 20],
      [T + 1100, null],
      [T + 2100, 4],
    ]);
    const a = stageOne();
    const commit = await a.processor.process(events.slice(0, 3), ctx);
    await a.processor.process(events.slice(3), ctx);
    const b = stageOne(); // took over: replays from the first one's commit offset
    await b.processor.process(events.slice(Number(commit?.commitOffset)), ctx);
    const last = (p: PartialMessage[]) => p.find((m) => m.windowStart === T + 1000)?.quality;
    expect(last(b.partials())).toEqual(last(a.partials()));
    expect(last(a.partials())?.features.x).toMatchObject({ events: 1, nulls: 1 });
  });
});
