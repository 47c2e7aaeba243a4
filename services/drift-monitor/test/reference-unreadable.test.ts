import { ConfigError } from '@driftline/core';
import { type ReferenceSet, referenceSet } from '@driftline/drift';
import { buildNumericProfile } from '@driftline/stats';
import type { ReferenceStore } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { ReferenceCache } from '../src/reference-cache.js';
import { memoryReferenceStore, minuteStageOne, predictionRecord } from './support.js';

const profiles = () => new Map([['x', buildNumericProfile(Array.from({ length: 100 }, (_, i) => i))]]);
const REASON = 'reference_profiles[other/v1/x].profile.format: expected "driftline.profile/1"';

/**
 * A memory store whose sets with an id in `unreadable` do not parse, as the ClickHouse store
 * answers them: `latest` throws ConfigError, `newest` leaves them out and tells `skip`. Every
 * `latest` of a pair is counted (each is a ClickHouse query).
 */
function storeWithUnreadable(initial: ReferenceSet[], unreadable: Set<string>) {
  const memory = memoryReferenceStore(initial);
  const latestOf = new Map<string, number>();
  const store: ReferenceStore = {
    ...memory.store,
    latest: async (model, version) => {
      latestOf.set(`${model}/${version}`, (latestOf.get(`${model}/${version}`) ?? 0) + 1);
      const set = await memory.store.latest(model, version);
      if (set !== undefined && unreadable.has(set.referenceId)) throw new ConfigError(REASON.split(':')[0]!, 'bad');
      return set;
    },
    newest: async (limit, skip) => {
      const sets = await memory.store.newest(limit);
      for (const s of sets.filter((s) => unreadable.has(s.referenceId)))
        skip?.({ model: s.model, version: s.version, referenceId: s.referenceId, feature: 'x', reason: REASON });
      return sets.filter((s) => !unreadable.has(s.referenceId));
    },
  };
  return { store, saved: memory.saved, queries: (pair: string) => latestOf.get(pair) ?? 0 };
}

describe('ReferenceCache: a reference set that cannot be read is remembered, its events dead-lettered one by one', () => {
  const fraud = referenceSet('fraud', 'v1', profiles());
  const bad = { ...referenceSet('other', 'v1', profiles()), referenceId: 'bad-1' };
  const pairs = (w: number) => [
    { model: 'fraud', version: 'v1', earliestWindowStart: w },
    { model: 'other', version: 'v1', earliestWindowStart: w },
  ];

  it('left out at preload: no query for it by any batch, and `ensure` does not throw', async () => {
    const { store, queries } = storeWithUnreadable([fraud, bad], new Set(['bad-1']));
    let clock = 1_000_000;
    const references = new ReferenceCache(store, () => clock);
    const skipped: string[] = [];
    await references.preload((i) => skipped.push(i.referenceId));
    expect(skipped).toEqual(['bad-1']);
    for (let b = 0; b < 5; b++) {
      await references.ensure(pairs(0)); // threw CONFIG_INVALID for the batch, each time one query
      clock += 10_000; // within one catalog refresh interval (60 s)
    }
    expect(queries('other/v1')).toBe(0);
    expect(references.unreadableFor('other', 'v1', 0)).toMatchObject({ referenceId: 'bad-1', reason: REASON });
    expect(references.unreadableFor('fraud', 'v1', 0)).toBeUndefined();
    expect(references.resolve('fraud', 'v1', 0)?.referenceId).toBe(fraud.referenceId);
    // Past the interval it is read once more (a corrected set may have the same id), then not again.
    clock += 70_000;
    await references.ensure(pairs(0));
    await references.ensure(pairs(0));
    expect(queries('other/v1')).toBe(1);
  });

  it('found by a batch after start: one query, then none; a corrected reference saved again is loaded without a restart', async () => {
    const unreadable = new Set(['bad-1']);
    const { store, saved, queries } = storeWithUnreadable([fraud], unreadable);
    let clock = 1_000_000;
    const references = new ReferenceCache(store, () => clock);
    await references.preload();
    saved.push(bad); // stored by a trainer of another release while this instance runs
    clock += 70_000;
    await references.ensure(pairs(0));
    expect(queries('other/v1')).toBe(1);
    expect(references.unreadableFor('other', 'v1', 0)?.reason).toContain('profile.format');
    for (let b = 0; b < 5; b++) {
      clock += 10_000;
      await references.ensure(pairs(0));
    }
    expect(queries('other/v1')).toBe(1);

    // Stored again, readable: the catalog names a newer id, which is loaded and measured.
    const fixed = referenceSet('other', 'v1', profiles());
    saved.push(fixed);
    clock += 70_000;
    await references.ensure(pairs(0));
    expect(queries('other/v1')).toBe(2);
    expect(references.unreadableFor('other', 'v1', 0)).toBeUndefined();
    expect(references.resolve('other', 'v1', 0)?.referenceId).toBe(fixed.referenceId);
  });

  it('a corrected set stored again under the same id (its content hash) is read within a refresh interval, without a restart (found by a regression review)', async () => {
    const unreadable = new Set(['bad-1']);
    const { store, queries } = storeWithUnreadable([fraud, bad], unreadable);
    let clock = 1_000_000;
    const references = new ReferenceCache(store, () => clock);
    await references.preload();
    expect(references.unreadableFor('other', 'v1', 0)?.referenceId).toBe('bad-1');
    unreadable.delete('bad-1'); // `driftline reference` of this release on the same data: the same id
    clock += 10_000;
    await references.ensure(pairs(0));
    expect(references.unreadableFor('other', 'v1', 0)?.referenceId).toBe('bad-1'); // within the interval
    clock += 60_000;
    await references.ensure(pairs(0));
    expect(queries('other/v1')).toBe(1);
    expect(references.unreadableFor('other', 'v1', 0)).toBeUndefined();
    expect(references.resolve('other', 'v1', 0)?.referenceId).toBe('bad-1');
  });

  it("stage one dead-letters the unreadable set's events one by one (CONFIG_INVALID, naming it) and measures the rest of the batch", async () => {
    const { store, queries } = storeWithUnreadable([fraud, bad], new Set(['bad-1']));
    const clock = Date.UTC(2026, 0, 1, 12);
    const references = new ReferenceCache(store, () => clock);
    await references.preload();
    const { stageOne } = minuteStageOne(references, { latenessMs: 0, now: () => clock });
    const w = Math.floor(clock / 60_000) * 60_000 - 120_000;
    let offset = 0;
    const batch = Array.from({ length: 50 }, (_, i) =>
      predictionRecord(i % 10 === 0 ? 'other' : 'fraud', 'v1', w + i * 100, offset++),
    );
    const ctx = { topic: 'p', partition: 0, highWatermark: '0' };
    const result = await stageOne.process(batch, ctx); // threw CONFIG_INVALID for all 50
    const dead = result?.deadLetters ?? [];
    expect(dead.map((d) => Number(d.record.offset))).toEqual([0, 10, 20, 30, 40]);
    for (const d of dead) {
      expect(d.code).toBe('CONFIG_INVALID');
      expect(d.reason).toContain('bad-1');
      expect(d.reason).toContain(REASON);
    }
    expect(stageOne.openWindows()).toBe(1); // fraud's 45 events in w's window
    // A retry of the same batch (a later send failed) names the same dead letters, adds nothing.
    const again = await stageOne.process(batch, ctx);
    expect((again?.deadLetters ?? []).map((d) => Number(d.record.offset))).toEqual([0, 10, 20, 30, 40]);
    expect(queries('other/v1')).toBe(0);
  });
});
