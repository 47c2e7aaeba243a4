import { formatDuration } from '@driftline/core';

/**
 * What one stage-one group (DRIFTLINE_DRIFT_GROUP) produces its partials with, recorded at its
 * first start and checked at every start: instances of one group that differ on either split the
 * windows' partials between merges, or fuse windows of two sizes.
 */
export interface GroupRecord {
  /**
   * Partitions of the group's partials topic its partials are routed over: a model's partials go to
   * `routeModel(model, n)`, every `closed` marker to each of the n.
   */
  readonly partialsPartitions: number;
  /** Its window size (DRIFTLINE_DRIFT_WINDOW), in ms. */
  readonly windowMs: number;
}

/** What an instance about to start has: its group's partials topic and its own configuration. */
export interface GroupStart {
  /** The stage-one group (prefixed). */
  readonly group: string;
  readonly partialsTopic: string;
  /** The partials topic's partition count, read from the brokers. */
  readonly topicPartitions: number;
  /** DRIFTLINE_DRIFT_PARTIALS_PARTITIONS (undefined: not set). */
  readonly configuredPartitions: number | undefined;
  readonly windowMs: number;
}

export type GroupRecordCheck =
  /** Start; `warning`: a variable that has no effect, to be logged. */
  | { readonly ok: true; readonly warning?: string }
  /** Refuse to start: `message` says why and what to do (a configuration error of `field`). */
  | {
      readonly ok: false;
      readonly field: 'DRIFTLINE_DRIFT_PARTIALS_PARTITIONS' | 'DRIFTLINE_DRIFT_WINDOW';
      readonly message: string;
    };

/**
 * Whether an instance may start in its group, given what the group recorded (undefined: its first
 * start, or one before records existed; then the instance's values become the record).
 *
 * - A partials topic whose partition count differs from the one recorded was grown (or deleted and
 *   made again): instances routing over the old count and the new one each complete a window with
 *   part of its partials, on two merge partitions, and both write the same drift_windows row (a
 *   review: every window 200 of 400 events after 2 → 3, with one instance restarted or a second one
 *   started, and no log line). Refused, naming the topic and DRIFTLINE_DRIFT_PARTIALS_PARTITIONS.
 * - A window size that differs from the one recorded: the group's merge would fuse windows of two
 *   sizes. Refused, naming DRIFTLINE_DRIFT_WINDOW.
 * - DRIFTLINE_DRIFT_PARTIALS_PARTITIONS set to another count than the topic's: it sizes a new
 *   topic only, an existing one is never altered. Started, with a warning.
 */
export function checkGroupRecord(recorded: GroupRecord | undefined, start: GroupStart): GroupRecordCheck {
  const { group, partialsTopic: topic, topicPartitions: n } = start;
  if (recorded !== undefined && recorded.partialsPartitions !== n) {
    return {
      ok: false,
      field: 'DRIFTLINE_DRIFT_PARTIALS_PARTITIONS',
      message: `the partials topic ${topic} has ${n} partitions, but group ${group} routes its partials over ${recorded.partialsPartitions} (recorded in drift_progress at its first start): a partials topic must never be grown — instances routing over ${recorded.partialsPartitions} and over ${n} would each complete a window with part of its partials, losing events. To change the merge parallelism, start a new DRIFTLINE_DRIFT_GROUP (its own partials topic, made with DRIFTLINE_DRIFT_PARTIALS_PARTITIONS partitions)`,
    };
  }
  if (recorded !== undefined && recorded.windowMs !== start.windowMs) {
    return {
      ok: false,
      field: 'DRIFTLINE_DRIFT_WINDOW',
      message: `${formatDuration(start.windowMs)}, but group ${group} measures windows of ${formatDuration(recorded.windowMs)} (recorded in drift_progress at its first start): the instances of one group must have one window size, or its merge would fuse windows of both. A new size needs a new DRIFTLINE_DRIFT_GROUP`,
    };
  }
  const configured = start.configuredPartitions;
  if (configured !== undefined && configured !== n) {
    return {
      ok: true,
      warning: `DRIFTLINE_DRIFT_PARTIALS_PARTITIONS is ${configured}, but the partials topic ${topic} has ${n} partitions: the variable only sizes a topic made new, an existing one is never altered (and must never be grown); the merge stays on ${n} partitions. A new DRIFTLINE_DRIFT_GROUP gets a partials topic of its own with ${configured}`,
    };
  }
  return { ok: true };
}

/**
 * The warning of a running instance that finds its group's partials topic grown past the count it
 * routes over, or undefined when it was not. Nothing is lost while every instance routes over the
 * recorded count (the added partitions get nothing), but the next start is refused.
 */
export function partialsGrownWarning(topic: string, routedOver: number, topicPartitions: number): string | undefined {
  if (topicPartitions === routedOver) return undefined;
  return `the partials topic ${topic} now has ${topicPartitions} partitions, but this group routes its partials over ${routedOver}: partials topics must never be grown. This instance keeps routing over ${routedOver} (nothing is lost), but no instance of the group will start again on this topic (DRIFTLINE_DRIFT_PARTIALS_PARTITIONS; see the drift-monitor README, "Merge parallelism")`;
}
