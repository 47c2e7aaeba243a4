import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLICKHOUSE, dashboards } from './dashboards.js';
import { DASHBOARD_DIR } from './paths.js';

/** Every query of a provisioned dashboard JSON, found by walking it (not by trusting the generator). */
export interface DashboardQuery {
  readonly dashboard: string;
  /** `panel "title" A`, `variable model`, `annotation "name"`. */
  readonly where: string;
  readonly datasourceUid: string;
  readonly kind: 'panel' | 'variable' | 'annotation';
  /** SQL (ClickHouse) or PromQL (Prometheus). */
  readonly text: string;
  /** ClickHouse Format: 0 time series, 1 table. */
  readonly format?: number;
  /** The template variable a panel repeats over. */
  readonly repeat?: string;
  readonly panelType?: string;
}

type Node = Record<string, unknown>;
const isNode = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);
const uidOf = (v: unknown): string => (isNode(v) && typeof v.uid === 'string' ? v.uid : '');

export function dashboardQueries(file: string, json: unknown): DashboardQuery[] {
  if (!isNode(json)) throw new Error(`${file}: not an object`);
  const out: DashboardQuery[] = [];
  const panels = (list: unknown): void => {
    if (!Array.isArray(list)) return;
    for (const p of list) {
      if (!isNode(p)) continue;
      panels(p.panels);
      if (!Array.isArray(p.targets)) continue;
      for (const t of p.targets) {
        if (!isNode(t)) continue;
        const uid = uidOf(t.datasource) || uidOf(p.datasource);
        const text = typeof t.rawSql === 'string' ? t.rawSql : typeof t.expr === 'string' ? t.expr : '';
        out.push({
          dashboard: file,
          where: `panel "${String(p.title)}" ${String(t.refId)}`,
          datasourceUid: uid,
          kind: 'panel',
          text,
          ...(typeof t.format === 'number' ? { format: t.format } : {}),
          ...(typeof p.repeat === 'string' ? { repeat: p.repeat } : {}),
          panelType: String(p.type),
        });
      }
    }
  };
  panels(json.panels);
  const templating = isNode(json.templating) && Array.isArray(json.templating.list) ? json.templating.list : [];
  for (const v of templating) {
    if (!isNode(v) || v.type !== 'query') continue;
    const q = isNode(v.query) ? v.query.query : v.query;
    out.push({
      dashboard: file,
      where: `variable ${String(v.name)}`,
      datasourceUid: uidOf(v.datasource),
      kind: 'variable',
      text: String(q),
    });
  }
  const annotations = isNode(json.annotations) && Array.isArray(json.annotations.list) ? json.annotations.list : [];
  for (const a of annotations) {
    if (!isNode(a) || !isNode(a.target) || typeof a.target.rawSql !== 'string') continue;
    out.push({
      dashboard: file,
      where: `annotation "${String(a.name)}"`,
      datasourceUid: uidOf(a.datasource),
      kind: 'annotation',
      text: a.target.rawSql,
      format: 1,
    });
  }
  return out;
}

/** Every ClickHouse query (panel, variable, annotation) of the dashboard files on disk, as Grafana reads them. */
export function clickhouseQueriesOnDisk(): DashboardQuery[] {
  return dashboards()
    .map((d) => d.file)
    .flatMap((file) => dashboardQueries(file, JSON.parse(readFileSync(join(DASHBOARD_DIR, file), 'utf8'))))
    .filter((q) => q.datasourceUid === CLICKHOUSE.uid);
}

/**
 * The constant template variables of the dashboard files on disk, name → value, as Grafana
 * substitutes them (hidden settings such as `database` and `min_events`). A name two dashboards give
 * different values is an error.
 */
export function constantsOnDisk(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { file } of dashboards()) {
    const json: unknown = JSON.parse(readFileSync(join(DASHBOARD_DIR, file), 'utf8'));
    const templating = isNode(json) && isNode(json.templating) ? json.templating.list : undefined;
    for (const v of Array.isArray(templating) ? templating : []) {
      if (!isNode(v) || v.type !== 'constant' || typeof v.name !== 'string' || typeof v.query !== 'string') continue;
      if (out[v.name] !== undefined && out[v.name] !== v.query) {
        throw new Error(`${file}: constant ${v.name} is ${v.query} here and ${out[v.name]} in another dashboard`);
      }
      out[v.name] = v.query;
    }
  }
  return out;
}
