import { jsonDepthWithin, PoisonRecordError } from '@driftline/core';
import type { QualityPartial } from '@driftline/quality';
import type { SummaryJson } from '@driftline/stats';
import type { ClosedPartial, CloseResult } from './partition.js';

export const PARTIALS_FORMAT = 'driftline.drift-partials/1' as const;

/**
 * Bounds of a partials message, checked before and while it is parsed so that a hostile or corrupt
 * one is poison within milliseconds and never makes the merge allocate or loop on a claimed size.
 * Each is far above what stage one writes: one model's partial is ~11 KB per numeric feature on the
 * default 1000-cut grid (~22 KB with float64 counts).
 */
/** Largest value parsed (the partials topic's `max.message.bytes`): 16 MiB. */
export const PARTIALS_MAX_BYTES = 16 * 1024 * 1024;
/** Most features (summaries) in one partial. */
export const PARTIALS_MAX_FEATURES = 10_000;
/** Most (model, version) entries in one `closed` marker. */
export const PARTIALS_MAX_MODELS = 10_000;
/** Most partitions a source topic may claim (the merge iterates over them). */
export const PARTIALS_MAX_SOURCE_PARTITIONS = 10_000;
/** Most counters (numeric slots 2·cuts+1, or categories + other) one summary may carry. */
export const PARTIALS_MAX_SUMMARY_COUNTERS = 100_000;
/**
 * Deepest nesting of objects and arrays (stage one writes 3: message → summaries → summary). Checked
 * before JSON.parse: 16 MiB of `[` cost 3.4 s and ~0.5 GB of heap to parse, against ~0.35 s for
 * 16 MiB of flat JSON.
 */
export const PARTIALS_MAX_DEPTH = 8;

/** Where a partial came from: a partition of the prediction topic, and how many it has. */
export interface SourceRef {
  readonly topic: string;
  readonly partition: number;
  readonly partitions: number;
}

/** Stage 1 → merge: the summaries of one (source partition, model, version, window). */
export interface PartialMessage extends ClosedPartial {
  readonly type: 'partial';
  readonly format: typeof PARTIALS_FORMAT;
  readonly source: SourceRef;
}

/**
 * Stage 1 → merge: "source partition closed this window; these (model, version) partials were
 * sent to your partition before me". Sent to EVERY merge partition for every window a source
 * closes (empty `models` included), so a merge partition knows when it has everything without
 * knowing the set of models.
 */
export interface ClosedMessage {
  readonly type: 'closed';
  readonly format: typeof PARTIALS_FORMAT;
  readonly source: SourceRef;
  readonly windowStart: number;
  readonly windowEnd: number;
  /**
   * The source has closed every window ending at or before this, and every partial of those
   * windows precedes this marker: a source with no data in a window reports it this way.
   */
  readonly closedUntil: number;
  readonly models: ReadonlyArray<{ readonly model: string; readonly version: string }>;
}

export type PartialsMessage = PartialMessage | ClosedMessage;

/** FNV-1a of the model name: which merge partition owns a model (explicit, not the client's partitioner). */
export function routeModel(model: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < model.length; i++) {
    h ^= model.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % partitions;
}

export interface OutboundPartials {
  readonly partition: number;
  readonly key: string;
  readonly value: Buffer;
  /** Events the message carries (a partial's; 0 for a `closed` marker). */
  readonly events: number;
  /** A partial's window and (model, version): what its window's markers list. */
  readonly partial?: { readonly windowStart: number; readonly model: string; readonly version: string };
  /** A `closed` marker's content: rewritten by `markerWithout` when one of its partials is refused. */
  readonly marker?: ClosedMessage;
}

/**
 * A window's `closed` marker without the partials Kafka refused (`refused`: their outbound
 * messages): a marker must list exactly the partials sent, or the merge waits for one that never
 * comes and the window (and every later one of that merge partition) never completes.
 */
export function markerWithout(marker: OutboundPartials, refused: readonly OutboundPartials[]): OutboundPartials {
  const m = marker.marker;
  if (m === undefined || refused.length === 0) return marker;
  const gone = new Set(
    refused.flatMap((r) =>
      r.partial === undefined ? [] : [JSON.stringify([r.partial.windowStart, r.partial.model, r.partial.version])],
    ),
  );
  const models = m.models.filter((x) => !gone.has(JSON.stringify([m.windowStart, x.model, x.version])));
  if (models.length === m.models.length) return marker;
  const next: ClosedMessage = { ...m, models };
  return { ...marker, value: Buffer.from(JSON.stringify(next)), marker: next };
}

/**
 * The messages of one flush of a source partition: per closed window (oldest first) every
 * (model, version) partial to its model's merge partition, then one `closed` marker per merge
 * partition. A marker follows the partials it lists in the same partition, and its closedUntil
 * never runs ahead of a window whose messages come later. When the frontier moved but no window
 * with data closed at its edge, an empty marker for the window just below the frontier announces it.
 */
export function flushMessages(
  source: SourceRef,
  flush: CloseResult,
  sizeMs: number,
  mergePartitions: number,
): OutboundPartials[] {
  if (!flush.advanced && flush.windows.length === 0) return [];
  const windows: Array<{ windowStart: number; windowEnd: number; partials: readonly ClosedPartial[] }> = [
    ...flush.windows,
  ];
  const last = windows[windows.length - 1];
  if (flush.advanced && (last === undefined || last.windowEnd < flush.closedUntil)) {
    windows.push({ windowStart: flush.closedUntil - sizeMs, windowEnd: flush.closedUntil, partials: [] });
  }
  const out: OutboundPartials[] = [];
  windows.forEach((w, i) => {
    const closedUntil = i + 1 < windows.length ? windows[i + 1]!.windowStart : Math.max(flush.closedUntil, w.windowEnd);
    out.push(...windowMessages(source, w, closedUntil, mergePartitions));
  });
  return out;
}

function windowMessages(
  source: SourceRef,
  window: { windowStart: number; windowEnd: number; partials: readonly ClosedPartial[] },
  closedUntil: number,
  mergePartitions: number,
): OutboundPartials[] {
  const out: OutboundPartials[] = [];
  const listed: Array<Array<{ model: string; version: string }>> = Array.from({ length: mergePartitions }, () => []);
  const partials = [...window.partials].sort((a, b) => compare(a.model, b.model) || compare(a.version, b.version));
  for (const p of partials) {
    const partition = routeModel(p.model, mergePartitions);
    listed[partition]!.push({ model: p.model, version: p.version });
    const message: PartialMessage = { type: 'partial', format: PARTIALS_FORMAT, source, ...p };
    out.push({
      partition,
      key: p.model,
      value: Buffer.from(JSON.stringify(message)),
      events: p.events,
      partial: { windowStart: window.windowStart, model: p.model, version: p.version },
    });
  }
  for (let partition = 0; partition < mergePartitions; partition++) {
    const marker: ClosedMessage = {
      type: 'closed',
      format: PARTIALS_FORMAT,
      source,
      windowStart: window.windowStart,
      windowEnd: window.windowEnd,
      closedUntil,
      models: listed[partition]!,
    };
    out.push({
      partition,
      key: `${source.topic}/${source.partition}`,
      value: Buffer.from(JSON.stringify(marker)),
      events: 0,
      marker,
    });
  }
  return out;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function bad(message: string): PoisonRecordError {
  return new PoisonRecordError('DECODE_FAILED', `drift partials: ${message}`);
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isCount = (v: unknown): v is number => isInt(v) && v >= 0;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Names (topic, model, version, reference id, feature, profile id) are not capped beyond the byte
 * limit: stage one writes whatever names its events carry, and a marker refused for one long name
 * would stall every model of its window.
 */
function name(v: unknown, field: string): string {
  if (typeof v !== 'string') throw bad(`${field} must be a string`);
  return v;
}

function sourceOf(v: unknown): SourceRef {
  if (!isObject(v)) throw bad('source must be an object');
  const topic = name(v.topic, 'source.topic');
  const { partition, partitions } = v;
  if (!isInt(partitions) || partitions < 1 || partitions > PARTIALS_MAX_SOURCE_PARTITIONS) {
    throw bad(`source.partitions must be an integer from 1, at most ${PARTIALS_MAX_SOURCE_PARTITIONS}`);
  }
  if (!isCount(partition) || partition >= partitions) throw bad('source.partition must be an integer < partitions');
  return { topic, partition, partitions };
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** The float64 scalars ahead of the counters: 7 for a numeric summary, plus its exact-sum limbs (well under 64). */
const MAX_SCALARS = 64;
const MAX_DATA_CHARS = Math.ceil(((PARTIALS_MAX_SUMMARY_COUNTERS + MAX_SCALARS) * 8) / 3) * 4;

/** The shape of one summary; its layout is checked against its profile when merged (summaryFromJSON). */
function summaryOf(v: unknown, field: string): SummaryJson {
  if (!isObject(v)) throw bad(`${field} must be an object`);
  name(v.format, `${field}.format`);
  if (v.kind !== 'numeric' && v.kind !== 'categorical') throw bad(`${field}.kind must be "numeric" or "categorical"`);
  name(v.profileId, `${field}.profileId`);
  if (v.encoding !== 'u32' && v.encoding !== 'f64') throw bad(`${field}.encoding must be "u32" or "f64"`);
  const data = v.data;
  if (typeof data !== 'string' || data.length % 4 !== 0) throw bad(`${field}.data must be base64`);
  if (data.length > MAX_DATA_CHARS) {
    throw bad(`${field}.data holds more than ${PARTIALS_MAX_SUMMARY_COUNTERS} counters`);
  }
  if (!BASE64.test(data)) throw bad(`${field}.data must be base64`);
  return v as unknown as SummaryJson;
}

function summariesOf(v: unknown): Record<string, SummaryJson> {
  if (!isObject(v)) throw bad('summaries must be an object');
  let n = 0;
  for (const feature in v) {
    if (++n > PARTIALS_MAX_FEATURES) throw bad(`summaries: more than ${PARTIALS_MAX_FEATURES} features`);
    summaryOf(v[feature], `summaries.${feature}`);
  }
  return v as Record<string, SummaryJson>;
}

/**
 * The shape of a partial's quality section: an expectation-set id and at most PARTIALS_MAX_FEATURES
 * feature objects. Their counts are checked when merged (`qualityFromJSON`: non-negative integers
 * that add up, a sketch of exactly its size).
 */
function qualityOf(v: unknown): QualityPartial {
  if (!isObject(v)) throw bad('quality must be an object');
  name(v.id, 'quality.id');
  if (!isObject(v.features)) throw bad('quality.features must be an object');
  let n = 0;
  for (const feature in v.features) {
    if (++n > PARTIALS_MAX_FEATURES) throw bad(`quality.features: more than ${PARTIALS_MAX_FEATURES} features`);
    if (!isObject(v.features[feature])) throw bad(`quality.features.${feature} must be an object`);
  }
  return v as unknown as QualityPartial;
}

/**
 * Parses and validates one message of the partials topic; a malformed one is a poison record.
 * Bounded: the byte size and the nesting depth are checked before anything is parsed
 * (PARTIALS_MAX_BYTES, PARTIALS_MAX_DEPTH), then every count, length and name (the PARTIALS_MAX_*
 * limits above).
 */
export function decodePartials(value: Buffer | null): PartialsMessage {
  if (value === null) throw bad('empty value');
  if (value.length > PARTIALS_MAX_BYTES) {
    throw bad(`value of ${value.length} bytes exceeds the limit of ${PARTIALS_MAX_BYTES}`);
  }
  if (!jsonDepthWithin(value, PARTIALS_MAX_DEPTH)) throw bad(`nesting deeper than ${PARTIALS_MAX_DEPTH} levels`);
  let json: unknown;
  try {
    json = JSON.parse(value.toString('utf8'));
  } catch {
    throw bad('value is not JSON');
  }
  if (!isObject(json)) throw bad('expected an object');
  const o = json;
  if (o.format !== PARTIALS_FORMAT) throw bad(`format must be ${PARTIALS_FORMAT}`);
  const source = sourceOf(o.source);
  if (!isInt(o.windowStart) || !isInt(o.windowEnd) || o.windowEnd <= o.windowStart) throw bad('bad window bounds');
  if (o.type === 'closed') {
    if (!Array.isArray(o.models)) throw bad('models must be an array');
    if (o.models.length > PARTIALS_MAX_MODELS) throw bad(`models: more than ${PARTIALS_MAX_MODELS} entries`);
    const models = o.models.map((m: unknown) => {
      if (!isObject(m)) throw bad('models entries must be { model, version }');
      return { model: name(m.model, 'models[].model'), version: name(m.version, 'models[].version') };
    });
    if (!isInt(o.closedUntil) || o.closedUntil < o.windowEnd) throw bad('closedUntil must be an integer >= windowEnd');
    return {
      type: 'closed',
      format: PARTIALS_FORMAT,
      source,
      windowStart: o.windowStart,
      windowEnd: o.windowEnd,
      closedUntil: o.closedUntil,
      models,
    };
  }
  if (o.type !== 'partial') throw bad('type must be "partial" or "closed"');
  const model = name(o.model, 'model');
  const version = name(o.version, 'version');
  const referenceId = name(o.referenceId, 'referenceId');
  if (!isCount(o.events) || !isCount(o.late)) throw bad('events and late must be counts');
  return {
    type: 'partial',
    format: PARTIALS_FORMAT,
    source,
    model,
    version,
    referenceId,
    windowStart: o.windowStart,
    windowEnd: o.windowEnd,
    events: o.events,
    late: o.late,
    summaries: summariesOf(o.summaries),
    ...(o.quality === undefined ? {} : { quality: qualityOf(o.quality) }),
  };
}
