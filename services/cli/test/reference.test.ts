import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, DriftlineError } from '@driftline/core';
import { PREDICTION_FEATURE, type ReferenceSet } from '@driftline/drift';
import { createSummary, ksFromSummary, type NumericReferenceProfile, psiFromSummary } from '@driftline/stats';
import type { ReferenceStore } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { referenceCommand } from '../src/commands/reference.js';
import { describeError } from '../src/describe-error.js';
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

  it('options leaving no column are a usage error naming the option, as in drift (it blamed a 500-row file)', async () => {
    const file = join(dir, 'one-column.csv');
    writeFileSync(file, `x\n${Array.from({ length: 500 }, (_, i) => i).join('\n')}\n`);
    for (const option of ['--exclude', '--ignore']) {
      const error = await referenceCommand(['--model', 'm', '--version', 'v1', '--file', file, option, 'x']).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, option).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).field).toBe(option);
      expect(describeError(error, 'driftline reference --help')).toEqual({
        line: `${option}: leaves no column to profile — check --columns, --ignore and --exclude`,
        code: 2,
      });
    }
  });

  it('a column with every cell missing says to leave it out with --exclude, as drift says --ignore', async () => {
    const file = join(dir, 'all-null.csv');
    writeFileSync(file, 'x,y\n1,\n2,NA\n3,\n');
    const references = memoryReferences();
    const error = await buildAndStoreReference({ references, model: 'm', version: 'v1', file }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(describeError(error, 'driftline reference --help').line).toBe(
      `${file} column "y": every cell is missing — nothing to profile; leave it out with --exclude y`,
    );
    expect(references.saved).toEqual([]);
  });
});
