import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readProcInfo } from './proc.js';

/** What a lock's owner.json records. `id` names one acquisition; host and pidNs say where `pid` means something. */
interface LockOwner {
  pid: number;
  startTime: string;
  id?: string;
  host?: string;
  pidNs?: string;
}

/** How long waiters sleep between attempts. */
const WAIT_INTERVAL_MS = 250;
/**
 * An ownerless lock (an older version writing it, or its writer died before writing) older (or
 * dated further ahead: a clock step) than this is stale, like a takeover mark.
 */
const OWNERLESS_STALE_MS = 5_000;
/**
 * An owner on another host or in another pid namespace (a container sharing the folder) cannot be
 * checked for liveness: its lock is taken for held until it is this old (longer than any real hold:
 * the longest is a cold download, which its waiters give 20 minutes).
 */
export const FOREIGN_LOCK_MAX_AGE_MS = 30 * 60_000;
/** A takeover mark older (or dated further ahead) than this belongs to a waiter that died in the middle of one. */
const TAKEOVER_STALE_MS = 5_000;
/** A leftover beside a lock (`.new`, `.stale`, `.takeover`, `.released`) whose process cannot be checked is removed after this. */
const LEFTOVER_MAX_AGE_MS = 10 * 60_000;

function pidNamespace(): string | undefined {
  try {
    return fs.readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined; // no /proc (macOS): the host alone tells
  }
}

/** Where this process' pids mean something, as a short tag for the names of its leftovers. */
function placeTag(host: string, pidNs: string | undefined): string {
  return createHash('sha1')
    .update(`${host}\0${pidNs ?? ''}`)
    .digest('hex')
    .slice(0, 8);
}

const here = { host: os.hostname(), pidNs: pidNamespace() };
const hereTag = placeTag(here.host, here.pidNs);

function readOwner(lockDir: string): LockOwner | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(path.join(lockDir, 'owner.json'), 'utf8'));
  } catch {
    return undefined; // missing or half-written
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { pid, startTime, id, host, pidNs } = parsed as Record<string, unknown>;
  if (typeof pid !== 'number' || typeof startTime !== 'string') return undefined;
  return {
    pid,
    startTime,
    ...(typeof id === 'string' ? { id } : {}),
    ...(typeof host === 'string' ? { host } : {}),
    ...(typeof pidNs === 'string' ? { pidNs } : {}),
  };
}

/** Whether `owner` lives here, where its pid can be looked up (an owner.json of an older version: assumed so). */
function ownerIsLocal(owner: LockOwner): boolean {
  if (owner.host !== undefined && owner.host !== here.host) return false;
  return owner.pidNs === undefined || here.pidNs === undefined || owner.pidNs === here.pidNs;
}

function ownerAlive(owner: LockOwner): boolean {
  const info = readProcInfo(owner.pid);
  return info !== undefined && !info.zombie && info.startTime === owner.startTime;
}

/** One lock directory as seen at one moment: which directory it is (inode, owner) and how old. */
interface LockSighting {
  /** Same identity = the same directory with the same owner.json: a lock replaced in between differs. */
  identity: string;
  owner: LockOwner | undefined;
  ageMs: number;
}

function sight(dir: string): LockSighting | undefined {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch {
    return undefined;
  }
  const owner = readOwner(dir);
  const ownerKey = owner === undefined ? '-' : (owner.id ?? `${owner.pid}/${owner.startTime}`);
  return { identity: `${stat.dev}:${stat.ino}:${ownerKey}`, owner, ageMs: Date.now() - stat.mtimeMs };
}

/**
 * Whether something that proves no liveness (an ownerless lock, a takeover mark) is older than
 * `staleMs`, or dated further ahead: waiting for the clock to pass a clock step blocked every run.
 */
const outlived = (ageMs: number, staleMs: number) => Math.abs(ageMs) > staleMs;

function isStale(seen: LockSighting): boolean {
  if (seen.owner === undefined) return outlived(seen.ageMs, OWNERLESS_STALE_MS);
  if (!ownerIsLocal(seen.owner)) return seen.ageMs > FOREIGN_LOCK_MAX_AGE_MS;
  return !ownerAlive(seen.owner);
}

/** The mark a waiter holds (mkdir is atomic) while it removes a stale lock: one takeover at a time. */
const takeoverMark = (lockDir: string) => `${lockDir}.takeover`;

/** A name beside the lock no other process uses; pid and place tag let a later run tell whether it is a leftover. */
const aside = (lockDir: string, what: string) =>
  `${lockDir}.${what}.${process.pid}.${hereTag}.${randomUUID().slice(0, 8)}`;

const codeOf = (err: unknown) => (err as NodeJS.ErrnoException).code;

/** Sleeps, or rejects with the signal's reason as soon as it is aborted. */
function waitOrAbort(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A cross-process mutex so two `stack up`/`down` runs never race each other. The lock is a
 * directory renamed into place with its owner.json already in it (a rename onto an existing,
 * non-empty lock fails atomically), so no lock is ever seen without its owner. A lock whose owner
 * died is removed by one waiter at a time, and only if it is still the very lock that waiter
 * judged stale (see {@link takeOverStale}); the path is then free and taken like any other. Every
 * attempt that does not get the lock waits the normal interval, checking the deadline and the
 * signal. The release moves the lock aside (only while it is still this acquisition's) and never
 * throws.
 */
export async function acquireLock(
  lockDir: string,
  options: { timeoutMs: number; log?: (line: string) => void; signal?: AbortSignal | undefined },
): Promise<() => void> {
  const { signal, log } = options;
  const deadline = Date.now() + options.timeoutMs;
  const me: LockOwner = {
    pid: process.pid,
    startTime: readProcInfo(process.pid)?.startTime ?? 'unknown',
    id: randomUUID(),
    host: here.host,
    ...(here.pidNs === undefined ? {} : { pidNs: here.pidNs }),
  };
  let announced = false;
  let retriedAtOnce = false;
  fs.mkdirSync(path.dirname(lockDir), { recursive: true });
  removeLeftovers(lockDir);
  for (;;) {
    signal?.throwIfAborted();
    if (tryTake(lockDir, me)) return () => releaseLock(lockDir, me);
    const seen = sight(lockDir);
    // Released since our attempt, or a stale lock removed: the path is free, try again at once
    // (once: every other way round the loop waits, so it never spins).
    const freed = seen === undefined || (isStale(seen) && takeOverStale(lockDir, seen, log));
    if (freed && !retriedAtOnce) {
      retriedAtOnce = true;
      continue;
    }
    retriedAtOnce = false;
    if (Date.now() >= deadline) {
      throw new Error(`timed out waiting for ${lockDir} (held by ${holder(seen)})`);
    }
    if (!announced) {
      log?.(`waiting for another stack command (${holder(seen)}) to finish`);
      announced = true;
    }
    await waitOrAbort(Math.min(WAIT_INTERVAL_MS, Math.max(deadline - Date.now(), 1)), signal);
  }
}

function holder(seen: LockSighting | undefined): string {
  const owner = seen?.owner;
  if (owner === undefined) return 'pid unknown';
  return ownerIsLocal(owner)
    ? `pid ${owner.pid}`
    : `pid ${owner.pid} on ${owner.host ?? 'another host'}, not checkable`;
}

/** One attempt: a staging directory with our owner.json renamed onto the lock path. */
function tryTake(lockDir: string, me: LockOwner): boolean {
  const staging = aside(lockDir, 'new');
  try {
    fs.mkdirSync(staging);
    fs.writeFileSync(path.join(staging, 'owner.json'), JSON.stringify(me));
    fs.renameSync(staging, lockDir);
    return true;
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    if (codeOf(err) === 'ENOENT') {
      // Our staging dir removed as a leftover while we were stopped, or the folder itself removed.
      fs.mkdirSync(path.dirname(lockDir), { recursive: true });
      return false;
    }
    if (codeOf(err) !== 'ENOTEMPTY' && codeOf(err) !== 'EEXIST') throw err;
    return false;
  }
}

/**
 * Moved aside first (one rename), then removed: removed in place, the lock is an empty directory
 * between the unlink of owner.json and the rmdir, which a waiter's rename takes (and the rmdir then
 * failed with ENOTEMPTY, turning every `finally { release() }` into a failure). Never throws: a
 * release that cannot clean up leaves a leftover the next run removes.
 */
function releaseLock(lockDir: string, me: LockOwner): void {
  try {
    if (readOwner(lockDir)?.id !== me.id) return; // not ours (any more): someone else's to release
    const trash = aside(lockDir, 'released');
    fs.renameSync(lockDir, trash);
    if (readOwner(trash)?.id !== me.id) {
      // Replaced between the look and the rename (never by a correct peer): put it back if we can.
      fs.renameSync(trash, lockDir);
      return;
    }
    fs.rmSync(trash, { recursive: true, force: true });
  } catch {
    // gone already, or its path taken again: nothing of ours to release
  }
}

/**
 * Removes the stale lock `judged`, one waiter at a time (under a takeover mark: mkdir is atomic),
 * and only that lock: under the mark it is looked at again and moved aside only while it is still
 * the same directory with the same owner.json. An ownerless lock is pinned first (a file written
 * into it: a non-empty directory cannot be replaced by a waiter's rename), so nothing can replace
 * it between that look and the move. Without that check a taker that judged an ownerless lock
 * which was then taken over by another waiter moved the next, live holder's lock aside (a review's
 * race: two holders for seconds). Returns whether it removed the lock.
 */
function takeOverStale(lockDir: string, judged: LockSighting, log?: (line: string) => void): boolean {
  const mark = takeoverMark(lockDir);
  try {
    fs.mkdirSync(mark);
  } catch {
    clearStaleMark(lockDir, mark);
    return false;
  }
  let pin: string | undefined;
  try {
    if (judged.owner === undefined) {
      pin = path.join(lockDir, `.taken-over.${randomUUID().slice(0, 8)}`);
      try {
        fs.writeFileSync(pin, '', { flag: 'wx' });
      } catch {
        pin = undefined;
        return false; // gone meanwhile: the loop tries again
      }
    }
    if (sight(lockDir)?.identity !== judged.identity) {
      if (pin !== undefined) fs.rmSync(pin, { force: true }); // pinned a lock that is not the one judged
      return false;
    }
    const trash = aside(lockDir, 'stale');
    try {
      fs.renameSync(lockDir, trash);
    } catch {
      return false;
    }
    if (sight(trash)?.identity !== judged.identity) {
      // Only another taker running at once (a mark cleared under it) gets here: put it back.
      try {
        fs.renameSync(trash, lockDir);
      } catch {
        log?.(`moved a lock that was not stale aside and could not put it back: ${trash}`);
      }
      return false;
    }
    log?.(`took over a stale lock ${lockDir} (${holder(judged)})`);
    fs.rmSync(trash, { recursive: true, force: true });
    return true;
  } finally {
    fs.rmSync(mark, { recursive: true, force: true });
  }
}

/**
 * Clears a takeover mark left by a waiter that died in the middle of one: moved aside first, and
 * removed only if what was moved is the very mark judged stale (a check-then-remove by path had
 * removed a live waiter's fresh mark). A mark dated far ahead (a clock step) counts as stale too.
 */
function clearStaleMark(lockDir: string, mark: string): void {
  const judged = sight(mark);
  if (judged === undefined || !outlived(judged.ageMs, TAKEOVER_STALE_MS)) return;
  const trash = aside(lockDir, 'takeover');
  try {
    fs.renameSync(mark, trash);
  } catch {
    return; // gone meanwhile
  }
  if (sight(trash)?.identity === judged.identity) {
    fs.rmSync(trash, { recursive: true, force: true });
    return;
  }
  try {
    fs.renameSync(trash, mark); // a fresh mark after all: put it back
  } catch {
    fs.rmSync(trash, { recursive: true, force: true }); // its path taken again: a mark is only a mark
  }
}

/** `<lock>.<what>.<pid>[.<place tag>].<8 hex>`: the tag is missing on names of older versions. */
const LEFTOVER = /^\.(new|stale|takeover|released)\.(\d+)\.(?:([0-9a-f]{8})\.)?[0-9a-f]{8}$/;

/**
 * Removes what processes killed mid-step left beside the lock: staging dirs (killed between mkdir
 * and rename), locks moved aside and not yet removed. One whose pid is dead here goes at once; one
 * of another host or pid namespace (or an older version's name) only once it is old. A bare
 * takeover mark (`<lock>.takeover`, no pid in its name) goes by {@link clearStaleMark}'s rule:
 * only a waiter finding a stale lock cleared it, so with the lock free it stayed forever.
 */
function removeLeftovers(lockDir: string): void {
  clearStaleMark(lockDir, takeoverMark(lockDir));
  const dir = path.dirname(lockDir);
  const prefix = path.basename(lockDir);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = LEFTOVER.exec(name.slice(prefix.length));
    if (m === null) continue;
    const leftover = path.join(dir, name);
    const pid = Number(m[2]);
    let gone: boolean;
    if (m[3] === hereTag) {
      const info = readProcInfo(pid);
      gone = info === undefined || info.zombie;
    } else {
      gone = false;
    }
    try {
      if (!gone && Date.now() - fs.statSync(leftover).mtimeMs <= LEFTOVER_MAX_AGE_MS) continue;
      fs.rmSync(leftover, { recursive: true, force: true });
    } catch {
      // removed by another run meanwhile
    }
  }
}
