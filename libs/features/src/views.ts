import { ConfigError, formatDuration, parseConfigText, parseDurationMs } from '@driftline/core';
import {
  type ExpectationSet,
  expectationSchema,
  expectationSet,
  type FeatureExpectations,
  type FreshnessSpec,
  toFeatureExpectations,
} from '@driftline/quality';
import { z } from 'zod';

export type FeatureType = 'double' | 'string' | 'boolean';
export type AggregateFunction = 'count' | 'sum' | 'mean' | 'min' | 'max';

export interface FeatureSpec {
  readonly name: string;
  readonly type: FeatureType;
  readonly description?: string;
  /** Data-quality expectations (`expect`), evaluated per window by the drift-monitor. */
  readonly expect?: FeatureExpectations;
}

/** A sliding event-time window aggregate over one numeric feature of the view. */
export interface AggregateSpec {
  readonly name: string;
  readonly feature: string;
  readonly function: AggregateFunction;
  readonly windowMs: number;
}

export interface FeatureView {
  readonly name: string;
  /** Name of the entity key (documentation and API output; events carry it as `entity_id`). */
  readonly entity: string;
  /** Source topic without the deployment's topic prefix. */
  readonly source: string;
  /**
   * How long a row is served after its event time, in ms (`ttl`; 0 = `none`, never expires): the
   * store expires it then and a read refuses an older one.
   */
  readonly ttlMs: number;
  readonly features: readonly FeatureSpec[];
  readonly featureIndex: ReadonlyMap<string, number>;
  /**
   * Features the view no longer declares that producers may still send (`removed_features`, in
   * file order; empty when none): an event's values under these names are never written, never
   * counted as ignored, and never what makes it poison — the event is validated as if it did not
   * carry them (`validateFeatureEvent`).
   */
  readonly removedFeatures: ReadonlySet<string>;
  readonly aggregates: readonly AggregateSpec[];
  /** The longest aggregate window (events older than latest − horizon can never count again). */
  readonly horizonMs: number;
  /** Numeric features some aggregate reads, in slot order (how the window store packs values). */
  readonly aggregatedFeatures: readonly string[];
  /**
   * Events kept per entity for the window aggregates (`max_events`): the newest by (event_time,
   * event_id). Beyond it the oldest events of the horizon are dropped, and the aggregates cover the
   * newest `maxWindowEvents` events of each window — which bounds the memory of a hot entity and
   * the work of every write to it (one refold of at most this many events). A view without
   * aggregates keeps no events: its `max_events` (any positive integer, unbounded) has no effect.
   */
  readonly maxWindowEvents: number;
  /** Freshness expectation (`freshness.max_lag`), measured by the feature-materializer. */
  readonly freshness?: FreshnessSpec;
}

export interface FeatureViews {
  readonly views: readonly FeatureView[];
  get(name: string): FeatureView | undefined;
  /** Distinct source topics (unprefixed). */
  readonly sources: readonly string[];
}

export const DEFAULT_SOURCE_TOPIC = 'features.v1';
export const MAX_FEATURES_PER_VIEW = 500;
export const MAX_WINDOW_MS = 90 * 86_400_000;
/** Default of a view's `max_events` (events kept per entity for its window aggregates). */
export const DEFAULT_MAX_WINDOW_EVENTS = 1_000;
/**
 * Ceiling of `max_events` in a view with aggregates (a view without keeps no events: not bounded).
 * Every write to an entity refolds its kept events in one Redis script, and Redis serves no other
 * client meanwhile (~1–2.5 µs an event on a 2-core VM): 10,000 is ~10–25 ms. The ceiling was
 * 100,000: ~0.3 s of Redis blocked per write to a hot entity, seconds for a batch of them, then
 * BUSY replies to every reader (a review).
 */
export const MAX_WINDOW_EVENTS = 10_000;

/** Feature, aggregate and view names: safe as Redis hash fields and key parts, never starting with `_`. */
const NAME = /^[A-Za-z][A-Za-z0-9_]{0,127}$/;
const TOPIC = /^[A-Za-z0-9._-]{1,200}$/;

const name = (what: string) => z.string().regex(NAME, `${what} must match ${NAME.source}`);
const duration = (what: string) =>
  z.union([
    z
      .string()
      .refine((s) => parseDurationMs(s) !== undefined, `${what} must be a duration like 500ms, 30s, 10m, 1h, 1d or 2w`),
    z.number().int().nonnegative(),
  ]);

const featureSchema = z.preprocess(
  (v) => (typeof v === 'string' ? { type: v } : v),
  z.strictObject({
    type: z.enum(['double', 'string', 'boolean'], { message: 'must be one of double, string, boolean' }),
    description: z.string().optional(),
    expect: expectationSchema.optional(),
  }),
);

/** Longest freshness bound of a view. */
export const MAX_FRESHNESS_LAG_MS = 90 * 86_400_000;

const aggregateSchema = z.strictObject({
  name: name('aggregate name').optional(),
  feature: name('feature'),
  function: z.enum(['count', 'sum', 'mean', 'min', 'max'], { message: 'must be one of count, sum, mean, min, max' }),
  window: duration('window'),
});

const viewSchema = z.strictObject({
  name: name('view name'),
  entity: name('entity key'),
  source: z.string().regex(TOPIC, 'must be a topic name').default(DEFAULT_SOURCE_TOPIC),
  ttl: z.union([z.literal('none'), duration('ttl')]).default('none'),
  description: z.string().optional(),
  features: z.record(z.string(), featureSchema),
  // Checked against `features` below (a name is declared or removed, not both).
  removed_features: z
    .array(name('removed feature name'))
    .max(MAX_FEATURES_PER_VIEW, `at most ${MAX_FEATURES_PER_VIEW} names`)
    .default([]),
  aggregates: z.array(aggregateSchema).default([]),
  // The ceiling (MAX_WINDOW_EVENTS) binds a view with aggregates only: checked below.
  max_events: z.number().int().min(1).default(DEFAULT_MAX_WINDOW_EVENTS),
  freshness: z.strictObject({ max_lag: duration('max_lag') }).optional(),
});

const fileSchema = z.strictObject({ views: z.array(viewSchema).min(1, 'must declare at least one view') });

function toMs(value: string | number): number {
  return typeof value === 'number' ? value : (parseDurationMs(value) ?? Number.NaN);
}

/** `['views', 1, 'features', 'age', 'type']` → `views[1].features.age.type`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out || '(root)';
}

function fail(path: ReadonlyArray<PropertyKey>, message: string): never {
  throw new ConfigError(formatPath(path), message);
}

/**
 * Validates a parsed feature view document (the object form of the YAML/JSON file). Throws a
 * ConfigError whose field is the path of the first problem, e.g. `views[1].features.age.type`.
 */
export function parseFeatureViews(document: unknown): FeatureViews {
  const result = fileSchema.safeParse(document);
  if (!result.success) {
    const issue = result.error.issues[0];
    fail(issue?.path ?? [], issue?.message ?? 'invalid');
  }
  const views: FeatureView[] = [];
  const byName = new Map<string, FeatureView>();
  for (const [i, raw] of result.data.views.entries()) {
    const at = (...rest: PropertyKey[]) => ['views', i, ...rest];
    if (byName.has(raw.name)) fail(at('name'), `duplicate view name "${raw.name}"`);
    const features: FeatureSpec[] = [];
    for (const [featureName, spec] of Object.entries(raw.features)) {
      if (!NAME.test(featureName)) fail(at('features', featureName), `feature name must match ${NAME.source}`);
      let expect: FeatureExpectations | undefined;
      if (spec.expect !== undefined) {
        const checked = toFeatureExpectations(featureName, spec.type, spec.expect);
        if (Array.isArray(checked)) fail(at('features', featureName, 'expect', checked[0]), checked[1]);
        expect = checked as FeatureExpectations;
      }
      features.push({
        name: featureName,
        type: spec.type,
        ...(spec.description === undefined ? {} : { description: spec.description }),
        ...(expect === undefined ? {} : { expect }),
      });
    }
    if (features.length === 0) fail(at('features'), 'must declare at least one feature');
    if (features.length > MAX_FEATURES_PER_VIEW) fail(at('features'), `at most ${MAX_FEATURES_PER_VIEW} features`);
    const featureIndex = new Map(features.map((f, index) => [f.name, index]));
    // 0 stands for `none` inside; a written `ttl: 0` (or `0s`) reads as "expire at once", so it is
    // refused rather than silently meaning "never".
    const ttlMs = raw.ttl === 'none' ? 0 : toMs(raw.ttl);
    if (raw.ttl !== 'none' && ttlMs <= 0) fail(at('ttl'), 'must be a positive duration, or none (never expires)');

    const removedFeatures = new Set<string>();
    for (const [j, removed] of raw.removed_features.entries()) {
      if (featureIndex.has(removed)) {
        fail(
          at('removed_features', j),
          `"${removed}" is declared under features: a name is either declared or removed, not both`,
        );
      }
      if (removedFeatures.has(removed)) fail(at('removed_features', j), `duplicate name "${removed}"`);
      removedFeatures.add(removed);
    }

    const aggregates: AggregateSpec[] = [];
    const taken = new Set(featureIndex.keys());
    for (const [j, agg] of raw.aggregates.entries()) {
      const feature = features[featureIndex.get(agg.feature) ?? -1];
      if (feature === undefined) {
        fail(
          at('aggregates', j, 'feature'),
          removedFeatures.has(agg.feature)
            ? `"${agg.feature}" is a removed feature (removed_features): an aggregate reads a declared one`
            : `unknown feature "${agg.feature}"`,
        );
      }
      if (feature.type !== 'double') {
        fail(
          at('aggregates', j, 'feature'),
          `window aggregates read double features; "${feature.name}" is ${feature.type}`,
        );
      }
      const windowMs = toMs(agg.window);
      if (windowMs <= 0 || windowMs > MAX_WINDOW_MS) {
        fail(at('aggregates', j, 'window'), `must be between 1ms and ${formatDuration(MAX_WINDOW_MS)}`);
      }
      const aggName = agg.name ?? `${agg.feature}_${agg.function}_${formatDuration(windowMs)}`;
      if (taken.has(aggName)) fail(at('aggregates', j, 'name'), `"${aggName}" is already a feature or aggregate name`);
      // An aggregate's output is a name of the row: listed as removed, events carrying it would
      // be taken for a producer still sending a retired feature (found by a review).
      if (removedFeatures.has(aggName)) {
        fail(
          at('aggregates', j, 'name'),
          `"${aggName}" is listed in removed_features: a name is either an aggregate's or removed, not both`,
        );
      }
      taken.add(aggName);
      aggregates.push({ name: aggName, feature: agg.feature, function: agg.function, windowMs });
    }
    // The cost the ceiling bounds is the refold of a window set, which only a view with aggregates
    // has: a plain view's max_events bounds nothing, and refusing it stopped every reader of the
    // file at start-up for no protection.
    if (aggregates.length > 0 && raw.max_events > MAX_WINDOW_EVENTS) {
      fail(
        at('max_events'),
        `must be at most ${MAX_WINDOW_EVENTS}: every write to an entity refolds up to max_events events in one Redis script, which blocks every other Redis client while it runs (use a shorter window for a hotter entity)`,
      );
    }
    const aggregatedFeatures = [...new Set(aggregates.map((a) => a.feature))];
    const view: FeatureView = {
      name: raw.name,
      entity: raw.entity,
      source: raw.source,
      ttlMs,
      features,
      featureIndex,
      removedFeatures,
      aggregates,
      horizonMs: aggregates.reduce((m, a) => Math.max(m, a.windowMs), 0),
      aggregatedFeatures,
      maxWindowEvents: raw.max_events,
      ...(raw.freshness === undefined ? {} : { freshness: freshnessOf(raw.freshness.max_lag, raw.name, at) }),
    };
    byName.set(view.name, view);
    views.push(view);
  }
  return {
    views,
    get: (viewName) => byName.get(viewName),
    sources: [...new Set(views.map((v) => v.source))],
  };
}

function freshnessOf(
  maxLag: string | number,
  view: string,
  at: (...rest: PropertyKey[]) => PropertyKey[],
): FreshnessSpec {
  const maxLagMs = toMs(maxLag);
  if (maxLagMs <= 0 || maxLagMs > MAX_FRESHNESS_LAG_MS) {
    fail(at('freshness', 'max_lag'), `must be between 1ms and ${formatDuration(MAX_FRESHNESS_LAG_MS)}`);
  }
  return { view, maxLagMs };
}

/**
 * The data-quality expectations of every view's features, for a monitor of the predictions that
 * carry them by feature name. A feature declared with expectations in two views is refused unless
 * both say the same (a prediction carries one value per name).
 */
export function expectationsOf(views: FeatureViews): ExpectationSet {
  const byFeature = new Map<string, FeatureExpectations>();
  for (const [i, view] of views.views.entries()) {
    for (const f of view.features) {
      if (f.expect === undefined) continue;
      const seen = byFeature.get(f.name);
      if (seen !== undefined && JSON.stringify(seen) !== JSON.stringify(f.expect)) {
        fail(
          ['views', i, 'features', f.name, 'expect'],
          'another view declares different expectations for this feature',
        );
      }
      byFeature.set(f.name, f.expect);
    }
  }
  return expectationSet([...byFeature.values()]);
}

/** The freshness expectations of the views that declare one. */
export function freshnessSpecs(views: FeatureViews): FreshnessSpec[] {
  return views.views.flatMap((v) => (v.freshness === undefined ? [] : [v.freshness]));
}

/** Parses the text of a feature view file, YAML or JSON (JSON is YAML). */
export function parseFeatureViewsText(text: string, origin = 'feature views'): FeatureViews {
  return parseFeatureViews(parseConfigText(text, origin));
}

/**
 * What a view's stored aggregates were computed under: each aggregate's function, feature and
 * window by name, and `max_events`. The online store keeps this per view; a start whose views say
 * otherwise serves values of the old definition (and windows over the history kept under it).
 */
export function aggregateDefinition(view: FeatureView): string {
  const aggregates: Record<string, string> = {};
  for (const a of view.aggregates)
    aggregates[a.name] = `${a.function}(${a.feature}) over ${formatDuration(a.windowMs)}`;
  return JSON.stringify({ max_events: view.maxWindowEvents, aggregates });
}

/**
 * The differences between a stored {@link aggregateDefinition} and the view's, one phrase each
 * (`amount_max: max(amount) over 1h → max(amount) over 1d`, `tx_10m: added`, `max_events: 1000 → 5000`),
 * by what they cost:
 * - `rebuild`: served wrong until the view is rebuilt (a replay) or the history has passed — an
 *   aggregate (new or redefined) whose window exceeds the old horizon (the kept history is shorter),
 *   one over a feature the kept history does not carry, a function or feature redefined under the
 *   same name (rows keep the old value), a raised `max_events` (sets were trimmed to the old one),
 *   aggregated features in another slot order (the kept values would be read as other features);
 * - `untilNextEvent`: stale or missing until each entity's next event, then exact — an aggregate
 *   added or lengthened within the old horizon, a shortened window, a lowered `max_events`.
 * A removed aggregate is none (it is no longer read), nor is anything of a view without aggregates
 * now. A stored value that is not a definition is one `rebuild` difference.
 */
export function aggregateDefinitionChanges(
  stored: string,
  view: FeatureView,
): { rebuild: string[]; untilNextEvent: string[] } {
  const rebuild: string[] = [];
  const untilNextEvent: string[] = [];
  if (view.aggregates.length === 0) return { rebuild, untilNextEvent };
  const old = storedAggregates(stored);
  if (old === undefined) {
    rebuild.push(`unreadable stored definition ${JSON.stringify(stored.slice(0, 80))}`);
    return { rebuild, untilNextEvent };
  }
  // Each member of a window set packs the values of the aggregated features, in first-use order: a
  // slot holding another feature now misreads the kept values (a trailing slot dropped or added does not).
  const oldSlots = [...new Set([...old.aggregates.values()].map((a) => a.feature))];
  const oldHorizon = Math.max(0, ...[...old.aggregates.values()].map((a) => a.windowMs));
  if (view.aggregatedFeatures.some((f, i) => i < oldSlots.length && oldSlots[i] !== f)) {
    rebuild.push(`aggregated features: ${oldSlots.join(', ')} → ${view.aggregatedFeatures.join(', ')}`);
  }
  for (const a of view.aggregates) {
    const spec = `${a.function}(${a.feature}) over ${formatDuration(a.windowMs)}`;
    const before = old.aggregates.get(a.name);
    if (before !== undefined && before.text === spec) continue;
    const change = before === undefined ? `${a.name}: added (${spec})` : `${a.name}: ${before.text} → ${spec}`;
    const harmful =
      a.windowMs > oldHorizon ||
      !oldSlots.includes(a.feature) ||
      (before !== undefined && (before.function !== a.function || before.feature !== a.feature));
    (harmful ? rebuild : untilNextEvent).push(change);
  }
  // Without old aggregates there was no window set: its max_events bounded nothing.
  if (old.aggregates.size > 0 && old.maxEvents !== view.maxWindowEvents) {
    const change = `max_events: ${String(old.maxEvents)} → ${view.maxWindowEvents}`;
    (typeof old.maxEvents === 'number' && old.maxEvents > view.maxWindowEvents ? untilNextEvent : rebuild).push(change);
  }
  return { rebuild, untilNextEvent };
}

interface StoredAggregate {
  readonly text: string;
  readonly function: string;
  readonly feature: string;
  readonly windowMs: number;
}

/** A stored definition's aggregates by name, in their stored order; undefined when unreadable. */
function storedAggregates(
  stored: string,
): { maxEvents: unknown; aggregates: Map<string, StoredAggregate> } | undefined {
  let before: { max_events?: unknown; aggregates?: unknown };
  try {
    before = JSON.parse(stored) as typeof before;
  } catch {
    return undefined;
  }
  if (typeof before !== 'object' || before === null) return undefined;
  const aggregates = new Map<string, StoredAggregate>();
  const raw = typeof before.aggregates === 'object' && before.aggregates !== null ? before.aggregates : {};
  for (const [name, text] of Object.entries(raw)) {
    const parsed = typeof text === 'string' ? /^(\w+)\((.*)\) over (.+)$/.exec(text) : null;
    const windowMs = parsed === null ? undefined : parseDurationMs(parsed[3]!);
    if (parsed === null || windowMs === undefined) return undefined;
    aggregates.set(name, { text: text as string, function: parsed[1]!, feature: parsed[2]!, windowMs });
  }
  return { maxEvents: before.max_events, aggregates };
}
