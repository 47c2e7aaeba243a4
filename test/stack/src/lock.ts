import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { readProcInfo } from './proc.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface LockOwner {
  pid: number;
  startTime: string;
}

function readOwner(lockDir: string): LockOwner | undefined {
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(path.join(lockDir, 'owner.json'), 'utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'pid' in parsed && 'startTime' in parsed) {
      const { pid, startTime } = parsed;
      if (typeof pid === 'number' && typeof startTime === 'string') return { pid, startTime };
    }
  } catch {
    // missing or half-written
  }
  return undefined;
}

function ownerAlive(owner: LockOwner): boolean {
  const info = readProcInfo(owner.pid);
  return info !== undefined && !info.zombie && info.startTime === owner.startTime;
}

const sameOwner = (a: LockOwner | undefined, b: LockOwner) =>
  a !== undefined && a.pid === b.pid && a.startTime === b.startTime;

/** A name beside the lock no other process uses. */
const aside = (lockDir: string, what: string) => `${lockDir}.${what}.${process.pid}.${randomUUID().slice(0, 8)}`;

/**
 * A cross-process mutex so two `stack up`/`down` runs never race each other. The lock is a
 * directory renamed into place with its owner.json already in it (a rename onto an existing,
 * non-empty lock fails atomically), so no lock is ever seen without its owner. A lock whose owner
 * died is removed by one waiter at a time (see {@link takeOverStale}); the path is then free and
 * taken like any other. Release removes the lock only while it is still this process'.
 */
export async function acquireLock(
  lockDir: string,
  options: { timeoutMs: number; log?: (line: string) => void; signal?: AbortSignal | undefined },
): Promise<() => void> {
  const deadline = Date.now() + options.timeoutMs;
  const self = readProcInfo(process.pid);
  const me: LockOwner = { pid: process.pid, startTime: self?.startTime ?? 'unknown' };
  let announced = false;
  fs.mkdirSync(path.dirname(lockDir), { recursive: true });
  const release = () => {
    if (sameOwner(readOwner(lockDir), me)) fs.rmSync(lockDir, { recursive: true, force: true });
  };
  for (;;) {
    options.signal?.throwIfAborted();
    const staging = aside(lockDir, 'new');
    fs.mkdirSync(staging);
    fs.writeFileSync(path.join(staging, 'owner.json'), JSON.stringify(me));
    try {
      fs.renameSync(staging, lockDir);
      return release;
    } catch (err) {
      fs.rmSync(staging, { recursive: true, force: true });
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
    const owner = readOwner(lockDir);
    let stale = false;
    if (owner === undefined) {
      // A lock of an older version being written right now, or whose writer died between its
      // mkdir and its write.
      try {
        stale = Date.now() - fs.statSync(lockDir).mtimeMs > 5_000;
      } catch {
        stale = false; // vanished: just retry
      }
    } else {
      stale = !ownerAlive(owner);
    }
    if (stale) {
      takeOverStale(lockDir, owner, options.log);
      continue;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out waiting for ${lockDir} (held by pid ${owner?.pid ?? 'unknown'})`);
    }
    if (!announced) {
      options.log?.(`waiting for another stack command (pid ${owner?.pid ?? 'unknown'}) to finish`);
      announced = true;
    }
    await sleep(250);
  }
}

/** A takeover mark older than this belongs to a waiter that died in the middle of one. */
const TAKEOVER_STALE_MS = 5_000;

/**
 * Removes a stale lock, one waiter at a time: under a takeover mark (a directory beside the lock:
 * mkdir is atomic), the lock's owner is read again and the lock removed only if it is still the
 * one judged stale. No waiter can take the path meanwhile (the stale lock is still there), so a
 * fresh lock is never removed. Moving the stale lock aside instead had a window: a fresh lock
 * moved aside by a slow waiter could not always be put back once a third waiter had taken the
 * path, and two holders overlapped (seen under load).
 */
function takeOverStale(lockDir: string, judged: LockOwner | undefined, log?: (line: string) => void): void {
  const mark = `${lockDir}.takeover`;
  try {
    fs.mkdirSync(mark);
  } catch {
    clearStaleMark(lockDir, mark);
    return;
  }
  try {
    const now = readOwner(lockDir);
    const still = judged === undefined ? now === undefined : sameOwner(now, judged);
    if (!still || (now !== undefined && ownerAlive(now))) return;
    // Moved aside first (one rename), then removed: removed in place, the lock is an empty
    // directory for a moment, which a waiter's rename takes (and the removal then fails).
    const trash = aside(lockDir, 'stale');
    try {
      fs.renameSync(lockDir, trash);
    } catch {
      return; // gone already (another waiter took it over first): the loop tries again
    }
    const moved = readOwner(trash);
    if (moved !== undefined && ownerAlive(moved)) {
      // A live lock after all (two takers at once after a mark was cleared): put it back, or, if
      // the path is taken again, leave it aside rather than remove a live holder's lock.
      try {
        fs.renameSync(trash, lockDir);
      } catch {
        // left aside: its holder's release finds the path not its own and leaves it
      }
      return;
    }
    log?.(`took over a stale lock ${lockDir}`);
    fs.rmSync(trash, { recursive: true, force: true });
  } finally {
    fs.rmSync(mark, { recursive: true, force: true });
  }
}

/**
 * Clears a takeover mark left by a waiter that died in the middle of one (older than
 * TAKEOVER_STALE_MS): moved aside first, and removed only if what was moved is that old mark — a
 * check-then-remove by path had removed a live waiter's fresh mark (found by a review).
 */
function clearStaleMark(lockDir: string, mark: string): void {
  try {
    if (Date.now() - fs.statSync(mark).mtimeMs <= TAKEOVER_STALE_MS) return;
    const trash = aside(lockDir, 'takeover');
    fs.renameSync(mark, trash);
    if (Date.now() - fs.statSync(trash).mtimeMs > TAKEOVER_STALE_MS) {
      fs.rmSync(trash, { recursive: true, force: true });
      return;
    }
    try {
      fs.renameSync(trash, mark); // a fresh mark after all: put it back
    } catch {
      fs.rmSync(trash, { recursive: true, force: true }); // its path taken again: a mark is only a mark
    }
  } catch {
    // gone meanwhile: the next round tries again
  }
}
