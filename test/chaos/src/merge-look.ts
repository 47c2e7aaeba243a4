// One look at the merge stage's commit on the partials topic: the drain, the drift settle and the
// no-commit-pinned check all decide "is the merge caught up" here, by the same rule (mergePins).

import { decodePartials } from '@driftline/drift';
import { committedOffsets, type KafkaClient, topicOffsets } from '@driftline/kafka';
import { readTopic } from '@driftline/kafka/testing';
import { mergePins } from './merge-pins.js';

/**
 * The partitions where the merge group's commit is pinned (the merge had what it needed and did not
 * go on) and those held on purpose (a window some source has not reported yet). Caught up: nothing
 * pinned. Reads the partials log only where the commit is short of the end, up to the ends it saw.
 */
export async function lookAtMerge(
  client: KafkaClient,
  group: string,
  topic: string,
  readTimeoutMs = 120_000,
): Promise<{ pinned: string[]; held: string[] }> {
  const committed = await committedOffsets(client, group, topic);
  const offsets = await topicOffsets(client, topic);
  const ends = offsets.map((o) => ({
    partition: o.partition,
    committed: committed.get(o.partition) ?? -1n,
    high: o.high,
  }));
  // The last record of each partition the commit is short of: the log as it was at these ends.
  const last = new Map(
    offsets
      .filter((o) => o.high > o.low && (committed.get(o.partition) ?? -1n) < o.high)
      .map((o) => [o.partition, o.high - 1n]),
  );
  if (last.size === 0) return { pinned: [], held: [] };
  const read = await readTopic(
    client,
    topic,
    (rs) => [...last].every(([p, end]) => rs.some((r) => r.partition === p && BigInt(r.offset) >= end)),
    readTimeoutMs,
  );
  const records = read
    .filter((r) => BigInt(r.offset) <= (last.get(r.partition) ?? -1n))
    .map((r) => ({ partition: r.partition, offset: BigInt(r.offset), message: decodePartials(r.value) }));
  const prefix = (line: string): string => `${group} ${topic}${line}`;
  const { pinned, held } = mergePins(records, ends);
  return { pinned: pinned.map(prefix), held: held.map(prefix) };
}
