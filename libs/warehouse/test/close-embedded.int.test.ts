// The demo removes its run folder, embedded engine data included, when it ends: the engine kept the
// directory open until the process exited and could recreate folders under the one removed (seen by
// a review after Ctrl-C). closeEmbeddedEngine() lets it go; a later ClickHouse opens the engine again.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { closeEmbeddedEngine, createClickHouse } from '../src/index.js';

const work = mkdtempSync(join(tmpdir(), 'driftline-close-embedded-'));
afterAll(async () => {
  await closeEmbeddedEngine();
  rmSync(work, { recursive: true, force: true });
});

describe('closeEmbeddedEngine', () => {
  it('lets the data directory go: removed after the close, it stays removed, and another directory opens', async () => {
    const first = join(work, 'first');
    const ch = await createClickHouse({ mode: 'embedded', path: first, database: 'closing' });
    await ch.command(`CREATE DATABASE IF NOT EXISTS closing`);
    await ch.command(`CREATE TABLE closing.t (x UInt64) ENGINE = MergeTree ORDER BY x`);
    await ch.insert('t', [{ x: 1 }, { x: 2 }]);
    expect(await ch.select<{ n: number }>(`SELECT count() AS n FROM closing.t`)).toEqual([{ n: 2 }]);

    await closeEmbeddedEngine();
    rmSync(first, { recursive: true, force: true });
    // Background work of an open engine (merges, its log flushes) wrote here within a second.
    await sleep(1_500);
    expect(existsSync(first)).toBe(false);

    // Bound to `first` until then: another path was a configuration error in this process.
    const second = await createClickHouse({ mode: 'embedded', path: join(work, 'second'), database: 'closing' });
    expect(await second.select<{ one: number }>('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });

  it('is a no-op when no engine is open', async () => {
    await closeEmbeddedEngine();
    await expect(closeEmbeddedEngine()).resolves.toBeUndefined();
  });
});
