import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { withCacheLock } from '../src/cache.js';
import { acquireLock, FOREIGN_LOCK_MAX_AGE_MS } from '../src/lock.js';
import { readProcInfo, type SpawnedProcess, spawnDetached } from '../src/proc.js';

// Scratch dirs only: these tests never touch the running stack's lock or cache.
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'driftline-stack-lock-'));
const spawned: SpawnedProcess[] = [];
const real = {
  mkdirSync: fs.mkdirSync,
  readFileSync: fs.readFileSync,
  writeFileSync: fs.writeFileSync,
  statSync: fs.statSync,
  renameSync: fs.renameSync,
  rmSync: fs.rmSync,
  rmdirSync: fs.rmdirSync,
};

afterAll(() => {
  Object.assign(fs, real);
  for (const p of spawned) {
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  fs.rmSync(root, { recursive: true, force: true });
});

/** Another live process of this host and pid namespace: a real lock holder. */
async function liveOwner(id: string): Promise<Record<string, unknown>> {
  const p = await spawnDetached({
    command: process.execPath,
    args: ['-e', 'setInterval(() => {}, 1 << 30)', `driftline-lock-test-${id}`],
    cwd: root,
    logFile: path.join(root, `${id}.log`),
  });
  spawned.push(p);
  return { pid: p.pid, startTime: p.startTime, id, host: os.hostname(), pidNs: fs.readlinkSync('/proc/self/ns/pid') };
}

function scratch(name: string): { dir: string; lockDir: string } {
  const dir = path.join(root, name);
  real.mkdirSync(dir, { recursive: true });
  return { dir, lockDir: path.join(dir, '.lock') };
}

/** Puts a lock in place the way a holder does (staging dir renamed onto the path), with the real fs functions. */
function placeLock(lockDir: string, owner: Record<string, unknown> | string, ageMs = 0): void {
  const staging = `${lockDir}.placing`;
  real.mkdirSync(staging);
  real.writeFileSync(path.join(staging, 'owner.json'), typeof owner === 'string' ? owner : JSON.stringify(owner));
  if (ageMs > 0) {
    const at = new Date(Date.now() - ageMs);
    fs.utimesSync(staging, at, at);
  }
  real.renameSync(staging, lockDir);
}

function ownerId(dir: string): unknown {
  try {
    return (JSON.parse(String(real.readFileSync(path.join(dir, 'owner.json'), 'utf8'))) as { id?: unknown }).id;
  } catch {
    return undefined;
  }
}

describe('lock takeover', () => {
  it('never moves a live lock that replaced the ownerless lock it judged stale (found by a review)', async () => {
    const { dir, lockDir } = scratch('ownerless-race');
    placeLock(lockDir, '{"pid": 12', 60_000); // half-written: no owner, old
    const w3 = await liveOwner('w3');
    const mark = `${lockDir}.takeover`;
    const onLock = (p: unknown) => String(p) === lockDir || String(p).startsWith(`${lockDir}${path.sep}`);
    let w3In = false;
    const movedLive: string[] = [];
    // W1 finishes its takeover of the stale lock just as this waiter takes the mark; W3 takes the
    // free path right after this waiter's next look at the lock path.
    const afterLook = (p: unknown) => {
      if (!w3In && onLock(p) && fs.existsSync(mark)) {
        w3In = true;
        placeLock(lockDir, w3);
      }
    };
    fs.mkdirSync = ((p: fs.PathLike, o?: fs.MakeDirectoryOptions) => {
      if (String(p) === mark && !w3In) real.rmSync(lockDir, { recursive: true, force: true });
      return real.mkdirSync(p, o);
    }) as typeof fs.mkdirSync;
    for (const name of ['readFileSync', 'writeFileSync', 'statSync'] as const) {
      const original = real[name] as (...args: unknown[]) => unknown;
      Object.assign(fs, {
        [name]: (...args: unknown[]) => {
          try {
            return original(...args);
          } finally {
            afterLook(args[0]);
          }
        },
      });
    }
    fs.renameSync = ((from: fs.PathLike, to: fs.PathLike) => {
      if (String(from) === lockDir && ownerId(lockDir) === 'w3') movedLive.push(String(to));
      return real.renameSync(from, to);
    }) as typeof fs.renameSync;
    try {
      await expect(acquireLock(lockDir, { timeoutMs: 800 })).rejects.toThrow(/timed out/);
    } finally {
      Object.assign(fs, real);
    }
    expect(w3In).toBe(true);
    expect(movedLive).toEqual([]);
    expect(ownerId(lockDir)).toBe('w3');
    expect(fs.readdirSync(dir)).toEqual(['.lock']);
  });

  it('waits, honouring the deadline and the signal, while another waiter holds the takeover mark (found by a review)', async () => {
    const { lockDir } = scratch('mark-held');
    placeLock(lockDir, { pid: 2 ** 22 + 7, startTime: '1' }); // its owner is dead
    const mark = `${lockDir}.takeover`;
    fs.mkdirSync(mark); // a live waiter in the middle of its takeover
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 20);
    try {
      const t0 = Date.now();
      await expect(acquireLock(lockDir, { timeoutMs: 300 })).rejects.toThrow(/timed out/);
      expect(Date.now() - t0).toBeLessThan(5_000); // the 300 ms deadline, slack for a loaded run
      expect(ticks).toBeGreaterThanOrEqual(5); // the event loop ran while it waited

      const ctrlC = new AbortController();
      setTimeout(() => ctrlC.abort(new Error('Ctrl-C')), 100);
      const t1 = Date.now();
      await expect(acquireLock(lockDir, { timeoutMs: 60_000, signal: ctrlC.signal })).rejects.toThrow('Ctrl-C');
      expect(Date.now() - t1).toBeLessThan(5_000); // the signal at 100 ms, not the 60 s deadline
    } finally {
      clearInterval(ticker);
    }
    expect(fs.existsSync(mark)).toBe(true); // a fresh mark is another waiter's: left alone
    expect(ownerId(lockDir)).toBeUndefined();
  });

  it('clears a takeover mark dated far ahead (a clock step) instead of waiting for the clock to pass it', async () => {
    const { dir, lockDir } = scratch('mark-future');
    placeLock(lockDir, { pid: 2 ** 22 + 7, startTime: '1' });
    const mark = `${lockDir}.takeover`;
    fs.mkdirSync(mark);
    const ahead = new Date(Date.now() + 3_600_000);
    fs.utimesSync(mark, ahead, ahead);
    const release = await acquireLock(lockDir, { timeoutMs: 2_000 });
    release();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('takes over an ownerless lock dated far ahead (a clock step), like a takeover mark (found by a review)', async () => {
    const { dir, lockDir } = scratch('ownerless-future');
    // Its owner.json half-written (an older version's lock, or its writer died writing): no owner,
    // and not empty, so no rename can replace it.
    placeLock(lockDir, '{"pid": 12');
    const ahead = new Date(Date.now() + 3_600_000);
    fs.utimesSync(lockDir, ahead, ahead);
    const release = await acquireLock(lockDir, { timeoutMs: 1_000 });
    expect(typeof ownerId(lockDir)).toBe('string');
    release();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('takes a lock of another pid namespace or host for held until it is older than the bound (found by a review)', async () => {
    const { dir, lockDir } = scratch('foreign');
    const pid1Start = Number(readProcInfo(1)?.startTime ?? 0);
    const container = {
      pid: 1, // a container's init: here pid 1 is another process
      startTime: String(pid1Start + 12_345),
      id: 'container',
      host: os.hostname(),
      pidNs: 'pid:[4026500001]',
    };
    const otherHost = { pid: process.pid, startTime: '1', id: 'other-host', host: `not-${os.hostname()}` };
    for (const owner of [container, otherHost]) {
      placeLock(lockDir, owner);
      await expect(acquireLock(lockDir, { timeoutMs: 300 })).rejects.toThrow(/timed out/);
      expect(ownerId(lockDir)).toBe(owner.id);
      const old = new Date(Date.now() - FOREIGN_LOCK_MAX_AGE_MS - 60_000);
      fs.utimesSync(lockDir, old, old);
      const release = await acquireLock(lockDir, { timeoutMs: 1_000 });
      expect(ownerId(lockDir)).not.toBe(owner.id);
      release();
      expect(fs.readdirSync(dir)).toEqual([]);
    }
  });
});

describe('lock release', () => {
  it('never throws, and leaves a lock a waiter took during the release in place (found by a review)', async () => {
    const { dir } = scratch('release-race');
    const lockDir = path.join(dir, '.maven.lock');
    const waiter = await liveOwner('waiter');
    let waiterIn = false;
    // A waiter's rename lands while the release removes the lock. Removing the lock in place,
    // rmSync unlinks owner.json and then rmdirs (seen with strace): the waiter's rename replaces
    // the then empty directory in between, as done here.
    fs.rmSync = ((target: fs.PathLike, options?: fs.RmOptions) => {
      if (!waiterIn && String(target) === lockDir) {
        waiterIn = true;
        for (const entry of fs.readdirSync(lockDir)) fs.unlinkSync(path.join(lockDir, entry));
        placeLock(lockDir, waiter);
        return real.rmdirSync(lockDir);
      }
      if (!waiterIn && String(target).startsWith(`${lockDir}.`) && !fs.existsSync(lockDir)) {
        waiterIn = true;
        placeLock(lockDir, waiter);
      }
      return real.rmSync(target, options);
    }) as typeof fs.rmSync;
    try {
      await expect(withCacheLock(dir, 'maven', {}, async () => 'filled')).resolves.toBe('filled');
    } finally {
      Object.assign(fs, real);
    }
    expect(waiterIn).toBe(true);
    expect(ownerId(lockDir)).toBe('waiter');
    expect(fs.readdirSync(dir)).toEqual(['.maven.lock']);
  });
});

describe('lock leftovers', () => {
  it('removes what killed processes left beside the lock, and only what is surely dead or old (found by a review)', async () => {
    const { dir, lockDir } = scratch('leftovers');
    // A process killed between the mkdir of its staging dir and the rename onto the lock.
    const lockModule = new URL('../src/lock.ts', import.meta.url).href;
    const script = `
      const fs = (await import('node:fs')).default;
      const { acquireLock } = await import(${JSON.stringify(lockModule)});
      fs.renameSync = () => process.kill(process.pid, 'SIGKILL');
      await acquireLock(${JSON.stringify(lockDir)}, { timeoutMs: 1000 });`;
    await new Promise((resolve) =>
      spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: 'ignore' }).once(
        'exit',
        resolve,
      ),
    );
    const killed = fs.readdirSync(dir).filter((n) => n.startsWith('.lock.new.'));
    expect(killed).toHaveLength(1);
    const tag = killed[0]?.split('.')[4] ?? '';
    const dead = 2 ** 22 + 7;
    const mkLeftover = (name: string, ageMs = 0) => {
      fs.mkdirSync(path.join(dir, name));
      fs.writeFileSync(path.join(dir, name, 'owner.json'), '{}');
      if (ageMs > 0) {
        const at = new Date(Date.now() - ageMs);
        fs.utimesSync(path.join(dir, name), at, at);
      }
    };
    mkLeftover(`.lock.stale.${dead}.${tag}.0a1b2c3d`); // dead here
    mkLeftover(`.lock.stale.${dead}.0a1b2c3d`, 11 * 60_000); // an older version's name, old
    mkLeftover(`.lock.new.${dead}.0a1b2c3e`); // an older version's name, recent: its pid may live elsewhere
    mkLeftover(`.lock.new.${dead}.ffffffff.0a1b2c3f`); // another namespace's, recent
    mkLeftover(`.lock.released.${process.pid}.${tag}.0a1b2c40`); // a live process' (this one)
    fs.writeFileSync(path.join(dir, '.lock.json'), '{}'); // not ours at all
    // A takeover mark left by a waiter killed mid-takeover (its name carries no pid), found with the lock free.
    fs.mkdirSync(`${lockDir}.takeover`);
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(`${lockDir}.takeover`, old, old);
    const release = await acquireLock(lockDir, { timeoutMs: 1_000 });
    release();
    expect(fs.readdirSync(dir).sort()).toEqual(
      [
        `.lock.new.${dead}.0a1b2c3e`,
        `.lock.new.${dead}.ffffffff.0a1b2c3f`,
        `.lock.released.${process.pid}.${tag}.0a1b2c40`,
        '.lock.json',
      ].sort(),
    );
  });
});
