/**
 * Source idleness for stage one (Flink's `withIdleness`, applied per source partition): a
 * partition's watermark moves only with its events, so one that gets an event every few minutes
 * held its windows open until the next one, and the merge stage completed them without it after
 * its idle timeout: their events were excluded (15% of them at one event a minute per partition).
 * A partition that is read to its end and silent advances its event-time clock on processing time.
 */

/**
 * Events further behind the time they were written are a replay or a backfill, whose pauses say
 * nothing about the event time of what comes next; a live stream with a steady lag under it (event
 * times set upstream, a batch of inferences logged later) keeps source idleness.
 */
export const REPLAY_TRAIL_MS = 60 * 60_000;

/** What stage one knows of one source partition when it decides a processing-time advance. */
export interface SourceClock {
  /** The largest event time its events moved the watermark to here (replayed ones not counted); -Infinity when none. */
  readonly latestEventTime: number;
  /** Where a restored frontier started it (`PartitionWindows.restoredClock`); -Infinity without one. */
  readonly restoredClock?: number;
  /** Its event-time clock now (events, a restored frontier, earlier advances). */
  readonly eventClock: number;
  /** The largest Kafka timestamp of its records (wall time when a record had none); 0 when none here. */
  readonly recordClock: number;
  /**
   * Processing time this member has seen it read to its end without a new record, continuously
   * (0 when it is not): time it could not look (a broker outage, a stalled process) is not counted.
   */
  readonly quietMs: number;
}

/**
 * The event time a silent partition, read to its end, may move its clock to; undefined when it may
 * not move.
 *
 * - With events of its own: their latest event time plus the silence since, less `idleMs`. Records
 *   arrive about as late as their predecessors did, so an event written now is at most the allowed
 *   lateness behind that clock, as for events in a stream; `idleMs` covers a record written but not
 *   fetched yet when the partition was found read to its end. The silence is the time this member
 *   saw the partition read to its end (`quietMs`), at most the time since its last record was
 *   written (Kafka time): producers buffer through a broker outage and write their events once it
 *   is over, so time no one could read must not count as silence. A partition whose events trail
 *   their Kafka timestamps by more than REPLAY_TRAIL_MS (a replay, a backfill) does not move on
 *   processing time.
 * - Without events here (a partition no producer's key maps to, one this member was just given, or
 *   one whose records here were all replayed from before its restored frontier): once quiet for
 *   `idleMs`, it follows the furthest clock of the partitions with events, less `idleMs` — the idle
 *   source no longer holds the windows back, as in Flink — or its restored frontier's clock moved by
 *   the silence seen since, whichever is further. With neither, nothing moves (the merge stage's
 *   idle timeout decides).
 */
export function idleAdvance(
  source: SourceClock,
  others: Iterable<SourceClock>,
  now: number,
  idleMs: number,
): number | undefined {
  if (idleMs <= 0) return undefined;
  // Records far behind the time they were written are a replay or a backfill, not a live stream: a
  // pause in them says nothing about the event time of what comes next (their own events, or the
  // restored frontier when all were replayed).
  const own = Math.max(source.latestEventTime, source.restoredClock ?? Number.NEGATIVE_INFINITY);
  if (source.recordClock > 0 && Number.isFinite(own) && source.recordClock - own > REPLAY_TRAIL_MS) return undefined;
  if (Number.isFinite(source.latestEventTime)) {
    const silentMs = Math.min(source.quietMs, now - source.recordClock);
    return silentMs >= idleMs ? source.latestEventTime + silentMs - idleMs : undefined;
  }
  if (source.quietMs < idleMs) return undefined;
  let furthest = Number.NEGATIVE_INFINITY;
  for (const o of others) if (Number.isFinite(o.latestEventTime) && o.eventClock > furthest) furthest = o.eventClock;
  // Its restored frontier, moved by the silence seen since (a member alone, or all partitions silent).
  const restored = source.restoredClock ?? Number.NEGATIVE_INFINITY;
  const target = Math.max(furthest - idleMs, restored + source.quietMs - idleMs);
  return Number.isFinite(target) ? target : undefined;
}
