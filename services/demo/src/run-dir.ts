import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The embedded engine stays open in this process (chdb has no close) and may still be merging
 * parts into `store/` as it is removed: ENOTEMPTY (a run that told its story failed there).
 * fs/promises' `rm` retries the whole removal, listing again; `rmSync`'s retries only repeat the
 * last `rmdir`, which fails the same way while the new part stays (a CI run failed so at 785dd63).
 */
const REMOVE = { recursive: true, force: true, maxRetries: 10, retryDelay: 100 } as const;

/**
 * A finished, failed or interrupted run's folder: its embedded ClickHouse data (~32 MB) goes
 * unless `keep`; the rest stays only when a report was written (the report, its model cards and
 * the models they describe), else the whole folder goes. Before, only a successful run removed
 * its ClickHouse data and every other exit left a run folder behind.
 */
export async function cleanUpRunDir(dir: string, keep: boolean): Promise<'kept' | 'report kept' | 'removed'> {
  if (keep) return 'kept';
  if (existsSync(join(dir, 'report.html'))) {
    await rm(join(dir, 'chdb'), REMOVE);
    return 'report kept';
  }
  await rm(dir, REMOVE);
  return 'removed';
}
