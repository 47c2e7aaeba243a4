/**
 * What Grafana does to a ClickHouse panel's SQL before the server sees it, in two steps:
 *
 * 1. The browser (grafana-clickhouse-datasource `applyTemplateVariables`): `$__conditionalAll(cond, $var)`
 *    becomes `1=1` when the variable is All/empty, else `cond`; then Grafana's template service replaces
 *    `$var`, `${var}`, `${var:format}`, `[[var]]` and the built-ins `$__from`, `$__to` (epoch ms),
 *    `$__interval`, `$__interval_ms`. Without an explicit format the plugin's own formatter applies:
 *    a multi value becomes `'a','b'` (no escaping), a single value is inserted raw.
 * 2. The plugin backend (sqlds + `pkg/macros`): `$__name(args)` macros, arguments split on commas and
 *    trimmed. Older sqlds versions match arguments non-greedily up to the first `)`, so this expander
 *    refuses nested parentheses in macro arguments: what passes here expands the same way on both.
 *
 * Anything left that looks like a variable or a macro is an error, so a typo fails the test instead
 * of reaching ClickHouse as text.
 */

/**
 * "All" selected in a multi-value variable without a custom allValue: Grafana's current value is
 * `$__all`, interpolated as every option of the variable (`options`, as its query returned them).
 */
export interface AllSelected {
  readonly all: readonly string[];
}

/** A single value, a multi-value selection (possibly empty), or All. */
export type VariableValue = string | readonly string[] | AllSelected;

/** Grafana's value for All (ALL_VARIABLE_VALUE). */
export const ALL_VALUE = '$__all';

const isAll = (value: VariableValue): value is AllSelected => typeof value === 'object' && 'all' in value;

export interface GrafanaQueryContext {
  /** Dashboard time range, epoch milliseconds. */
  readonly from: number;
  readonly to: number;
  /** Panel interval (Grafana's `$__interval`), milliseconds. */
  readonly intervalMs: number;
  /** Template variables by name; an array is a multi-value selection, `{ all }` is All. */
  readonly variables: Readonly<Record<string, VariableValue>>;
}

const TEMPLATE = /\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?::([^}]+))?\}/g;

/** Grafana's `encodeURIComponentStrict` (RFC 3986): also encodes `!'()*`, which encodeURIComponent keeps. */
function encodeUriComponentStrict(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function formatValue(selected: VariableValue, format: string | undefined, name: string): string {
  if (typeof selected === 'string' ? selected === ALL_VALUE : !isAll(selected) && selected[0] === ALL_VALUE) {
    throw new Error(`variable ${name}: All is { all: options } here (Grafana interpolates every option)`);
  }
  // Grafana's getAllValue without a custom allValue: the options, formatted as a multi value.
  const value = isAll(selected) ? selected.all : selected;
  const list = typeof value === 'string' ? [value] : [...value];
  switch (format) {
    case undefined:
      // The ClickHouse plugin's formatter: arrays quoted and comma-joined, scalars raw.
      return typeof value === 'string' ? value : `'${list.join("','")}'`;
    case 'raw':
      return list.join(',');
    case 'csv':
      return list.join(',');
    case 'sqlstring':
      return list.map((v) => `'${v.replaceAll("'", "''")}'`).join(',');
    case 'singlequote':
      return list.map((v) => `'${v.replaceAll("'", "\\'")}'`).join(',');
    case 'percentencode':
      // Grafana's formatter: a multi value is encoded as one glob `{a,b}`, each value not on its own.
      return encodeUriComponentStrict(typeof value === 'string' ? value : `{${list.join(',')}}`);
    case 'doublequote':
      return list.map((v) => `"${v.replaceAll('"', '\\"')}"`).join(',');
    default:
      throw new Error(`variable ${name}: format ${format} is not supported by this expander`);
  }
}

function builtin(name: string, ctx: GrafanaQueryContext): string | undefined {
  switch (name) {
    case '__from':
      return String(ctx.from);
    case '__to':
      return String(ctx.to);
    case '__interval_ms':
      return String(ctx.intervalMs);
    case '__interval':
      return ctx.intervalMs % 1000 === 0 ? `${ctx.intervalMs / 1000}s` : `${ctx.intervalMs}ms`;
    default:
      return undefined;
  }
}

/**
 * `$__conditionalAll(condition, $var)`: the plugin's frontend macro, resolved before variables, as
 * CHDatasource.applyConditionalAll: `1=1` when the variable's current value, as a string, is `$__all`
 * or empty (All, nothing selected), else the condition; an unknown variable keeps the condition. The
 * plugin puts the result back with String.replace, so `$'`, `$&`… in a condition are patterns here too.
 */
export function applyConditionalAll(sql: string, variables: GrafanaQueryContext['variables']): string {
  const macro = '$__conditionalAll(';
  let out = sql;
  for (let at = out.lastIndexOf(macro); at !== -1; at = out.lastIndexOf(macro)) {
    const args = splitArgs(out, at + macro.length - 1);
    if (args === undefined || args.list.length !== 2) throw new Error(`$__conditionalAll needs 2 arguments at ${at}`);
    const [condition, variable] = args.list as [string, string];
    const name = /(?<=\$\{)\w+(?=\})|(?<=\$)\w+/.exec(variable.trim())?.[0];
    const value = name === undefined ? undefined : variables[name];
    // `current.value.toString()`: an array joins with ',', so [] is '' and ['$__all'] is '$__all'.
    const current = value === undefined ? undefined : isAll(value) ? ALL_VALUE : String(value);
    const phrase = current === '' || current === ALL_VALUE ? '1=1' : condition;
    out = out.replace(`${macro}${condition},${variable})`, phrase);
  }
  return out;
}

/** Balanced argument list starting at `open` (a `(`): raw arguments and the index after `)`. */
function splitArgs(sql: string, open: number): { list: string[]; end: number; nested: boolean } | undefined {
  let depth = 0;
  let start = open + 1;
  let nested = false;
  const list: string[] = [];
  for (let i = open; i < sql.length; i++) {
    const c = sql[i];
    if (c === '(') {
      depth++;
      if (depth > 1) nested = true;
    } else if (c === ')') {
      depth--;
      if (depth === 0) {
        list.push(sql.slice(start, i));
        return { list, end: i + 1, nested };
      }
    } else if (c === ',' && depth === 1) {
      list.push(sql.slice(start, i));
      start = i + 1;
    }
  }
  return undefined;
}

/** Step 1: template variables, as Grafana's template service with the plugin's formatter. */
export function interpolateVariables(sql: string, ctx: GrafanaQueryContext): string {
  return sql.replace(
    TEMPLATE,
    (match, plain?: string, bracket?: string, bracketFormat?: string, braced?: string, format?: string) => {
      const name = plain ?? bracket ?? braced!;
      const b = builtin(name, ctx);
      if (b !== undefined) return b;
      const value = ctx.variables[name];
      if (value === undefined) {
        // Grafana leaves unknown names alone; `$__macros` are the backend's business.
        if (name.startsWith('__')) return match;
        throw new Error(`unknown template variable ${match}`);
      }
      return formatValue(value, format ?? bracketFormat, name);
    },
  );
}

const toDateTime = (ms: number) => `toDateTime(${Math.floor(ms / 1000)})`;
const toDateTime64 = (ms: number) => `fromUnixTimestamp64Milli(${Math.trunc(ms)})`;
const toDate = (ms: number) => `toDate('${new Date(ms).toISOString().slice(0, 10)}')`;

type Macro = (args: readonly string[], ctx: GrafanaQueryContext) => string;

function arity(name: string, args: readonly string[], n: number): void {
  if (args.length !== n) throw new Error(`$__${name}: expected ${n} argument(s), received ${args.length}`);
}

/** The plugin's macros (pkg/macros/macros.go), same output text. */
export const MACROS: Readonly<Record<string, Macro>> = {
  fromTime: (_, c) => toDateTime(c.from),
  toTime: (_, c) => toDateTime(c.to),
  fromTime_ms: (_, c) => toDateTime64(c.from),
  toTime_ms: (_, c) => toDateTime64(c.to),
  timeFilter: (a, c) => {
    arity('timeFilter', a, 1);
    return `${a[0]} >= ${toDateTime(c.from)} AND ${a[0]} <= ${toDateTime(c.to)}`;
  },
  timeFilter_ms: (a, c) => {
    arity('timeFilter_ms', a, 1);
    return `${a[0]} >= ${toDateTime64(c.from)} AND ${a[0]} <= ${toDateTime64(c.to)}`;
  },
  dateFilter: (a, c) => {
    arity('dateFilter', a, 1);
    return `${a[0]} >= ${toDate(c.from)} AND ${a[0]} <= ${toDate(c.to)}`;
  },
  timeInterval: (a, c) => {
    arity('timeInterval', a, 1);
    return `toStartOfInterval(toDateTime(${a[0]}), INTERVAL ${Math.trunc(Math.max(c.intervalMs / 1000, 1))} second)`;
  },
  timeInterval_ms: (a, c) => {
    arity('timeInterval_ms', a, 1);
    return `toStartOfInterval(toDateTime64(${a[0]}, 3), INTERVAL ${Math.trunc(Math.max(c.intervalMs, 1))} millisecond)`;
  },
  interval_s: (_, c) => String(Math.trunc(Math.max(c.intervalMs / 1000, 1))),
};

/** Step 2: the backend macros. */
export function expandMacros(sql: string, ctx: GrafanaQueryContext): string {
  let out = '';
  let i = 0;
  const re = /\$__(\w+)/g;
  for (let m = re.exec(sql); m !== null; m = re.exec(sql)) {
    const name = m[1]!;
    const macro = MACROS[name];
    if (macro === undefined) throw new Error(`unknown macro $__${name}`);
    let args: string[] = [];
    let end = m.index + m[0].length;
    if (sql[end] === '(') {
      const parsed = splitArgs(sql, end);
      if (parsed === undefined) throw new Error(`$__${name}: unbalanced parentheses`);
      if (parsed.nested)
        throw new Error(`$__${name}: nested parentheses in macro arguments expand differently across plugin versions`);
      const trimmed = parsed.list.map((a) => a.trim());
      args = trimmed.length === 1 && trimmed[0] === '' ? [] : trimmed;
      end = parsed.end;
    }
    out += sql.slice(i, m.index) + macro(args, ctx);
    i = end;
    re.lastIndex = end;
  }
  return out + sql.slice(i);
}

/** Both steps, in Grafana's order. */
export function expandGrafanaSql(sql: string, ctx: GrafanaQueryContext): string {
  return expandMacros(interpolateVariables(applyConditionalAll(sql, ctx.variables), ctx), ctx);
}
