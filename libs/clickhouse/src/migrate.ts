import type { ClickHouse } from './client.js';

export interface Migration {
  /** Stable, ordered id, e.g. `0001_drift_windows`. */
  readonly id: string;
  /** DDL statements; `{db}` is replaced by the database name. */
  readonly statements: readonly string[];
}

/**
 * Applies the migrations not applied yet, in id order, recording each in `schema_migrations`.
 * Statements must be idempotent (`IF NOT EXISTS`), so two services migrating at once is harmless.
 */
export async function migrate(ch: ClickHouse, migrations: readonly Migration[]): Promise<string[]> {
  await ch.client.command({
    query: `CREATE TABLE IF NOT EXISTS ${ch.table('schema_migrations')}
      (id String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = ReplacingMergeTree ORDER BY id`,
  });
  const result = await ch.client.query({
    query: `SELECT id FROM ${ch.table('schema_migrations')} FINAL`,
    format: 'JSONEachRow',
  });
  const applied = new Set((await result.json<{ id: string }>()).map((r) => r.id));
  const done: string[] = [];
  for (const migration of [...migrations].sort((a, b) => a.id.localeCompare(b.id))) {
    if (applied.has(migration.id)) continue;
    for (const statement of migration.statements) {
      await ch.client.command({ query: statement.replaceAll('{db}', ch.database) });
    }
    await ch.client.insert({
      table: ch.table('schema_migrations'),
      values: [{ id: migration.id }],
      format: 'JSONEachRow',
    });
    done.push(migration.id);
  }
  return done;
}
