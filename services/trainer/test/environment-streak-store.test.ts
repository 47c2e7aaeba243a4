import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  ENVIRONMENT_FAILURE_BUDGET_MS,
  environmentExhausted,
  MIN_ENVIRONMENT_FAILURES,
  recordEnvironmentFailure,
} from '../src/environment-failures.js';
import { ENVIRONMENT_STREAK_FILE, environmentStreakStore, type StreakFs } from '../src/environment-streak-store.js';

/**
 * node:fs on a disk that can be filled: while full, a write creates (or truncates) its file, as
 * open(O_CREAT|O_TRUNC) does, then fails with ENOSPC, as the write(2) does.
 */
function fillableFs(): StreakFs & { full: boolean } {
  const disk = {
    full: false,
    existsSync: fs.existsSync,
    readFileSync: fs.readFileSync,
    renameSync: fs.renameSync,
    rmSync: fs.rmSync,
    writeFileSync: ((path: fs.PathOrFileDescriptor, data: string | NodeJS.ArrayBufferView) => {
      if (!disk.full) return fs.writeFileSync(path, data);
      fs.writeFileSync(path, '');
      throw Object.assign(new Error(`ENOSPC: no space left on device, write`), { code: 'ENOSPC', errno: -28 });
    }) as typeof fs.writeFileSync,
  };
  return disk;
}

const minutes = (n: number) => n * 60_000;

/** Environment failures of one request every `every` ms from t = 0, as recordEnvironmentFailureOf counts them: the attempt at which it is given up. */
function givenUpAt(store: ReturnType<typeof environmentStreakStore>, dir: string, every: number, limit = 100) {
  for (let attempt = 1; attempt <= limit; attempt++) {
    const at = (attempt - 1) * every;
    const streak = recordEnvironmentFailure(store.read(dir), at, at + 1_000);
    store.write(dir, streak);
    if (environmentExhausted(streak)) return { attempt, streak };
  }
  return undefined;
}

describe('environment streak store (a full disk: found by a review)', () => {
  it('a disk full from the first failure: the streak counts on in memory and the request is given up after the hour', () => {
    const disk = fillableFs();
    disk.full = true;
    const dir = mkdtempSync(join(tmpdir(), 'trainer-streak-'));
    // Written in place, the file was left empty, read back as no streak: 1 failure for ever.
    const given = givenUpAt(environmentStreakStore(disk), dir, minutes(10));
    expect(given?.attempt).toBe(MIN_ENVIRONMENT_FAILURES);
    expect(given!.streak.last - given!.streak.since).toBeGreaterThanOrEqual(ENVIRONMENT_FAILURE_BUDGET_MS);
    // No streak file (a failed write leaves nothing, not an empty file), no temporary one.
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('a disk that fills in the middle of a streak keeps the last good streak in its file, and counts on from memory', () => {
    const disk = fillableFs();
    const dir = mkdtempSync(join(tmpdir(), 'trainer-streak-'));
    const store = environmentStreakStore(disk);
    for (let attempt = 1; attempt <= 3; attempt++) {
      const at = (attempt - 1) * minutes(10);
      store.write(dir, recordEnvironmentFailure(store.read(dir), at, at + 1_000));
    }
    disk.full = true;
    let streak = store.read(dir);
    for (let attempt = 4; attempt <= MIN_ENVIRONMENT_FAILURES; attempt++) {
      const at = (attempt - 1) * minutes(10);
      streak = recordEnvironmentFailure(store.read(dir), at, at + 1_000);
      store.write(dir, streak);
    }
    expect(streak).toMatchObject({ failures: MIN_ENVIRONMENT_FAILURES, since: 0 });
    expect(environmentExhausted(streak!)).toBe(true);
    // The file still holds the third failure's streak: a restart counts on from there.
    expect(JSON.parse(readFileSync(join(dir, ENVIRONMENT_STREAK_FILE), 'utf8'))).toMatchObject({ failures: 3 });
    expect(environmentStreakStore(disk).read(dir)).toMatchObject({ failures: 3, since: 0 });
    // The disk freed: the streak in memory is written, and read from its file after a restart.
    disk.full = false;
    store.write(dir, recordEnvironmentFailure(store.read(dir), minutes(100), minutes(100) + 1_000));
    expect(environmentStreakStore(disk).read(dir)).toMatchObject({ failures: MIN_ENVIRONMENT_FAILURES + 1 });
  });

  it('an empty or unreadable streak file (an older trainer truncated it on a full disk) gives way to the streak in memory', () => {
    const disk = fillableFs();
    const dir = mkdtempSync(join(tmpdir(), 'trainer-streak-'));
    writeFileSync(join(dir, ENVIRONMENT_STREAK_FILE), '');
    const store = environmentStreakStore(disk);
    expect(store.read(dir)).toBeUndefined(); // nothing in memory: no streak, counting starts again
    disk.full = true;
    store.write(dir, { failures: 4, since: 0, last: minutes(30) });
    expect(store.read(dir)).toEqual({ failures: 4, since: 0, last: minutes(30) });
    expect(readFileSync(join(dir, ENVIRONMENT_STREAK_FILE), 'utf8')).toBe('');
  });

  it('clear removes the streak from its file and from memory', () => {
    const disk = fillableFs();
    const dir = mkdtempSync(join(tmpdir(), 'trainer-streak-'));
    const store = environmentStreakStore(disk);
    store.write(dir, { failures: 2, since: 0, last: 1 });
    disk.full = true;
    store.write(dir, { failures: 3, since: 0, last: 2 });
    store.clear(dir);
    expect(store.read(dir)).toBeUndefined();
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe('environment streak store: two trainers on one request (the old owner after a rebalance; found by a review)', () => {
  it("one writer's whole write between another's write and rename: both renames succeed, the file holds a streak", () => {
    const dir = mkdtempSync(join(tmpdir(), 'trainer-streak-'));
    const other = environmentStreakStore();
    const failed: string[] = [];
    let interleaved = false;
    const first: StreakFs = {
      ...fs,
      renameSync: (from, to) => {
        if (!interleaved) {
          interleaved = true;
          other.write(dir, { failures: 7, since: 0, last: 7 });
        }
        try {
          fs.renameSync(from, to);
        } catch (error) {
          failed.push((error as NodeJS.ErrnoException).code ?? String(error));
          throw error;
        }
      },
    };
    environmentStreakStore(first).write(dir, { failures: 3, since: 0, last: 3 });
    // One shared `.tmp`: the other writer renamed it away, and this rename failed (ENOENT).
    expect(failed).toEqual([]);
    expect(environmentStreakStore().read(dir)).toEqual({ failures: 3, since: 0, last: 3 });
    expect(fs.readdirSync(dir)).toEqual([ENVIRONMENT_STREAK_FILE]);
  });

  it("a failed write removes its own temporary file only, never another writer's", () => {
    const dir = mkdtempSync(join(tmpdir(), 'trainer-streak-'));
    // A writer on a full disk: its write creates the file, then fails (fillableFs).
    const disk = fillableFs();
    disk.full = true;
    const failing = environmentStreakStore(disk);
    const failed: string[] = [];
    // The other writer: the failing one writes and cleans up between its write and its rename.
    const other = environmentStreakStore({
      ...fs,
      renameSync: (from, to) => {
        failing.write(dir, { failures: 3, since: 0, last: 3 });
        try {
          fs.renameSync(from, to);
        } catch (error) {
          failed.push((error as NodeJS.ErrnoException).code ?? String(error));
          throw error;
        }
      },
    });
    other.write(dir, { failures: 7, since: 0, last: 7 });
    // One shared `.tmp`: the failing writer truncated, then removed, the other's file (ENOENT).
    expect(failed).toEqual([]);
    expect(environmentStreakStore().read(dir)).toEqual({ failures: 7, since: 0, last: 7 });
    expect(fs.readdirSync(dir)).toEqual([ENVIRONMENT_STREAK_FILE]);
  });

  it('two writer processes and a reader in a loop: no read finds the file empty, no rename fails', {
    timeout: 90_000,
  }, async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'trainer-streak-race-'));
    const dir = join(scratch, 'version');
    fs.mkdirSync(dir);
    const go = join(scratch, 'go');
    const stop = join(scratch, 'stop');
    const script = fileURLToPath(new URL('./streak-race-process.ts', import.meta.url));
    const run = (...args: string[]) =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', '--conditions=source', script, ...args], {
        timeout: 60_000,
      }).then(({ stdout }) => JSON.parse(stdout) as Record<string, number>);
    const writers = [run('writer', dir, go, '3000'), run('writer', dir, go, '3000')];
    const reader = run('reader', dir, go, stop);
    // Every process loaded (tsx takes seconds on a busy machine) before any of them starts.
    while (fs.readdirSync(scratch).filter((name) => name.startsWith('go.')).length < 3) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    writeFileSync(go, '');
    const written = await Promise.all(writers);
    writeFileSync(stop, '');
    const read = await reader;
    // One shared `.tmp` (3,000 writes each): about 40 failed renames per writer, and reads that
    // found the file empty (a count reset).
    expect(read.reads).toBeGreaterThan(0);
    expect({ written, emptyReads: read.none }).toEqual({
      written: [
        { writes: 3000, failedRenames: 0 },
        { writes: 3000, failedRenames: 0 },
      ],
      emptyReads: 0,
    });
    expect(fs.readdirSync(dir)).toEqual([ENVIRONMENT_STREAK_FILE]);
  });
});
