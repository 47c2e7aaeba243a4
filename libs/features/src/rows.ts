import { decodeValue, type FeatureValue } from './events.js';
import type { FeatureView } from './views.js';

/** Meta fields of a row hash; feature and aggregate names never start with `_`. */
export const ROW_TIME = '_t';
export const ROW_EVENT_ID = '_id';

/** A row as the API serves it: the winning event's values plus the aggregates as of its event time. */
export interface FeatureRow {
  readonly eventTime: number;
  readonly eventId: string;
  readonly features: Record<string, FeatureValue>;
}

/**
 * Decodes a row hash (HGETALL) with the view's types; undefined when the entity is absent.
 * Every declared feature and aggregate appears, null when it has no value; with `only`, just those.
 */
export function decodeRow(
  view: FeatureView,
  hash: Readonly<Record<string, string>>,
  only?: readonly string[],
): FeatureRow | undefined {
  const t = hash[ROW_TIME];
  if (t === undefined) return undefined;
  const features: Record<string, FeatureValue> = {};
  if (only === undefined) {
    for (const f of view.features) features[f.name] = decodeValue(f.type, hash[f.name]);
    for (const a of view.aggregates) features[a.name] = decodeValue('double', hash[a.name]);
  } else {
    for (const name of only) features[name] = decodeValue(fieldType(view, name) ?? 'string', hash[name]);
  }
  return { eventTime: Number(t), eventId: hash[ROW_EVENT_ID] ?? '', features };
}

/** The type of a feature or aggregate field; undefined when the view has no such field. */
export function fieldType(view: FeatureView, name: string): 'double' | 'string' | 'boolean' | undefined {
  const index = view.featureIndex.get(name);
  if (index !== undefined) return view.features[index]!.type;
  return view.aggregates.some((a) => a.name === name) ? 'double' : undefined;
}

/** The fields to read for a row (meta first), and how to decode them; computed once per view and selection. */
export interface RowProjection {
  /** `_t`, `_id`, then the names: the HMGET argument list. */
  readonly fields: readonly string[];
  readonly names: readonly string[];
  readonly types: ReadonlyArray<'double' | 'string' | 'boolean'>;
}

const projections = new WeakMap<FeatureView, RowProjection>();

/** Projection of every feature and aggregate of a view, or of `only` (names must exist: check with fieldType). */
export function rowProjection(view: FeatureView, only?: readonly string[]): RowProjection {
  if (only === undefined) {
    const cached = projections.get(view);
    if (cached !== undefined) return cached;
  }
  const names = only ?? [...view.features.map((f) => f.name), ...view.aggregates.map((a) => a.name)];
  const projection: RowProjection = {
    fields: [ROW_TIME, ROW_EVENT_ID, ...names],
    names,
    types: names.map((n) => fieldType(view, n) ?? 'string'),
  };
  if (only === undefined) projections.set(view, projection);
  return projection;
}

/** Decodes an HMGET reply in the order of `projection.fields`; undefined when the entity is absent. */
export function decodeProjectedRow(
  projection: RowProjection,
  values: ReadonlyArray<string | null>,
): FeatureRow | undefined {
  const t = values[0];
  if (t === null || t === undefined) return undefined;
  const features: Record<string, FeatureValue> = {};
  const { names, types } = projection;
  for (let i = 0; i < names.length; i++) features[names[i]!] = decodeValue(types[i]!, values[i + 2]);
  return { eventTime: Number(t), eventId: values[1] ?? '', features };
}
