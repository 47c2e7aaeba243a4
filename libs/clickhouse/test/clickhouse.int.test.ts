import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createClickHouse, migrate } from '../src/index.js';

// The embedded engine (chdb) is a real ClickHouse; one data directory per test process.
const path = mkdtempSync(join(tmpdir(), 'driftline-ch-'));

describe('ClickHouse through @clickhouse/client on the embedded engine', () => {
  it('creates the database, runs migrations once, and takes query parameters', async () => {
    const database = `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    const ch = await createClickHouse({ mode: 'embedded', path, database });
    const migrations = [
      {
        id: '0001_things',
        statements: [
          `CREATE TABLE IF NOT EXISTS {db}.things (id String, at DateTime64(3, 'UTC'), kind LowCardinality(String), v Float64)
           ENGINE = ReplacingMergeTree ORDER BY id`,
        ],
      },
    ];
    expect(await migrate(ch, migrations)).toEqual(['0001_things']);
    expect(await migrate(ch, migrations)).toEqual([]);
    const rows = [
      { id: 'a', at: 1_700_000_000_000, kind: "it's", v: 1.5 },
      { id: 'a', at: 1_700_000_000_000, kind: "it's", v: 1.5 },
      { id: 'b', at: 1_700_000_000_001, kind: 'x', v: 2 },
    ];
    await ch.client.insert({ table: ch.table('things'), values: rows, format: 'JSONEachRow' });
    const result = await ch.client.query({
      query: `SELECT id, v, toUnixTimestamp64Milli(at) AS at FROM ${ch.table('things')} FINAL WHERE kind = {kind:String} ORDER BY id`,
      query_params: { kind: "it's" },
      format: 'JSONEachRow',
    });
    expect(await result.json()).toEqual([{ id: 'a', v: 1.5, at: 1_700_000_000_000 }]);
    expect(() => ch.table('x; DROP TABLE y')).toThrow(/not a table identifier/);
    await ch.close();
  });

  it('refuses a second data directory in the same process, naming the variable', async () => {
    await expect(createClickHouse({ mode: 'embedded', path: `${path}-other`, database: 'd' })).rejects.toThrow(
      /DRIFTLINE_CLICKHOUSE_PATH/,
    );
  });
});
