import { checkEventTime, cutText, type EventTimeCheck, PoisonRecordError } from '@driftline/core';
import type { FeatureEvent, FeatureValue } from '@driftline/schemas';
import type { FeatureType, FeatureView, FeatureViews } from './views.js';

/** A feature event checked against its view, with values already encoded for the store. */
export interface ValidatedEvent {
  readonly view: FeatureView;
  readonly entity: string;
  readonly eventTime: number;
  readonly eventId: string;
  /** Encoded value per declared feature (same order as `view.features`); undefined = absent or null. */
  readonly values: ReadonlyArray<string | undefined>;
  /**
   * Names the event carried that its view does not declare, in event order: not written, not
   * poison (a view changed under a running producer, or a producer ahead of this view file).
   * Absent when there are none.
   */
  readonly ignored?: readonly string[];
  /**
   * Names the event carried that its view lists in `removed_features`, in event order: not
   * written, not in `ignored`, not poison (a producer not yet moved off a removed feature). Absent
   * when there are none.
   */
  readonly removed?: readonly string[];
}

export const MAX_EVENT_ID_LENGTH = 256;
/** Longest entity id (events are dead-lettered past it; the online store refuses it in keys). */
export const MAX_ENTITY_LENGTH = 1024;

function invalid(message: string): never {
  throw new PoisonRecordError('VALIDATION_FAILED', message);
}

/**
 * Longest string feature value stored (characters). Each value is read back by every online read
 * of its entity: a 900,000-character value made a batch of 100 reads of one entity answer 90 MB.
 */
export const MAX_STRING_FEATURE_LENGTH = 65_536;

/** Whether `value` is one of `type`: a finite number for a double, a string, a boolean. */
export function hasFeatureType(type: FeatureType, value: unknown): boolean {
  switch (type) {
    case 'double':
      return typeof value === 'number' && Number.isFinite(value);
    case 'string':
      return typeof value === 'string';
    case 'boolean':
      return typeof value === 'boolean';
  }
}

/** Store encoding of one value: doubles as shortest round-trip decimal, booleans as true/false. */
export function encodeValue(type: FeatureType, value: unknown): string | undefined {
  if (!hasFeatureType(type, value)) return undefined;
  return type === 'boolean' ? (value ? 'true' : 'false') : String(value);
}

export function decodeValue(type: FeatureType, stored: string | undefined | null): FeatureValue {
  if (stored === undefined || stored === null) return null;
  switch (type) {
    case 'double': {
      // What the materializer writes is always a finite number; anything else another writer left
      // (an empty string, "abc", "1e999") is missing, not 0, NaN or Infinity.
      const n = stored.trim() === '' ? Number.NaN : Number(stored);
      return Number.isFinite(n) ? n : null;
    }
    case 'string':
      return stored;
    case 'boolean':
      // Only what encodeValue writes: a value left under the name by another type (a feature whose
      // type changed to boolean, "1.5") is missing, not false (which a model scores as 0).
      return stored === 'true' ? true : stored === 'false' ? false : null;
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** False for strings with a lone surrogate (they have no UTF-8 encoding). */
export function isWellFormed(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

function describe(value: unknown): string {
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return typeof value;
}

/** Undeclared names quoted in the reason of an event that carries no declared feature. */
const NAMES_IN_REASON = 3;
/** Characters of each name quoted there (names come from the event: a reason stays one short line). */
const NAME_CHARS_IN_REASON = 64;

function quotedNames(names: readonly string[]): string {
  const shown = names.slice(0, NAMES_IN_REASON).map((n) => {
    const cut = cutText(n, NAME_CHARS_IN_REASON);
    return JSON.stringify(cut === n ? n : `${cut}…`);
  });
  const more = names.length - shown.length;
  return more > 0 ? `${shown.join(', ')} and ${more} more` : shown.join(', ');
}

/**
 * Checks an event against the views: known view (fed by this topic), non-empty entity and event id,
 * a valid event time (within `time`'s bounds when given: a µs or far-future time would win every
 * last-write-wins comparison and freeze the row), each declared feature it carries of its declared
 * type. Anything else is a PoisonRecordError (VALIDATION_FAILED) whose message is the DLQ reason.
 *
 * Values of features the view does not declare are ignored (listed in `ignored`), the declared
 * ones written: a feature removed from the view, or added by a producer before every materializer
 * has the new view file, must not dead-letter the whole event (the entity's row froze). An event
 * that carries undeclared names and no value of a declared one (none declared, or each null) is
 * poison all the same: it has nothing to write, and written it would blank the row (a row is its
 * winning event's features) — a producer of another view's names, or every name misspelt;
 * dead-lettered, it can be replayed once the view declares them. (A declared name carried as null
 * had counted: `{x: null, olld: 5}` blanked the row `{x: 3, old: 4}`, found by a review.) An event
 * of declared names only (each null, or none at all) is still a row of absent values. How many
 * names are undeclared does not matter: a view that lost most of its features (`{x, a, b}` to
 * `{x}`) must go on taking `{x, a, b}`, and a producer ahead of the view file adds names.
 *
 * Names the view lists as removed (`removed_features`) are neither declared nor undeclared: the
 * event is checked as if it did not carry them, and they are listed in `removed`. So `{x: null,
 * old: 4}` writes x missing, as `{x: null}` does (as an undeclared name, `old` made it poison: the
 * row kept a stale x until its TTL, found by a review), and `{old: 4}` is a row of absent values,
 * as `{}` is and as it was before `old` was removed (features left out are null: a producer that
 * leaves out a missing x sends just that). The operator's list vouches for those names as this
 * view's; what the poison rule guards against is names nobody declared.
 */
export function validateFeatureEvent(
  views: FeatureViews,
  event: FeatureEvent,
  sourceTopic?: string,
  time?: EventTimeCheck,
): ValidatedEvent {
  const view = views.get(event.view);
  if (view === undefined) invalid(`unknown feature view "${event.view}"`);
  if (sourceTopic !== undefined && sourceTopic !== view.source) {
    invalid(`feature view "${view.name}" is fed by topic ${view.source}, not ${sourceTopic}`);
  }
  if (typeof event.entity_id !== 'string' || event.entity_id.length === 0) {
    invalid(`missing entity_id (${view.entity}) for view "${view.name}"`);
  }
  if (event.entity_id.length > MAX_ENTITY_LENGTH) invalid(`entity_id longer than ${MAX_ENTITY_LENGTH} characters`);
  if (!isWellFormed(event.entity_id)) invalid('entity_id is not well-formed Unicode');
  if (typeof event.event_id !== 'string' || event.event_id.length === 0) invalid('missing event_id');
  if (event.event_id.length > MAX_EVENT_ID_LENGTH || event.event_id.includes('\0')) {
    invalid(`event_id must be 1..${MAX_EVENT_ID_LENGTH} characters without NUL`);
  }
  const t = event.event_time;
  if (time !== undefined) checkEventTime(t, time.now, time.bounds);
  else if (!Number.isSafeInteger(t) || t < 0) invalid(`event_time ${String(t)} is not a non-negative epoch-ms integer`);
  const values: Array<string | undefined> = new Array(view.features.length).fill(undefined);
  let ignored: string[] | undefined;
  let removed: string[] | undefined;
  // A value of a declared feature: what makes an event carrying undeclared names worth writing.
  let written = false;
  for (const name in event.features) {
    const value = event.features[name];
    const index = view.featureIndex.get(name);
    if (index === undefined) {
      if (view.removedFeatures.has(name)) {
        if (removed === undefined) removed = [name];
        else removed.push(name);
      } else if (ignored === undefined) ignored = [name];
      else ignored.push(name);
      continue;
    }
    if (value === null || value === undefined) continue;
    written = true;
    const spec = view.features[index]!;
    const encoded = encodeValue(spec.type, value);
    if (encoded === undefined) {
      invalid(`feature "${name}" of view "${view.name}" must be ${spec.type}, got ${describe(value)}`);
    }
    if (encoded.length > MAX_STRING_FEATURE_LENGTH) {
      invalid(
        `feature "${name}" of view "${view.name}" is ${encoded.length} characters, more than ${MAX_STRING_FEATURE_LENGTH}`,
      );
    }
    values[index] = encoded;
  }
  if (ignored !== undefined && !written) {
    invalid(`no value of a feature of view "${view.name}" in the event: ${quotedNames(ignored)} not declared`);
  }
  const entity = event.entity_id;
  const eventId = event.event_id;
  // Literals, not spreads: spreading the optional lists made an event carrying one ~8× slower.
  if (removed === undefined) {
    if (ignored === undefined) return { view, entity, eventTime: t, eventId, values };
    return { view, entity, eventTime: t, eventId, values, ignored };
  }
  if (ignored === undefined) return { view, entity, eventTime: t, eventId, values, removed };
  return { view, entity, eventTime: t, eventId, values, ignored, removed };
}

/** Compares strings by Unicode code point, which is UTF-8 byte order: the order Redis (memcmp) uses. */
export function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (0xD800–0xDFFF) encode code points above 0xFFFF: they sort after every BMP unit.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

export interface EventOrderKey {
  readonly eventTime: number;
  readonly eventId: string;
}

/**
 * The total order of last-write-wins: event time, then event id (UTF-8 bytes) to break ties, so
 * any delivery order of the same events picks the same winner. Equal keys are copies of one event
 * (see compareEventCopies for copies whose values differ).
 */
export function compareEventOrder(a: EventOrderKey, b: EventOrderKey): number {
  if (a.eventTime !== b.eventTime) return a.eventTime < b.eventTime ? -1 : 1;
  return compareCodePoints(a.eventId, b.eventId);
}

/**
 * The digest of an event's values (its view's features in order, absent apart from every
 * string): what tells two copies of one event id apart when a re-send carried other values. 16 hex
 * digits of two 32-bit multiplicative hashes over the UTF-16 code units (cyrb53's mixing): a
 * deterministic tie-break, not a security boundary, cheap enough for every event (SHA-1 here cost
 * the materializer 14% of its throughput). Two different copies that collide are kept as the first
 * seen, as before copies were told apart.
 */
export function copyDigest(event: Pick<ValidatedEvent, 'values'>): string {
  const { values } = event;
  let h1 = 0xdeadbeef ^ values.length;
  let h2 = 0x41c6ce57 ^ values.length;
  for (const v of values) {
    if (v !== undefined) {
      for (let i = 0; i < v.length; i++) {
        const c = v.charCodeAt(i);
        h1 = Math.imul(h1 ^ c, 2654435761);
        h2 = Math.imul(h2 ^ c, 1597334677);
      }
    }
    // Ends each value; an absent one differs from every string, the empty one included.
    const end = v === undefined ? 0x1e0000 : 0x1f0000;
    h1 = Math.imul(h1 ^ end, 2654435761);
    h2 = Math.imul(h2 ^ end, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return hex32(h2) + hex32(h1);
}

/** Two hex digits per byte value. */
const HEX_BYTES = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** 8 hex digits of a 32-bit value (`(h >>> 0).toString(16).padStart(8, '0')` took three times as long as the hash). */
function hex32(h: number): string {
  return HEX_BYTES[h >>> 24]! + HEX_BYTES[(h >>> 16) & 0xff]! + HEX_BYTES[(h >>> 8) & 0xff]! + HEX_BYTES[h & 0xff]!;
}

/**
 * Last-write-wins over copies too: (event_time, event_id), then the greater copy digest. A re-send
 * of an event id with another time or other values is a copy; the greatest copy is the one kept, by
 * the row and by the windows alike, whatever the delivery order (the first copy seen had been kept
 * by the windows, the greatest time by the row: a result that depended on the order).
 */
export function compareEventCopies(a: ValidatedEvent, b: ValidatedEvent): number {
  return compareEventOrder(a, b) || compareCodePoints(copyDigest(a), copyDigest(b));
}
