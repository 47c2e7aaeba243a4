/**
 * The applied-through marker of one source (a partition): the span of offsets whose records' state
 * was applied, and the greatest Kafka timestamp among them. Written in the same atomic step as
 * each chunk's state, it recognises a redelivery whose state is gone (its `J`/`X` tombstone
 * expired: Kafka down for longer than the tombstone TTL between the store's ack and the commit,
 * an operator resetting the group's offsets with Redis intact) without a tombstone per id.
 *
 * A marker only stands in for an ABSENT state: a record whose state is still there goes through
 * its transition as before (a `K` re-emits its row), so the marker can never lose a row the sink
 * has not got. And it must never skip a record it did not apply: a topic deleted and recreated
 * under the same name restarts at offset 0. So a record counts as applied only while the marker
 * still describes the partition ({@link markerHolds}): a record at or below its end that is newer
 * than anything it applied (its Kafka timestamp above the marker's greatest) proves a new log, and
 * the marker is dropped (today's tombstone dedup remains); so is a record without a timestamp.
 * The greatest timestamp is capped at the clock of the step that applied it ({@link nextMarker}).
 */
export interface AppliedMarker {
  /** First offset of the span (inclusive). */
  readonly from: number;
  /** Last offset of the span (inclusive). */
  readonly through: number;
  /**
   * Greatest Kafka timestamp (epoch ms) of a record of the span, capped at the clock of the step
   * that applied it: one future-dated record must not make a new log's records pass as older.
   */
  readonly maxAppendTime: number;
}

/**
 * The offsets a batch covers: from its first record to its last, every record between included
 * (shadow records the join skips, poison records the consumer dead-lettered), and the greatest
 * Kafka timestamp among them. `restart`: the partition was assigned with no committed offset (a
 * new group, a recreated topic whose offsets Kafka deleted), so the marker is dropped first.
 */
export interface OffsetSpan {
  readonly first: number;
  readonly last: number;
  readonly maxAppendTime?: number;
  readonly restart?: boolean;
}

/** What the marker needs of a record: where it is in the log and when it was appended. */
export interface Positioned {
  readonly offset?: number;
  readonly appendTime?: number;
}

const known = (t: number | undefined): t is number => t !== undefined && Number.isFinite(t) && t >= 0;

/** A Kafka offset the marker can hold exactly (a Lua number too): a safe non-negative integer. */
export function markerOffset(offset: string | number | undefined): number | undefined {
  const n = typeof offset === 'string' && /^\d{1,16}$/.test(offset) ? Number(offset) : offset;
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/**
 * Whether `marker` still describes the log these records come from: none of them at or below its
 * end is newer than (or, without a timestamp, not known to be older than) everything it applied.
 */
export function markerHolds(marker: AppliedMarker | undefined, records: readonly Positioned[], span?: OffsetSpan) {
  if (marker === undefined || span === undefined || span.restart === true) return false;
  for (const r of records) {
    if (r.offset === undefined || r.offset > marker.through) continue;
    if (!known(r.appendTime) || r.appendTime > marker.maxAppendTime) return false;
  }
  return true;
}

/** Whether a record is inside a holding marker's span: applied before, so an absent state is a replay. */
export const coveredBy = (marker: AppliedMarker | undefined, r: Positioned): boolean =>
  marker !== undefined && r.offset !== undefined && r.offset >= marker.from && r.offset <= marker.through;

/**
 * The marker after a step at `now` applied `span` (`holding`: the marker before it if it
 * {@link markerHolds}, else undefined). Spans that touch or overlap merge; one that does not (a
 * jump of the consumer's position, a poison record dead-lettered in between) starts a new marker,
 * forgetting the old span: records in a gap were never applied here. Without a timestamp the
 * step cannot be guarded, and the marker is dropped (undefined).
 *
 * The span's greatest timestamp is taken at most `now`: a record stamped ahead of the clock (a
 * skewed producer; Kafka 4.x accepts an hour ahead by default, 3.x anything) had raised the guard
 * for good, and a recreated log's records stamped with the real time passed as replays. The cost:
 * a replay of that record itself (stamped above the cap) drops the marker (tombstone dedup only).
 *
 * `checked`: the step had records the guard looked at. A step with none (a batch of shadow
 * predictions only) extends the span but never raises the greatest timestamp: nothing proved its
 * records old, and raised by them the guard let a recreated log's next records pass for replays
 * (found by a review).
 */
export function nextMarker(
  holding: AppliedMarker | undefined,
  span: OffsetSpan,
  now: number,
  checked = true,
): AppliedMarker | undefined {
  if (!known(span.maxAppendTime)) return undefined;
  const time = Math.min(span.maxAppendTime, now);
  if (!known(time)) return undefined;
  if (holding !== undefined && span.first <= holding.through + 1 && span.last >= holding.from - 1) {
    return {
      from: Math.min(holding.from, span.first),
      through: Math.max(holding.through, span.last),
      maxAppendTime: checked ? Math.max(holding.maxAppendTime, time) : holding.maxAppendTime,
    };
  }
  return { from: span.first, through: span.last, maxAppendTime: time };
}
