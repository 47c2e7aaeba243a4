import {
  closeSync,
  constants,
  fstatSync,
  ftruncateSync,
  lstatSync,
  openSync,
  readlinkSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
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
 * Opens a regular file for appending, or creates one where it would be and removes it again: a file
 * the system refuses (EACCES, EROFS, a /proc or /sys path) is found before the work whose result it
 * would hold, not after. A device or FIFO (`/dev/stdout`) is not opened: a FIFO's open waits for a
 * reader. A symbolic link is never removed or replaced: one to a file probes that file; a dangling
 * one probes the path it points to (which the write will create), leaving the link as it was.
 */
function probeWritable(option: string, path: string, link?: string): void {
  const cannot = (error: unknown) => {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    const via = link === undefined ? '' : ` (the target of the symbolic link ${link})`;
    return new ConfigError(option, `cannot write ${path}${via} (${code})`, { cause: error });
  };
  let entry: ReturnType<typeof lstatSync>;
  try {
    entry = lstatSync(path);
  } catch {
    // Absent: create it exclusively (never through a link made meanwhile), then remove it.
    try {
      closeSync(openSync(path, 'ax'));
      unlinkSync(path);
    } catch (error) {
      throw cannot(error);
    }
    return;
  }
  let target = entry;
  if (entry.isSymbolicLink()) {
    try {
      target = statSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw cannot(error);
      probeWritable(option, resolve(dirname(path), readlinkSync(path)), link ?? path);
      return;
    }
  }
  if (!target.isFile()) return;
  try {
    closeSync(openSync(path, 'a'));
  } catch (error) {
    throw cannot(error);
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

/**
 * Writes `text` to a file at a predictable name beside an output (the report's model cards), never
 * through a symbolic link (O_NOFOLLOW): a link planted there made the report overwrite whatever it
 * pointed to. Nor into anything but a regular file: opened without waiting (O_NONBLOCK; a FIFO's
 * open waited for a reader for ever) and checked before it is truncated. A link or another kind of
 * file there is a usage error naming `option` and `what`; a regular file is replaced. (An `--out`
 * file itself follows links on purpose: {@link writeOutput}.)
 */
export function writeRegularFile(option: string, what: string, path: string, text: string): void {
  const refused = (why: string, cause?: unknown) =>
    new ConfigError(option, `cannot write ${what} ${path} (${why})`, { cause });
  const notAFile = `it is not a regular file; remove it or choose another ${option} directory`;
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o666);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    // ENXIO: a FIFO without a reader.
    const why =
      code === 'ELOOP'
        ? `it is a symbolic link; remove it or choose another ${option} directory`
        : code === 'ENXIO'
          ? notAFile
          : code;
    throw refused(why, error);
  }
  try {
    if (!fstatSync(fd).isFile()) throw refused(notAFile);
    ftruncateSync(fd, 0);
    writeFileSync(fd, text);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw refused((error as NodeJS.ErrnoException).code ?? 'error', error);
  } finally {
    closeSync(fd);
  }
}
