// The embedded engine's data directory, checked before the engine opens it — by either owner of the
// engine: a process's embedded client (client.ts) and `driftline clickhouse serve` (http-host). The
// engine prints its own line on stderr ("Cannot lock file", or "Cannot open file …/status: errno: 28")
// and throws a bare "Failed to create connection", which the CLI showed as an internal error to report.
import {
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  type Stats,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { ConfigError, SinkUnavailableError } from '@driftline/core';

/** How the engine's directory is opened. */
export interface EngineDirectoryOptions {
  /**
   * Create the directory (and its parents) when it is missing: a process that writes (the services,
   * the host). False for a reader (`report`, `model-card`): a missing directory, or one holding no
   * engine data, is a ConfigError ("no warehouse at …") and nothing is created — the engine would
   * lay out a new, empty warehouse there.
   */
  readonly create: boolean;
}

/**
 * Opens the engine on `path` (absolute) with `open`, after checking that the path can be its
 * directory (a ConfigError naming DRIFTLINE_CLICKHOUSE_PATH: a file, or under one; a path the file
 * system refuses; a directory whose layout is damaged), that no other process holds it (a
 * ConfigError ending with `inUseAdvice`) and that this user can write in it (SinkUnavailableError
 * when the machine refuses for want of a resource — a starting process retries it — a ConfigError
 * when this user may not).
 */
export function openEngineDirectory<T>(
  path: string,
  open: () => T,
  inUseAdvice: string,
  options: EngineDirectoryOptions = { create: true },
): T {
  const missing = prepareDirectory(path, options.create);
  if (missing !== undefined) throw engineOutage(path, missing);
  let holder = lockHolder(path);
  if (holder !== undefined) throw inUse(path, holder, inUseAdvice);
  if (!options.create && !isDirectory(join(path, 'metadata'))) {
    throw noWarehouse(path, 'the directory holds no embedded ClickHouse data (no metadata/ in it)');
  }
  const damage = layoutDamage(path);
  if (damage !== undefined) {
    throw new ConfigError(
      'DRIFTLINE_CLICKHOUSE_PATH',
      `${path} is damaged: ${damage}, so the engine cannot read its tables — restore the directory from a backup, or point DRIFTLINE_CLICKHOUSE_PATH at another`,
    );
  }
  const outage = directoryOutage(path);
  if (outage !== undefined) throw engineOutage(path, outage);
  try {
    return open();
  } catch (error) {
    holder = lockHolder(path); // another process took it since the check
    throw holder === undefined ? error : inUse(path, holder, inUseAdvice, error);
  } finally {
    restoreDefaultAbort(); // also when the open failed: the engine may have installed its handlers first
  }
}

/**
 * Gives SIGABRT back its default action (end the process at once, core dump), once the engine has
 * installed ClickHouse's fatal-signal handler over it: that handler waits up to 300 s for a
 * stack-printing thread chdb does not run, so V8's out-of-memory abort() (or any abort(), an
 * external `kill -ABRT`) froze the process 5 minutes before it died (found by a review: 304 s,
 * against 0.3 s without the engine), and a supervisor restarted it that much later. libuv installs
 * its own handler for a listener and puts SIG_DFL back when the last one is removed. A no-op in a
 * worker thread (signals go to the main thread's listeners); the engine is opened in the main one.
 */
function restoreDefaultAbort(): void {
  // Listeners of this process (none in driftline) come back on libuv's handler, which returns:
  // abort() then ends the process all the same, and a `kill -ABRT` reaches them.
  // rawListeners: a `once` listener keeps its wrapper, so it stays once (listeners() had made it permanent).
  const listeners = process.rawListeners('SIGABRT') as Array<(...args: unknown[]) => void>;
  const none = () => {};
  for (const listener of listeners) process.removeListener('SIGABRT', listener);
  process.on('SIGABRT', none);
  process.removeListener('SIGABRT', none);
  for (const listener of listeners) process.on('SIGABRT', listener);
}

// What the machine, not the configuration, refuses a write for: full (blocks or inodes), over
// quota, read-only (a disk the kernel remounted after errors), failing, out of files or memory.
const OUTAGE_ERRNOS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EIO', 'EMFILE', 'ENFILE', 'ENOMEM', 'EAGAIN']);
// 4 KiB: a block of most file systems, so a disk without a free block refuses it as it would a part.
const PROBE = Buffer.alloc(4_096);

/**
 * The machine's refusal to write in the engine's data directory (its code among OUTAGE_ERRNOS), by
 * writing and removing a file in it, as the engine does when it opens (its `status` file);
 * undefined when the write succeeds. A directory this user may not write is a ConfigError naming
 * DRIFTLINE_CLICKHOUSE_PATH, and so is any other refusal (the path is the deployment's).
 */
function directoryOutage(path: string): NodeJS.ErrnoException | undefined {
  const probe = join(path, `.driftline-write-probe-${process.pid}`);
  try {
    const fd = openSync(probe, 'w');
    try {
      writeSync(fd, PROBE);
    } finally {
      closeSync(fd);
    }
    return undefined;
  } catch (error) {
    if (OUTAGE_ERRNOS.has(errnoOf(error))) return error as NodeJS.ErrnoException;
    throw unusable(path, error);
  } finally {
    try {
      rmSync(probe, { force: true });
    } catch {
      // Not created (a read-only or full file system); nothing to remove.
    }
  }
}

function errnoOf(error: unknown): string {
  return (error as NodeJS.ErrnoException | null)?.code ?? '';
}

/**
 * Makes sure `path` is a directory, creating it and its missing parents when `create`: returns the
 * machine's refusal for want of a resource (an outage), throws a ConfigError naming
 * DRIFTLINE_CLICKHOUSE_PATH for a path that cannot be the directory — it never will, so a starting
 * service must not wait for it (before, ENOTDIR and EEXIST were "internal error … report it", and
 * under /proc Node's recursive mkdir looped for ever on ENOENT: found by a review).
 */
function prepareDirectory(path: string, create: boolean): NodeJS.ErrnoException | undefined {
  if (path.includes('\0')) throw pathError(`${JSON.stringify(path)} contains a NUL byte`);
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (error) {
    const code = errnoOf(error);
    if (OUTAGE_ERRNOS.has(code)) return error as NodeJS.ErrnoException;
    if (code === 'ENOTDIR') throw pathError(underNonDirectory(path));
    if (code !== 'ENOENT') throw unusable(path, error);
    if (create) return createDirectory(path);
    const link = symbolicLink(path);
    throw noWarehouse(
      path,
      link === undefined
        ? 'the directory does not exist (a typo, or nothing has written there yet)'
        : `it is a symbolic link to ${link}, which does not exist`,
    );
  }
  if (!stats.isDirectory()) throw pathError(`${path} is ${kindOf(stats)}, not a directory`);
  return undefined;
}

/** Creates `path` one level at a time from its nearest existing ancestor (see prepareDirectory). */
function createDirectory(path: string): NodeJS.ErrnoException | undefined {
  const missing: string[] = [];
  for (let dir = path; ; dir = dirname(dir)) {
    let stats: Stats;
    try {
      stats = statSync(dir);
    } catch (error) {
      const code = errnoOf(error);
      if (OUTAGE_ERRNOS.has(code)) return error as NodeJS.ErrnoException;
      if (code !== 'ENOENT' || dir === dirname(dir)) throw unusable(path, error);
      missing.push(dir);
      continue;
    }
    if (!stats.isDirectory()) throw pathError(`${path} cannot be created: ${dir} is ${kindOf(stats)}, not a directory`);
    break;
  }
  for (const dir of missing.reverse()) {
    try {
      mkdirSync(dir);
    } catch (error) {
      const code = errnoOf(error);
      if (OUTAGE_ERRNOS.has(code)) return error as NodeJS.ErrnoException;
      if (code === 'EEXIST' && isDirectory(dir)) continue; // made by another process meanwhile
      const link = code === 'EEXIST' ? symbolicLink(dir) : undefined;
      if (link !== undefined) {
        throw pathError(`${path} cannot be created: ${dir} is a symbolic link to ${link}, which leads to no directory`);
      }
      throw unusable(path, error, 'cannot be created');
    }
  }
  return undefined;
}

/** Why `path` cannot be a directory when a system call said ENOTDIR: the ancestor that is no directory. */
function underNonDirectory(path: string): string {
  for (let dir = dirname(path); dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const stats = statSync(dir);
      if (!stats.isDirectory()) return `${path} cannot be a directory: ${dir} is ${kindOf(stats)}, not a directory`;
      break;
    } catch {
      // Under the culprit too: go up.
    }
  }
  return `${path} cannot be a directory: a path above it is not a directory (ENOTDIR)`;
}

function kindOf(stats: Stats): string {
  if (stats.isFile()) return 'a regular file';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  return 'a special file';
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

// The directories the engine lays out (a server's too); a file or a broken link at one of them
// leaves the engine without its tables. Missing ones it creates.
const ENGINE_DIRECTORIES = ['metadata', 'store', 'data', 'tmp', 'metadata_dropped'] as const;
// Entries of metadata/ and data/<database>/ looked at: a bound, far above any driftline warehouse.
const MAX_LAYOUT_ENTRIES = 10_000;

/**
 * What is damaged in the layout of an engine directory, or undefined: an engine directory that is
 * not a directory (a `store/` replaced by a file), or a database's metadata (`metadata/<db>`) or a
 * table's data (`data/<db>/<table>`) whose link into `store/` leads nowhere. The engine opened
 * such a directory without a word: its databases had no tables, so `report` wrote an empty page
 * with notes that every table "does not exist (yet)", exit 0, and a service retried its migrations
 * for DRIFTLINE_STARTUP_TIMEOUT (found by a review). A table whose data is gone the engine even
 * recreated empty.
 */
function layoutDamage(path: string): string | undefined {
  for (const name of ENGINE_DIRECTORIES) {
    const problem = entryProblem(path, name, false);
    if (problem !== undefined) return problem;
  }
  const links = [
    ...entries(join(path, 'metadata')).map((database) => `metadata/${database}`),
    ...entries(join(path, 'data')).flatMap((database) =>
      entries(join(path, 'data', database)).map((table) => `data/${database}/${table}`),
    ),
  ];
  for (const name of links.slice(0, MAX_LAYOUT_ENTRIES)) {
    const problem = entryProblem(path, name, true);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/**
 * What is wrong with the entry `name` of the engine directory `root`: not a directory, or (`linkOnly`:
 * the entries of metadata/ and data/<db>/, where other files may lie) a symbolic link that leads to
 * no directory. A missing entry is no damage: the engine creates it.
 */
function entryProblem(root: string, name: string, linkOnly: boolean): string | undefined {
  const entry = join(root, name);
  const link = symbolicLink(entry);
  if (linkOnly && link === undefined) return undefined;
  try {
    const stats = statSync(entry);
    if (stats.isDirectory()) return undefined;
    return link === undefined
      ? `${name} is ${kindOf(stats)}, not a directory`
      : `${name} links to ${link}, which is ${kindOf(stats)}, not a directory`;
  } catch (error) {
    const code = errnoOf(error);
    if (link === undefined) return code === 'ENOENT' ? undefined : `${name} cannot be read (${code})`;
    return `${name} links to ${link}, which ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`;
  }
}

/** Where `path` points when it is a symbolic link; else undefined. */
function symbolicLink(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/** The names in a directory (at most MAX_LAYOUT_ENTRIES), none when it cannot be listed. */
function entries(dir: string): string[] {
  try {
    return readdirSync(dir).slice(0, MAX_LAYOUT_ENTRIES);
  } catch {
    return [];
  }
}

function pathError(message: string): ConfigError {
  return new ConfigError('DRIFTLINE_CLICKHOUSE_PATH', message);
}

/** The file system refuses `path` for a reason of the configuration (not a resource): EACCES, ELOOP, ENAMETOOLONG, … */
function unusable(path: string, cause: unknown, what = 'cannot be used'): ConfigError {
  const code = errnoOf(cause);
  const message = (cause as Error).message;
  const text =
    code === 'EACCES' || code === 'EPERM'
      ? `${path} is not writable by this user: ${message}`
      : `${path} ${what} as the engine's data directory: ${message}`;
  return new ConfigError('DRIFTLINE_CLICKHOUSE_PATH', text, { cause });
}

function noWarehouse(path: string, why: string): ConfigError {
  return new ConfigError('DRIFTLINE_CLICKHOUSE_PATH', `no warehouse at ${path}: ${why}; nothing was created`);
}

/**
 * The engine cannot open its directory now, for want of a resource: an outage, retried at start-up
 * (DRIFTLINE_STARTUP_TIMEOUT). `run`, then `clickhouse serve`, used to exit at once on the engine's
 * bare error, a restart loop under a supervisor (found by reviews).
 */
function engineOutage(path: string, cause: NodeJS.ErrnoException): SinkUnavailableError {
  return new SinkUnavailableError(
    `clickhouse: the embedded engine cannot write its data directory ${path} (DRIFTLINE_CLICKHOUSE_PATH): ${cause.message}`,
    { cause, details: { clickhouse: { category: 'unavailable', name: 'ENGINE_DIRECTORY', errno: cause.code }, path } },
  );
}

/**
 * The process holding the engine's lock on `path`: the pid the engine writes in its `status` file,
 * when that file is locked — by /proc/locks where there is one (a crashed holder leaves the file
 * behind, and its pid may belong to another process by now), else when that pid is alive.
 */
function lockHolder(path: string): number | undefined {
  const status = join(path, 'status');
  let text: string;
  let file: { dev: number; ino: number };
  try {
    text = readFileSync(status, 'utf8');
    file = statSync(status);
  } catch {
    return undefined;
  }
  const pid = Number(/^PID: (\d+)$/m.exec(text)?.[1]);
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  const locked = isLocked(file);
  if (locked !== undefined) return locked ? pid : undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined; // alive, another user's
  }
}

/** Whether /proc/locks lists a lock on the file (Linux: "MAJ:MIN:INODE", device numbers in hex); undefined without /proc/locks. */
function isLocked(file: { dev: number; ino: number }): boolean | undefined {
  let locks: string;
  try {
    locks = readFileSync('/proc/locks', 'utf8');
  } catch {
    return undefined;
  }
  const major = (file.dev >>> 8) & 0xfff;
  const minor = (file.dev & 0xff) | ((file.dev >>> 12) & 0xfff00);
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  const id = ` ${hex(major)}:${hex(minor)}:${file.ino} `;
  return locks.split('\n').some((line) => line.includes(id));
}

function inUse(path: string, pid: number, advice: string, cause?: unknown): ConfigError {
  return new ConfigError(
    'DRIFTLINE_CLICKHOUSE_PATH',
    `${path} is in use by another process (pid ${pid}): the embedded engine opens a directory in one process only; ${advice}`,
    cause === undefined ? {} : { cause },
  );
}
