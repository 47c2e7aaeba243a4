import { closeSync, openSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError } from '@driftline/core';

/**
 * The file an `--out`-style option names, checked before any work: not empty, not a directory,
 * in a directory that exists (created directories are a guess; a recursive mkdir under /proc
 * never returns on Node 20). Mistakes are usage errors naming the option, never "internal".
 */
export function outputFile(option: string, value: string): string {
  if (value === '') throw new ConfigError(option, 'is empty; name a file');
  const path = resolve(value);
  if (isDirectory(path)) {
    throw new ConfigError(option, `${path} is a directory; name a file`);
  }
  const dir = dirname(path);
  if (!isDirectory(dir)) {
    throw new ConfigError(option, `directory ${dir} does not exist`);
  }
  probeWritable(option, path);
  return path;
}

/**
 * Opens a regular file (or where one would be created) for appending, and removes it again if it
 * was not there: a file the system refuses (EACCES, EROFS, a /proc or /sys path) is found before
 * the work whose result it would hold, not after. A device or FIFO (`/dev/stdout`) is not opened:
 * a FIFO's open waits for a reader.
 */
function probeWritable(option: string, path: string): void {
  let existed = false;
  try {
    const stat = statSync(path);
    if (!stat.isFile()) return;
    existed = true;
  } catch {
    // Absent: the probe creates it, then removes it.
  }
  try {
    closeSync(openSync(path, 'a'));
    if (!existed) unlinkSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(option, `cannot write ${path} (${code})`, { cause: error });
  }
}

/**
 * Refuses an output `path` (checked by {@link outputFile}) that is one of the inputs — by name, or
 * the same file through another name (a link) — so writing it cannot overwrite what is read.
 * `inputs` maps each input's option to its value: `{ '--reference': 'ref.csv' }`.
 */
export function notAnInput(option: string, path: string, inputs: Readonly<Record<string, string>>): void {
  const out = identity(path);
  for (const [name, value] of Object.entries(inputs)) {
    const input = resolve(value);
    const same = input === path || (out !== undefined && out === identity(input));
    if (same) throw new ConfigError(option, `${path} is the ${name} file; name another file`);
  }
}

/** Device and inode of an existing file; undefined when it does not exist (yet). */
function identity(path: string): string | undefined {
  try {
    const s = statSync(path);
    return `${s.dev}:${s.ino}`;
  } catch {
    return undefined;
  }
}

/** Whether `path` is a directory; false when it is absent or a file is on its way (ENOTDIR). */
function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Writes `text` to a file checked by {@link outputFile}; a refusal (EACCES, EROFS …) names the option. */
export function writeOutput(option: string, path: string, text: string): void {
  try {
    writeFileSync(path, text);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(option, `cannot write ${path} (${code})`, { cause: error });
  }
}
