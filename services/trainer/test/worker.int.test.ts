import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@driftline/core';
import { loadXgboostModel, trainerFeatureEncoder } from '@driftline/scoring';
import { makeVector, Table, tableToIPC } from 'apache-arrow';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildDataset, COLUMNS, datasetToArrow, type LabeledRow, parseFeatures } from '../src/dataset.js';
import { servingProblem } from '../src/serving-check.js';
import { ensureWorkerPython, runWorker, WORKER_DIR } from '../src/worker.js';

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

  /** Trains `rows` as the trainer does (dataset, Arrow file, worker); returns the output directory. */
  async function trainRows(rows: LabeledRow[]) {
    const dir = mkdtempSync(join(tmpdir(), 'trainer-worker-'));
    const ds = buildDataset(rows, 0.2);
    writeFileSync(join(dir, 'train.arrow'), datasetToArrow(ds));
    const result = await runWorker({
      python,
      data: join(dir, 'train.arrow'),
      outDir: join(dir, 'out'),
      device: 'cpu',
      params: { rounds: 5, max_depth: 3, seed: 7 },
      timeoutMs: 120_000,
      logger: silentLogger,
    });
    const out = join(dir, 'out');
    const problem = servingProblem(
      JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')),
      JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8')),
    );
    return { ds, result, problem, out, meta: JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8')) };
  }

  const labeled = (n: number, features: (i: number) => Record<string, unknown>, current?: (i: number) => number) =>
    Array.from({ length: n }, (_, i) => ({
      predictionId: `p${String(i).padStart(5, '0')}`,
      time: i,
      features: parseFeatures(JSON.stringify(features(i)), `p${i}`),
      prediction: current?.(i) ?? ((i * 7919) % 100) / 100,
      label: i % 3 === 0 ? 1 : 0,
    }));

  it('trains what the reviewer found lost or unservable, into a model the model-server loads', async () => {
    const { ds, result, problem, meta } = await trainRows(
      labeled(300, (i) => ({
        x: i === 17 ? 4e38 : i % 13, // beyond float32: XGBoost refused the whole set
        constructor: i % 5, // a name on Object.prototype
        'nul\u0000name': i % 7, // cut at the NUL by XGBoost
        view_down: null, // null everywhere: typed numeric, no categories
        'emb[0]': i % 4,
      })),
    );
    expect(ds.outOfRange).toBe(1);
    expect(meta.features).toEqual(['constructor', 'emb[0]', 'x']);
    expect(result.rows_train).toBe(240);
    expect(problem).toBeUndefined();
  });

  it("meta.json names model.json's SHA-256, so a pair of two runs' files is told apart (found by a review)", async () => {
    const { out, meta, problem } = await trainRows(labeled(60, (i) => ({ amount: i, color: i % 2 === 0 ? 'a' : 'b' })));
    expect(problem).toBeUndefined();
    expect(meta.model_sha256).toBe(
      createHash('sha256')
        .update(readFileSync(join(out, 'model.json')))
        .digest('hex'),
    );
  });

  it('trains with a feature named __proto__ (the Arrow file had overflowed the stack)', async () => {
    const rows = labeled(200, (i) => ({ x: i % 13 })).map((r, i) => ({
      ...r,
      features: parseFeatures(`{"x":${i % 13},"__proto__":${i % 5}}`, r.predictionId),
    }));
    const { meta, problem } = await trainRows(rows);
    expect(meta.features).toEqual(['__proto__', 'x']);
    expect(problem).toBeUndefined();
  });

  it('measures the base version on the held-out rows that carry its score (current_rows), and the candidate on the same rows (gate_*)', async () => {
    // Held-out rows 240..299: the base version scored the even ones only.
    const { result } = await trainRows(
      labeled(
        300,
        (i) => ({ x: i % 13, y: (i * 31) % 17 }),
        (i) => (i % 2 === 0 ? ((i * 7919) % 100) / 100 : Number.NaN),
      ),
    );
    expect(result.metrics.current_rows).toBe(30);
    expect(result.metrics.current_roc_auc).toBeGreaterThan(0);
    expect(result.metrics.gate_roc_auc).toBeGreaterThan(0);
    expect(result.metrics.gate_roc_auc).not.toBe(result.metrics.roc_auc);
  });

  it('an OSError (the training file gone) exits 75: retried, not counted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trainer-worker-'));
    const error = await runWorker({
      python,
      data: join(dir, 'missing.arrow'),
      outDir: join(dir, 'out'),
      device: 'cpu',
      params: {},
      timeoutMs: 120_000,
      logger: silentLogger,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ name: 'WorkerEnvironmentError', retriable: true });
    expect((error as Error).message).toContain('No such file or directory');
  });

  it('--watch-stdin: the worker exits when the trainer is gone (its stdin closes), even while blocked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trainer-worker-'));
    const fifo = join(dir, 'train.arrow');
    execFileSync(python, ['-c', 'import os, sys; os.mkfifo(sys.argv[1])', fifo]); // opening it blocks: a worker busy for ever
    const child = spawn(python, [join(WORKER_DIR, 'train.py'), '--data', fifo, '--out', dir, '--watch-stdin'], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    await new Promise((r) => setTimeout(r, 500));
    child.stdin.end();
    const code = await new Promise<number | null>((done) => child.once('close', done));
    expect(code).toBe(75);
  });

  it.skipIf(!existsSync('/usr/bin/strace'))(
    'syncs every output file, then renames result.json, then syncs the directory',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'trainer-worker-'));
      const ds = buildDataset(
        labeled(100, (i) => ({ x: i % 13 })),
        0.2,
      );
      writeFileSync(join(dir, 'train.arrow'), datasetToArrow(ds));
      const out = join(dir, 'out');
      mkdirSync(out);
      const traced = spawnSync(
        '/usr/bin/strace',
        [
          '-f',
          '-y',
          '-e',
          'trace=fsync,rename',
          python,
          join(WORKER_DIR, 'train.py'),
          '--data',
          join(dir, 'train.arrow'),
          '--out',
          out,
          '--device',
          'cpu',
          '--params',
          '{"rounds":2}',
        ],
        { encoding: 'utf8' },
      );
      expect(traced.status).toBe(0);
      const calls = traced.stderr
        .split('\n')
        .map((line) => /(fsync\(\d+<([^>]+)>\)|rename\("[^"]+", "([^"]+)"\)) = 0/.exec(line))
        .filter((m) => m !== null)
        .map((m) =>
          m[2] === undefined
            ? `rename ${m[3]!.split('/').at(-1)}`
            : `fsync ${m[2] === out ? '(dir)' : m[2].split('/').at(-1)}`,
        );
      expect(calls).toEqual([
        'fsync model.json',
        'fsync scores.arrow',
        'fsync meta.json.tmp',
        'rename meta.json',
        'fsync (dir)',
        'fsync result.json.tmp',
        'rename result.json',
        'fsync (dir)',
      ]);
    },
    120_000,
  );
});
