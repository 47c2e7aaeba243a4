import { committedOffsets, type KafkaClient, setGroupOffsets, topicOffsets } from '@driftline/kafka';

/** Committed offset per partition (-1: none). */
export type GroupOffsets = ReadonlyMap<number, bigint>;

const committed = (o: GroupOffsets | undefined) => [...(o ?? new Map<number, bigint>())].filter(([, v]) => v >= 0n);

/** Where a receiver's group starts, and why. */
export interface GroupStart {
  readonly offsets: Map<number, bigint>;
  readonly from: 'other receivers' | 'legacy group' | 'end of topic';
}

/**
 * Where a receiver's consumer group starts when it has committed nothing yet (pure):
 * - other receivers' groups committed offsets: per partition the least of them — a receiver added
 *   to a running router gets the alerts the router has not finished, not the topic's history;
 * - else the router's earlier single group (`legacy`, before groups per receiver) committed
 *   offsets: from there — the upgrade neither sends again what that group handled (its failed
 *   deliveries included) nor skips any;
 * - else (a new deployment, a renamed sole receiver, a new DRIFTLINE_ALERT_ROUTER_GROUP): the end
 *   of the topic (`end`: its high watermarks), unless `earliest` is asked for — then undefined and
 *   the group reads the topic's history. From the beginning by default, a rename re-sent every
 *   alert the topic held to a receiver whose new name had no delivery record (found by a review).
 * A group that committed anything itself keeps its own offsets (undefined).
 */
export function receiverGroupStart(
  own: GroupOffsets | undefined,
  legacy: GroupOffsets | undefined,
  siblings: readonly GroupOffsets[],
  end: GroupOffsets,
  start: 'latest' | 'earliest' = 'latest',
): GroupStart | undefined {
  if (committed(own).length > 0) return undefined;
  const least = new Map<number, bigint>();
  for (const sibling of siblings) {
    for (const [partition, offset] of committed(sibling)) {
      const known = least.get(partition);
      if (known === undefined || offset < known) least.set(partition, offset);
    }
  }
  if (least.size > 0) return { offsets: least, from: 'other receivers' };
  const fromLegacy = committed(legacy);
  if (fromLegacy.length > 0) return { offsets: new Map(fromLegacy), from: 'legacy group' };
  return start === 'earliest' ? undefined : { offsets: new Map(end), from: 'end of topic' };
}

/** The consumer group of one receiver: the router's group name and the receiver's. */
export const receiverGroupId = (group: string, receiver: string) => `${group}.${receiver}`;

/**
 * Seeds every receiver's group that has committed nothing (see {@link receiverGroupStart}), before
 * any of them starts consuming. Returns the receivers whose groups were seeded, and from where.
 */
export async function seedReceiverGroups(
  kafka: KafkaClient,
  topic: string,
  group: string,
  receivers: readonly string[],
  start: 'latest' | 'earliest' = 'latest',
): Promise<Array<{ receiver: string; from: GroupStart['from'] }>> {
  const legacy = await committedOffsets(kafka, group, topic);
  // Read before any group starts: alerts published after it are delivered.
  const end = new Map((await topicOffsets(kafka, topic)).map((o) => [o.partition, o.high]));
  const own = new Map<string, GroupOffsets>();
  for (const r of receivers) own.set(r, await committedOffsets(kafka, receiverGroupId(group, r), topic));
  const seeded: Array<{ receiver: string; from: GroupStart['from'] }> = [];
  for (const r of receivers) {
    // The others as they were before this pass: receivers seeded in it do not count as running.
    const siblings = receivers.filter((x) => x !== r).map((x) => own.get(x)!);
    const at = receiverGroupStart(own.get(r), legacy, siblings, end, start);
    if (at === undefined) continue;
    await setGroupOffsets(kafka, receiverGroupId(group, r), topic, at.offsets);
    seeded.push({ receiver: r, from: at.from });
  }
  return seeded;
}
