import { DEFAULT_EVENT_TIME_BOUNDS } from '@driftline/core';
import {
  decodePartials,
  type OutboundPartials,
  type ReferenceSet,
  referenceSet,
  windowStartOf,
} from '@driftline/drift';
import { buildNumericProfile } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import { ReferenceCache } from '../src/reference-cache.js';
import { stageOneProcessor } from '../src/stage-one.js';
import { batchPairs, memoryProgress, memoryReferenceStore, predictionRecord } from './support.js';

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

    const sent: OutboundPartials[] = [];
    const stageOne = stageOneProcessor({
      spec: { sizeMs: MINUTE, latenessMs: 5 * MINUTE }, // `before` is still open when its events come
      references,
      progress: memoryProgress(),
      group: 'g',
      sourceTopic: 'p',
      sourcePartitions: 1,
      mergePartitions: 1,
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      now: () => NOW,
      decode: async () => {
        throw new Error('not used: events come decoded');
      },
      emit: async (messages) => {
        sent.push(...messages);
      },
    });
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
});
