import { lstatSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { ConfigError, DriftlineError } from '@driftline/core';

/**
 * File-system errors of the artifact directory that say nothing about the request: its permissions
 * (EACCES, EPERM), a path through a regular file (ENOTDIR), the disk (full, over quota, read-only,
 * failing) or the file table. An unwritable directory had been an unclassified error: after the
 * processor-fault hold the good request was dead-lettered, and the trigger's cooldown lost the
 * retrain for a day (found by a review). Like the worker's exit 75, such failures are retried within
 * the environment budget (environment-failures.ts).
 */
const ENVIRONMENT_CODES = new Set([
  'EACCES',
  'EPERM',
  'ENOTDIR',
  'ENOSPC',
  'EDQUOT',
  'EROFS',
  'EIO',
  'EMFILE',
  'ENFILE',
]);

/** The Node error code of `error` when it is a failure of the environment's files (above), else undefined. */
export function fileEnvironmentCode(error: unknown): string | undefined {
  // A DriftlineError's `code` is its own (INTERNAL, …), never a system error code.
  if (error instanceof DriftlineError || !(error instanceof Error)) return undefined;
  const code = (error as NodeJS.ErrnoException).code;
  return typeof code === 'string' && ENVIRONMENT_CODES.has(code) ? code : undefined;
}

/**
 * DRIFTLINE_TRAINER_ARTIFACT_DIR at start-up: created if missing, then written to (a directory
 * made and removed: a permission check alone misses ACLs and read-only mounts). Anything else is a
 * ConfigError naming the variable, in one line: before, the service started and every request
 * failed on it.
 */
export function checkArtifactDir(path: string): void {
  const dir = resolve(path);
  const refuse = (what: string, error: unknown) =>
    new ConfigError(
      'DRIFTLINE_TRAINER_ARTIFACT_DIR',
      `${dir} ${what}: ${(error as Error).message} (it must be a directory the trainer can write)`,
      { cause: error },
    );
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw refuse('cannot be created', error);
  }
  let probe: string;
  try {
    probe = mkdtempSync(join(dir, '.write-check-'));
  } catch (error) {
    throw refuse('is not writable', error);
  }
  rmSync(probe, { recursive: true, force: true });
}

/**
 * The first path below `root` on the way to `dir` that exists but is no directory (a regular file,
 * a dangling link), or undefined when there is none.
 */
function nonDirectoryOnTheWay(root: string, dir: string): string | undefined {
  let at = resolve(root);
  for (const segment of relative(at, resolve(dir)).split(sep)) {
    if (segment === '') continue;
    at = join(at, segment);
    try {
      // Missing: nothing in the way below root; unreadable (root itself through a file): not below root.
      if (lstatSync(at, { throwIfNoEntry: false }) === undefined) return undefined;
    } catch {
      return undefined;
    }
    let isDirectory = false;
    try {
      isDirectory = statSync(at).isDirectory();
    } catch {
      // A link to nothing: in the way as much as a file.
    }
    if (!isDirectory) return at;
  }
  return undefined;
}

/**
 * Creates the version's directory `dir` under the artifact directory `root`. A non-directory in its
 * way inside `root` (a model named like a file there: ENOTDIR, EEXIST) is no failure of the
 * environment that passes: held for the environment budget, it was given up after an hour with
 * advice (permissions, the disk) that cannot fix it (found by a review). Given up at once instead
 * (non-retriable: dead-lettered), naming the path. Any other failure is thrown as it is.
 */
export function makeVersionDir(root: string, dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    const inTheWay = nonDirectoryOnTheWay(root, dir);
    if (inTheWay === undefined) throw error;
    throw new DriftlineError(
      'INTERNAL',
      `the version's artifact directory ${dir} cannot be created: ${inTheWay} is in the way and is no directory; given up, no retry can fix it. To fix: move ${inTheWay} out of ${resolve(root)} (DRIFTLINE_TRAINER_ARTIFACT_DIR), then replay the request from the DLQ`,
      { cause: error },
    );
  }
}
