import { rm } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';

/**
 * Removes a test's directory and everything under it, again while something still writes there.
 * An embedded ClickHouse engine stays open for the life of its process and keeps merging parts in
 * the background after the last query, so a recursive remove could list a table's directory, then
 * meet a part written since: ENOTEMPTY, and the file failed in its afterAll (CI at 785dd63).
 * fs/promises' `rm` retries the whole removal, listing again (ENOTEMPTY, EBUSY, EPERM; linear
 * back-off, at most 10 retries, 5.5 s); `rmSync`'s retries only repeat the last `rmdir` and fail
 * the same way.
 */
export async function removeTree(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
}

/**
 * Another thread writing new files into `dir` for `forMs` (as an engine's background merge does);
 * resolves `started` once the first file is written, `finished` when the thread ends. Writes into a
 * removed `dir` fail and are ignored.
 */
export function writeFilesFor(dir: string, forMs: number): { started: Promise<void>; finished: Promise<void> } {
  const worker = new Worker(
    `const { writeFileSync } = require('node:fs');
     const { join } = require('node:path');
     const { parentPort, workerData } = require('node:worker_threads');
     const end = Date.now() + workerData.forMs;
     for (let i = 0; Date.now() < end; i++) {
       try { writeFileSync(join(workerData.dir, 'part-' + i), 'x'); } catch {}
       if (i === 0) parentPort.postMessage('started');
     }`,
    { eval: true, workerData: { dir, forMs } },
  );
  const finished = new Promise<void>((resolve, reject) => {
    worker.once('exit', () => resolve());
    worker.once('error', reject);
  });
  const started = new Promise<void>((resolve) => worker.once('message', () => resolve()));
  return { started: Promise.race([started, finished]), finished };
}
