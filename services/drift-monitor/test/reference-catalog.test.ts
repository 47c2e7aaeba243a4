import { type ReferenceSet, referenceSet } from '@driftline/drift';
import { buildNumericProfile } from '@driftline/stats';
import type { ReferenceStore } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { ReferenceCache } from '../src/reference-cache.js';
import { batchPairs } from './support.js';

const profiles = new Map([['x', buildNumericProfile(Array.from({ length: 20 }, (_, i) => i))]]);
const MODELS = 1_000;
const VERSIONS = 50; // 1,000 models retrained 50 times: 50,000 stored references
const idOf = (model: string, version: string) => `ref-${model}-${version}`;
const stored = (model: string, version: string) => /^m\d+$/.test(model) && /^v\d+$/.test(version);

/**
 * A store of MODELS × VERSIONS references, none built until loaded. It counts the catalog rows it
 * hands out: those of the pairs asked about (every pair when asked about none, as the whole-catalog
 * read was).
 */
function manyVersionsStore() {
  const calls = { catalog: 0, catalogRows: [] as number[], latest: 0 };
  const setOf = (model: string, version: string): ReferenceSet => ({
    ...referenceSet(model, version, profiles),
    referenceId: idOf(model, version),
  });
  const store: ReferenceStore = {
    save: async () => {},
    latest: async (model, version) => {
      calls.latest++;
      return stored(model, version) ? setOf(model, version) : undefined;
    },
    byId: async () => undefined,
    newest: async (limit) =>
      Array.from({ length: Math.min(limit, MODELS) }, (_, m) => setOf(`m${MODELS - 1 - m}`, `v${VERSIONS - 1}`)),
    catalog: async (asked?: ReadonlyArray<{ model: string; version: string }>) => {
      calls.catalog++;
      const pairs =
        asked ??
        Array.from({ length: MODELS * VERSIONS }, (_, i) => ({
          model: `m${i % MODELS}`,
          version: `v${Math.floor(i / MODELS)}`,
        }));
      const out = pairs
        .filter((p) => stored(p.model, p.version))
        .map((p) => ({ model: p.model, version: p.version, referenceId: idOf(p.model, p.version) }));
      calls.catalogRows.push(out.length);
      return out;
    },
  };
  return { store, calls };
}

describe('ReferenceCache: the catalog of a store that keeps every version ever trained', () => {
  it('holds answers for the pairs it sees only, within its bound, and resolves as before', async () => {
    const { store, calls } = manyVersionsStore();
    let now = 1_000_000;
    const cache = new ReferenceCache(store, () => now, { maxCatalogEntries: 500 });
    await cache.preload();
    await cache.promoted('m0', `v${VERSIONS - 1}`, 0);
    await cache.promoted('m1', 'v10', 0);
    await cache.promoted('m1', 'v20', 100);
    const perBatch = 100 + 2;
    let seen = 0;
    for (let batch = 0; batch < 60; batch++) {
      now += 5_000; // 5 minutes in all: periodic refreshes included
      // 100 stored versions of 100 models (old and recent ones; 6,000 distinct pairs in all), a
      // canary of m0 and an unknown version of m1, which borrow the version serving.
      const pairs: Array<[string, string]> = [];
      for (let i = 0; i < 100; i++) {
        const n = (batch * 100 + i) * 7_919;
        pairs.push([`m${2 + (n % (MODELS - 2))}`, `v${n % VERSIONS}`]);
      }
      pairs.push(['m0', 'canary'], ['m1', `unknown-${batch}`]);
      await cache.ensure(batchPairs(pairs, 1_000));
      seen += pairs.length;
      // What the store handed over last: the batch's pairs' answers (the whole catalog: 50,000 rows).
      expect(calls.catalogRows.at(-1) ?? 0).toBeLessThanOrEqual(perBatch + 3);
      for (const [model, version] of pairs.slice(0, 100))
        expect(cache.resolve(model, version, 1_000)?.referenceId).toBe(idOf(model, version));
      expect(cache.resolve('m0', 'canary', 1_000)?.referenceId).toBe(idOf('m0', `v${VERSIONS - 1}`));
      expect(cache.resolve('m1', `unknown-${batch}`, 1_000)?.referenceId).toBe(idOf('m1', 'v20'));
      expect(cache.resolve('m2', 'never-stored', 1_000)).toBeUndefined();
      // Bounded by what is seen and the bound, not by what is stored (the whole catalog: 50,000).
      expect(cache.catalogSize).toBeLessThanOrEqual(500 + perBatch + 3);
      expect(cache.size).toBeLessThanOrEqual(1_000);
    }
    expect(seen).toBe(60 * perBatch);
    // Each read hands over the answers of the batch's pairs at most (the whole catalog: 50,000 rows).
    expect(Math.max(...calls.catalogRows)).toBeLessThanOrEqual(perBatch + 3);
    expect(calls.catalog).toBeLessThanOrEqual(60);
  });

  it('an answer the bound dropped is asked again, and a batch within the trust asks nothing', async () => {
    const { store, calls } = manyVersionsStore();
    let now = 1_000_000;
    const cache = new ReferenceCache(store, () => now, { maxCatalogEntries: 10, preloadEntries: 0 });
    await cache.preload();
    const first = batchPairs([['m5', 'v3']], 0);
    await cache.ensure(first);
    expect(cache.resolve('m5', 'v3', 0)?.referenceId).toBe(idOf('m5', 'v3'));
    const reads = calls.catalog;
    now += 1_000;
    await cache.ensure(first); // within the refresh interval: trusted
    expect(calls.catalog).toBe(reads);
    for (let v = 10; v < 40; v++) await cache.ensure(batchPairs([['m6', `v${v}`]], 0)); // 30 other pairs
    expect(cache.catalogSize).toBeLessThanOrEqual(11);
    await cache.ensure(first); // dropped by the bound: asked again, the same answer
    expect(calls.catalog).toBe(reads + 31);
    expect(cache.resolve('m5', 'v3', 0)?.referenceId).toBe(idOf('m5', 'v3'));
  });
});
