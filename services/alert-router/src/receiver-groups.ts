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
 * - the receiver has delivery records (`alert_deliveries`): it is not new — its commits were
 *   deleted (the topic deleted and created again deletes them; its group deleted, or expired after
 *   offsets.retention.minutes empty), or this is the upgrade from the router's earlier single group
 *   (`legacy`). From where `legacy` is if it committed anything (the upgrade stays exact), else
 *   from the start of the topic (`low`), whatever `start` says: the record drops what it delivered
 *   or gave up, so it gets what it missed. At the end, every alert published while the router was
 *   stopped was skipped without a word (found by a review). This rule reads no other receiver's
 *   group: a group seeded by a start that failed halfway looks like a running one, and ranked
 *   above the record, it sent this receiver past what it missed on the retry (found by a review);
 * - else other receivers' groups committed offsets: per partition the least of them — a receiver
 *   added to a running router gets the alerts the router has not finished, not the topic's history;
 * - else `legacy` committed offsets: from there — the upgrade neither sends again what that group
 *   handled (its failed deliveries included) nor skips any;
 * - else (no delivery record: a new deployment, a new receiver, a renamed sole receiver): the end
 *   of the topic (`end`: its high watermarks), unless `earliest` is asked for — then undefined and
 *   the group reads the topic's history. From the beginning by default, a rename re-sent every
 *   alert the topic held to a receiver whose new name had no delivery record (found by a review).
 * A group that committed anything itself keeps its own offsets (undefined).
 */
export function receiverGroupStart(input: GroupStartInput): GroupStart | undefined {
  if (committed(input.own).length > 0) return undefined;
  const fromLegacy = committed(input.legacy);
  if (input.deliveredBefore) {
    return fromLegacy.length > 0
      ? { offsets: new Map(fromLegacy), from: 'legacy group' }
      : { offsets: new Map(input.low), from: 'start of topic' };
  }
  const least = new Map<number, bigint>();
  for (const sibling of input.siblings) {
    for (const [partition, offset] of committed(sibling)) {
      const known = least.get(partition);
      if (known === undefined || offset < known) least.set(partition, offset);
    }
  }
  if (least.size > 0) return { offsets: least, from: 'other receivers' };
  if (fromLegacy.length > 0) return { offsets: new Map(fromLegacy), from: 'legacy group' };
  return input.start === 'earliest' ? undefined : { offsets: new Map(input.end), from: 'end of topic' };
}

/** The consumer group of one receiver: the router's group name and the receiver's. */
export const receiverGroupId = (group: string, receiver: string) => `${group}.${receiver}`;

/** The delivery record, as far as where a group starts needs it. */
export type DeliveryHistory = Pick<AlertDeliveryStore, 'receiversWithDeliveries'>;

/** What decides where every receiver's group starts, read once before any of them is seeded. */
export interface SeedPlanInput extends Omit<GroupStartInput, 'own' | 'siblings' | 'deliveredBefore'> {
  /** The receivers, as the routes file names them. */
  readonly receivers: readonly string[];
  /** Each receiver's own group's commits (a receiver missing: none). */
  readonly own: ReadonlyMap<string, GroupOffsets>;
  /** The receivers with delivery records. */
  readonly delivered: ReadonlySet<string>;
}

/** One receiver's group to seed, and where. */
export interface ReceiverSeed {
  readonly receiver: string;
  readonly at: GroupStart;
}

/**
 * The groups to seed, in the order to write them (pure; see {@link receiverGroupStart}). Each
 * receiver decides from the groups as they were before this start, but the writes are one group at
 * a time: a start that fails or is killed between two leaves some seeded, and its retry counts them
 * as running. In this order every such prefix leaves the rest deciding the same: first the
 * receivers without delivery records — they all get the same offsets (the least of the groups that
 * committed, else the legacy group's, else the end), which a prefix of those seeds changes in none
 * of the three cases — then those with records, whose start reads no other group. In the routes'
 * order, a seed at the start of the topic sent a new receiver the whole history on the retry
 * (found by a review).
 */
export function planReceiverSeeds(input: SeedPlanInput): ReceiverSeed[] {
  const { receivers, own, delivered, ...sameForAll } = input;
  const first: ReceiverSeed[] = [];
  const last: ReceiverSeed[] = [];
  for (const r of receivers) {
    const siblings = receivers.filter((x) => x !== r).flatMap((x) => own.get(x) ?? []);
    const deliveredBefore = delivered.has(r);
    const at = receiverGroupStart({ ...sameForAll, own: own.get(r), siblings, deliveredBefore });
    if (at !== undefined) (deliveredBefore ? last : first).push({ receiver: r, at });
  }
  return [...first, ...last];
}

/**
 * Seeds every receiver's group that has committed nothing (see {@link planReceiverSeeds}), before
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
  for (const { receiver, at } of planReceiverSeeds({ receivers, own, legacy, low, end, delivered, start })) {
    await setGroupOffsets(kafka, receiverGroupId(group, receiver), topic, at.offsets);
    seeded.push({ receiver, from: at.from });
  }
  return seeded;
}
