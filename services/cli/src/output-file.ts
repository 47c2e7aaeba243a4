import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  lstatSync,
  openSync,
  readlinkSync,
  realpathSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
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
    // `--out page.html/x`: the directory is a file, which "does not exist" misnamed.
    const file = existingAncestor(dir);
    throw new ConfigError(
      option,
      file === undefined ? `directory ${dir} does not exist` : `${file} is not a directory; name a file in a directory`,
    );
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
/** The nearest of `dir` and its parents that exists when it is not a directory; else undefined. */
function existingAncestor(dir: string): string | undefined {
  for (let at = dir; ; at = dirname(at)) {
    try {
      return statSync(at).isDirectory() ? undefined : at;
    } catch {
      if (dirname(at) === at) return undefined;
    }
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * A write that failed because the disk did (full, over quota, an I/O error, remounted read-only):
 * not a usage error but the machine's — exit 1 with what to free (`describeError` finds the code in
 * the cause). The message says whether the previous file was kept.
 */
export class OutputResourceError extends Error {}

const RESOURCE_CODES = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EFBIG']);

function writeFailed(option: string, path: string, error: unknown, kept: string): Error {
  const code = (error as NodeJS.ErrnoException).code ?? 'error';
  if (RESOURCE_CODES.has(code)) {
    return new OutputResourceError(`${option}: cannot write ${path} (${code})${kept}`, { cause: error });
  }
  return new ConfigError(option, `cannot write ${path} (${code})${kept}`, { cause: error });
}

/** Writes all of `text` to an open file; a parameter so a test can fail a write half-way (a full disk). */
export type WriteText = (fd: number, text: string) => void;

const writeText: WriteText = (fd, text) => writeFileSync(fd, text);

/** Most symbolic links followed to the file an output names (the kernel's own limit is 40). */
const MAX_LINKS = 40;

/**
 * The file `path` names once every symbolic link is followed — also a dangling one, to the path it
 * points to (where the page will be created) — so the link's target is replaced, never the link.
 */
function linkTarget(path: string): string {
  try {
    return realpathSync.native(path);
  } catch {
    // Absent, or a dangling link: follow the links by hand as far as they go.
  }
  let at = path;
  for (let i = 0; i < MAX_LINKS; i++) {
    let entry: ReturnType<typeof lstatSync>;
    try {
      entry = lstatSync(at);
    } catch {
      return at;
    }
    if (!entry.isSymbolicLink()) return at;
    at = resolve(dirname(at), readlinkSync(at));
  }
  return at;
}

/**
 * Writes `text` to a file checked by {@link outputFile}, whole or not at all: a regular file (or
 * where one will be) is written to a temporary file beside it, flushed to the disk and renamed over
 * it, so a full disk leaves the previous page as it was — it left the first 20,480 bytes of a 41 KB
 * page in its place (found by a review). The temporary file is removed when the write fails. A
 * symbolic link is followed: its target is replaced, the link kept. A device or FIFO, a path
 * under /dev or /proc (`/dev/stdout`), or a file in a directory this user cannot create files in,
 * is written in place. So is an existing file with more than one name (a hard link: a rename would
 * give only this name the new page) or a mount point of its own (`docker run -v
 * $PWD/report.html:/out/report.html`, a Kubernetes subPath: a rename over it is EBUSY). An existing
 * file the rename fails for otherwise (EXDEV, EPERM in a sticky directory, EACCES …) is written in
 * place too, as before the atomic write: the temporary file is removed first.
 * A full disk, a quota, an I/O error is exit 1 with what to free ({@link OutputResourceError});
 * another refusal (EACCES …) is a usage error naming the option.
 */
export function writeOutput(
  option: string,
  path: string,
  text: string,
  write: WriteText = writeText,
  rename: RenameFile = renameSync,
): void {
  let existing: ReturnType<typeof statSync> | undefined;
  try {
    existing = statSync(path);
  } catch {
    existing = undefined;
  }
  // /dev/stdout, /proc/self/fd/1: the file an open descriptor holds, whatever it is, written as is.
  if (path.startsWith('/dev/') || path.startsWith('/proc/') || (existing !== undefined && !existing.isFile())) {
    writeInPlace(option, path, path, text, write);
    return;
  }
  const target = linkTarget(path);
  if (existing !== undefined && (existing.nlink > 1 || isMountPoint(target, existing))) {
    writeInPlace(option, path, target, text, write);
    return;
  }
  const temp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number;
  try {
    fd = openSync(temp, 'wx', 0o666);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // A writable file in a directory this user cannot add to: the old way, in place.
    if (existing !== undefined && (code === 'EACCES' || code === 'EPERM')) {
      writeInPlace(option, path, target, text, write);
      return;
    }
    throw writeFailed(option, path, error, '');
  }
  const kept = existing === undefined ? '' : `; the previous ${target} is unchanged`;
  try {
    try {
      // The file replaced keeps its permissions (a fresh file gets the umask's, as it would have).
      if (existing !== undefined) fchmodSync(fd, existing.mode & 0o7777);
      write(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    removeTemp(temp);
    throw writeFailed(option, path, error, kept);
  }
  try {
    rename(temp, target);
  } catch (error) {
    removeTemp(temp);
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    // A file that cannot be replaced but can be written (a bind mount: EBUSY; a shared file in a
    // sticky directory: EPERM): the old way, in place — the page is whole in the temporary file,
    // so only the rename failed.
    if (existing !== undefined && !RESOURCE_CODES.has(code)) {
      writeInPlace(option, path, target, text, write);
      return;
    }
    throw writeFailed(option, path, error, kept);
  }
}

/** Renames a file over another; a parameter so a test can fail the rename (a bind-mounted file: EBUSY). */
export type RenameFile = (from: string, to: string) => void;

function removeTemp(temp: string): void {
  try {
    unlinkSync(temp);
  } catch {
    // Already gone, or the disk refuses even that: nothing more to do.
  }
}

/**
 * Whether an existing file is mounted on its own (a bind-mounted file): on another device than its
 * directory. A bind mount from the same file system is not seen here; its rename fails (EBUSY) and
 * the page is written in place then.
 */
function isMountPoint(target: string, file: NonNullable<ReturnType<typeof statSync>>): boolean {
  try {
    return statSync(dirname(target)).dev !== file.dev;
  } catch {
    return false;
  }
}

/** The write of a file that is not replaced: a device, a FIFO, a file whose directory is closed. */
function writeInPlace(option: string, path: string, target: string, text: string, write: WriteText): void {
  let fd: number;
  try {
    fd = openSync(target, 'w');
  } catch (error) {
    throw writeFailed(option, path, error, '');
  }
  try {
    write(fd, text);
  } catch (error) {
    throw writeFailed(option, path, error, '');
  } finally {
    closeSync(fd);
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
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    if (RESOURCE_CODES.has(code)) {
      throw new OutputResourceError(`${option}: cannot write ${what} ${path} (${code})`, { cause: error });
    }
    throw refused(code, error);
  } finally {
    closeSync(fd);
  }
}
