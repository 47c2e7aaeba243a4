import { randomUUID } from 'node:crypto';
import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import { type EnvironmentStreak, parseEnvironmentStreak } from './environment-failures.js';

/** A request's environment streak, in its version directory (so a restart does not reset it). */
export const ENVIRONMENT_STREAK_FILE = 'worker-environment-failures';

/** The file operations the store uses (node:fs; a test passes one whose writes fail). */
export type StreakFs = Pick<typeof nodeFs, 'existsSync' | 'readFileSync' | 'writeFileSync' | 'renameSync' | 'rmSync'>;

/** Where the environment streaks of requests are kept, by version directory (environment-failures.ts). */
export interface EnvironmentStreakStore {
  read(dir: string): EnvironmentStreak | undefined;
  write(dir: string, streak: EnvironmentStreak): void;
  clear(dir: string): void;
}

/**
 * Streaks in their version directory's file, written to a temporary file renamed into place: a
 * write that fails (a full disk: the very failure counted) leaves the last good streak whole.
 * Written in place, the file was truncated first and left empty on ENOSPC, read back as no streak,
 * so the count restarted at 1 on every failure and a request on a full disk was retried for ever,
 * never given up (found by a review).
 *
 * A streak that could not be written is kept in memory, by directory, and read before the file
 * (which then holds an older streak, or none): lost at a restart, but then the start-up check of
 * the artifact directory refuses to start while it stays unwritable (checkArtifactDir).
 *
 * Each write has a temporary file of its own (pid + random): two trainers can handle one request
 * (the old owner after a rebalance, trainer.ts trainRun). With one shared `.tmp` name, one's write
 * truncated the other's temporary file just before it was renamed (the streak file left empty: the
 * count reset) and the other's rename failed with ENOENT (found by a review). A write that fails
 * removes only its own temporary file; a crash between the write and the rename leaves one behind,
 * a few dozen bytes never read.
 */
export function environmentStreakStore(fs: StreakFs = nodeFs): EnvironmentStreakStore {
  const unwritten = new Map<string, EnvironmentStreak>();
  const fileOf = (dir: string) => join(dir, ENVIRONMENT_STREAK_FILE);
  const tempOf = (dir: string) => `${fileOf(dir)}.${process.pid}.${randomUUID()}.tmp`;
  return {
    read(dir) {
      const kept = unwritten.get(dir);
      if (kept !== undefined) return kept;
      try {
        const file = fileOf(dir);
        return fs.existsSync(file) ? parseEnvironmentStreak(fs.readFileSync(file, 'utf8')) : undefined;
      } catch {
        return undefined; // unreadable: no streak (counting starts again)
      }
    },
    write(dir, streak) {
      const temp = tempOf(dir);
      try {
        fs.writeFileSync(temp, JSON.stringify(streak));
        fs.renameSync(temp, fileOf(dir));
        unwritten.delete(dir);
      } catch {
        unwritten.set(dir, streak);
        try {
          fs.rmSync(temp, { force: true });
        } catch {
          // Left behind (the directory gone read-only): never read.
        }
      }
    },
    clear(dir) {
      unwritten.delete(dir);
      try {
        fs.rmSync(fileOf(dir), { force: true });
      } catch {
        // Left behind in a directory gone read-only: the run is in place, the request goes on (a
        // streak left there only matters to a request that fails again).
      }
    },
  };
}
