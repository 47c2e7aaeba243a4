// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Grafana template variables, not JavaScript templates
import { describe, expect, it } from 'vitest';
import {
  applyConditionalAll,
  expandGrafanaSql,
  expandMacros,
  type GrafanaQueryContext,
  interpolateVariables,
} from '../src/index.js';

const ctx: GrafanaQueryContext = {
  from: 1_735_689_600_500,
  to: 1_735_732_800_999,
  intervalMs: 30_000,
  variables: { model: "it's", version: ['v1', 'v2'], feature: 'amount', database: 'driftline' },
};

describe('Grafana macro expansion (grafana-clickhouse-datasource semantics)', () => {
  it('expands the time macros as the plugin does (seconds, floored; ms via fromUnixTimestamp64Milli)', () => {
    expect(expandMacros('$__timeFilter(t)', ctx)).toBe('t >= toDateTime(1735689600) AND t <= toDateTime(1735732800)');
    expect(expandMacros('$__timeFilter_ms( t )', ctx)).toBe(
      't >= fromUnixTimestamp64Milli(1735689600500) AND t <= fromUnixTimestamp64Milli(1735732800999)',
    );
    expect(expandMacros('$__fromTime AND $__toTime', ctx)).toBe('toDateTime(1735689600) AND toDateTime(1735732800)');
    expect(expandMacros('$__dateFilter(d)', ctx)).toBe("d >= toDate('2025-01-01') AND d <= toDate('2025-01-01')");
    expect(expandMacros('$__timeInterval(t)', ctx)).toBe('toStartOfInterval(toDateTime(t), INTERVAL 30 second)');
    expect(expandMacros('$__interval_s', { ...ctx, intervalMs: 200 })).toBe('1');
  });

  it('interpolates variables with the plugin formatter and explicit formats', () => {
    expect(interpolateVariables('${version}', ctx)).toBe("'v1','v2'");
    expect(interpolateVariables('$feature [[feature]] ${feature:raw}', ctx)).toBe('amount amount amount');
    expect(interpolateVariables('${model:sqlstring}', ctx)).toBe("'it''s'");
    expect(interpolateVariables('${model:singlequote}', ctx)).toBe("'it\\'s'");
    expect(interpolateVariables('${version:sqlstring}', ctx)).toBe("'v1','v2'");
    expect(interpolateVariables('$__from $__to $__interval', ctx)).toBe('1735689600500 1735732800999 30s');
  });

  it('percent-encodes as Grafana does: RFC 3986 strict, a multi value as one `{a,b}` glob', () => {
    const hostile = { model: "C:\\m\\' OR 1=1 -- $__fromTime\n(é)*!", version: ['v1', 'v 2'] };
    const c = { ...ctx, variables: { ...ctx.variables, ...hostile } };
    const model = interpolateVariables('${model:percentencode}', c);
    expect(model).toBe('C%3A%5Cm%5C%27%20OR%201%3D1%20--%20%24__fromTime%0A%28%C3%A9%29%2A%21');
    expect(model).toMatch(/^[A-Za-z0-9._~%-]*$/);
    expect(decodeURIComponent(model)).toBe(hostile.model);
    expect(interpolateVariables('${version:percentencode}', c)).toBe('%7Bv1%2Cv%202%7D');
    // Backend macros run after interpolation: an encoded value can carry none into the SQL.
    expect(expandGrafanaSql("model = decodeURLComponent('${model:percentencode}')", c)).toBe(
      `model = decodeURLComponent('${model}')`,
    );
    expect(expandGrafanaSql("model = '${model:raw}'", { ...c, variables: { model: 'fraud$__fromTime' } })).toBe(
      "model = 'fraudtoDateTime(1735689600)'",
    );
  });

  it('applies $__conditionalAll before the variables', () => {
    const sql = 'WHERE $__conditionalAll(feature IN (${feature:sqlstring}), $feature)';
    expect(expandGrafanaSql(sql, ctx)).toBe("WHERE feature IN ('amount')");
    expect(expandGrafanaSql(sql, { ...ctx, variables: { ...ctx.variables, feature: '$__all' } })).toBe('WHERE 1=1');
  });

  it('reads All, ["$__all"] and an empty selection as the plugin does (current.value.toString())', () => {
    const sql =
      "WHERE $__conditionalAll(f IN splitByChar(',', decodeURLComponent('${feature:percentencode}')), $feature)";
    const all = (feature: GrafanaQueryContext['variables'][string]) =>
      applyConditionalAll(sql, { ...ctx.variables, feature });
    for (const feature of [{ all: ['a', 'b'] }, ['$__all'], [], '']) expect(all(feature)).toBe('WHERE 1=1');
    expect(all(['a'])).toBe("WHERE f IN splitByChar(',', decodeURLComponent('${feature:percentencode}'))");
    // A variable the dashboard does not have keeps the condition (and interpolation then fails on it).
    expect(applyConditionalAll(sql, {})).toBe(all(['a']));
    // String.replace puts the condition back: `$'` in it would be a pattern, as in the plugin.
    expect(applyConditionalAll("$__conditionalAll(x = '$', $v) AND y", { v: ['a'] })).toBe("x = ' AND y AND y");
  });

  it('interpolates All as every option (no custom allValue) and refuses a bare $__all', () => {
    const all = { ...ctx, variables: { ...ctx.variables, feature: { all: ['a', 'b c'] } } };
    expect(interpolateVariables('${feature:percentencode} ${feature}', all)).toBe("%7Ba%2Cb%20c%7D 'a','b c'");
    for (const feature of ['$__all', ['$__all']]) {
      expect(() => interpolateVariables('${feature}', { ...ctx, variables: { ...ctx.variables, feature } })).toThrow(
        /All is \{ all: options \}/,
      );
    }
  });

  it('refuses what would not reach ClickHouse as meant', () => {
    expect(() => expandGrafanaSql('$__timeFilterr(t)', ctx)).toThrow(/unknown macro/);
    expect(() => expandGrafanaSql('${nope}', ctx)).toThrow(/unknown template variable/);
    expect(() => expandGrafanaSql('$__timeFilter(toDateTime(t))', ctx)).toThrow(/nested parentheses/);
    expect(() => expandGrafanaSql('$__timeFilter(a, b)', ctx)).toThrow(/expected 1 argument/);
  });
});
