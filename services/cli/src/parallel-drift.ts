import type { Worker } from 'node:worker_threads';
import { type Column, type ColumnDrift, type DriftOptions, tableDrift } from '@driftline/batch-drift';
import { DriftlineError, type ErrorCode } from '@driftline/core';
import { startWorker } from '@driftline/service/worker';

/** Below this many numeric values (both sides) a second thread costs more than it saves. */
const PARALLEL_MIN_VALUES = 2_000_000;

type WorkerAnswer = { ok: true; rows: ColumnDrift[] } | { ok: false; code: ErrorCode; message: string };

/**
 * `tableDrift` on two threads: every other numeric column (sorting them is most of the work) goes
 * to a worker thread, the rest is computed here at the same time; rows come back in column order.
 * Each column's statistics are independent of the others, so the result is the same as
 * `tableDrift` on one thread.
 */
export async function tableDriftInParallel(
  reference: readonly Column[],
  current: readonly Column[],
  options: DriftOptions,
  minValues = PARALLEL_MIN_VALUES,
): Promise<ColumnDrift[]> {
  const byName = new Map(current.map((c) => [c.name, c]));
  const numeric = reference.filter((c) => c.kind === 'numeric' && byName.get(c.name)?.kind === 'numeric');
  const values = numeric.reduce((n, c) => n + c.values.length + byName.get(c.name)!.values.length, 0);
  if (values < minValues || numeric.length < 2) return tableDrift(reference, current, options);
  const away = new Set(numeric.filter((_, i) => i % 2 === 1).map((c) => c.name));
  const here = reference.filter((c) => !away.has(c.name));
  const there = reference.filter((c) => away.has(c.name));
  const worker = startWorker(import.meta.url, 'drift-worker', {
    reference: there,
    current: there.map((c) => byName.get(c.name)!),
    options,
  });
  try {
    const answer = workerAnswer(worker);
    const mine = tableDrift(here, current, options);
    const theirs = await answer;
    if (!theirs.ok) throw new DriftlineError(theirs.code, theirs.message);
    const rows = new Map([...mine, ...theirs.rows].map((r) => [r.column, r]));
    return reference.filter((c) => rows.has(c.name)).map((c) => rows.get(c.name)!);
  } finally {
    void worker.terminate();
  }
}

/**
 * The worker's one answer. An error event rejects, and so does an exit before any message (a
 * `process.exit` in the worker, an out-of-memory end of the thread): waiting for the message alone
 * waited forever.
 */
export function workerAnswer(worker: Worker): Promise<WorkerAnswer> {
  return new Promise<WorkerAnswer>((resolve, reject) => {
    const done = () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    const onMessage = (answer: WorkerAnswer) => {
      done();
      resolve(answer);
    };
    const onError = (error: unknown) => {
      done();
      reject(error);
    };
    const onExit = (code: number) => {
      done();
      reject(new DriftlineError('INTERNAL', `the drift worker thread exited (code ${code}) without a result`));
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}
