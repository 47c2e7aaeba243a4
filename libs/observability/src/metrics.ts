import { DriftlineError, type Logger } from '@driftline/core';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { createLogger } from './logger.js';

/** Where a registry's metrics report trouble (a series cap reached), by registry. */
const registryLogs = new WeakMap<Registry, { service: string; logger?: Logger }>();

/**
 * One registry per service (never the global one), so tests and co-hosted services stay isolated.
 * `logger`: where its bounded metrics warn of a series cap reached (default: a JSON logger of `service`).
 */
export function createMetricsRegistry(options: {
  service: string;
  defaultMetrics?: boolean;
  logger?: Logger;
}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service: options.service });
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'driftline_' });
  registryLogs.set(registry, {
    service: options.service,
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
  return registry;
}

type Labels<L extends string> = readonly L[];

/** Distinct values a bounded label takes per metric before the rest share {@link OTHER_LABEL_VALUE}. */
export const MAX_LABEL_VALUES = 100;
/** The one value every value past the bound of a bounded label is counted under. */
export const OTHER_LABEL_VALUE = '__other__';
/** How long a bounded label's value keeps its place without an update while new values wait for one. */
export const BOUNDED_LABEL_IDLE_MS = 10 * 60_000;
/**
 * Series a metric with bounded labels keeps (those with at least one bounded value of its own);
 * past it, a new combination is recorded with every bounded label {@link OTHER_LABEL_VALUE}. Each
 * label bounded alone still allowed (max + 1)^k series for k labels (10,201 for two). 2,000 is
 * 100 models × 20 values of a closed label set (outcomes, reasons) or of a second bounded label
 * (features or versions per model, on average over all 100), a scrape of ~200 kB per metric at
 * worst. It does not follow `max`: a metric whose documented bound holds more series passes its own
 * `maxSeries` (the drift-monitor's model × feature gauges: 100 × 100).
 */
export const MAX_SERIES_PER_METRIC = 2_000;

/**
 * Labels whose values come from events (model names, versions, features) rather than from
 * configuration: each keeps at most `max` distinct values per metric, and a value without a place
 * is recorded as {@link OTHER_LABEL_VALUE}, so a flood of random names cannot grow a registry (and
 * Prometheus) without bound. A value takes a place when it is first recorded (inc, dec, set,
 * observe, a timer when it ends; not `labels()` or `remove()` alone). When all are taken, a new value takes the
 * place of the least recently updated one if that one has not been updated for `idleMs` (its
 * series are removed): a burst of junk names holds the places for `idleMs` at most, so a real
 * model seen later gets its own series, while a steady flood renews at most `max` series per
 * `idleMs` (no churn of series in Prometheus). A gauge's `__other__` series holds the last value set.
 * A metric also keeps at most `maxSeries` series with a bounded value of their own: past it, a new
 * combination is recorded with every bounded label `__other__` (counted in
 * `driftline_metric_series_dropped_total{metric}`, a warning once per metric), or, once a value has
 * been idle for `idleMs`, takes the room of that value's series.
 */
export interface BoundedLabels<L extends string> {
  readonly bounded: readonly L[];
  readonly max?: number;
  /** Default {@link BOUNDED_LABEL_IDLE_MS}. */
  readonly idleMs?: number;
  /** Default {@link MAX_SERIES_PER_METRIC}, whatever `max`. */
  readonly maxSeries?: number;
}

type LabelSet = Record<string, unknown>;
/** A bounded value's place: when it was last recorded, and the keys of its series. */
type Place = { at: number; series: Set<string> };

/**
 * Methods that record a value under their labels (the first argument, when it is an object). Not
 * `startTimer`: its labels may be partial until the timer ends (`startTimer({ model })({ outcome })`),
 * and prom-client ends it through `observe` / `set` with the merged labels, admitted then (admitted
 * at the start, the partial set took a series of its own, and at the cap sent the observation to
 * `__other__` although its full series existed).
 */
const RECORDING_METHODS = ['inc', 'dec', 'set', 'setToCurrentTime', 'observe', 'zero'] as const;
/** Methods of a `labels(...)` child, each the metric's own with the child's labels first. */
const CHILD_METHODS = ['inc', 'dec', 'set', 'setToCurrentTime', 'observe', 'startTimer'] as const;

/** Recordings that a metric's series cap folded into `__other__`, by metric. */
function seriesDroppedCounter(registry: Registry) {
  return counter(
    registry,
    'driftline_metric_series_dropped_total',
    'Recordings of a new series past its metric series cap, recorded with every bounded label __other__',
    ['metric'],
  );
}

/** Rewrites the label arguments of a metric's methods so that bounded labels stay within their bound. */
function bound<M extends object>(
  metric: M,
  labelNames: readonly string[],
  limits: BoundedLabels<string>,
  owner: { registry: Registry; name: string },
): M {
  const max = limits.max ?? MAX_LABEL_VALUES;
  const idleMs = limits.idleMs ?? BOUNDED_LABEL_IDLE_MS;
  const maxSeries = limits.maxSeries ?? MAX_SERIES_PER_METRIC;
  const seriesDropped = seriesDroppedCounter(owner.registry);
  // At 0 from the start: Prometheus' increase() does not count a series' first sample, so an alert
  // (DriftlineMetricSeriesDropped) would miss a first fold that created the series.
  seriesDropped.inc({ metric: owner.name }, 0);
  let warnedOfSeriesCap = false;
  /** Per bounded label, its values with a place (least recently updated first) and the series of each. */
  const places = new Map(limits.bounded.map((l) => [l, new Map<string, Place>()]));
  /** Every series recorded under values with a place, by key. */
  const series = new Map<string, LabelSet>();
  const target = metric as unknown as Record<string, unknown>;
  const original = (name: string) => (target[name] as (...a: unknown[]) => unknown).bind(metric);
  const removeSeries = original('remove');
  const keyOf = (labels: LabelSet) =>
    JSON.stringify(labelNames.map((n) => (labels[n] === undefined ? null : String(labels[n]))));
  const positional = (values: unknown[]): LabelSet => Object.fromEntries(labelNames.map((n, i) => [n, values[i]]));

  /** Forgets a series (already gone from the metric); a value left without series frees its place. */
  const forget = (key: string) => {
    const labels = series.get(key);
    if (labels === undefined) return;
    series.delete(key);
    for (const [label, values] of places) {
      const place = values.get(String(labels[label]));
      place?.series.delete(key);
      if (place?.series.size === 0) values.delete(String(labels[label]));
    }
  };
  const evict = (values: Map<string, Place>, value: string) => {
    for (const key of [...(values.get(value)?.series ?? [])]) {
      removeSeries(series.get(key));
      forget(key);
    }
    values.delete(value);
  };

  /** A bounded label's value in `labels` that could take a place (not absent, not `__other__` itself). */
  const boundedValue = (labels: LabelSet, label: string) => {
    const raw = labels[label];
    return raw === undefined || String(raw) === OTHER_LABEL_VALUE ? undefined : String(raw);
  };
  /** Past the series cap: every bounded label `__other__`, counted, and a warning the first time. */
  const foldPastSeriesCap = (out: LabelSet) => {
    for (const label of places.keys()) if (out[label] !== undefined) out[label] = OTHER_LABEL_VALUE;
    seriesDropped.inc({ metric: owner.name });
    if (warnedOfSeriesCap) return;
    warnedOfSeriesCap = true;
    const log = registryLogs.get(owner.registry);
    (log?.logger ?? createLogger({ service: log?.service ?? 'driftline' })).warn(
      { metric: owner.name, maxSeries, bounded: [...places.keys()] },
      'metric reached its series cap: new combinations of its bounded labels are recorded as __other__',
    );
  };
  /** The labels to record under: each bounded value with a place (taking or renewing it), else `__other__`. */
  const admit = (labels: LabelSet): LabelSet => {
    const now = Date.now();
    // At the series cap a new series makes room as a new value does at a label's bound: from a
    // value idle for idleMs (a burst of junk combinations holds the room for idleMs at most).
    const seriesFull = series.size >= maxSeries && !series.has(keyOf(labels));
    // Room first, for every label, so an eviction (which can free places of the other labels)
    // never takes back a place given in this same call.
    for (const [label, values] of places) {
      const value = boundedValue(labels, label);
      if (value === undefined) continue;
      const labelFull = !values.has(value) && values.size >= max;
      if (!labelFull && !(seriesFull && series.size >= maxSeries)) continue;
      const [oldest, entry] = values.entries().next().value ?? [];
      if (oldest !== undefined && entry !== undefined && now - entry.at >= idleMs) evict(values, oldest);
    }
    const out: LabelSet = { ...labels };
    const placing: Array<{ values: Map<string, Place>; value: string; place: Place | undefined }> = [];
    for (const [label, values] of places) {
      const value = boundedValue(labels, label);
      if (value === undefined) continue;
      const place = values.get(value);
      if (place === undefined && values.size >= max) out[label] = OTHER_LABEL_VALUE;
      else placing.push({ values, value, place });
    }
    if (placing.length === 0) return out;
    const key = keyOf(out);
    if (series.size >= maxSeries && !series.has(key)) {
      foldPastSeriesCap(out); // takes no place, renews none: no series of theirs was updated
      return out;
    }
    for (const { values, value, place } of placing) {
      const kept = place ?? { at: now, series: new Set<string>() };
      // (Re)inserted at the end: the map's first entry is the least recently updated value.
      values.delete(value);
      kept.at = now;
      kept.series.add(key);
      values.set(value, kept);
    }
    series.set(key, out);
    return out;
  };

  for (const method of RECORDING_METHODS) {
    if (typeof target[method] !== 'function') continue;
    const call = original(method);
    target[method] = (...args: unknown[]) => {
      const first = args[0];
      if (first !== null && typeof first === 'object') args[0] = admit(first as LabelSet);
      return call(...args);
    };
  }
  // A child records through the metric's methods above, so its values take a place only when used.
  target.labels = (...args: unknown[]) => {
    const first = args[0];
    const labels = first !== null && typeof first === 'object' ? (first as LabelSet) : positional(args);
    const child: Record<string, unknown> = {};
    for (const method of CHILD_METHODS) {
      if (typeof target[method] !== 'function') continue;
      // Bound to the metric: `startTimer` is prom-client's own method, which needs its `this`.
      const call = original(method);
      child[method] = (...a: unknown[]) => call(labels, ...a);
    }
    return child;
  };
  // Removing a value that has no place removes nothing (not the shared `__other__` series, and it
  // takes no place); one with a place frees it once its last series is gone.
  target.remove = (...args: unknown[]) => {
    const first = args[0];
    const labels = first !== null && typeof first === 'object' ? (first as LabelSet) : positional(args);
    for (const [label, values] of places) {
      const raw = labels[label];
      if (raw !== undefined && String(raw) !== OTHER_LABEL_VALUE && !values.has(String(raw))) return;
    }
    removeSeries(labels);
    forget(keyOf(labels));
  };
  const reset = original('reset');
  target.reset = () => {
    reset();
    series.clear();
    for (const values of places.values()) values.clear();
  };
  return metric;
}

/** The limits a metric was created with, to refuse a later request of it with other ones. */
const limitsOf = new WeakMap<object, string>();
const limitsKey = (limits: BoundedLabels<string> | undefined) =>
  limits === undefined
    ? 'unbounded'
    : `bounded [${[...limits.bounded].sort().join(', ')}], max ${limits.max ?? MAX_LABEL_VALUES}, idle ${limits.idleMs ?? BOUNDED_LABEL_IDLE_MS} ms, series ${limits.maxSeries ?? MAX_SERIES_PER_METRIC}`;

/**
 * The metric already registered under `name`, or undefined. Asked again with other limits (a
 * bound, another max) it throws: the first caller's limits would silently apply to the second.
 */
function existing(registry: Registry, name: string, limits: BoundedLabels<string> | undefined) {
  const found = registry.getSingleMetric(name);
  if (found === undefined) return undefined;
  const had = limitsOf.get(found) ?? 'unbounded';
  const wanted = limitsKey(limits);
  if (had !== wanted) {
    throw new DriftlineError('INTERNAL', `metric ${name} requested ${wanted}, but it exists ${had}`);
  }
  return found;
}

/** Registers what `bound` makes of a new metric, with its limits. */
function created<M extends object>(
  metric: M,
  labelNames: readonly string[],
  limits: BoundedLabels<string> | undefined,
  owner: { registry: Registry; name: string },
): M {
  limitsOf.set(metric, limitsKey(limits));
  return limits === undefined ? metric : bound(metric, labelNames, limits, owner);
}

/** Get-or-create by name: two components asking for the same metric (with the same limits) share it. */
export function counter<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: Labels<L>,
  limits?: BoundedLabels<L>,
): Counter<L> {
  const found = existing(registry, name, limits);
  if (found !== undefined) return found as Counter<L>;
  const metric = new Counter({ name, help, labelNames: [...labelNames], registers: [registry] });
  return created(metric, labelNames, limits, { registry, name });
}

export function gauge<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: Labels<L>,
  limits?: BoundedLabels<L>,
): Gauge<L> {
  const found = existing(registry, name, limits);
  if (found !== undefined) return found as Gauge<L>;
  const metric = new Gauge({ name, help, labelNames: [...labelNames], registers: [registry] });
  return created(metric, labelNames, limits, { registry, name });
}

export function histogram<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: Labels<L>,
  buckets: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  limits?: BoundedLabels<L>,
): Histogram<L> {
  const found = existing(registry, name, limits);
  if (found !== undefined) return found as Histogram<L>;
  const metric = new Histogram({
    name,
    help,
    labelNames: [...labelNames],
    buckets: [...buckets],
    registers: [registry],
  });
  return created(metric, labelNames, limits, { registry, name });
}

export type { Registry } from 'prom-client';
