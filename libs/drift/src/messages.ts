import { PoisonRecordError } from '@driftline/core';
import type { SummaryJson } from '@driftline/stats';
import type { ClosedPartial, CloseResult } from './partition.js';

export const PARTIALS_FORMAT = 'driftline.drift-partials/1' as const;

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
    out.push({ partition, key: p.model, value: Buffer.from(JSON.stringify(message)) });
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
    out.push({ partition, key: `${source.topic}/${source.partition}`, value: Buffer.from(JSON.stringify(marker)) });
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
const isString = (v: unknown): v is string => typeof v === 'string';

function sourceOf(v: unknown): SourceRef {
  if (typeof v !== 'object' || v === null) throw bad('source must be an object');
  const s = v as Record<string, unknown>;
  if (
    !isString(s.topic) ||
    !isCount(s.partition) ||
    !isInt(s.partitions) ||
    s.partitions < 1 ||
    s.partition >= s.partitions
  ) {
    throw bad('source must be { topic, partition, partitions } with partition < partitions');
  }
  return { topic: s.topic, partition: s.partition, partitions: s.partitions };
}

/** Parses and validates one message of the partials topic; a malformed one is a poison record. */
export function decodePartials(value: Buffer | null): PartialsMessage {
  if (value === null) throw bad('empty value');
  let json: unknown;
  try {
    json = JSON.parse(value.toString('utf8'));
  } catch {
    throw bad('value is not JSON');
  }
  if (typeof json !== 'object' || json === null) throw bad('expected an object');
  const o = json as Record<string, unknown>;
  if (o.format !== PARTIALS_FORMAT) throw bad(`format must be ${PARTIALS_FORMAT}`);
  const source = sourceOf(o.source);
  if (!isInt(o.windowStart) || !isInt(o.windowEnd) || o.windowEnd <= o.windowStart) throw bad('bad window bounds');
  if (o.type === 'closed') {
    if (!Array.isArray(o.models)) throw bad('models must be an array');
    const models = o.models.map((m: unknown) => {
      const mm = m as Record<string, unknown> | null;
      if (mm === null || typeof mm !== 'object' || !isString(mm.model) || !isString(mm.version)) {
        throw bad('models entries must be { model, version }');
      }
      return { model: mm.model, version: mm.version };
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
  if (!isString(o.model) || !isString(o.version) || !isString(o.referenceId))
    throw bad('model, version, referenceId must be strings');
  if (!isCount(o.events) || !isCount(o.late)) throw bad('events and late must be counts');
  if (typeof o.summaries !== 'object' || o.summaries === null) throw bad('summaries must be an object');
  return {
    type: 'partial',
    format: PARTIALS_FORMAT,
    source,
    model: o.model,
    version: o.version,
    referenceId: o.referenceId,
    windowStart: o.windowStart,
    windowEnd: o.windowEnd,
    events: o.events,
    late: o.late,
    // Each summary is validated against its profile when merged (summaryFromJSON).
    summaries: o.summaries as Record<string, SummaryJson>,
  };
}
