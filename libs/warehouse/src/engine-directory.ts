// The embedded engine's data directory, checked before the engine opens it — by either owner of the
// engine: a process's embedded client (client.ts) and `driftline clickhouse serve` (http-host). The
// engine prints its own line on stderr ("Cannot lock file", or "Cannot open file …/status: errno: 28")
// and throws a bare "Failed to create connection", which the CLI showed as an internal error to report.
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, SinkUnavailableError } from '@driftline/core';

/**
 * Opens the engine on `path` (absolute) with `open`, after checking that no other process holds it
 * (a ConfigError naming DRIFTLINE_CLICKHOUSE_PATH, ending with `inUseAdvice`) and that this user can
 * write in it (SinkUnavailableError when the machine refuses for want of a resource — a starting
 * process retries it — a ConfigError when this user may not).
 */
export function openEngineDirectory<T>(path: string, open: () => T, inUseAdvice: string): T {
  let holder = lockHolder(path);
  if (holder !== undefined) throw inUse(path, holder, inUseAdvice);
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
 * creating the directory and writing and removing a file in it, as the engine does when it opens
 * (its `status` file); undefined when the write succeeds. A directory this user may not write is a
 * ConfigError naming DRIFTLINE_CLICKHOUSE_PATH; any other failure is thrown as it is.
 */
function directoryOutage(path: string): NodeJS.ErrnoException | undefined {
  const probe = join(path, `.driftline-write-probe-${process.pid}`);
  try {
    mkdirSync(path, { recursive: true });
    const fd = openSync(probe, 'w');
    try {
      writeSync(fd, PROBE);
    } finally {
      closeSync(fd);
    }
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (OUTAGE_ERRNOS.has(code)) return error as NodeJS.ErrnoException;
    if (code === 'EACCES' || code === 'EPERM') {
      const message = `${path} is not writable by this user: ${(error as Error).message}`;
      throw new ConfigError('DRIFTLINE_CLICKHOUSE_PATH', message, { cause: error });
    }
    throw error;
  } finally {
    try {
      rmSync(probe, { force: true });
    } catch {
      // Not created (a read-only or full file system); nothing to remove.
    }
  }
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
