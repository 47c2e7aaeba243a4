import { committedOffsets, type KafkaClient, setGroupOffsets, topicOffsets } from '@driftline/kafka';
import type { AlertDeliveryStore } from '@driftline/warehouse';

/** Committed offset per partition (-1: none). */
export type GroupOffsets = ReadonlyMap<number, bigint>;

const committed = (o: GroupOffsets | undefined) => [...(o ?? new Map<number, bigint>())].filter(([, v]) => v >= 0n);

/** Where a receiver's group starts, and why. */
export interface GroupStart {
  readonly offsets: Map<number, bigint>;
  readonly from: 'start of topic' | 'other receivers' | 'legacy group' | 'end of topic';
}

/** What decides where a receiver's group starts. */
export interface GroupStartInput {
  /** The receiver's own group's commits. */
  readonly own: GroupOffsets | undefined;
  /** The router's single group of versions before groups per receiver. */
  readonly legacy: GroupOffsets | undefined;
  /** The other receivers' groups, as they were before this start. */
  readonly siblings: readonly GroupOffsets[];
  /** The topic's low watermarks: the first offset it still holds, per partition. */
  readonly low: GroupOffsets;
  /** Its high watermarks: the next offset it will write, per partition. */
  readonly end: GroupOffsets;
  /** `alert_deliveries` holds a row (delivered or failed) for the receiver. */
  readonly deliveredBefore: boolean;
  /** DRIFTLINE_ALERT_ROUTER_START. */
  readonly start?: 'latest' | 'earliest';
}

/**
 * Where a receiver's consumer group starts when it has committed nothing yet (pure):
 * - other receivers' groups committed offsets: per partition the least of them — a receiver added
 *   to a running router gets the alerts the router has not finished, not the topic's history;
 * - else the router's earlier single group (`legacy`, before groups per receiver) committed
 *   offsets: from there — the upgrade neither sends again what that group handled (its failed
 *   deliveries included) nor skips any;
 * - else, no group saying where the router was, the receiver has delivery records: its commits
 *   were deleted (the topic deleted and created again deletes them; its groups deleted, or expired
 *   after offsets.retention.minutes empty): from the start of the topic (`low`) — the record drops
 *   what it delivered or gave up, so it gets what it missed. At the end, every alert published
 *   while the router was stopped was skipped without a word (found by a review);
 * - else (a new deployment, a renamed sole receiver, a new DRIFTLINE_ALERT_ROUTER_GROUP): the end
 *   of the topic (`end`: its high watermarks), unless `earliest` is asked for — then undefined and
 *   the group reads the topic's history. From the beginning by default, a rename re-sent every
 *   alert the topic held to a receiver whose new name had no delivery record (found by a review).
 * A group that committed anything itself keeps its own offsets (undefined).
 */
export function receiverGroupStart(input: GroupStartInput): GroupStart | undefined {
  if (committed(input.own).length > 0) return undefined;
  const least = new Map<number, bigint>();
  for (const sibling of input.siblings) {
    for (const [partition, offset] of committed(sibling)) {
      const known = least.get(partition);
      if (known === undefined || offset < known) least.set(partition, offset);
    }
  }
  if (least.size > 0) return { offsets: least, from: 'other receivers' };
  const fromLegacy = committed(input.legacy);
  if (fromLegacy.length > 0) return { offsets: new Map(fromLegacy), from: 'legacy group' };
  if (input.deliveredBefore) return { offsets: new Map(input.low), from: 'start of topic' };
  return input.start === 'earliest' ? undefined : { offsets: new Map(input.end), from: 'end of topic' };
}

/** The consumer group of one receiver: the router's group name and the receiver's. */
export const receiverGroupId = (group: string, receiver: string) => `${group}.${receiver}`;

/** The delivery record, as far as where a group starts needs it. */
export type DeliveryHistory = Pick<AlertDeliveryStore, 'receiversWithDeliveries'>;

/**
 * Seeds every receiver's group that has committed nothing (see {@link receiverGroupStart}), before
 * any of them starts consuming. Returns the receivers whose groups were seeded, and from where.
 * The delivery record is read only when a group committed nothing; a ClickHouse outage then fails
 * the start (retriable: the runner retries it) before any group is seeded, never guessing `latest`.
 */
export async function seedReceiverGroups(
  kafka: KafkaClient,
  topic: string,
  group: string,
  receivers: readonly string[],
  history: DeliveryHistory,
  start: 'latest' | 'earliest' = 'latest',
): Promise<Array<{ receiver: string; from: GroupStart['from'] }>> {
  const legacy = await committedOffsets(kafka, group, topic);
  // Read before any group starts: alerts published after it are delivered.
  const watermarks = await topicOffsets(kafka, topic);
  const low = new Map(watermarks.map((o) => [o.partition, o.low]));
  const end = new Map(watermarks.map((o) => [o.partition, o.high]));
  const own = new Map<string, GroupOffsets>();
  for (const r of receivers) own.set(r, await committedOffsets(kafka, receiverGroupId(group, r), topic));
  const uncommitted = receivers.filter((r) => committed(own.get(r)).length === 0);
  const delivered = uncommitted.length === 0 ? new Set<string>() : await history.receiversWithDeliveries(uncommitted);
  const seeded: Array<{ receiver: string; from: GroupStart['from'] }> = [];
  for (const r of receivers) {
    // The others as they were before this pass: receivers seeded in it do not count as running.
    const siblings = receivers.filter((x) => x !== r).map((x) => own.get(x)!);
    const at = receiverGroupStart({
      own: own.get(r),
      legacy,
      siblings,
      low,
      end,
      deliveredBefore: delivered.has(r),
      start,
    });
    if (at === undefined) continue;
    await setGroupOffsets(kafka, receiverGroupId(group, r), topic, at.offsets);
    seeded.push({ receiver: r, from: at.from });
  }
  return seeded;
}
