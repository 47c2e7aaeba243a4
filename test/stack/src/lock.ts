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
 * died is moved aside (one rename: one waiter wins) and checked to be the one judged stale: a
 * check-then-remove had let two waiters both take over, the second removing the first's fresh
 * lock (found by a review: overlapping holders in 2 of 15 trials of 6 waiters). Release removes
 * the lock only while it is still this process'.
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
      const trash = aside(lockDir, 'stale');
      try {
        fs.renameSync(lockDir, trash);
      } catch {
        continue; // another waiter moved it first
      }
      const moved = readOwner(trash);
      if (moved !== undefined && ownerAlive(moved)) {
        // A fresh lock taken between the look and the move: give it back (the path is free
        // unless a third waiter got in, which the loop then waits for like any holder).
        try {
          fs.renameSync(trash, lockDir);
        } catch {
          fs.rmSync(trash, { recursive: true, force: true });
        }
      } else {
        options.log?.(`took over a stale lock ${lockDir}`);
        fs.rmSync(trash, { recursive: true, force: true });
      }
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
