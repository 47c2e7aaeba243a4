import { partitionKey } from '@driftline/kafka';

/**
 * Which partitions' logs may have started over, so that their next batch drops the
 * applied-through marker (`OffsetSpan.restart` of @driftline/join): a recreated topic restarts
 * at offset 0, and its new records must not pass for replays of the old ones.
 *
 * - Assigned with no committed offset: a new group, a group an operator deleted, or a topic
 *   deleted and recreated while the joiner was stopped (Kafka deletes a group's commits of a
 *   deleted topic: checked on the stack, fetchOffsets answers -1 after the recreation). Asked on
 *   a partition's first batch after each join of the group, until a batch of it is applied.
 * - Read backwards within one assignment: a batch starting at or below the last offset applied
 *   here since the group's last join. The consumer retries a batch only inside its own call, so
 *   this is kafkajs resetting an out-of-range position: a topic recreated under the running
 *   joiner (seen on the stack: "Offset out of range, resetting to default offset").
 */
export class RestartedLogs {
  private readonly appliedThrough = new Map<string, number>();
  /** Per topic, the group's commits as read after the group's last join (one look-up per topic). */
  private readonly commits = new Map<string, Promise<ReadonlyMap<number, bigint>>>();
  private generation = 0;

  constructor(private readonly committed: (topic: string) => Promise<ReadonlyMap<number, bigint>>) {}

  /** A join of the group: every partition is asked again. */
  rebalanced(): void {
    this.appliedThrough.clear();
    this.commits.clear();
    this.generation++;
  }

  /**
   * Whether a batch of this partition starting at `firstOffset` must drop the marker first, and
   * the token to pass to {@link applied}.
   */
  async check(
    topic: string,
    partition: number,
    firstOffset: number | undefined,
  ): Promise<{ restart: boolean; generation: number }> {
    const generation = this.generation;
    const through = this.appliedThrough.get(partitionKey(topic, partition));
    if (through !== undefined) return { restart: firstOffset === undefined || firstOffset <= through, generation };
    let commits = this.commits.get(topic);
    if (commits === undefined) {
      commits = this.committed(topic);
      this.commits.set(topic, commits);
    }
    try {
      const offset = (await commits).get(partition);
      return { restart: offset === undefined || offset < 0n, generation };
    } catch {
      // Unknown is not "committed": the marker is dropped (today's tombstone dedup), never trusted
      // blindly, and the batch is not failed for it (a refused look-up would be held, then dead-lettered).
      if (this.commits.get(topic) === commits) this.commits.delete(topic);
      return { restart: true, generation };
    }
  }

  /** A batch of the partition ending at `lastOffset` was applied (ignored if the group joined since). */
  applied(topic: string, partition: number, generation: number, lastOffset: number | undefined): void {
    if (generation !== this.generation || lastOffset === undefined) return;
    const key = partitionKey(topic, partition);
    this.appliedThrough.set(key, Math.max(this.appliedThrough.get(key) ?? -1, lastOffset));
  }
}
