import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** One registry per service (never the global one), so tests and co-hosted services stay isolated. */
export function createMetricsRegistry(options: { service: string; defaultMetrics?: boolean }): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service: options.service });
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'driftline_' });
  return registry;
}

type Labels<L extends string> = readonly L[];

/** Distinct values a bounded label takes per metric before the rest share {@link OTHER_LABEL_VALUE}. */
export const MAX_LABEL_VALUES = 100;
/** The one value every value past the bound of a bounded label is counted under. */
export const OTHER_LABEL_VALUE = '__other__';

/**
 * Labels whose values come from events (model names, versions, features) rather than from
 * configuration: each keeps at most `max` distinct values per metric (the first seen), and every
 * later value is recorded as {@link OTHER_LABEL_VALUE}, so a flood of random names cannot grow a
 * registry (and Prometheus) without bound. A gauge's `__other__` series holds the last value set.
 */
export interface BoundedLabels<L extends string> {
  readonly bounded: readonly L[];
  readonly max?: number;
}

const BOUNDED_METHODS = ['inc', 'dec', 'set', 'observe', 'startTimer', 'labels', 'remove'] as const;

/** Rewrites the label arguments of a metric's methods so that bounded labels stay within their bound. */
function bound<M extends object>(metric: M, labelNames: readonly string[], limits: BoundedLabels<string>): M {
  const max = limits.max ?? MAX_LABEL_VALUES;
  const seen = new Map(limits.bounded.map((l) => [l, new Set<string>()] as const));
  const capped = (label: string, value: unknown): unknown => {
    const values = seen.get(label);
    if (values === undefined || value === undefined) return value;
    const text = String(value);
    if (values.has(text)) return value;
    if (values.size < max) {
      values.add(text);
      return value;
    }
    return OTHER_LABEL_VALUE;
  };
  const target = metric as unknown as Record<string, unknown>;
  for (const method of BOUNDED_METHODS) {
    const original = target[method];
    if (typeof original !== 'function') continue;
    target[method] = function (this: unknown, ...args: unknown[]) {
      const first = args[0];
      if (first !== null && typeof first === 'object') {
        const out: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(first)) out[k] = capped(k, v);
        args[0] = out;
      } else if (method === 'labels' || method === 'remove') {
        args = args.map((v, i) => capped(labelNames[i] ?? '', v));
      }
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    };
  }
  return metric;
}

/** Get-or-create by name: two components asking for the same metric share it. */
export function counter<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: Labels<L>,
  limits?: BoundedLabels<L>,
): Counter<L> {
  const existing = registry.getSingleMetric(name);
  if (existing !== undefined) return existing as Counter<L>;
  const metric = new Counter({ name, help, labelNames: [...labelNames], registers: [registry] });
  return limits === undefined ? metric : bound(metric, labelNames, limits);
}

export function gauge<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: Labels<L>,
  limits?: BoundedLabels<L>,
): Gauge<L> {
  const existing = registry.getSingleMetric(name);
  if (existing !== undefined) return existing as Gauge<L>;
  const metric = new Gauge({ name, help, labelNames: [...labelNames], registers: [registry] });
  return limits === undefined ? metric : bound(metric, labelNames, limits);
}

export function histogram<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: Labels<L>,
  buckets: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  limits?: BoundedLabels<L>,
): Histogram<L> {
  const existing = registry.getSingleMetric(name);
  if (existing !== undefined) return existing as Histogram<L>;
  const metric = new Histogram({
    name,
    help,
    labelNames: [...labelNames],
    buckets: [...buckets],
    registers: [registry],
  });
  return limits === undefined ? metric : bound(metric, labelNames, limits);
}

export type { Registry } from 'prom-client';
