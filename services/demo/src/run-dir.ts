import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A finished, failed or interrupted run's folder: its embedded ClickHouse data (~32 MB) goes
 * unless `keep`; the rest stays only when a report was written (the report, its model cards and
 * the models they describe), else the whole folder goes. Before, only a successful run removed
 * its ClickHouse data and every other exit left a run folder behind.
 */
/**
 * The embedded engine stays open in this process (chdb has no close) and may still be merging
 * parts into `store/` as it is removed: ENOTEMPTY, retried (a run that told its story failed there).
 */
const REMOVE = { recursive: true, force: true, maxRetries: 10, retryDelay: 100 } as const;

export function cleanUpRunDir(dir: string, keep: boolean): 'kept' | 'report kept' | 'removed' {
  if (keep) return 'kept';
  if (existsSync(join(dir, 'report.html'))) {
    rmSync(join(dir, 'chdb'), REMOVE);
    return 'report kept';
  }
  rmSync(dir, REMOVE);
  return 'removed';
}
