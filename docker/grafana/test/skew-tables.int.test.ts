// The skew panels on both shapes of database Grafana may find, through the ClickHouse host
// (`driftline clickhouse serve`) as a deployment without a ClickHouse server runs it: one migrated
// by a release before 0670 (`skew_windows` alone: services of this release not started yet, or
// rolled back) and one with `skew_windows_v2` beside it. The first is also before 0680 (no
// `performance_windows.sampled_labels`): the panels reading that column must run there too.
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClickHouse, createClickHouse, migrate, migrations } from '@driftline/warehouse';
import { type ClickHouseHost, startClickHouseHost } from '@driftline/warehouse/http-host';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  clickhouseQueriesOnDisk,
  constantsOnDisk,
  type DashboardQuery,
  expandGrafanaSql,
  type GrafanaQueryContext,
  type Scenario,
  seedScenario,
} from '../src/index.js';

const queries: DashboardQuery[] = clickhouseQueriesOnDisk();
const skewQueries = queries.filter((q) => q.text.includes('skew_windows'));

/** Every migration a release before 0670 applied (0670 is the one creating skew_windows_v2). */
const previousRelease = migrations.slice(
  0,
  migrations.findIndex((m) => m.id.startsWith('0670_')),
);

const SHAPES = { previous: 'skew_windows only (before 0670)', current: 'skew_windows and skew_windows_v2' } as const;
type ShapeKey = keyof typeof SHAPES;

interface Shape {
  readonly name: string;
  readonly ch: ClickHouse;
  readonly database: string;
  readonly scenario: Scenario;
}

let host: ClickHouseHost;
const clients: ClickHouse[] = [];
const opened = new Map<ShapeKey, Shape>();
const shapeOf = (key: ShapeKey): Shape => opened.get(key)!;

beforeAll(async () => {
  host = await startClickHouseHost({ path: mkdtempSync(join(tmpdir(), 'driftline-dash-host-')), port: 0 });
  for (const key of Object.keys(SHAPES) as ShapeKey[]) {
    const database = `dash_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    const ch = await createClickHouse({ mode: 'server', url: host.url, database, timeoutMs: 60_000 });
    clients.push(ch);
    await migrate(ch, key === 'previous' ? previousRelease : migrations);
    const scenario = await seedScenario(ch, "credit's-risk", Date.UTC(2025, 0, 1), {
      skewLaterLogs: key === 'current',
      sampledLabels: key === 'current',
    });
    opened.set(key, { name: SHAPES[key], ch, database, scenario });
  }
}, 120_000);

afterAll(async () => {
  for (const ch of clients) await ch.close();
  await host?.close();
});

function variables(shape: Shape): GrafanaQueryContext['variables'] {
  return {
    ...constantsOnDisk(),
    database: shape.database,
    model: shape.scenario.model,
    version: ['v1', 'v2'],
    feature: ['amount', 'country'],
  };
}

async function run(shape: Shape, q: DashboardQuery): Promise<Record<string, unknown>[]> {
  const sql = expandGrafanaSql(q.text, {
    from: shape.scenario.from,
    to: shape.scenario.to,
    intervalMs: 60_000,
    variables: variables(shape),
  });
  const result = await shape.ch.selectTyped(sql).catch((e: unknown) => {
    throw new Error(`${shape.name}: ${q.where}: ${String(e).slice(0, 300)}`);
  });
  return result.data as Record<string, unknown>[];
}

const sqlOf = (where: string): DashboardQuery => {
  const q = queries.find((x) => x.where === where);
  if (q === undefined) throw new Error(`no query ${where}`);
  return q;
};

describe('the skew panels on a database before and after migration 0670, through the ClickHouse host', () => {
  it('the two shapes: skew_windows_v2 missing from the previous release’s database only', async () => {
    expect(skewQueries.length).toBe(3);
    const tables = async (shape: Shape) =>
      (
        await shape.ch.select<{ name: string }>(
          "SELECT name FROM system.tables WHERE database = {db:String} AND startsWith(name, 'skew_windows')",
          { db: shape.database },
        )
      )
        .map((r) => r.name)
        .sort();
    expect(await tables(shapeOf('previous'))).toEqual(['skew_windows']);
    expect(await tables(shapeOf('current'))).toEqual(['skew_windows', 'skew_windows_v2']);
  });

  for (const key of Object.keys(SHAPES) as ShapeKey[]) {
    it(`every ClickHouse query of the dashboards runs on ${SHAPES[key]}; the skew panels have rows`, async () => {
      for (const q of queries) {
        if (q.repeat !== undefined) continue; // per feature: the distributions read no skew table
        const rows = await run(shapeOf(key), q);
        if (skewQueries.includes(q)) expect(rows.length, `${SHAPES[key]}: ${q.where}`).toBeGreaterThan(0);
      }
    });
  }

  it('windows computed on a sample: none before 0680 (no sampled_labels column), window 3 after', async () => {
    const windows = sqlOf('panel "Windows computed on a sample" A');
    const versions = sqlOf('panel "Versions in the range" A');
    for (const [key, listed] of [
      ['previous', 0],
      ['current', 1],
    ] as const) {
      const s = shapeOf(key);
      const rows = await run(s, windows);
      expect(
        rows.map((r) => [Number(r.sampled), Number(r.labeled)]),
        s.name,
      ).toEqual(listed === 0 ? [] : [[150, 185]]);
      const sampled = (await run(s, versions)).reduce((n, r) => n + Number(r.sampled_windows), 0);
      expect(sampled, s.name).toBe(listed);
    }
  });

  it('the counts of every log present are summed: partition 1’s second log only where skew_windows_v2 exists', async () => {
    const share = sqlOf('panel "Skew: share mismatched per feature" A');
    const table = sqlOf('panel "Skew in the range, per feature" A');
    const stale = sqlOf('panel "Skew: staleness p99 per feature" A');
    // Per window: 40 (partition 0) + 21 (partition 1, first log) compared, + 20 (its second log) in v2.
    for (const [key, compared] of [
      ['previous', 61],
      ['current', 81],
    ] as const) {
      const s = shapeOf(key);
      const amount = (await run(s, share)).filter((r) => r.feature === 'amount');
      expect(amount).toHaveLength(s.scenario.windows.length);
      expect(Number(amount[0]!.share_mismatched), s.name).toBeCloseTo(1 / compared, 12);
      expect(Number(amount[6]!.share_mismatched), s.name).toBe(1); // every value in cents
      const rows = (await run(s, table)).filter((r) => r.feature === 'amount');
      const total = rows.reduce((sum, r) => sum + Number(r.compared), 0);
      expect(total, s.name).toBe(compared * s.scenario.windows.length);
      // `expired` (0690): a column of the table on both shapes, 0 where the tables lack it.
      for (const r of rows) expect(Number(r.expired), s.name).toBe(0);
      const p99 = (await run(s, stale)).map((r) => Number(r.staleness_p99_ms));
      expect(new Set(p99), s.name).toEqual(new Set([100_000]));
    }
  });

  it('shows one window length, the latest: an older window of another length starting with one is not added (found by a review)', async () => {
    // Last: it adds a row. A 2-hour window (DRIFTLINE_SKEW_WINDOW before a change) where the first 1-hour one starts.
    const s = shapeOf('current');
    const share = sqlOf('panel "Skew: share mismatched per feature" A');
    const table = sqlOf('panel "Skew in the range, per feature" A');
    const first = s.scenario.windows[0]!;
    const before = (await run(s, share)).filter((r) => r.feature === 'amount');
    const totalBefore = (await run(s, table)).reduce((n, r) => n + Number(r.compared), 0);
    const t = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
    await s.ch.command(
      `INSERT INTO ${s.ch.table('skew_windows')} (model, model_version, window_start, window_end, feature, source_topic,
         source_partition, through_offset, sampled, compared, mismatched, numeric_compared, abs_diff_sum,
         missing_in_store, missing_in_prediction, newer_row, staleness_hist, updated_at)
       VALUES ('${s.scenario.model.replaceAll("'", "\\'")}', 'v1', '${t(first)}', '${t(first + 7_200_000)}', 'amount',
         'predictions.v1', 9, 500, 1000, 1000, 1000, 0, 0, 0, 0, 0, [], '${t(first + 7_200_000)}')`,
    );
    const after = (await run(s, share)).filter((r) => r.feature === 'amount');
    expect(after).toEqual(before);
    expect((await run(s, table)).reduce((n, r) => n + Number(r.compared), 0)).toBe(totalBefore);
  });

  it('keeps the history before a change of the window length: a newer, shorter window hides no earlier window (found by a review)', async () => {
    // DRIFTLINE_SKEW_WINDOW changed 1h → 30m: the new process writes its first window, the last half hour of the range.
    const s = shapeOf('previous');
    const share = sqlOf('panel "Skew: share mismatched per feature" A');
    const table = sqlOf('panel "Skew in the range, per feature" A');
    const before = (await run(s, share)).filter((r) => r.feature === 'amount');
    const compared = async () =>
      (await run(s, table)).filter((r) => r.feature === 'amount').reduce((n, r) => n + Number(r.compared), 0);
    const totalBefore = await compared();
    const last = s.scenario.windows.at(-1)! + 1_800_000;
    const t = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
    await s.ch.command(
      `INSERT INTO ${s.ch.table('skew_windows')} (model, model_version, window_start, window_end, feature, source_topic,
         source_partition, through_offset, sampled, compared, mismatched, numeric_compared, abs_diff_sum,
         missing_in_store, missing_in_prediction, newer_row, staleness_hist, updated_at)
       VALUES ('${s.scenario.model.replaceAll("'", "\\'")}', 'v2', '${t(last)}', '${t(last + 1_800_000)}', 'amount',
         'predictions.v1', 0, 9999, 10, 10, 0, 0, 0, 0, 0, 0, [], '${t(last + 1_800_000)}')`,
    );
    const after = (await run(s, share)).filter((r) => r.feature === 'amount');
    expect(before).toHaveLength(s.scenario.windows.length);
    expect(after.slice(0, -1)).toEqual(before);
    expect(after.map((r) => r.time).at(-1)).toBe(t(last));
    expect(await compared()).toBe(totalBefore + 10);
  });
});
