import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { referenceSet } from '@driftline/drift';
import { buildNumericProfile } from '@driftline/stats';
import { uniqueName } from '@driftline/test-support';
import { createClickHouse, migrate, migrations, type ReferenceStore, warehouseOn } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { ReferenceCache } from '../src/reference-cache.js';
import { batchPairs } from './support.js';

/** One embedded ClickHouse per process: the tests' databases share its path. */
const path = mkdtempSync(join(tmpdir(), 'drift-catalog-'));

const N = 20_000;
const MODELS = 500; // 40 versions each: an auto-retraining deployment's table after a while
const model = (i: number) => `model-${String(i % MODELS).padStart(3, '0')}`;
const version = (i: number) => `2024-retrain-${String(Math.floor(i / MODELS)).padStart(4, '0')}`;
const idOf = (i: number) => `bulk-${i.toString(16).padStart(8, '0')}`;

describe('ReferenceCache on the embedded ClickHouse with 20,000 stored references', () => {
  it('resolves the versions it sees (own, re-stored, borrowed) and holds a bounded catalog', async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: uniqueName('catalog').replaceAll('-', '_') });
    try {
      await migrate(ch, migrations);
      // In bulk: one statement, one readable profile for every set; reference i saved at t0 + i s.
      const profile = JSON.stringify(buildNumericProfile(Array.from({ length: 20 }, (_, i) => i)));
      expect(profile).not.toMatch(/['\\]/);
      const t0 = Date.UTC(2024, 0, 1) / 1000;
      await ch.command(
        `INSERT INTO ${ch.table('reference_profiles')} (model, version, reference_id, feature, kind, profile, created_at)
         SELECT concat('model-', leftPad(toString(number % ${MODELS}), 3, '0')),
                concat('2024-retrain-', leftPad(toString(intDiv(number, ${MODELS})), 4, '0')),
                concat('bulk-', leftPad(lower(hex(toUInt32(number))), 8, '0')),
                'x', 'numeric', '${profile}', toDateTime64(${t0} + number, 3, 'UTC')
         FROM numbers(${N})`,
      );
      const [count] = await ch.select<{ n: number | string }>(
        `SELECT count() AS n FROM ${ch.table('reference_profiles')}`,
      );
      expect(Number(count!.n)).toBe(N);
      const warehouse = warehouseOn(ch);
      // A version re-stored (a newer reference of the same pair) and a model retrained today.
      const restoredOf = 1_234;
      const restored = referenceSet(model(restoredOf), version(restoredOf), new Map([['y', JSON.parse(profile)]]));
      await warehouse.references.save(restored);
      const rows: number[] = [];
      const store: ReferenceStore = {
        save: (s) => warehouse.references.save(s),
        latest: (m, v) => warehouse.references.latest(m, v),
        byId: (id) => warehouse.references.byId(id),
        newest: (limit, skip) => warehouse.references.newest(limit, skip),
        catalog: async (pairs) => {
          const answer = await warehouse.references.catalog(pairs);
          rows.push(answer.length);
          return answer;
        },
      };
      let now = Date.now();
      const maxCatalogEntries = 250;
      const cache = new ReferenceCache(store, () => now, { maxCatalogEntries });
      expect(await cache.preload()).toBe(64);
      // model-007 serves its version 30 since t = 0; its canary borrows it.
      const served = 30 * MODELS + 7;
      await cache.promoted(model(served), version(served), 0);

      const seenPerBatch = 100; // 1,000 distinct pairs in all: past the bound
      for (let batch = 0; batch < 10; batch++) {
        now += 15_000; // 2.5 minutes in all: periodic refreshes included
        const seen = Array.from({ length: seenPerBatch }, (_, k) => ((batch * seenPerBatch + k) * 7_919) % N);
        const pairs: Array<[string, string]> = seen.map((i): [string, string] => [model(i), version(i)]);
        pairs.push([model(restoredOf), version(restoredOf)], [model(served), 'canary'], [model(3), 'never-stored']);
        await cache.ensure(batchPairs(pairs, 1_000));
        for (const i of seen) {
          if (i === restoredOf) continue;
          expect(cache.resolve(model(i), version(i), 1_000)?.referenceId).toBe(idOf(i));
        }
        expect(cache.resolve(model(restoredOf), version(restoredOf), 1_000)?.referenceId).toBe(restored.referenceId);
        expect(cache.resolve(model(served), 'canary', 1_000)?.referenceId).toBe(idOf(served));
        expect(cache.resolve(model(3), 'never-stored', 1_000)).toBeUndefined();
        // The batch's answers at most, never the table's 20,000 pairs; held within the bound.
        expect(rows.at(-1) ?? 0).toBeLessThanOrEqual(pairs.length + 1);
        expect(cache.catalogSize).toBeLessThanOrEqual(maxCatalogEntries + pairs.length + 1);
      }
      expect(rows.length).toBeLessThanOrEqual(10);
    } finally {
      await ch.close();
    }
  });
});
