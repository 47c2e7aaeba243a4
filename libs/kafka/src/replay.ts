import { cutText, setOwn } from '@driftline/core';
import { DLQ_HEADERS, type HeaderValue, type InboundRecord, type OutboundMessage } from './records.js';

/** Header a replayed record carries: the dead letter it came from (`<dlq topic>/<partition>/<offset>`). */
export const REPLAYED_FROM_HEADER = 'driftline.replayed.from';

/** What the loop wrote about a dead letter, read back from its headers. */
export interface DeadLetterView {
  readonly record: InboundRecord;
  readonly sourceTopic: string;
  readonly sourcePartition: number;
  readonly sourceOffset: string;
  /** The consumer group that dead-lettered it (one DLQ serves every group of its topic). */
  readonly group: string;
  readonly code: string;
  readonly reason: string;
  /** Epoch ms; NaN when the header is missing or not a time. */
  readonly failedAt: number;
  /** Cut to fit the DLQ: the original bytes are gone, it cannot be replayed. */
  readonly truncated: boolean;
}

/** A header's text (the last value of a repeated one); undefined when absent or null. */
export const headerText = (value: HeaderValue | undefined): string | undefined =>
  value === undefined || value === null
    ? undefined
    : Array.isArray(value)
      ? (value.at(-1) ?? undefined)?.toString()
      : (value as Buffer).toString();

/** A dead letter's view, or undefined for a record the loop did not write (no source topic or code). */
export function readDeadLetter(record: InboundRecord): DeadLetterView | undefined {
  const h = record.headers;
  const sourceTopic = headerText(h[DLQ_HEADERS.topic]);
  const code = headerText(h[DLQ_HEADERS.code]);
  if (sourceTopic === undefined || sourceTopic === '' || code === undefined) return undefined;
  return {
    record,
    sourceTopic,
    sourcePartition: Number(headerText(h[DLQ_HEADERS.partition]) ?? Number.NaN),
    sourceOffset: headerText(h[DLQ_HEADERS.offset]) ?? '',
    group: headerText(h[DLQ_HEADERS.group]) ?? '',
    code,
    reason: headerText(h[DLQ_HEADERS.reason]) ?? '',
    failedAt: Date.parse(headerText(h[DLQ_HEADERS.failedAt]) ?? ''),
    truncated: h[DLQ_HEADERS.truncated] !== undefined,
  };
}

/** Which dead letters a replay or a listing takes: every condition given must hold. */
export interface DeadLetterSelection {
  readonly codes?: ReadonlySet<string>;
  /** Dead-lettered by this consumer group. */
  readonly group?: string;
  /** Failed at or after (epoch ms). */
  readonly since?: number;
  /** Failed before (epoch ms). */
  readonly until?: number;
  /** The reason contains this text. */
  readonly reasonContains?: string;
}

export function selects(selection: DeadLetterSelection, d: DeadLetterView): boolean {
  if (selection.codes !== undefined && !selection.codes.has(d.code)) return false;
  if (selection.group !== undefined && d.group !== selection.group) return false;
  if (selection.since !== undefined && !(d.failedAt >= selection.since)) return false;
  if (selection.until !== undefined && !(d.failedAt < selection.until)) return false;
  if (selection.reasonContains !== undefined && !d.reason.includes(selection.reasonContains)) return false;
  return true;
}

/**
 * The record to send back to its source topic: the original key, value and headers, without the
 * loop's `driftline.dlq.*` headers, with REPLAYED_FROM_HEADER naming the dead letter. Keyed as it
 * was, so it lands on the partition its key chooses. Every consumer group of the topic reads it
 * again, not only the one that dead-lettered it.
 */
export function replayMessageOf(d: DeadLetterView): OutboundMessage {
  const headers: Record<string, HeaderValue> = {};
  for (const [name, value] of Object.entries(d.record.headers)) {
    if (value === undefined || name.startsWith('driftline.dlq.')) continue;
    setOwn(headers, name, value);
  }
  setOwn(headers, REPLAYED_FROM_HEADER, Buffer.from(`${d.record.topic}/${d.record.partition}/${d.record.offset}`));
  return { key: d.record.key, value: d.record.value, headers };
}

/** Dead letters counted by code and reason (reasons cut to `reasonChars`), most frequent first. */
export interface DeadLetterGroup {
  readonly code: string;
  readonly reason: string;
  readonly count: number;
  readonly truncated: number;
  readonly firstFailedAt: number;
  readonly lastFailedAt: number;
}

export class DeadLetterSummary {
  private readonly groups = new Map<string, { -readonly [K in keyof DeadLetterGroup]: DeadLetterGroup[K] }>();
  /** Groups kept at most: past it, a new reason is counted under its code's "(other reasons)" (a flood of distinct reasons). */
  static readonly MAX_GROUPS = 1_000;

  constructor(private readonly reasonChars = 160) {}

  add(d: DeadLetterView): void {
    let reason = cutText(d.reason, this.reasonChars);
    if (!this.groups.has(`${d.code}\0${reason}`) && this.groups.size >= DeadLetterSummary.MAX_GROUPS) {
      reason = '(other reasons)';
    }
    const key = `${d.code}\0${reason}`;
    const g = this.groups.get(key);
    const at = Number.isNaN(d.failedAt) ? undefined : d.failedAt;
    if (g === undefined) {
      this.groups.set(key, {
        code: d.code,
        reason,
        count: 1,
        truncated: d.truncated ? 1 : 0,
        firstFailedAt: at ?? Number.NaN,
        lastFailedAt: at ?? Number.NaN,
      });
      return;
    }
    g.count++;
    if (d.truncated) g.truncated++;
    if (at !== undefined) {
      if (!(g.firstFailedAt <= at)) g.firstFailedAt = at;
      if (!(g.lastFailedAt >= at)) g.lastFailedAt = at;
    }
  }

  list(): DeadLetterGroup[] {
    return [...this.groups.values()].sort((a, b) => b.count - a.count || a.code.localeCompare(b.code));
  }
}

/** The source record a dead letter stands for: one record dead-lettered by several groups, or twice, is one. */
export function sourceRecordOf(d: DeadLetterView): string {
  return `${d.sourceTopic}/${d.sourcePartition}/${d.sourceOffset}`;
}
