import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@driftline/core';
import { loadXgboostModel, trainerFeatureEncoder } from '@driftline/scoring';
import { makeVector, Table, tableToIPC } from 'apache-arrow';
import { beforeAll, describe, expect, it } from 'vitest';
import { COLUMNS } from '../src/dataset.js';
import { ensureWorkerPython, runWorker } from '../src/worker.js';

// The real Python worker (XGBoost, pyarrow), created by worker/setup-venv.sh on first use.
describe('the Python worker classifies what it cannot train', () => {
  let python = '';
  beforeAll(async () => {
    python = await ensureWorkerPython(silentLogger);
  }, 900_000);

  /** A training file with one numeric feature named `featureName`, or none (undefined). */
  function arrowFile(featureName: string | undefined): { data: string; outDir: string } {
    const dir = mkdtempSync(join(tmpdir(), 'trainer-worker-'));
    const n = 40;
    const table = new Table({
      [COLUMNS.time]: makeVector(Float64Array.from({ length: n }, (_, i) => i)),
      [COLUMNS.label]: makeVector(Float64Array.from({ length: n }, (_, i) => i % 2)),
      [COLUMNS.currentScore]: makeVector(new Float64Array(n).fill(0.5)),
      [COLUMNS.holdout]: makeVector(Uint8Array.from({ length: n }, (_, i) => (i >= 30 ? 1 : 0))),
      ...(featureName === undefined
        ? {}
        : { [featureName]: makeVector(Float64Array.from({ length: n }, (_, i) => i)) }),
    });
    const data = join(dir, 'train.arrow');
    writeFileSync(data, tableToIPC(table, 'file'));
    return { data, outDir: join(dir, 'out') };
  }

  const run = (featureName: string | undefined) =>
    runWorker({
      python,
      ...arrowFile(featureName),
      device: 'cpu',
      params: { rounds: 2, max_depth: 2 },
      timeoutMs: 120_000,
      logger: silentLogger,
    });

  it('trains on a feature name XGBoost refuses by name (emb[0]): inputs by position, meta.json names them', async () => {
    const files = arrowFile('emb[0]');
    await runWorker({
      python,
      ...files,
      device: 'cpu',
      params: { rounds: 2, max_depth: 2 },
      timeoutMs: 120_000,
      logger: silentLogger,
    });
    const model = loadXgboostModel(JSON.parse(readFileSync(join(files.outDir, 'model.json'), 'utf8')));
    const encoder = trainerFeatureEncoder(JSON.parse(readFileSync(join(files.outDir, 'meta.json'), 'utf8')), model);
    expect(encoder.features).toEqual(['emb[0]']);
    const row = new Float64Array(1);
    encoder.encode({ 'emb[0]': 35 }, row);
    expect(row[0]).toBe(35);
    expect(Number.isFinite(model.predictOne(row))).toBe(true);
  });

  it('a training set without a feature column is a rejected request, not a crash retried for ever', async () => {
    const error = await run(undefined).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'VALIDATION_FAILED', retriable: false });
    expect((error as Error).message).toMatch(/no feature column: nothing to train on/);
  });

  it('trains with a plain feature name', async () => {
    const result = await run('amount');
    expect(result.rows_train).toBe(30);
    expect(result.rows_holdout).toBe(10);
  });
});
