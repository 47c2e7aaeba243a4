import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
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
