import { Worker } from 'node:worker_threads';
import { type Column, tableDrift } from '@driftline/batch-drift';
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import { tableDriftInParallel, workerAnswer } from '../src/parallel-drift.js';

function table(rng: SeededRandom, rows: number, shift: number): Column[] {
  const numeric = (name: string, f: () => number): Column => ({
    name,
    kind: 'numeric',
    values: Float64Array.from({ length: rows }, f),
  });
  return [
    numeric('a', () => rng.normal() + shift),
    {
      name: 'city',
      kind: 'categorical',
      values: Array.from({ length: rows }, () => (rng.uniform() < 0.3 ? 'x' : 'y')),
    },
    numeric('b', () => Math.exp(rng.normal())),
    numeric('c', () => Math.floor(rng.uniform() * 7)),
    numeric('d', () => rng.normal() * 2),
  ];
}

describe('tableDriftInParallel', () => {
  it('gives exactly the rows of tableDrift, in column order, with half the numeric columns on a worker thread', async () => {
    const rng = new SeededRandom(5);
    const reference = table(rng, 3_000, 0);
    const current = table(rng, 2_000, 0.2);
    for (const stattest of ['driftline', 'evidently'] as const) {
      const expected = tableDrift(reference, current, { stattest });
      // minValues 0: take the thread even for this small table.
      expect(await tableDriftInParallel(reference, current, { stattest }, 0)).toEqual(expected);
    }
  });

  it('a worker thread that exits without a result fails the comparison instead of waiting forever', async () => {
    for (const source of ['process.exit(3)', '']) {
      const worker = new Worker(source, { eval: true });
      await expect(workerAnswer(worker)).rejects.toThrow(/exited \(code \d+\) without a result/);
    }
    const answering = new Worker("require('node:worker_threads').parentPort.postMessage({ ok: true, rows: [] })", {
      eval: true,
    });
    await expect(workerAnswer(answering)).resolves.toEqual({ ok: true, rows: [] });
  });
});
