// Worker entry of `tableDriftInParallel` (parallel-drift.ts): the statistics of its share of the
// columns, sent back as rows. Bundled as dist/lib/drift-worker.js.
import { parentPort, workerData } from 'node:worker_threads';
import { type Column, type DriftOptions, tableDrift } from '@driftline/batch-drift';
import { toDriftlineError } from '@driftline/core';

const { reference, current, options } = workerData as {
  reference: Column[];
  current: Column[];
  options: DriftOptions;
};
try {
  parentPort?.postMessage({ ok: true, rows: tableDrift(reference, current, options) });
} catch (error) {
  const e = toDriftlineError(error);
  parentPort?.postMessage({ ok: false, code: e.code, message: e.message });
}
