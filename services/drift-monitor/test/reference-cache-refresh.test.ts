import { decodePartials, type ReferenceSet, referenceSet } from '@driftline/drift';
import type { DecodedRecord } from '@driftline/kafka';
import type { PredictionEvent } from '@driftline/schemas';
import { buildNumericProfile } from '@driftline/stats';
import type { ReferenceStore } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { ReferenceCache } from '../src/reference-cache.js';
import { batchPairs, memoryReferenceStore, minuteStageOne, predictionRecord } from './support.js';

const profiles = (shift: number) =>
  new Map([['x', buildNumericProfile(Array.from({ length: 100 }, (_, i) => i + shift))]]);

describe('ReferenceCache: a batch keeps its own references across a catalog refresh', () => {
  it("a re-stored version's events are measured on its new reference, none refused by the borrowed cap", async () => {
    const promoted = referenceSet('m', 'v1', profiles(0));
    const firstV2 = referenceSet('m', 'v2', profiles(0.1)); // a canary with a reference of its own
    const { store } = memoryReferenceStore([promoted, firstV2]);
    let clock = Date.UTC(2024, 11, 2, 12, 0, 0);
    const references = new ReferenceCache(store, () => clock);
    await references.preload();
    await references.promoted('m', 'v1', 0);
    const { stageOne, sent } = minuteStageOne(references, { latenessMs: 0, now: () => clock, maxBorrowedVersions: 1 });
    let offset = 0;
    const event = (version: string, eventTime: number) => predictionRecord('m', version, eventTime, offset++);
    const ctx = { topic: 'p', partition: 0, highWatermark: '0' };
    const w = Math.floor(clock / 60_000) * 60_000 - 60_000; // an open window
    const v2Offsets = new Set<string>();
    const v2 = (eventTime: number) => {
      const e = event('v2', eventTime);
      v2Offsets.add(e.record.offset);
      return e;
    };
    const refusedV2: string[] = [];
    const run = async (batch: DecodedRecord<PredictionEvent>[]) => {
      const result = await stageOne.process(batch, ctx);
      for (const d of result?.deadLetters ?? []) if (v2Offsets.has(d.record.offset)) refusedV2.push(d.reason);
    };

    // v2 in the window before W, and an invented version that takes W's one borrowed slot.
    await run([v2(w - 30_000), event('invented-1', w + 1_000)]);
    // v2's reference is re-stored; the catalog grows older than its 250 ms TTL.
    const secondV2 = referenceSet('m', 'v2', profiles(0.2));
    await store.save(secondV2);
    clock += 300;
    // v2's first event in W, then an unknown version whose look-up re-reads the catalog.
    await run([v2(w + 2_000), event('invented-2', w + 3_000)]);
    await run([v2(w + 4_000), v2(w + 5_000), v2(w + 6_000), event('v1', w + 150_000)]); // closes W

    expect(refusedV2).toEqual([]);
    const v2InW = sent
      .map((m) => decodePartials(m.value))
      .filter((p) => p.type === 'partial' && p.windowStart === w && p.version === 'v2');
    expect(v2InW.map((p) => (p.type === 'partial' ? [p.events, p.referenceId] : []))).toEqual([
      [4, secondV2.referenceId],
    ]);
  });

  it('a refresh in the middle of a batch leaves the pairs already checked on their latest own set, loaded once', async () => {
    const promoted = referenceSet('m', 'v1', profiles(0));
    const { store, calls } = memoryReferenceStore([promoted, referenceSet('m', 'v2', profiles(0.1))]);
    let now = 1_000_000;
    const cache = new ReferenceCache(store, () => now);
    await cache.preload();
    await cache.promoted('m', 'v1', 0);
    const restored = referenceSet('m', 'v2', profiles(0.2));
    await store.save(restored);
    now += 300; // past the catalog TTL, within its periodic refresh
    const loadsBefore = calls.latest;
    const batch: Array<[string, string]> = [
      ['m', 'v2'],
      ['m', 'unknown'],
    ];
    await cache.ensure(batchPairs(batch, 1));
    expect(cache.resolve('m', 'v2', 1)?.referenceId).toBe(restored.referenceId);
    expect(cache.resolve('m', 'unknown', 1)?.version).toBe('v1');
    expect(calls.latest - loadsBefore).toBe(1); // the re-stored v2 only
    now += 100;
    await cache.ensure(batchPairs(batch, 1)); // the next batch: nothing loaded again
    expect(calls.latest - loadsBefore).toBe(1);
    expect(cache.resolve('m', 'v2', 1)?.referenceId).toBe(restored.referenceId);
  });

  it('a batch with more own-reference pairs than the cache holds: bounded, never borrowed, no reload per batch', async () => {
    const sets = ['v0', 'v1', 'v2', 'v3'].map((v, i) => referenceSet('m', v, profiles(i)));
    const { store, calls } = memoryReferenceStore(sets);
    const cache = new ReferenceCache(store, () => 0, { maxEntries: 2 });
    await cache.preload();
    await cache.promoted('m', 'v0', 0);
    const batch: Array<[string, string]> = [
      ['m', 'v1'],
      ['m', 'v2'],
      ['m', 'v3'],
    ];
    await cache.ensure(batchPairs(batch, 1));
    const loadsBefore = calls.latest;
    await cache.ensure(batchPairs(batch, 1));
    expect(calls.latest).toBe(loadsBefore); // the sets it holds are not loaded again, batch after batch
    // models.v1 re-announces v0 while the batch runs: the LRU evicts one of the batch's sets.
    await cache.promoted('m', 'v0', 0);
    expect(cache.size).toBe(2);
    expect(cache.resolve('m', 'v1', 1)?.version).toBe('v1');
    expect(cache.resolve('m', 'v2', 1)?.version).toBe('v2');
    // Past the bound: unreferenced, never measured on (or counted as borrowing) v0's reference.
    expect(cache.resolve('m', 'v3', 1)).toBeUndefined();
    expect(cache.resolve('m', 'no-reference', 1)?.version).toBe('v0');
  });

  it('lenders never crowd out a version with its own reference: 16 models × 64 promotions, then other/v1', async () => {
    const small = new Map([['x', buildNumericProfile(Array.from({ length: 20 }, (_, i) => i))]]);
    const other = referenceSet('other', 'v1', small); // saved first: not among those preloaded
    const promotedSets: ReferenceSet[] = [];
    for (let m = 0; m < 16; m++) for (let v = 0; v < 64; v++) promotedSets.push(referenceSet(`m${m}`, `v${v}`, small));
    const { store, calls } = memoryReferenceStore([other, ...promotedSets]);
    const loads: string[] = [];
    const counted: ReferenceStore = {
      ...store,
      latest: (model, version) => {
        loads.push(`${model}/${version}`);
        return store.latest(model, version);
      },
    };
    let now = 1_000_000;
    const cache = new ReferenceCache(counted, () => now);
    await cache.preload();
    for (const s of promotedSets) await cache.promoted(s.model, s.version, Number(s.version.slice(1)));
    // Each model's canary borrows (no reference of its own); other/v1 comes last in the batch.
    const batch: Array<[string, string]> = [
      ...Array.from({ length: 16 }, (_, m): [string, string] => [`m${m}`, 'canary']),
      ['other', 'v1'],
    ];
    const perBatch: Array<{ loads: number; catalogReads: number }> = [];
    loads.length = 0;
    for (let b = 0; b < 3; b++) {
      now += 300; // past the catalog TTL: the unknown canaries re-read it, once per batch
      const before = { loads: loads.length, catalog: calls.catalog };
      await cache.ensure(batchPairs(batch, 1_000));
      const loadedNow = loads.slice(before.loads);
      expect(new Set(loadedNow).size).toBe(loadedNow.length); // nothing loaded twice in a batch
      perBatch.push({ loads: loadedNow.length, catalogReads: calls.catalog - before.catalog });
      expect(cache.resolve('other', 'v1', 1_000)?.referenceId).toBe(other.referenceId);
      for (let m = 0; m < 16; m++) expect(cache.resolve(`m${m}`, 'canary', 1_000)?.version).toBe('v63');
      expect(cache.resolve('m15', 'canary', 10)?.version).toBe('v10'); // an older window: its lender is still in memory
    }
    expect(perBatch.every((b) => b.catalogReads <= 1)).toBe(true);
    // other/v1 loaded once in all; the lenders the promotions loaded are not loaded again.
    expect(loads.filter((p) => p === 'other/v1')).toEqual(['other/v1']);
    expect(perBatch.slice(1).map((b) => b.loads)).toEqual([0, 0]);
    expect(perBatch[0]!.loads).toBeLessThanOrEqual(batch.length);
  });

  it('a version whose reference was deleted since the catalog read borrows the promoted one in the same batch', async () => {
    const lender = referenceSet('m', 'v1', profiles(0));
    const { store, saved } = memoryReferenceStore([
      lender,
      referenceSet('m', 'v2', profiles(0.1)),
      referenceSet('o', 'a', profiles(0)),
    ]);
    const cache = new ReferenceCache(store, () => 0, { maxEntries: 1 });
    await cache.preload();
    await cache.promoted('m', 'v1', 0);
    await cache.ensure(batchPairs([['o', 'a']], 1)); // the LRU (one set) evicts the lender
    saved.splice(
      saved.findIndex((s) => s.version === 'v2'),
      1,
    ); // deleted: the catalog still names it
    await cache.ensure(batchPairs([['m', 'v2']], 1));
    expect(cache.resolve('m', 'v2', 1)?.referenceId).toBe(lender.referenceId);
  });

  it('a deleted reference leaves a running instance at the next catalog read: it resolves as a fresh one', async () => {
    const v1 = referenceSet('m', 'v1', profiles(0));
    const v2 = referenceSet('m', 'v2', profiles(0.1));
    const v3 = referenceSet('m', 'v3', profiles(0.2));
    const { store, saved } = memoryReferenceStore([v1, v2, v3]);
    let now = 1_000_000;
    const started = async () => {
      const cache = new ReferenceCache(store, () => now);
      await cache.preload();
      await cache.promoted('m', 'v1', 0);
      await cache.promoted('m', 'v3', 500);
      return cache;
    };
    const running = await started();
    const batch = batchPairs(
      [
        ['m', 'v2'],
        ['m', 'canary'],
      ],
      1_000,
    );
    await running.ensure(batch);
    expect(running.resolve('m', 'v2', 1_000)?.referenceId).toBe(v2.referenceId);
    expect(running.resolve('m', 'canary', 1_000)?.referenceId).toBe(v3.referenceId);
    // v2's own reference and the lender v3's are deleted; the periodic catalog read sees it.
    for (const gone of [v2, v3]) saved.splice(saved.indexOf(gone), 1);
    now += 61_000;
    await running.ensure(batch);
    const fresh = await started();
    await fresh.ensure(batch);
    for (const version of ['v2', 'canary']) {
      expect(fresh.resolve('m', version, 1_000)?.referenceId).toBe(v1.referenceId);
      expect(running.resolve('m', version, 1_000)?.referenceId).toBe(v1.referenceId);
    }
  });

  it('a set loaded while a catalog read runs is kept by it (the read may predate its save)', async () => {
    const v1 = referenceSet('m', 'v1', profiles(0));
    const { store } = memoryReferenceStore([v1]);
    let releaseRead = () => {};
    let gated = false;
    const slowCatalog: ReferenceStore = {
      ...store,
      catalog: async (asked) => {
        const pairs = await store.catalog(asked); // read now, answered later
        if (gated) await new Promise<void>((resolve) => (releaseRead = resolve));
        return pairs;
      },
    };
    let now = 1_000_000;
    const cache = new ReferenceCache(slowCatalog, () => now);
    await cache.preload();
    gated = true;
    now += 61_000;
    const reading = cache.ensure(batchPairs([['o', 'x']], 0)); // the periodic read starts
    const v2 = referenceSet('m', 'v2', profiles(0.1));
    await store.save(v2); // a retrain, then its promotion is read while the catalog read runs
    await cache.promoted('m', 'v2', 500);
    releaseRead();
    await reading;
    expect(cache.resolve('m', 'v2', 1_000)?.referenceId).toBe(v2.referenceId);
    expect(cache.resolve('m', 'canary', 1_000)?.referenceId).toBe(v2.referenceId);
  });

  it('a promotion whose reference was deleted since the catalog read: resolve steps back to the one before at once', async () => {
    const v2 = referenceSet('m', 'v2', profiles(0));
    const v3 = referenceSet('m', 'v3', profiles(0.1));
    const { store, saved } = memoryReferenceStore([v3, v2]);
    const cache = new ReferenceCache(store, () => 1_000_000, { preloadEntries: 1 });
    await cache.preload(); // the catalog names v2 and v3
    await cache.promoted('m', 'v2', 1_000);
    saved.splice(saved.indexOf(v3), 1); // v3's reference deleted after the catalog read
    await cache.ensure(batchPairs([['m', 'canary']], 3_000));
    expect(cache.resolve('m', 'canary', 3_000)?.referenceId).toBe(v2.referenceId);
    await cache.promoted('m', 'v3', 2_000); // models.v1, between ensure and the batch's events
    expect(cache.resolve('m', 'canary', 3_000)?.referenceId).toBe(v2.referenceId);
  });
});
