import { decodePartials, type ReferenceSet, referenceSet, windowStartOf } from '@driftline/drift';
import { buildNumericProfile } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import { type BatchPair, ReferenceCache } from '../src/reference-cache.js';
import { batchPairs, memoryProgress, memoryReferenceStore, minuteStageOne, predictionRecord } from './support.js';

const profiles = (shift: number) =>
  new Map([['x', buildNumericProfile(Array.from({ length: 100 }, (_, i) => i + shift))]]);

const MINUTE = 60_000;
const NOW = Date.UTC(2024, 11, 2, 12, 0, 0);

describe('ReferenceCache: late events after a promotion', () => {
  it('a window before the latest promotion is measured on the version promoted then, after the LRU evicted it', async () => {
    const v1 = referenceSet('m', 'v1', profiles(0));
    const v2 = referenceSet('m', 'v2', profiles(0.5));
    const own = [referenceSet('o', 'a', profiles(0)), referenceSet('o', 'b', profiles(0))];
    const { store } = memoryReferenceStore([v1, v2, ...own]);
    const references = new ReferenceCache(store, () => NOW, { maxEntries: 3 });
    await references.preload();
    const promotedAt = NOW - 10 * MINUTE;
    await references.promoted('m', 'v1', NOW - 24 * 60 * MINUTE);
    await references.promoted('m', 'v2', promotedAt);
    const before = windowStartOf(promotedAt - 2 * MINUTE, MINUTE); // opened while v1 was in force
    const after = windowStartOf(promotedAt + 2 * MINUTE, MINUTE);

    // `before` is still open when its events come.
    const { stageOne, sent } = minuteStageOne(references, { latenessMs: 5 * MINUTE, now: () => NOW });
    let offset = 0;
    const event = (model: string, version: string, eventTime: number) =>
      predictionRecord(model, version, eventTime, offset++);
    const ctx = { topic: 'p', partition: 0, highWatermark: '0' };
    // The canary of the current window, with two versions that have references of their own: the
    // LRU (3 sets) evicts v1 to hold them.
    const first = await stageOne.process(
      [event('m', 'canary', after + 1_000), event('o', 'a', after + 2_000), event('o', 'b', after + 3_000)],
      ctx,
    );
    expect(first?.deadLetters ?? []).toEqual([]);
    // Late canary events of the window before the promotion, then one that closes both windows.
    await stageOne.process([event('m', 'canary', before + 1_000), event('m', 'canary', before + 2_000)], ctx);
    await stageOne.process([event('o', 'a', NOW)], ctx);

    const canary = sent
      .map((m) => decodePartials(m.value))
      .filter((p) => p.type === 'partial' && p.model === 'm' && p.version === 'canary');
    const measured = canary.map((p) => (p.type === 'partial' ? [p.windowStart, p.events, p.referenceId] : []));
    expect(measured.sort()).toEqual(
      [
        [before, 2, v1.referenceId],
        [after, 1, v2.referenceId],
      ].sort(),
    );
  });

  it('after a restart: promotions replayed from models.v1 through a small LRU, an old window still finds its lender', async () => {
    const v1 = referenceSet('m', 'v1', profiles(0));
    const v2 = referenceSet('m', 'v2', profiles(0.5));
    // Other models' promoted versions, saved and promoted after m/v1: the replay loads them all.
    const others: ReferenceSet[] = Array.from({ length: 20 }, (_, i) => referenceSet(`o${i}`, 'v1', profiles(i)));
    const { store } = memoryReferenceStore([v1, ...others, v2]);
    const fresh = new ReferenceCache(store, () => NOW, { maxEntries: 10, preloadEntries: 4 });
    await fresh.preload(); // the 4 saved last: not m/v1
    await fresh.promoted('m', 'v1', 1_000);
    for (const [i, s] of others.entries()) await fresh.promoted(s.model, s.version, 2_000 + i);
    await fresh.promoted('m', 'v2', 10_000);
    expect(fresh.resolve('m', 'v1', 0)).toBeUndefined(); // evicted by the replay (its own pair is not in this batch)

    await fresh.ensure(batchPairs([['m', 'canary']], 5_000));
    expect(fresh.resolve('m', 'canary', 5_000)?.referenceId).toBe(v1.referenceId);
    expect(fresh.resolve('m', 'canary', 20_000)?.referenceId).toBe(v2.referenceId);
    expect(fresh.resolve('m', 'canary', 500)).toBeUndefined(); // before any promotion: nothing in force
  });

  it('bounded with many borrowing models: own references first, then every newest lender, then older ones', async () => {
    const models = 5;
    const promotionsPerModel = 20;
    const maxEntries = 50;
    const promotedSets: ReferenceSet[] = [];
    for (let m = 0; m < models; m++)
      for (let v = 0; v < promotionsPerModel; v++) promotedSets.push(referenceSet(`m${m}`, `v${v}`, profiles(v)));
    const ownSets = [0, 1, 2].map((i) => referenceSet('own', `v${i}`, profiles(i)));
    const { store } = memoryReferenceStore([...ownSets, ...promotedSets]);
    const loads: string[] = [];
    const counted = {
      ...store,
      latest: (model: string, version: string) => {
        loads.push(`${model}/${version}`);
        return store.latest(model, version);
      },
    };
    const cache = new ReferenceCache(counted, () => NOW, { maxEntries });
    await cache.preload();
    const promotedAt = (v: number) => 1_000 * (v + 1);
    for (const s of promotedSets) await cache.promoted(s.model, s.version, promotedAt(Number(s.version.slice(1))));
    loads.length = 0;
    // Every canary has events from before the first promotion (each model needs all 20 lenders: 100
    // in all), the own-reference versions come last.
    await cache.ensure([
      ...batchPairs(
        Array.from({ length: models }, (_, m): [string, string] => [`m${m}`, 'canary']),
        promotedAt(0),
      ),
      ...batchPairs(
        ownSets.map((s): [string, string] => [s.model, s.version]),
        0,
      ),
    ]);
    expect(new Set(loads).size).toBe(loads.length); // nothing loaded twice
    expect(loads.length).toBeLessThanOrEqual(maxEntries);
    expect(cache.size).toBeLessThanOrEqual(maxEntries);
    for (const s of ownSets) expect(cache.resolve(s.model, s.version, 0)?.referenceId).toBe(s.referenceId);
    // Lenders measured per model, by promotion (newest first): the slots left after the own
    // references, shared out newest first across models.
    const lendersHeld = Array.from({ length: models }, (_, m) => {
      const measured: number[] = [];
      for (let v = promotionsPerModel - 1; v >= 0; v--)
        if (cache.resolve(`m${m}`, 'canary', promotedAt(v))?.version === `v${v}`) measured.push(v);
      return measured;
    });
    const slots = maxEntries - ownSets.length;
    expect(lendersHeld.flat()).toHaveLength(slots);
    for (const held of lendersHeld) {
      expect(held[0]).toBe(promotionsPerModel - 1); // each model's newest
      expect(held.length).toBeGreaterThanOrEqual(Math.floor(slots / models));
      // A run from the newest down: no older lender held in place of a newer one.
      expect(held).toEqual(held.map((_, i) => promotionsPerModel - 1 - i));
    }
  });

  it('a promoted version without a reference leaves the version promoted before it in force', async () => {
    const v1 = referenceSet('m', 'v1', profiles(0));
    const { store } = memoryReferenceStore([v1]);
    const cache = new ReferenceCache(store, () => NOW);
    await cache.preload();
    await cache.promoted('m', 'v1', 1_000);
    await cache.promoted('m', 'v2', 2_000); // no reference stored for v2
    await cache.ensure(batchPairs([['m', 'canary']], 3_000));
    expect(cache.resolve('m', 'canary', 3_000)?.referenceId).toBe(v1.referenceId);
    // Once v2's reference is stored, windows from then on are measured on it.
    const v2 = referenceSet('m', 'v2', profiles(1));
    await store.save(v2);
    await cache.promoted('m', 'v2', 2_000);
    await cache.ensure(batchPairs([['m', 'canary']], 3_000));
    expect(cache.resolve('m', 'canary', 3_000)?.referenceId).toBe(v2.referenceId);
  });

  it('a promoted version without a reference is unreferenced for its own events; a canary still borrows', async () => {
    const v1 = referenceSet('m', 'v1', profiles(0));
    const { store, calls } = memoryReferenceStore([v1, referenceSet('o', 'a', profiles(0))]);
    const cache = new ReferenceCache(store, () => NOW, { maxEntries: 1 });
    await cache.preload();
    await cache.promoted('m', 'v1', 1_000);
    await cache.promoted('m', 'v2', 2_000); // e.g. a rollback tool: no reference stored for v2
    await cache.ensure(batchPairs([['o', 'a']], 3_000)); // the LRU (one set) evicts v1
    const loads = calls.latest;
    await cache.ensure(batchPairs([['m', 'v2']], 3_000));
    expect(calls.latest).toBe(loads); // v2 borrows nothing: no lender loaded for it
    // Measured on v1's training distribution, a retrained v2 flagged drift that is not there.
    expect(cache.resolve('m', 'v2', 3_000)).toBeUndefined();
    await cache.ensure(batchPairs([['m', 'canary']], 3_000));
    expect(cache.resolve('m', 'canary', 3_000)?.referenceId).toBe(v1.referenceId);
    expect(cache.resolve('m', 'v2', 3_000)).toBeUndefined();
  });
});

describe('stage one: the windows a batch holds lenders for are those its events are counted in', () => {
  /** Stage one on `references`, recording per batch the pairs `ensure` got and each `resolve` window and answer. */
  function recordedStageOne(references: ReferenceCache, progress = memoryProgress(), latenessMs = 0) {
    const ensured: BatchPair[][] = [];
    const resolved: Array<Array<{ pair: string; window: number; version: string | undefined }>> = [];
    const ensure = references.ensure.bind(references);
    const resolve = references.resolve.bind(references);
    references.ensure = async (pairs) => {
      const batch = [...pairs].map((p) => ({ ...p }));
      ensured.push(batch);
      resolved.push([]);
      await ensure(batch);
    };
    references.resolve = (model, version, window) => {
      const set = resolve(model, version, window);
      resolved.at(-1)?.push({ pair: `${model}/${version}`, window, version: set?.version });
      return set;
    };
    const { stageOne } = minuteStageOne(references, { latenessMs, now: () => NOW, progress });
    /** Per batch: each pair's earliest window as `ensure` got it, and as `add` resolved its events. */
    const earliest = (b: number) => {
      const given = new Map(ensured[b]!.map((p) => [`${p.model}/${p.version}`, p.earliestWindowStart]));
      const counted = new Map<string, number>();
      for (const { pair, window } of resolved[b]!) counted.set(pair, Math.min(window, counted.get(pair) ?? window));
      return { given, counted };
    };
    return { stageOne, earliest, resolved };
  }

  it('late, ahead, retried and replayed events: each pair from the earliest window add counts it in', async () => {
    const { store } = memoryReferenceStore([referenceSet('m', 'v1', profiles(0))]);
    const references = new ReferenceCache(store, () => NOW);
    await references.preload();
    await references.promoted('m', 'v1', NOW - 24 * 60 * MINUTE);
    const progress = memoryProgress();
    const { stageOne, earliest } = recordedStageOne(references, progress);
    // The log's end as Kafka reports it: past every offset below (a restored offset beyond it would
    // be another log's).
    const ctx = { topic: 'p', partition: 0, highWatermark: '5' };
    const open = windowStartOf(NOW - 1_000, MINUTE);
    const batches = [
      [predictionRecord('m', 'canary', NOW - 1_000, 0)],
      // Late by 30 minutes (counted in the open window); dated 30 minutes ahead (in the horizon's).
      [predictionRecord('m', 'late', NOW - 30 * MINUTE, 1), predictionRecord('m', 'ahead', NOW + 30 * MINUTE, 2)],
      // Retried with one more: offsets 1 and 2 were applied (skipped), only offset 3 is counted.
      [
        predictionRecord('m', 'late', NOW - 30 * MINUTE, 1),
        predictionRecord('m', 'ahead', NOW + 30 * MINUTE, 2),
        predictionRecord('m', 'late', NOW - 1_500, 3),
      ],
    ];
    for (const batch of batches) await stageOne.process(batch, ctx);
    for (let b = 0; b < batches.length; b++) {
      const { given, counted } = earliest(b);
      expect(given).toEqual(counted);
    }
    expect(earliest(1).counted).toEqual(
      new Map([
        ['m/late', open],
        ['m/ahead', windowStartOf(NOW + 60_000, MINUTE)],
      ]),
    );

    // A restart: the new owner replays from the committed offset; events in windows the previous
    // owner emitted are replayed (counted by it), not placed in any window.
    await stageOne.process([predictionRecord('m', 'canary', NOW + 59_000, 4)], ctx); // closes `open`, saves it
    const restarted = recordedStageOne(references, progress);
    await restarted.stageOne.process([predictionRecord('m', 'late', NOW - 30 * MINUTE, 1)], ctx);
    expect(restarted.earliest(0)).toEqual({ given: new Map(), counted: new Map() });
  });

  it('one late event of a model holds no lender of its long-closed window: another model keeps its own', async () => {
    const promotedA: ReferenceSet[] = Array.from({ length: 20 }, (_, i) => referenceSet('A', `a${i}`, profiles(i)));
    const promotedB = [0, 1, 2].map((i) => referenceSet('B', `b${i}`, profiles(i)));
    const { store } = memoryReferenceStore([...promotedA, ...promotedB]);
    const references = new ReferenceCache(store, () => NOW, { maxEntries: 4, preloadEntries: 0 });
    await references.preload();
    for (const [i, s] of promotedA.entries()) await references.promoted('A', s.version, NOW - 40 * MINUTE + i * MINUTE);
    for (const [i, at] of [9, 5, 3].entries()) await references.promoted('B', `b${i}`, NOW - at * MINUTE);
    const { stageOne, resolved } = recordedStageOne(references, memoryProgress(), 10 * MINUTE);
    const ctx = { topic: 'p', partition: 0, highWatermark: '0' };
    await stageOne.process([predictionRecord('B', 'canary', NOW - 1_000, 0)], ctx); // watermark: NOW - 10 min 1 s
    // A's event is 30 minutes late: counted in the open window at the watermark, where a19
    // (promoted 21 minutes ago) is in force. B's is on time, in a window where b0 is in force:
    // it needs b0, b1 and b2 held, a19 the fourth. Holding A's lenders since its own window
    // (a9…a19, newest first across models) took b0's place: B's event was unreferenced.
    await stageOne.process(
      [
        predictionRecord('A', 'canary', NOW - 30 * MINUTE, 1),
        predictionRecord('B', 'canary', NOW - 8 * MINUTE + 1_000, 2),
      ],
      ctx,
    );
    expect(resolved[1]).toEqual([
      { pair: 'A/canary', window: windowStartOf(NOW - 10 * MINUTE - 1_000, MINUTE), version: 'a19' },
      { pair: 'B/canary', window: NOW - 8 * MINUTE, version: 'b0' },
    ]);
  });
});
