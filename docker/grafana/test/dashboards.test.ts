import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  CLICKHOUSE,
  DASHBOARD_DIR,
  dashboardQueries,
  dashboards,
  PROMETHEUS,
  REPO_ROOT,
  serialize,
} from '../src/index.js';

const onDisk = readdirSync(DASHBOARD_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();

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
    const references = onDisk.flatMap((file) =>
      dashboardQueries(file, JSON.parse(readFileSync(join(DASHBOARD_DIR, file), 'utf8')))
        .filter((q) => q.datasourceUid === CLICKHOUSE.uid)
        .flatMap((q) =>
          [...q.text.matchAll(/\$\{(\w+)(?::([^}]*))?\}|\[\[(\w+)[^\]]*\]\]|\$(?!__)(\w+)/g)].map((m) => ({
            where: `${file} ${q.where}`,
            name: m[1] ?? m[3] ?? m[4]!,
            format: m[2],
            around: q.text.slice(Math.max(0, m.index - "decodeURLComponent('".length), m.index + m[0].length + 2),
          })),
        ),
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
