import { type ReferenceSet, referenceSet } from '@driftline/drift';
import { buildNumericProfile } from '@driftline/stats';
import type { ReferenceStore } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { ReferenceCache } from '../src/reference-cache.js';
import { batchPairs, memoryReferenceStore } from './support.js';

const profile = buildNumericProfile(Array.from({ length: 100 }, (_, i) => i));
const refOf = (model: string, version: string): ReferenceSet => referenceSet(model, version, new Map([['x', profile]]));

/** A store of the given references that counts every query the cache makes. */
function countingStore(sets: ReferenceSet[]) {
  const calls = { latest: 0, catalog: 0, newest: 0 };
  const store: ReferenceStore = {
    save: async (s) => {
      sets.push(s);
    },
    latest: async (model, version) => {
      calls.latest++;
      return sets.filter((s) => s.model === model && s.version === version).at(-1);
    },
    byId: async (id) => sets.find((s) => s.referenceId === id),
    newest: async (limit) => {
      calls.newest++;
      return limit > 0 ? sets.slice(-limit).reverse() : [];
    },
    catalog: async () => {
      calls.catalog++;
      // The latest reference id of each pair (the last saved).
      const latest = new Map(sets.map((s) => [`${s.model}/${s.version}`, s]));
      return [...latest.values()].map((s) => ({ model: s.model, version: s.version, referenceId: s.referenceId }));
    },
  };
  return { store, calls };
}

describe('ReferenceCache bounds', () => {
  it('a flood of unknown versions costs neither memory nor a query per version', async () => {
    const { store, calls } = countingStore([refOf('m', 'v1')]);
    let now = 1_000_000;
    const cache = new ReferenceCache(store, () => now, { maxEntries: 50, catalogTtlMs: 30_000 });
    await cache.preload();
    // 20,000 predictions with random versions of the known model and of random models, in 200 batches.
    for (let batch = 0; batch < 200; batch++) {
      const pairs: Array<[string, string]> = [];
      for (let i = 0; i < 100; i++) pairs.push(i % 2 === 0 ? ['m', `rnd-${batch}-${i}`] : [`model-${batch}-${i}`, 'v']);
      pairs.push(['m', 'v1']);
      await cache.ensure(batchPairs(pairs, 0));
      now += 100; // 20 s in all: within one catalog TTL
    }
    expect(calls.latest).toBe(0); // v1 came with the preload; nothing else exists
    // One catalog query per batch, for its 100 pairs never seen (the whole catalog was read once,
    // then trusted for the TTL: it grew with every version ever stored; see reference-catalog.test.ts).
    expect(calls.catalog).toBe(200);
    expect(cache.catalogSize).toBeLessThanOrEqual(10_000 + 101); // maxCatalogEntries, plus the last batch's
    expect(cache.size).toBe(1);
    expect(cache.resolve('m', 'v1', 0)?.version).toBe('v1');
    expect(cache.resolve('m', 'rnd-3-4', 0)).toBeUndefined();
  });

  it('an unknown pair is re-checked once per catalog TTL, for all pairs at once', async () => {
    const sets = [refOf('m', 'v1')];
    const { store, calls } = countingStore(sets);
    let now = 1_000_000;
    const cache = new ReferenceCache(store, () => now, { catalogTtlMs: 30_000 });
    await cache.preload();
    await cache.ensure(batchPairs([['m', 'v2']], 0));
    expect(cache.resolve('m', 'v2', 0)).toBeUndefined();
    await store.save(refOf('m', 'v2')); // stored after start-up (e.g. `driftline reference`)
    now += 10_000;
    await cache.ensure(batchPairs([['m', 'v2']], 0));
    expect(cache.resolve('m', 'v2', 0)).toBeUndefined(); // negative answer still fresh
    now += 20_000;
    await cache.ensure(
      batchPairs(
        [
          ['m', 'v2'],
          ['m', 'v3'],
          ['x', 'y'],
        ],
        0,
      ),
    );
    expect(cache.resolve('m', 'v2', 0)?.version).toBe('v2');
    expect(calls.catalog).toBe(2); // the preload's, then one for the three pairs
    expect(calls.latest).toBe(1);
  });

  it('a reference re-stored for a version in memory is loaded after the next catalog refresh', async () => {
    const sets = [refOf('m', 'v1')];
    const { store, calls } = countingStore(sets);
    let now = 1_000_000;
    const cache = new ReferenceCache(store, () => now, { catalogRefreshMs: 60_000 });
    await cache.preload();
    const first = cache.resolve('m', 'v1', 0)!;
    const restored = referenceSet('m', 'v1', new Map([['y', profile]])); // new profiles for v1
    await store.save(restored);
    now += 30_000;
    await cache.ensure(batchPairs([['m', 'v1']], 0));
    expect(cache.resolve('m', 'v1', 0)?.referenceId).toBe(first.referenceId); // within the refresh
    now += 30_000;
    await cache.ensure(batchPairs([['m', 'v1']], 0));
    expect(cache.resolve('m', 'v1', 0)?.referenceId).toBe(restored.referenceId);
    expect(calls.catalog).toBe(1); // the refresh's: start-up asks none (each set it loads is its pair's latest)
    now += 60_000;
    await cache.ensure(batchPairs([['m', 'v1']], 0)); // unchanged: nothing reloaded
    expect(calls.latest).toBe(1);
  });

  it('holds at most maxEntries reference sets and reloads an evicted one on demand', async () => {
    const sets = Array.from({ length: 30 }, (_, i) => refOf('m', `v${i}`));
    const { store, calls } = countingStore(sets);
    const cache = new ReferenceCache(store, () => 0, { maxEntries: 10 });
    await cache.preload();
    expect(cache.size).toBe(10);
    for (let i = 0; i < 30; i++) {
      await cache.ensure(batchPairs([['m', `v${i}`]], 0));
      expect(cache.resolve('m', `v${i}`, 0)?.version).toBe(`v${i}`);
      expect(cache.size).toBeLessThanOrEqual(10);
    }
    expect(calls.latest).toBe(30); // the 20 not kept at start-up, then the 10 they evicted
  });

  it('start-up loads the references saved last, not every one ever saved; the others on demand', async () => {
    const sets = Array.from({ length: 5_000 }, (_, i) => refOf('m', `v${i}`)); // a retrain a day for 13 years
    const { store, calls } = countingStore(sets);
    const cache = new ReferenceCache(store, () => 0, { preloadEntries: 16 });
    expect(await cache.preload()).toBe(16);
    expect(cache.size).toBe(16);
    expect(cache.resolve('m', 'v4999', 0)?.version).toBe('v4999');
    expect(calls.latest).toBe(0);
    await cache.ensure(batchPairs([['m', 'v7']], 0)); // an old version still scored somewhere: in the catalog, loaded now
    expect(cache.resolve('m', 'v7', 0)?.version).toBe('v7');
    expect(calls.latest).toBe(1);
  });

  it('preloadEntries 0: start-up loads no reference set (the test stores too: slice(-0) is all of them)', async () => {
    for (const store of [memoryReferenceStore([refOf('m', 'v1')]).store, countingStore([refOf('m', 'v1')]).store]) {
      expect(await store.newest(0)).toEqual([]);
      const cache = new ReferenceCache(store, () => 0, { preloadEntries: 0 });
      expect(await cache.preload()).toBe(0);
      expect(cache.size).toBe(0);
    }
  });

  it('a version without a reference of its own falls back to the promoted one, reloaded when evicted', async () => {
    const sets = [refOf('m', 'v1'), refOf('other', 'a'), refOf('other', 'b')];
    const { store } = countingStore(sets);
    const cache = new ReferenceCache(store, () => 0, { maxEntries: 1, maxSpellsPerModel: 2 });
    await cache.promoted('m', 'v1', 100);
    await cache.ensure(batchPairs([['other', 'a']], 0));
    await cache.ensure(batchPairs([['other', 'b']], 0)); // evicts m/v1
    await cache.ensure(batchPairs([['m', 'canary']], 50));
    expect(cache.resolve('m', 'canary', 200)?.version).toBe('v1');
    expect(cache.resolve('m', 'canary', 50)).toBeUndefined();
    // Production spells kept per model are bounded: the oldest go first.
    await cache.promoted('m', 'v2', 300);
    await cache.modelEvent('m', { kind: 'ROLLED_BACK', version: 'v2', event_time: 400, previous_version: 'v1' });
    expect(cache.resolve('m', 'canary', 200)).toBeUndefined();
    expect(cache.resolve('m', 'canary', 350)).toBeUndefined(); // v2 has no reference, v1's spell from 100 is gone
    expect(cache.resolve('m', 'canary', 450)?.version).toBe('v1');
  });
});
