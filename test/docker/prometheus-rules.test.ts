import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseRoutesText } from '@driftline/alerting';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

// promtool checks the rules' syntax and behaviour (test/monitoring/test/promtool.int.test.ts, with
// Debian's Prometheus); this fast test checks what promtool cannot: that every metric the rules use
// is one the code exports, with the labels they group by.
const root = resolve(import.meta.dirname, '../..');
const docker = join(root, 'docker');

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rulesDir = join(docker, 'prometheus/rules');
const ruleFiles = readdirSync(rulesDir).filter((f) => f.endsWith('.yml'));
const rules: Rule[] = ruleFiles.flatMap((f) =>
  (parse(readFileSync(join(rulesDir, f), 'utf8')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap(
    (g) => g.rules,
  ),
);

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'test' || entry.name === 'dist') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sources(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}
const code = [...sources(join(root, 'libs')), ...sources(join(root, 'services'))]
  .map((f) => readFileSync(f, 'utf8'))
  .join('\n');

/** The label names a metric is declared with in the code (`counter(registry, 'name', 'help', ['a', 'b'])`), or undefined when no code declares it. */
function declaredLabels(metric: string): Set<string> | undefined {
  const at = code.search(new RegExp(`['"]${metric}['"]\\s*,`));
  if (at < 0) return undefined;
  const rest = code.slice(at, at + 600);
  const open = rest.indexOf('[');
  const close = rest.indexOf(']', open);
  const names = open < 0 ? [] : [...rest.slice(open, close).matchAll(/'([a-z_]+)'/g)].map((m) => m[1]!);
  return new Set([...names, 'service', 'le']); // `service`: every registry's default label
}

const HISTOGRAM_SUFFIX = /_(bucket|sum|count)$/;
const metricsOf = (expr: string) => [...new Set(expr.match(/\bdriftline_[a-z0-9_]+/g) ?? [])];
const groupedBy = (expr: string) =>
  [...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()));
const matcherLabels = (expr: string) =>
  [...expr.matchAll(/\{([^}]*)\}/g)].flatMap((m) => [...m[1]!.matchAll(/([a-z_]+)\s*=~?/g)].map((l) => l[1]!));

/** Problems of one rule's expression: metrics no code exports, labels none of its metrics carry. */
function problems(expr: string): string[] {
  const out: string[] = [];
  const labels = new Set(['instance', 'job']);
  for (const name of metricsOf(expr)) {
    const declared = declaredLabels(name) ?? declaredLabels(name.replace(HISTOGRAM_SUFFIX, ''));
    if (declared === undefined) out.push(`unknown metric ${name}`);
    else for (const l of declared) labels.add(l);
  }
  for (const l of [...groupedBy(expr), ...matcherLabels(expr)]) if (!labels.has(l)) out.push(`unknown label ${l}`);
  return out;
}

describe('docker/prometheus/rules', () => {
  it('has well-formed rules: unique names, a severity, a summary, a `for` on every non-info rule', () => {
    expect(ruleFiles.length).toBeGreaterThan(0);
    expect(new Set(rules.map((r) => r.alert)).size).toBe(rules.length);
    for (const r of rules) {
      expect(r.expr.trim(), r.alert).not.toBe('');
      expect(['info', 'warning', 'critical'], r.alert).toContain(r.labels?.severity);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      if (r.labels?.severity !== 'info') expect(r.for, r.alert).toMatch(/^\d+[smh]$/);
    }
  });

  it('covers pipeline health: service down, consumer lag, stuck commits, DLQ rate, sink backoff', () => {
    const exprs = rules.map((r) => r.expr).join('\n');
    expect(exprs).toMatch(/\bup\{job="driftline"\} == 0/);
    for (const metric of [
      'driftline_consumer_lag',
      'driftline_consumer_stalled',
      'driftline_records_dlq_total',
      'driftline_consumer_backing_off',
    ]) {
      expect(exprs).toContain(metric);
    }
  });

  it('uses only metrics the code exports, and only labels they carry', () => {
    expect(Object.fromEntries(rules.map((r) => [r.alert, problems(r.expr)]))).toEqual(
      Object.fromEntries(rules.map((r) => [r.alert, []])),
    );
  });

  it('the check finds a misspelt metric and a label the metric does not have', () => {
    expect(problems('sum by (group) (driftline_consumer_lagg)')).toEqual([
      'unknown metric driftline_consumer_lagg',
      'unknown label group',
    ]);
    expect(problems('max by (receiver) (driftline_consumer_lag)')).toEqual(['unknown label receiver']);
    expect(problems('rate(driftline_alert_delivery_seconds_bucket{receiver="x"}[5m])')).toEqual([]);
  });

  it('is loaded by docker/prometheus/prometheus.yml', () => {
    const config = parse(readFileSync(join(docker, 'prometheus/prometheus.yml'), 'utf8')) as { rule_files?: string[] };
    expect(config.rule_files).toEqual(['/etc/prometheus/rules/*.yml']);
  });

  it('docker/config/alert-routes.yaml is a valid routes file', () => {
    const file = join(docker, 'config/alert-routes.yaml');
    const table = parseRoutesText(readFileSync(file, 'utf8'), file);
    expect([...table.receivers.keys()].sort()).toEqual(['ml-team', 'oncall']);
  });
});
