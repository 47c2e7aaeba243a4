import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DriftlineError } from '@driftline/core';
import { PREDICTION_FEATURE, type ReferenceSet } from '@driftline/drift';
import { createSummary, ksFromSummary, type NumericReferenceProfile, psiFromSummary } from '@driftline/stats';
import type { ReferenceStore } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { buildAndStoreReference } from '../src/index.js';

/** The port's smallest honest implementation: keeps what was saved. */
function memoryReferences(): ReferenceStore & { saved: ReferenceSet[] } {
  const saved: ReferenceSet[] = [];
  return {
    saved,
    save: async (set) => {
      saved.push(set);
    },
    latest: async (model, version) => saved.filter((s) => s.model === model && s.version === version).at(-1),
    byId: async (id) => saved.find((s) => s.referenceId === id),
    newest: async () => [...saved],
    catalog: async () => saved.map((s) => ({ model: s.model, version: s.version, referenceId: s.referenceId })),
  };
}

describe('buildAndStoreReference (`driftline reference`)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reference-'));

  it('profiles the CSV file and saves it as the reference of (model, version)', async () => {
    const file = join(dir, 'train.csv');
    writeFileSync(file, ['id,x,color,prediction', '1,0.5,red,0.1', '2,1.5,blue,0.9', '3,NA,red,0.4'].join('\n'));
    const references = memoryReferences();
    const set = await buildAndStoreReference({
      references,
      model: 'm',
      version: 'v1',
      file,
      columns: { exclude: ['id'] },
    });
    expect(references.saved).toEqual([set]);
    expect([set.model, set.version]).toEqual(['m', 'v1']);
    expect([...set.features].sort()).toEqual([PREDICTION_FEATURE, 'color', 'x']);
  });

  it('reads any table driftline drift reads (here Parquet written by pyarrow)', async () => {
    const references = memoryReferences();
    const file = fileURLToPath(new URL('./fixtures/table-snappy.parquet', import.meta.url));
    const set = await buildAndStoreReference({ references, model: 'm', version: 'v1', file });
    expect([...set.features].sort()).toEqual(['code', 'color', 'flag', 'n', 'small', 'x']);
  });

  it('a float32 Parquet column’s profile reads live float32 values widened (numpy tolist()) as its digits: no drift', async () => {
    const references = memoryReferences();
    const file = fileURLToPath(new URL('./fixtures/float32.parquet', import.meta.url));
    const set = await buildAndStoreReference({ references, model: 'm', version: 'v1', file });
    const price = set.profiles[set.features.indexOf('price')] as NumericReferenceProfile;
    expect(price.floatBits).toBe(32);
    // The same rows as pandas' CSV of the frame holds them (digits), and as a float32 array's
    // tolist() sends them live (each digit rounded to float32, then widened).
    const csv = readFileSync(fileURLToPath(new URL('./fixtures/float32.csv', import.meta.url)), 'utf8');
    const digits = csv
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => (line.split(',')[0] === '' ? null : Number(line.split(',')[0])));
    const widened = digits.map((x) => (x === null ? null : Math.fround(x)));
    expect(widened.filter((x, i) => x !== digits[i]).length).toBeGreaterThan(100);
    for (const live of [digits, widened]) {
      const summary = createSummary(price).addAll(live);
      expect(ksFromSummary(price, summary).statistic).toBe(0);
      expect(psiFromSummary(price, summary).value).toBe(0);
    }
  });

  it('a missing file is a BAD_REQUEST naming it, and nothing is saved', async () => {
    const references = memoryReferences();
    const file = join(dir, 'missing.parquet');
    await expect(buildAndStoreReference({ references, model: 'm', version: 'v1', file })).rejects.toSatisfy(
      (e) =>
        e instanceof DriftlineError &&
        e.code === 'BAD_REQUEST' &&
        e.message === `${file}: no such file — check the path`,
    );
    expect(references.saved).toEqual([]);
  });
});
