import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClickHouse, chTime, createClickHouse } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  clickhouseQueriesOnDisk,
  constantsOnDisk,
  type DashboardQuery,
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

/**
 * Names with no character rule (they come from events): a backslash (ClickHouse's escape in string
 * literals), one that tries to leave the literal, a backend macro, a newline, non-ASCII text.
 */
const HOSTILE_NAMES = [
  'C:\\models\\fraud\\',
  "\\' OR 1=1 --",
  "x') OR 1=1 --",
  'fraud$__fromTime',
  'line\nbreak',
  'modèle-日本-🚀',
] as const;

let ch: ClickHouse;
let scenario: Scenario;
let tables: { real: string[]; missing: string[] };

const queries: DashboardQuery[] = clickhouseQueriesOnDisk();

function context(variables: GrafanaQueryContext['variables']): GrafanaQueryContext {
  return { from: scenario.from, to: scenario.to, intervalMs: 60_000, variables };
}

function defaults(): GrafanaQueryContext['variables'] {
  // Every option of the multi-value variables selected one by one (All is checked against this below).
  // The dashboards' constants as shipped (`min_events`), the database the test's own.
  return {
    ...constantsOnDisk(),
    database,
    model: scenario.model,
    version: ['v1', 'v2'],
    feature: [...scenario.features],
    distribution_feature: scenario.features[0]!,
  };
}

/**
 * "All" over the options a model with 10,000 features of 64 ASCII characters has, plus 1,000 CJK ones
 * (the review's failing sizes) and the hostile names: with every option in the SQL this is megabytes.
 */
function allSelected(): GrafanaQueryContext['variables'] {
  const ascii = Array.from({ length: 10_000 }, (_, i) => `feature_${String(i).padStart(56, '0')}`);
  const cjk = Array.from({ length: 1_000 }, (_, i) => `特徴量名前${i}`);
  return {
    ...defaults(),
    version: { all: ['v1', 'v2', ...HOSTILE_NAMES] },
    feature: { all: [...scenario.features, ...HOSTILE_NAMES, ...ascii, ...cjk] },
  };
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
  // The same seeded data under hostile names: every key starts with the model, so they sit beside it.
  for (const model of HOSTILE_NAMES) await seedScenario(ch, model);
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
    expect(queries.filter((q) => q.kind === 'variable').length).toBe(6);
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
    // v1 then v2 (a promotion, never both in one window): one line per feature across it.
    expect(new Set(data.map((r) => r.series))).toEqual(new Set(['amount', 'country']));
    expect(data).toHaveLength(scenario.windows.length * 2);
    const amount = data.filter((r) => r.series === 'amount');
    expect(Number(amount[0]!.psi)).toBeLessThan(0.2);
    expect(Number(amount[6]!.psi)).toBeGreaterThan(0.2);
    const only = await run(
      expandGrafanaSql(
        sqlOf('panel "PSI per feature" A'),
        context({ ...defaults(), feature: 'country', version: 'v2' }),
      ),
    );
    expect(new Set(only.data.map((r) => r.series))).toEqual(new Set(['country']));
    expect(only.data.length).toBeLessThan(scenario.windows.length);
  });

  it('an input feature named `__x` is a feature like any; only the names libs/drift reserves are not (found by a review)', async () => {
    // `NOT startsWith(feature, '__')` left every `__x` input out of every panel and the variable.
    const model = `dunder-${randomUUID().slice(0, 8)}`;
    const ws = scenario.windows[0]!;
    const row = (feature: string, method: string, statistic: number, drifted: number, late = 0) => ({
      model,
      version: 'v1',
      reference_id: 'r',
      feature,
      window_start: chTime(ws),
      window_end: chTime(ws + 3_600_000),
      method,
      statistic,
      p_value: null,
      threshold: 0.2,
      drifted,
      reference_size: 1000,
      current_size: 300,
      events: 300,
      late_events: late,
      source_partitions: 1,
      idle_partitions: 0,
      computed_at: chTime(ws),
    });
    await ch.insert('drift_windows', [
      row('__x', 'psi', 0.9, 1),
      row('amount', 'psi', 0.01, 0),
      row('__prediction__', 'psi', 0.5, 1),
      row('__window__', 'late_only', 0, 0, 3),
    ]);
    const ctx = context({ ...defaults(), model, version: 'v1', feature: { all: ['__x', 'amount'] } });
    const features = await run(expandGrafanaSql(sqlOf('variable feature'), ctx));
    expect(features.data.map((r) => r.feature)).toEqual(['__x', 'amount']);
    const psi = await run(expandGrafanaSql(sqlOf('panel "PSI per feature" A'), ctx));
    expect(psi.data.map((r) => [r.series, Number(r.psi)])).toEqual([
      ['__x', 0.9],
      ['amount', 0.01],
    ]);
    const share = await run(expandGrafanaSql(sqlOf('panel "Share of drifted features" A'), ctx));
    expect(share.data.map((r) => [Number(r.share_drifted), Number(r.drifted_features)])).toEqual([[0.5, 1]]);
    const outputs = await run(expandGrafanaSql(sqlOf('panel "Prediction drift" A'), ctx));
    expect(outputs.data.map((r) => r.measure)).toEqual(['__prediction__ psi']);
  });

  it('threshold series carry the stored thresholds', async () => {
    const psi = await run(expandGrafanaSql(sqlOf('panel "PSI per feature" B'), context(defaults())));
    expect(psi.data.map((r) => Number(r.psi_threshold))).toEqual(scenario.windows.map(() => 0.2));
    const ks = await run(expandGrafanaSql(sqlOf('panel "KS p-value per feature" B'), context(defaults())));
    expect(new Set(ks.data.map((r) => Number(r.ks_alpha)))).toEqual(new Set([0.05]));
  });

  it('distributions: reference and current shares per bin, each summing to 1', async () => {
    const where = queries.find((q) => q.repeat === 'distribution_feature')!.where;
    for (const feature of scenario.features) {
      const { data, meta } = await run(
        expandGrafanaSql(sqlOf(where), context({ ...defaults(), distribution_feature: feature })),
      );
      expect(meta.map((m) => m.name)).toEqual(['bin', 'bucket', 'reference', 'current']);
      const profile = scenario.profiles.get(feature)!;
      const bins = profile.kind === 'numeric' ? profile.coarseEdges.length + 1 : profile.categories.length + 1;
      expect(data).toHaveLength(bins);
      const sum = (k: string) => data.reduce((s, r) => s + Number(r[k]), 0);
      expect(sum('reference')).toBeCloseTo(1, 6);
      expect(sum('current')).toBeCloseTo(1, 6);
    }
    const country = await run(
      expandGrafanaSql(sqlOf(where), context({ ...defaults(), distribution_feature: 'country' })),
    );
    // `pt` is not a reference category: it lands in "(unseen values)", which the reference never saw.
    const other = country.data.find((r) => r.bucket === '(unseen values)')!;
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

  it('estimated vs realized ROC AUC: the realized value is current once labels cover enough; business net', async () => {
    const auc = await run(expandGrafanaSql(sqlOf('panel "Estimated vs realized ROC AUC" A'), context(defaults())));
    expect(auc.data).toHaveLength(scenario.windows.length);
    for (const r of auc.data) {
      expect(Number(r.estimated)).toBeGreaterThan(0.5);
      // Seeded coverage is 0.74..0.8, above the bound: the realized metric replaces the estimate.
      expect(Number(r.current)).toBe(Number(r.realized));
    }
    const business = await run(expandGrafanaSql(sqlOf('panel "Business outcome" A'), context(defaults())));
    expect(business.data).toHaveLength(scenario.windows.length);
    for (const r of business.data) {
      expect(Number(r.business_net)).toBeCloseTo(Number(r.value_caught) - Number(r.false_alarm_cost), 9);
    }
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

  it('skew: partitions summed, the unit change after the drift moment, staleness quantiles from the histogram', async () => {
    const share = await run(
      expandGrafanaSql(sqlOf('panel "Skew: share mismatched per feature" A'), context(defaults())),
    );
    expect(share.data).toHaveLength(scenario.windows.length * 2);
    const amount = share.data.filter((r) => r.feature === 'amount').map((r) => Number(r.share_mismatched));
    expect(amount[0]).toBeCloseTo(1 / 81, 9); // partition 1's single mismatch over 40 + 41 compared
    expect(amount[6]).toBe(1);
    const stale = await run(expandGrafanaSql(sqlOf('panel "Skew: staleness p99 per feature" A'), context(defaults())));
    // 79 of 81 at ≤ 1 s, 2 at ≤ 100 s: p99 (rank 81 of 81) is in the bucket whose bound is 100 s.
    expect(new Set(stale.data.map((r) => Number(r.staleness_p99_ms)))).toEqual(new Set([100_000]));
    const table = await run(expandGrafanaSql(sqlOf('panel "Skew in the range, per feature" A'), context(defaults())));
    const first = table.data[0]!;
    expect(first.feature).toBe('amount');
    expect(Number(first.staleness_p50_ms)).toBe(1_000);
  });

  it('data quality: the null-rate jump, the failed expectations, the freshness lag over partitions', async () => {
    const share = await run(
      expandGrafanaSql(sqlOf('panel "Data quality: share per expectation" A'), context(defaults())),
    );
    const nulls = share.data.filter((r) => r.series === 'amount · null_rate').map((r) => Number(r.observed));
    expect(nulls).toHaveLength(scenario.windows.length);
    expect(nulls[5]).toBe(0.01);
    expect(nulls[6]).toBe(0.5);
    const failed = await run(
      expandGrafanaSql(sqlOf('panel "Data quality: failed expectations" A'), context(defaults())),
    );
    // Per version: v1 until the promotion, v2 after it (6 failing windows in all).
    expect(failed.data.map((r) => [r.feature, r.expectation, r.version, Number(r.windows_failed)])).toEqual([
      ['amount', 'null_rate', 'v1', 3],
      ['amount', 'null_rate', 'v2', 3],
      ['country', 'categories', 'v1', 1],
    ]);
    const lag = await run(
      expandGrafanaSql(sqlOf('panel "Feature view freshness: time since the newest event" A'), context(defaults())),
    );
    const lags = lag.data.map((r) => Number(r.lag_ms));
    expect(lags[0]).toBe(2_000);
    expect(lags[lags.length - 1]).toBe(6 * 3_600_000); // the silent partition, not the max of the fresh one
  });

  // Every panel, annotation and variable of a hostile-named model shows exactly what the same data
  // shows under a plain name (the seeded scenario, checked above): its own rows, nothing of the other
  // models beside it, no syntax error. Added to a multi-value selection, a hostile name selects nothing.
  const perModel = queries.filter((q) => q.text.includes('${model:'));
  const runAll = async (q: DashboardQuery, model: string, extra: readonly string[]) => {
    const results: Record<string, unknown>[][] = [];
    const base = {
      ...defaults(),
      model,
      version: ['v1', 'v2', ...extra],
      feature: [...scenario.features, ...extra],
    };
    const variableSets = q.repeat === undefined ? [base] : scenario.features.map((f) => ({ ...base, [q.repeat!]: f }));
    for (const variables of variableSets) {
      const sql = expandGrafanaSql(q.text, context(variables));
      expect(sql).not.toMatch(/\$\{?\w|\[\[/);
      results.push((await run(sql)).data);
    }
    return results;
  };
  // A query's rows for a model under the plain selections: the tests below compare against them
  // (the plain model's 8 times, a hostile model's twice) on data that does not change, so each is
  // read once and kept, as the promise of its read.
  const ownRows = new Map<DashboardQuery, Map<string, Promise<Record<string, unknown>[][]>>>();
  const rowsOf = (q: DashboardQuery, model: string) => {
    const byModel = ownRows.get(q) ?? new Map<string, Promise<Record<string, unknown>[][]>>();
    ownRows.set(q, byModel);
    let rows = byModel.get(model);
    if (rows === undefined) {
      rows = runAll(q, model, []);
      byModel.set(model, rows);
    }
    return rows;
  };
  const renamed = (rows: Record<string, unknown>[][], from: string, to: string) =>
    rows.map((set) =>
      set.map((row) =>
        Object.fromEntries(
          Object.entries(row).map(([k, v]) => [k, typeof v === 'string' ? v.replaceAll(from, to) : v]),
        ),
      ),
    );

  for (const hostile of HOSTILE_NAMES) {
    it(`a model named ${JSON.stringify(hostile)} sees exactly its own rows in every query`, async () => {
      expect(perModel.length).toBeGreaterThanOrEqual(30);
      for (const q of perModel) {
        const plain = await rowsOf(q, scenario.model);
        const victim = await rowsOf(q, hostile).catch((e: unknown) => {
          throw new Error(`${q.dashboard}: ${q.where}: ${String(e)}`);
        });
        expect(renamed(victim, hostile, scenario.model), `${q.dashboard}: ${q.where}`).toEqual(plain);
      }
      // The model drop-downs list the name as stored, which is the value the panels receive.
      for (const q of queries.filter((x) => x.where === 'variable model')) {
        const { data } = await run(expandGrafanaSql(q.text, context(defaults())));
        expect(data.map((r) => r.model)).toContain(hostile);
      }
    });
  }

  it('hostile names added to the version and feature selections select nothing', async () => {
    for (const q of perModel) {
      const plain = await rowsOf(q, scenario.model);
      const widened = await runAll(q, scenario.model, HOSTILE_NAMES).catch((e: unknown) => {
        throw new Error(`${q.dashboard}: ${q.where}: ${String(e)}`);
      });
      expect(widened, `${q.dashboard}: ${q.where}`).toEqual(plain);
    }
  });

  // All (and an empty selection, which the plugin reads as All) is no filter: the SQL stays small
  // whatever the number of options, and shows exactly the rows of every option selected one by one.
  for (const model of [undefined, ...HOSTILE_NAMES]) {
    it(`All over 10,000 features: every query of ${model === undefined ? 'the plain model' : JSON.stringify(model)} runs and shows the same rows`, async () => {
      const name = model ?? scenario.model;
      for (const q of perModel) {
        const explicit = await rowsOf(q, name);
        for (const selection of [allSelected(), { ...defaults(), version: [], feature: [] }]) {
          const variableSets =
            q.repeat === undefined
              ? [{ ...selection, model: name }]
              : scenario.features.map((f) => ({ ...selection, model: name, [q.repeat!]: f }));
          const rows: Record<string, unknown>[][] = [];
          for (const variables of variableSets) {
            const sql = expandGrafanaSql(q.text, context(variables));
            expect(Buffer.byteLength(sql), `${q.dashboard}: ${q.where}`).toBeLessThan(16 * 1024);
            rows.push(
              (
                await run(sql).catch((e: unknown) => {
                  throw new Error(`${q.dashboard}: ${q.where}: ${String(e).slice(0, 300)}`);
                })
              ).data,
            );
          }
          expect(rows, `${q.dashboard}: ${q.where}`).toEqual(explicit);
        }
      }
    });
  }

  it('an explicit selection of 3,500 feature names of 64 characters runs and selects only the real ones', async () => {
    const extra = Array.from(
      { length: 3_500 - scenario.features.length },
      (_, i) => `f_${String(i).padStart(62, '0')}`,
    );
    const feature = [...scenario.features, ...extra];
    for (const q of perModel.filter((x) => x.repeat === undefined && x.text.includes('{feature:percentencode}'))) {
      const plain = await run(expandGrafanaSql(q.text, context(defaults())));
      const wide = await run(expandGrafanaSql(q.text, context({ ...defaults(), feature }))).catch((e: unknown) => {
        throw new Error(`${q.dashboard}: ${q.where}: ${String(e).slice(0, 300)}`);
      });
      expect(wide.data, `${q.dashboard}: ${q.where}`).toEqual(plain.data);
    }
  });

  it('the decoded values still select by the primary key (EXPLAIN indexes = 1), All included', async () => {
    for (const q of perModel) {
      for (const selection of [defaults(), allSelected()]) {
        const variables = q.repeat === undefined ? selection : { ...selection, [q.repeat]: scenario.features[0]! };
        const sql = expandGrafanaSql(q.text, context(variables));
        // Plan lines without the tree drawing; each PrimaryKey section ends with its Condition.
        const plan = (await run(`EXPLAIN indexes = 1 ${sql}`)).data.map((r) =>
          String(r.explain).replace(/^[\s│├└─]+/, ''),
        );
        const keyConditions = plan.flatMap((line, i) =>
          line === 'PrimaryKey' ? [plan.slice(i).find((l) => l.startsWith('Condition: ')) ?? 'none'] : [],
        );
        expect(keyConditions.length, `${q.where}\n${plan.join('\n')}`).toBeGreaterThan(0);
        for (const c of keyConditions) expect(c, `${q.dashboard}: ${q.where}`).toMatch(/\(model in \[/);
      }
    }
  });

  it('a hostile feature name in the repeated distribution panel selects nothing and runs', async () => {
    const where = queries.find((q) => q.repeat === 'distribution_feature')!.where;
    for (const feature of HOSTILE_NAMES) {
      const { data } = await run(
        expandGrafanaSql(sqlOf(where), context({ ...defaults(), distribution_feature: feature })),
      );
      expect(data, feature).toEqual([]);
    }
  });

  it('the time range is applied: a range before the data returns nothing', async () => {
    const before = { ...context(defaults()), from: scenario.from - 7_200_000, to: scenario.from - 3_600_001 };
    const { data } = await run(expandGrafanaSql(sqlOf('panel "PSI per feature" A'), before));
    expect(data).toHaveLength(0);
  });
});
