import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClickHouse, createClickHouse } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLICKHOUSE,
  DASHBOARD_DIR,
  type DashboardQuery,
  dashboardQueries,
  dashboards,
  expandGrafanaSql,
  type GrafanaQueryContext,
  migrateForDashboards,
  type Scenario,
  seedScenario,
} from '../src/index.js';

// One embedded engine per test process; the database is unique, and reaches the SQL through the
// dashboards' own `${database}` variable, exactly as a deployment with another database would.
const path = mkdtempSync(join(tmpdir(), 'driftline-dash-'));
const database = `dash_${randomUUID().replaceAll('-', '').slice(0, 12)}`;

interface Meta {
  name: string;
  type: string;
}
interface Result {
  meta: Meta[];
  data: Record<string, unknown>[];
}

let ch: ClickHouse;
let scenario: Scenario;
let tables: { real: string[]; missing: string[] };

const queries: DashboardQuery[] = dashboards()
  .map((d) => d.file)
  .flatMap((file) => dashboardQueries(file, JSON.parse(readFileSync(join(DASHBOARD_DIR, file), 'utf8'))))
  .filter((q) => q.datasourceUid === CLICKHOUSE.uid);

function context(variables: GrafanaQueryContext['variables']): GrafanaQueryContext {
  return { from: scenario.from, to: scenario.to, intervalMs: 60_000, variables };
}

function defaults(): GrafanaQueryContext['variables'] {
  // Multi-value variables set to "All": Grafana expands All to every option of the variable.
  return { database, model: scenario.model, version: ['v1', 'v2'], feature: [...scenario.features] };
}

async function run(sql: string): Promise<Result> {
  return (await ch.selectTyped(sql)) as unknown as Result;
}

const isTime = (t: string) => /^(Nullable\()?DateTime/.test(t);
const isNumber = (t: string) => /^(Nullable\()?(U?Int|Float|Decimal)/.test(t);
const isText = (t: string) => /^(Nullable\()?(LowCardinality\()?String/.test(t);

beforeAll(async () => {
  ch = await createClickHouse({ mode: 'embedded', path, database });
  tables = await migrateForDashboards(ch);
  scenario = await seedScenario(ch);
  process.stderr.write(
    `[dashboards] tables from the repository's DDL: ${tables.real.join(', ')}; missing: ${tables.missing.join(', ') || 'none'}\n`,
  );
}, 60_000);

afterAll(async () => {
  await ch?.close();
});

describe('every ClickHouse query of the provisioned dashboards, macros expanded, on seeded data', () => {
  it('reads only tables whose DDL the services define', () => {
    expect(tables.missing).toEqual([]);
  });

  it('finds the queries', () => {
    expect(queries.filter((q) => q.kind === 'panel').length).toBeGreaterThanOrEqual(15);
    expect(queries.filter((q) => q.kind === 'annotation').length).toBe(4);
    expect(queries.filter((q) => q.kind === 'variable').length).toBe(5);
  });

  for (const q of queries) {
    it(`${q.dashboard}: ${q.where}`, async () => {
      const variableSets =
        q.repeat === undefined ? [defaults()] : scenario.features.map((f) => ({ ...defaults(), [q.repeat!]: f }));
      for (const variables of variableSets) {
        const sql = expandGrafanaSql(q.text, context(variables));
        expect(sql).not.toMatch(/\$\{?\w|\[\[/);
        const { meta, data } = await run(sql);
        expect(data.length, `${q.where} returned no rows:\n${sql}`).toBeGreaterThan(0);
        const names = meta.map((m) => m.name);
        if (q.kind === 'variable') {
          expect(meta).toHaveLength(1);
          continue;
        }
        if (q.kind === 'annotation') {
          expect(names).toEqual(['time', 'text', 'tags']);
          expect(isTime(meta[0]!.type)).toBe(true);
          continue;
        }
        if (q.format === 0) {
          // Time series: a time column first, numbers as values, strings as series labels.
          expect(names[0]).toBe('time');
          expect(isTime(meta[0]!.type), meta[0]!.type).toBe(true);
          const rest = meta.slice(1);
          expect(
            rest.some((m) => isNumber(m.type)),
            JSON.stringify(meta),
          ).toBe(true);
          for (const m of rest) expect(isNumber(m.type) || isText(m.type), `${m.name}: ${m.type}`).toBe(true);
          const times = data.map((r) => Date.parse(`${String(r.time).replace(' ', 'T')}Z`));
          expect([...times].sort((a, b) => a - b)).toEqual(times);
          for (const t of times) {
            expect(t).toBeGreaterThanOrEqual(scenario.from);
            expect(t).toBeLessThanOrEqual(scenario.to);
          }
        }
      }
    });
  }

  const sqlOf = (where: string) => {
    const q = queries.find((x) => x.where === where);
    if (q === undefined) throw new Error(`no query ${where}`);
    return q.text;
  };

  it('PSI per feature: one series per selected input feature, drift visible after the drift moment', async () => {
    const { data } = await run(expandGrafanaSql(sqlOf('panel "PSI per feature" A'), context(defaults())));
    expect(new Set(data.map((r) => r.feature))).toEqual(new Set(['amount', 'country']));
    expect(data).toHaveLength(scenario.windows.length * 2);
    const amount = data.filter((r) => r.feature === 'amount');
    expect(Number(amount[0]!.psi)).toBeLessThan(0.2);
    expect(Number(amount[6]!.psi)).toBeGreaterThan(0.2);
    const only = await run(
      expandGrafanaSql(
        sqlOf('panel "PSI per feature" A'),
        context({ ...defaults(), feature: 'country', version: 'v2' }),
      ),
    );
    expect(new Set(only.data.map((r) => r.feature))).toEqual(new Set(['country']));
    expect(only.data.length).toBeLessThan(scenario.windows.length);
  });

  it('threshold series carry the stored thresholds', async () => {
    const psi = await run(expandGrafanaSql(sqlOf('panel "PSI per feature" B'), context(defaults())));
    expect(psi.data.map((r) => Number(r.psi_threshold))).toEqual(scenario.windows.map(() => 0.2));
    const ks = await run(expandGrafanaSql(sqlOf('panel "KS p-value per feature" B'), context(defaults())));
    expect(new Set(ks.data.map((r) => Number(r.ks_alpha)))).toEqual(new Set([0.05]));
  });

  it('distributions: reference and current shares per bin, each summing to 1', async () => {
    const where = queries.find((q) => q.repeat === 'feature')!.where;
    for (const feature of scenario.features) {
      const { data, meta } = await run(expandGrafanaSql(sqlOf(where), context({ ...defaults(), feature })));
      expect(meta.map((m) => m.name)).toEqual(['bin', 'bucket', 'reference', 'current']);
      const profile = scenario.profiles.get(feature)!;
      const bins = profile.kind === 'numeric' ? profile.coarseEdges.length + 1 : profile.categories.length + 1;
      expect(data).toHaveLength(bins);
      const sum = (k: string) => data.reduce((s, r) => s + Number(r[k]), 0);
      expect(sum('reference')).toBeCloseTo(1, 6);
      expect(sum('current')).toBeCloseTo(1, 6);
    }
    const country = await run(expandGrafanaSql(sqlOf(where), context({ ...defaults(), feature: 'country' })));
    // `pt` is not a reference category: it lands in "other", which the reference never saw.
    const other = country.data.find((r) => r.bucket === 'other')!;
    expect(Number(other.reference)).toBe(0);
    expect(Number(other.current)).toBeGreaterThan(0);
  });

  it('performance panels read the overall segment only, per version', async () => {
    const { data } = await run(
      expandGrafanaSql(sqlOf('panel "Accuracy, F1, ROC AUC per version" A'), context(defaults())),
    );
    expect(data).toHaveLength(scenario.windows.length);
    expect(new Set(data.map((r) => r.model_version))).toEqual(new Set(['v1', 'v2']));
    expect(Math.min(...data.map((r) => Number(r.accuracy)))).toBeGreaterThan(0.5);
  });

  it('annotations: the fired decision and both model events, not the hold', async () => {
    const retrain = await run(expandGrafanaSql(sqlOf('annotation "Retrain decisions"'), context(defaults())));
    expect(retrain.data).toHaveLength(1);
    expect(String(retrain.data[0]!.tags)).toBe('retrain,fire');
    const models = await run(expandGrafanaSql(sqlOf('annotation "Model versions"'), context(defaults())));
    expect(models.data.map((r) => String(r.text))).toEqual([
      `REJECTED ${scenario.model} v2-rc: roc_auc 0.72 < current 0.74`,
      `PROMOTED ${scenario.model} v2: roc_auc 0.91 > current 0.74`,
    ]);
  });

  it('the time range is applied: a range before the data returns nothing', async () => {
    const before = { ...context(defaults()), from: scenario.from - 7_200_000, to: scenario.from - 3_600_001 };
    const { data } = await run(expandGrafanaSql(sqlOf('panel "PSI per feature" A'), before));
    expect(data).toHaveLength(0);
  });
});
