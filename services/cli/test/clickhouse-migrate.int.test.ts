// `driftline clickhouse migrate`: the warehouse's migrations applied (or listed) before a rollout,
// so a copy that rebuilds a large table does not run inside a service's start-up timeout.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { closeEmbeddedEngine, createClickHouse, migrations } from '@driftline/warehouse';
import { afterAll, describe, expect, it } from 'vitest';
import { bundledCli } from './bundled-cli.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'driftline-migrate-'));
const path = join(work, 'chdb');
const cli = bundledCli('clickhouse-migrate');
const ids = migrations.map((m) => m.id).sort((a, b) => a.localeCompare(b));

afterAll(() => rmSync(work, { recursive: true, force: true }));

async function migrateCli(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DRIFTLINE_CLICKHOUSE_')));
  try {
    const { stdout, stderr } = await run(process.execPath, [cli(), 'clickhouse', 'migrate', ...args], {
      cwd: root,
      env: { ...env, DRIFTLINE_CLICKHOUSE_PATH: path, DRIFTLINE_CLICKHOUSE_DATABASE: 'migrated' },
    });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

describe('driftline clickhouse migrate', () => {
  it('lists, applies, and resumes: --status changes nothing, a pending migration is applied alone', async () => {
    // Nothing there yet: --status creates nothing and says so.
    const missing = await migrateCli('--status');
    expect([missing.code, missing.stderr]).toEqual([
      78,
      expect.stringMatching(/^driftline: configuration error: DRIFTLINE_CLICKHOUSE_PATH: no warehouse at .*\n$/),
    ]);

    const first = await migrateCli();
    expect([first.code, JSON.parse(first.stdout)]).toEqual([0, { database: 'migrated', applied: ids, already: 0 }]);
    // A line as each starts and one with its time as it ends, in id order.
    expect(first.stderr.trimEnd().split('\n')).toEqual(
      ids.flatMap((id) => [`applying ${id}…`, expect.stringMatching(new RegExp(`^applied ${id} in \\d+\\.\\d s$`))]),
    );
    const listed = await migrateCli('--status');
    expect([listed.code, JSON.parse(listed.stdout)]).toEqual([0, { database: 'migrated', applied: ids, pending: [] }]);

    // A release's newest migration not recorded yet (as after an upgrade): pending, then applied alone.
    const newest = ids.at(-1)!;
    const ch = await createClickHouse({ mode: 'embedded', path, database: 'migrated' });
    await ch.command(
      `ALTER TABLE migrated.schema_migrations DELETE WHERE id = '${newest}' SETTINGS mutations_sync = 1`,
    );
    await closeEmbeddedEngine();
    const pending = await migrateCli('--status');
    expect(JSON.parse(pending.stdout)).toEqual({ database: 'migrated', applied: ids.slice(0, -1), pending: [newest] });
    const resumed = await migrateCli();
    expect([resumed.code, JSON.parse(resumed.stdout)]).toEqual([
      0,
      { database: 'migrated', applied: [newest], already: ids.length - 1 },
    ]);
    const again = await migrateCli();
    expect(JSON.parse(again.stdout)).toEqual({ database: 'migrated', applied: [], already: ids.length });
    expect(again.stderr).toBe('');
  });
});
