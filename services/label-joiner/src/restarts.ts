import { DriftlineError, toDriftlineError } from '@driftline/core';
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
 *   here since the group's last join, and below the group's commit read again then (or with no
 *   commit). The consumer offers a batch it has not committed again within one assignment — a
 *   dead-letter send or the commit failed after the batch was applied (Kafka down: the outage the
 *   marker is for), or the records after a bisection — and such a batch starts at or after the
 *   commit. A log that started over under the running joiner (kafkajs resetting an out-of-range
 *   position: "Offset out of range, resetting to default offset") has its commits deleted, or
 *   replaced by kafkajs' logical -1/-2, or left above where the new log is read.
 *
 * A look-up that fails for an outage fails the batch (retriable: nothing applied, retried with
 * backoff; the batch cannot be committed without Kafka anyway). Any other failure drops the marker
 * (today's tombstone dedup) rather than failing the batch: a refused look-up would be held, then
 * dead-lettered.
 */
export class RestartedLogs {
  /** Per partition, the last offset applied since the group's last join (or since its log restarted). */
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
   * the token to pass to {@link applied}. Throws a retriable error when the group's commit cannot
   * be read for an outage.
   */
  async check(
    topic: string,
    partition: number,
    firstOffset: number | undefined,
  ): Promise<{ restart: boolean; generation: number }> {
    const generation = this.generation;
    const through = this.appliedThrough.get(partitionKey(topic, partition));
    if (through !== undefined) {
      if (firstOffset === undefined) return { restart: true, generation };
      if (firstOffset > through) return { restart: false, generation };
      // Backwards: read the commit again (the one read at the join is older than this batch).
      const commit = await this.commitOf(this.committed(topic), topic, partition);
      return { restart: commit === undefined || BigInt(firstOffset) < commit, generation };
    }
    let commits = this.commits.get(topic);
    if (commits === undefined) {
      const read = this.committed(topic);
      // A failed read is not kept: the next batch asks again.
      read.catch(() => {
        if (this.commits.get(topic) === read) this.commits.delete(topic);
      });
      commits = read;
      this.commits.set(topic, read);
    }
    const atJoin = await this.commitOf(commits, topic, partition);
    if (atJoin === undefined) return { restart: true, generation };
    // A partition's first batch after a join starts at the group's commit. Below the commit read at
    // the join (read once per topic: an idle partition's log may have been recreated since, with no
    // rejoin), read it again, as for a backwards read (found by a review).
    if (firstOffset !== undefined && BigInt(firstOffset) < atJoin) {
      const now = await this.commitOf(this.committed(topic), topic, partition);
      return { restart: now === undefined || BigInt(firstOffset) < now, generation };
    }
    return { restart: false, generation };
  }

  /**
   * A batch of the partition ending at `lastOffset` was applied (ignored if the group joined
   * since). After a restart the log is a new one: what was applied of the old one is forgotten.
   */
  applied(
    topic: string,
    partition: number,
    { generation, restart }: { readonly generation: number; readonly restart: boolean },
    lastOffset: number | undefined,
  ): void {
    if (generation !== this.generation || lastOffset === undefined) return;
    const key = partitionKey(topic, partition);
    const before = restart ? undefined : this.appliedThrough.get(key);
    this.appliedThrough.set(key, Math.max(before ?? -1, lastOffset));
  }

  /** The group's commit of a partition (undefined: none, or unreadable other than by an outage). */
  private async commitOf(
    commits: Promise<ReadonlyMap<number, bigint>>,
    topic: string,
    partition: number,
  ): Promise<bigint | undefined> {
    let offset: bigint | undefined;
    try {
      offset = (await commits).get(partition);
    } catch (thrown) {
      const error = toDriftlineError(thrown);
      if (!error.retriable) return undefined;
      throw new DriftlineError(
        'SOURCE_UNAVAILABLE',
        `reading the commit of ${partitionKey(topic, partition)} (is its log a new one?): ${error.message}`,
        { retriable: true, cause: error },
      );
    }
    return offset === undefined || offset < 0n ? undefined : offset;
  }
}
