import path from 'node:path';
import { StackConfigError } from './config.js';

/** A folder of the stack and the variable that moves it: what a file-system error in it names. */
export interface StackDir {
  /** e.g. "state dir", "cache dir". */
  what: string;
  dir: string;
  variable: 'DRIFTLINE_STACK_DIR' | 'DRIFTLINE_STACK_CACHE_DIR';
}

/** The folder cannot be used where it is: a configuration error (exit 78), fixed by moving it. */
const UNUSABLE = new Set(['EROFS', 'EACCES', 'EPERM', 'ENOTDIR']);
/** The folder's disk is full: no configuration error, but moving the folder is one way out. */
const FULL = new Set(['ENOSPC', 'EDQUOT']);

/** The disk of a folder is full (exit 1): one line naming the folder and its variable. */
export class StackDiskFullError extends Error {
  readonly code = 'STACK_DISK_FULL';
  constructor(
    readonly variable: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'StackDiskFullError';
  }
}

function inside(file: string, dir: string): boolean {
  const relative = path.relative(dir, path.resolve(file));
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

/**
 * A Node file-system error (EROFS, EACCES, ENOSPC, …) met while writing in `where` as one line that
 * names the folder and its variable: raw, a read-only cache dir printed "EROFS: read-only file
 * system, mkdir '…/.maven.lock.new…'" twice, and a full state dir "ENOSPC: no space left on device,
 * write", with neither path nor variable. Errors of other kinds, or about a path outside `where`
 * (a write's ENOSPC has none: it is taken for the folder's), come back unchanged.
 */
export function dirError(err: unknown, where: StackDir): unknown {
  if (!(err instanceof Error)) return err;
  const { code, path: file } = err as NodeJS.ErrnoException;
  if (code === undefined || (!UNUSABLE.has(code) && !FULL.has(code))) return err;
  // A write reports no path: only a full disk is taken for the folder's then (a pathless EPERM is
  // a kill's, not a folder's).
  if (file === undefined ? !FULL.has(code) : !inside(file, where.dir)) return err;
  const { what, dir, variable } = where;
  // "EROFS: read-only file system, mkdir '<temp name>'" without the syscall and the path: the same
  // problem met by Kafka's and the registry's downloads at once is then one and the same line.
  const reason = err.message.split(', ')[0] ?? code;
  if (FULL.has(code)) {
    return new StackDiskFullError(
      variable,
      `no space left on the stack's ${what} ${dir} (${variable}; ${reason}): free some space, or point ${variable} at a folder on another disk`,
      { cause: err },
    );
  }
  return new StackConfigError(
    variable,
    `${variable}: cannot write in the stack's ${what} ${dir} (${reason}): point ${variable} at a writable folder`,
  );
}

/** Runs `work`, turning its file-system errors in `where` into {@link dirError}'s one line. */
export async function inDir<T>(where: StackDir, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw dirError(err, where);
  }
}
