import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  applyConditionalAll,
  CLICKHOUSE,
  constantsOnDisk,
  DASHBOARD_DIR,
  dashboardQueries,
  dashboards,
  expandGrafanaSql,
  type GrafanaQueryContext,
  PROMETHEUS,
  REPO_ROOT,
  serialize,
} from '../src/index.js';
import {
  PREDICTION_FEATURES,
  REALIZED_COVERAGE,
  REALIZED_MIN_SAMPLES,
  RESERVED_FEATURES,
  UNSEEN_VALUES,
} from '../src/sql.js';

const onDisk = readdirSync(DASHBOARD_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();

const clickHouseQueries = () =>
  onDisk.flatMap((file) =>
    dashboardQueries(file, JSON.parse(readFileSync(join(DASHBOARD_DIR, file), 'utf8'))).filter(
      (q) => q.datasourceUid === CLICKHOUSE.uid,
    ),
  );

/** ClickHouse's default max_query_size: a longer query is a SYNTAX_ERROR before it runs. */
const MAX_QUERY_SIZE = 256 * 1024;
const asciiNames = (n: number) => Array.from({ length: n }, (_, i) => `feature_${String(i).padStart(56, '0')}`);

/** Metric names the sources register with prom-client (`counter(registry, 'name', …)` and friends). */
function exportedMetrics(): Map<string, string> {
  const found = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      if (name === 'node_modules' || name === 'test' || name.startsWith('.')) continue;
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) {
        const text = readFileSync(path, 'utf8');
        for (const m of text.matchAll(/\b(counter|gauge|histogram|summary)\(\s*\w+,\s*'(driftline_\w+)'/g)) {
          found.set(m[2]!, m[1]!);
        }
        for (const m of text.matchAll(/new (Counter|Gauge|Histogram|Summary)\(\{\s*name:\s*'(driftline_\w+)'/g)) {
          found.set(m[2]!, m[1]!.toLowerCase());
        }
      }
    }
  };
  walk(join(REPO_ROOT, 'libs'));
  walk(join(REPO_ROOT, 'services'));
  return found;
}

describe('provisioned dashboards', () => {
  it('are exactly what src/dashboards.ts generates (run `pnpm --filter @driftline/dashboards generate`)', () => {
    expect(onDisk).toEqual(
      dashboards()
        .map((d) => d.file)
        .sort(),
    );
    for (const d of dashboards()) {
      expect(JSON.parse(readFileSync(join(DASHBOARD_DIR, d.file), 'utf8')), d.file).toEqual(JSON.parse(serialize(d)));
    }
  });

  it('use the provisioned data source uids and have unique dashboard uids', () => {
    const provisioned = parse(
      readFileSync(join(REPO_ROOT, 'docker/grafana/provisioning/datasources/datasources.yml'), 'utf8'),
    ) as {
      datasources: { uid: string; type: string }[];
    };
    const types = new Map(provisioned.datasources.map((d) => [d.uid, d.type]));
    expect(types.get(CLICKHOUSE.uid)).toBe(CLICKHOUSE.type);
    expect(types.get(PROMETHEUS.uid)).toBe(PROMETHEUS.type);
    const uids = new Set<string>();
    for (const file of onDisk) {
      const json = JSON.parse(readFileSync(join(DASHBOARD_DIR, file), 'utf8')) as { uid: string };
      uids.add(json.uid);
      for (const q of dashboardQueries(file, json)) {
        expect([CLICKHOUSE.uid, PROMETHEUS.uid], `${file} ${q.where}`).toContain(q.datasourceUid);
        expect(q.text.trim(), `${file} ${q.where}`).not.toBe('');
      }
    }
    expect(uids.size).toBe(onDisk.length);
  });

  it('let selected values into ClickHouse SQL only percent-encoded and decoded as a value', () => {
    const references = clickHouseQueries()
      // `$__conditionalAll(condition, $var)` is resolved before interpolation: `$var` never reaches the SQL.
      .map((q) => ({ ...q, text: applyConditionalAll(q.text, {}) }))
      .flatMap((q) =>
        [...q.text.matchAll(/\$\{(\w+)(?::([^}]*))?\}|\[\[(\w+)[^\]]*\]\]|\$(?!__)(\w+)/g)].map((m) => ({
          where: `${q.dashboard} ${q.where}`,
          name: m[1] ?? m[3] ?? m[4]!,
          format: m[2],
          around: q.text.slice(Math.max(0, m.index - "decodeURLComponent('".length), m.index + m[0].length + 2),
        })),
      );
    expect(references.length).toBeGreaterThan(50);
    for (const r of references) {
      // `database` is the deployment's hidden constant (a table qualifier), not a selection.
      if (r.name === 'database' && r.format === undefined) continue;
      expect(r.around, `${r.where}: \${${r.name}${r.format === undefined ? '' : `:${r.format}`}}`).toBe(
        `decodeURLComponent('\${${r.name}:percentencode}')`,
      );
    }
  });

  // The review's numbers: "All" of 3,500 ASCII names (or ~1,000 CJK ones) passed 256 KiB on every
  // feature panel, each selection being repeated five times; a model may have 10,000 features.
  const context = (variables: GrafanaQueryContext['variables']): GrafanaQueryContext => ({
    from: 1_735_689_600_000,
    to: 1_735_776_000_000,
    intervalMs: 60_000,
    variables: {
      ...constantsOnDisk(),
      database: 'driftline',
      model: 'm',
      version: ['v1', 'v2'],
      feature: ['amount'],
      distribution_feature: 'amount',
      ...variables,
    },
  });
  const selecting = (variable: string) =>
    clickHouseQueries().filter((q) => q.repeat !== variable && q.text.includes(`\${${variable}:percentencode}`));

  it('leave All and an empty selection out of the SQL: its size does not grow with the options', () => {
    for (const variable of ['feature', 'version']) {
      const queries = selecting(variable);
      expect(queries.length, variable).toBeGreaterThanOrEqual(variable === 'feature' ? 3 : 20);
      for (const q of queries) {
        const all = (options: readonly string[]) => expandGrafanaSql(q.text, context({ [variable]: { all: options } }));
        const many = all(asciiNames(10_000));
        expect(Buffer.byteLength(many), `${q.dashboard} ${q.where}`).toBeLessThan(16 * 1024);
        expect(many, `${q.dashboard} ${q.where}`).toBe(all(['amount', 'v1']));
        // Nothing selected reads as the plugin reads it: like All (no `IN ['']`).
        expect(expandGrafanaSql(q.text, context({ [variable]: [] })), `${q.dashboard} ${q.where}`).toBe(many);
      }
    }
  });

  it('decode an explicit selection once: 3,500 feature names of 64 characters fit max_query_size', () => {
    const names = asciiNames(3_500);
    const encoded = encodeURIComponent(`{${names.join(',')}}`);
    for (const variable of ['feature', 'version']) {
      for (const q of selecting(variable)) {
        const sql = expandGrafanaSql(q.text, context({ [variable]: names }));
        const copies = sql.split(encoded).length - 1;
        if (variable === 'feature') {
          expect(copies, `${q.dashboard} ${q.where}`).toBe(1);
          expect(Buffer.byteLength(sql), `${q.dashboard} ${q.where}`).toBeLessThan(MAX_QUERY_SIZE);
        } else {
          // The latest-window table filters versions twice (its max(window_start) subquery).
          expect(copies, `${q.dashboard} ${q.where}`).toBeGreaterThanOrEqual(1);
          expect(copies, `${q.dashboard} ${q.where}`).toBeLessThanOrEqual(2);
        }
      }
    }
  });

  it("leave out of the share of drifted features the windows the drift monitor's alerts leave out: min_events is DRIFTLINE_DRIFT_ALERT_MIN_EVENTS's default", () => {
    const config = readFileSync(join(REPO_ROOT, 'services/drift-monitor/src/config.ts'), 'utf8');
    const declared = /\bDRIFTLINE_DRIFT_ALERT_MIN_EVENTS:[^\n]*\.default\(([\d_]+)\)/.exec(config);
    expect(
      declared,
      'DRIFTLINE_DRIFT_ALERT_MIN_EVENTS and its default in services/drift-monitor/src/config.ts',
    ).not.toBeNull();
    expect(constantsOnDisk().min_events).toBe(String(Number(declared![1]!.replaceAll('_', ''))));
  });

  it("show the realized ROC AUC as current where the label-joiner's alerts judge it: its REALIZED_COVERAGE and ALERT_MIN_SAMPLES defaults", () => {
    const config = readFileSync(join(REPO_ROOT, 'libs/performance/src/realized-rule.ts'), 'utf8');
    const declared = (name: string) => {
      const m = new RegExp(`\\b${name}:[^\\n]*\\.default\\(([\\d_.]+)\\)`).exec(config);
      expect(m, `${name} and its default in libs/performance/src/realized-rule.ts`).not.toBeNull();
      return Number(m![1]!.replaceAll('_', ''));
    };
    expect(REALIZED_COVERAGE).toBe(declared('DRIFTLINE_JOINER_REALIZED_COVERAGE'));
    expect(REALIZED_MIN_SAMPLES).toBe(declared('DRIFTLINE_JOINER_ALERT_MIN_SAMPLES'));
    // Both reach the panel's SQL on disk (the generated JSON is checked against the generator above).
    const panel = clickHouseQueries().find((q) => q.where === 'panel "Estimated vs realized ROC AUC" A');
    expect(panel?.text).toContain(`label_coverage >= ${REALIZED_COVERAGE}`);
    expect(panel?.text).toContain(`labeled >= invalid_labels + ${REALIZED_MIN_SAMPLES}`);
  });

  it('leave out exactly the feature names libs/drift reserves, the same list (an input `__x` vanished; found by a review)', () => {
    const dir = join(REPO_ROOT, 'libs/drift/src');
    const source = readdirSync(dir)
      .filter((f) => f.endsWith('.ts'))
      .map((f) => readFileSync(join(dir, f), 'utf8'))
      .join('\n');
    const declared = new Map(
      [...source.matchAll(/export const (\w+) = '(__[^']*)';/g)].map((m) => [m[1]!, m[2]!] as const),
    );
    expect([...declared.values()].sort()).toEqual([...RESERVED_FEATURES].sort());
    expect(PREDICTION_FEATURES).toEqual([declared.get('PREDICTION_FEATURE'), declared.get('PREDICTED_CLASS_FEATURE')]);
    for (const q of clickHouseQueries()) {
      expect(q.text, `${q.dashboard} ${q.where}`).not.toMatch(/startsWith\(feature, '__'\)/);
    }
  });

  it('label the bucket of unseen categories as libs/report does, not "other" (a category\'s name too; found by a review)', () => {
    const source = readFileSync(join(REPO_ROOT, 'libs/report/src/distribution.ts'), 'utf8');
    expect(/export const UNSEEN_VALUES = '([^']*)';/.exec(source)?.[1]).toBe(UNSEEN_VALUES);
    const panel = clickHouseQueries().find((q) => q.repeat === 'distribution_feature');
    expect(panel?.text).toContain(`categories[grid.bin + 1], '${UNSEEN_VALUES}')`);
  });

  it('ask Prometheus only for metrics the code exports, histograms by their buckets', () => {
    const metrics = exportedMetrics();
    const promQueries = onDisk.flatMap((file) =>
      dashboardQueries(file, JSON.parse(readFileSync(join(DASHBOARD_DIR, file), 'utf8'))).filter(
        (q) => q.datasourceUid === PROMETHEUS.uid,
      ),
    );
    expect(promQueries.length).toBeGreaterThanOrEqual(10);
    const used = new Set<string>();
    for (const q of promQueries) {
      for (const [name] of q.text.matchAll(/\bdriftline_\w+/g)) {
        const histogram = /_bucket$/.exec(name) ? name.replace(/_bucket$/, '') : undefined;
        if (histogram !== undefined) {
          expect(metrics.get(histogram), `${q.where}: ${name}`).toBe('histogram');
          used.add(histogram);
        } else {
          expect(metrics.has(name), `${q.where}: ${name} is not registered anywhere in libs/ or services/`).toBe(true);
          used.add(name);
        }
      }
    }
    for (const name of [
      'driftline_consumer_lag',
      'driftline_records_in_total',
      'driftline_records_out_total',
      'driftline_records_dlq_total',
      'driftline_batch_duration_seconds',
      'driftline_record_latency_seconds',
      'driftline_consumer_backing_off',
    ]) {
      expect(used, name).toContain(name);
    }
  });
});
