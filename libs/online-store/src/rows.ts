import { DriftlineError } from '@driftline/core';
import { decodeValue, type FeatureView } from '@driftline/features';
import type { FeatureValue } from '@driftline/schemas';
import { type FeatureRow, MAX_READ_BATCH, type RowRequest } from './port.js';

/**
 * Meta fields of a stored row (layout v2's JSON object, v1's hash): the winning event's time and
 * id. Feature and aggregate names never start with `_` (views refuse them), so these can never
 * collide with a feature.
 */
export const ROW_TIME = '_t';
export const ROW_EVENT_ID = '_id';
/** copyDigest of the winning event (@driftline/features): the tie-break between copies of one event id. */
export const ROW_COPY = '_c';

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

/**
 * A stored value that is not a driftline row: a parsed value that is not a JSON object, a key of
 * another type, a row whose event time is not a number. The store answers such an entity absent
 * and reports the key (`onCorruptRow`), or refuses the read with WRONGTYPE.
 */
export const DAMAGED_ROW = 'damaged';

/** A decoded row, undefined when the entity is absent, or {@link DAMAGED_ROW}. */
export type DecodedRow = FeatureRow | undefined | typeof DAMAGED_ROW;

/**
 * Decodes an HMGET reply in the order of `projection.fields`; undefined when the entity is absent,
 * DAMAGED_ROW when its event time is not a number (it answered `found` with a null event time).
 */
export function decodeProjectedRow(projection: RowProjection, values: ReadonlyArray<string | null>): DecodedRow {
  const t = values[0];
  if (t === null || t === undefined) return undefined;
  const eventTime = Number(t);
  if (t.trim() === '' || !Number.isFinite(eventTime)) return DAMAGED_ROW;
  const features: Record<string, FeatureValue> = {};
  const { names, types } = projection;
  for (let i = 0; i < names.length; i++) features[names[i]!] = decodeValue(types[i]!, values[i + 2]);
  return { eventTime, eventId: values[1] ?? '', features };
}

/**
 * Parses a stored row of layout v2 (a JSON object of strings); undefined when `text` is not one —
 * a value some other writer left at the row's name, which the caller refuses.
 */
export function parseStoredRow(text: string): Readonly<Record<string, unknown>> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
    ? (parsed as Record<string, unknown>)
    : undefined;
}

/**
 * Decodes a parsed stored row with `projection` (as its HMGET reply); undefined when it has no
 * event time, DAMAGED_ROW when its event time is not a number string.
 */
export function decodeStoredRow(projection: RowProjection, row: Readonly<Record<string, unknown>>): DecodedRow {
  if (Object.hasOwn(row, ROW_TIME) && typeof row[ROW_TIME] !== 'string') return DAMAGED_ROW;
  // Only the row's own string values count: a number, or an inherited member (`constructor`), is absent.
  return decodeProjectedRow(
    projection,
    projection.fields.map((f) => {
      const value = row[f];
      return typeof value === 'string' ? value : null;
    }),
  );
}

/**
 * `row` unless the view's TTL has passed since its event time (Feast's ttl, on read): the store
 * expires rows when it writes them, with the TTL of that time; a row written under a longer TTL
 * (or none) is refused here once the view's current TTL says it is too old.
 */
export function withinTtl(view: FeatureView, row: FeatureRow | undefined, now: number): FeatureRow | undefined {
  return row !== undefined && view.ttlMs > 0 && row.eventTime + view.ttlMs <= now ? undefined : row;
}

/** {@link rowProjection} of a caller's selection: an unknown field is a BAD_REQUEST naming it. */
export function checkedProjection(view: FeatureView, only?: readonly string[]): RowProjection {
  if (only !== undefined) {
    for (const name of only) {
      if (fieldType(view, name) === undefined) {
        throw new DriftlineError('BAD_REQUEST', `view "${view.name}" has no feature or aggregate "${name}"`);
      }
    }
  }
  return rowProjection(view, only);
}

/** Refuses a batch read larger than {@link MAX_READ_BATCH} entities. */
export function checkBatchSize(requests: readonly RowRequest[]): void {
  let total = 0;
  for (const r of requests) total += r.entities.length;
  if (total > MAX_READ_BATCH) {
    throw new DriftlineError('BAD_REQUEST', `at most ${MAX_READ_BATCH} entities per batch read, got ${total}`);
  }
}

/**
 * Refuses a batch read whose distinct rows hold more than `limit` bytes as stored
 * (`ReadBatchOptions.maxRowBytes`), before any row is read.
 */
export function checkRowBytes(total: number, limit: number | undefined): void {
  if (limit !== undefined && total > limit) {
    throw new DriftlineError(
      'BAD_REQUEST',
      `the rows asked for hold ${total} bytes in the online store, more than the ${limit} a batch may read: ask for fewer entities per request`,
      { details: { rowBytes: total, maxRowBytes: limit } },
    );
  }
}
