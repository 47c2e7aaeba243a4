/**
 * The lag of partitions that get no batch. The consumer loop learns a partition's high watermark
 * from its batches; a fetch that wedges once caught up (kafkajs hands over no batch again while
 * producers keep writing) froze the lag gauge at 0 and never started the stall clock: `/healthz`
 * stayed healthy while nothing was consumed. This refresh reads the high watermark of the topics
 * whose owned partitions have had no attempt in flight and no batch for a while, one read per
 * topic, and feeds it to the lag gauge and the stall tracker like a batch that came and did not
 * advance. Pure but for the injected reads (tested with fakes and a real `ProgressTracker`).
 */

/** A partition this member owns, as the refresh sees it. */
export interface IdlePartition {
  readonly topic: string;
  readonly partition: number;
  /** The offset after the last batch processed here since the assignment (undefined: none yet). */
  readonly processedTo: bigint | undefined;
  /** The committed offset the stall tracker knows (undefined: never observed). */
  readonly committed: bigint | undefined;
  /** When a batch of it last began or ended here (undefined: none since the assignment). */
  readonly lastBatchAt: number | undefined;
  /** An attempt in flight, or a retry loop (backing off): it has a clock and a refresh of its own. */
  readonly busy: boolean;
}

export interface TopicOffsets {
  readonly partition: number;
  readonly low: bigint;
  readonly high: bigint;
}

export interface IdleRefreshDeps {
  now(): number;
  /** The partitions owned now (asked before the reads and again after them). */
  partitions(): readonly IdlePartition[];
  /** The topic's low and high watermarks (one ListOffsets for the topic). */
  readOffsets(topic: string): Promise<readonly TopicOffsets[]>;
  /** The group's committed offsets on the topic (read only for partitions never observed). */
  readCommits(topic: string): Promise<ReadonlyMap<number, bigint>>;
  /** Where a partition with no batch starts reading, from the group's commit (undefined: unknown). */
  startOf(stored: bigint | undefined, low: bigint): bigint | undefined;
  /** Feeds the lag gauge and the stall tracker. */
  observe(topic: string, partition: number, observation: IdleObservation): void;
  /**
   * True while partitions without a batch may be waiting behind a known cause: a batch in hand
   * for a while (a training run reporting its work) or a retry loop. Their stall clock restarts.
   */
  blocked(now: number): boolean;
  working(topic: string, partition: number, now: number): void;
  /**
   * A read failed (Kafka may be what is down): the lag gauges keep their last values, so the
   * topic's lag is not known since (see LagKnowledge: its age grows).
   */
  failed(topic: string, error: unknown): void;
  /** The topic's offsets were read: its lag is known as of `at` (when the read began). */
  known(topic: string, at: number): void;
  /** Owned topics whose lag has not been known for a while: read too, even with no idle partition. */
  stale(now: number): readonly string[];
}

export interface IdleObservation {
  readonly committed: bigint;
  readonly highWatermark: bigint;
  readonly caughtUp: boolean;
}

/** No attempt in flight, no retry loop, and no batch for `refreshMs`. */
export function isIdle(p: IdlePartition, now: number, refreshMs: number): boolean {
  return !p.busy && (p.lastBatchAt === undefined || now - p.lastBatchAt >= refreshMs);
}

/**
 * What a fresh high watermark says about an idle partition whose position is known, or undefined
 * when there is nothing to tell: nothing was written past what was processed here. That one keeps
 * its last observation, so a quiet partition whose commit a stateful processor holds for an open
 * window stays quiet (a new observation would make it look busy, and then stalled).
 */
export function idleObservation(
  p: Pick<IdlePartition, 'processedTo' | 'committed'>,
  high: bigint,
  start?: bigint,
): IdleObservation | undefined {
  const position = p.processedTo ?? p.committed ?? start;
  if (position === undefined) return undefined;
  // Never observed here (no batch, no earlier refresh): its first gauge, lag or none.
  if (p.committed === undefined) return { committed: position, highWatermark: high, caughtUp: high <= position };
  if (high <= position) return undefined;
  return { committed: p.committed, highWatermark: high, caughtUp: false };
}

/**
 * One refresh: for each topic with idle partitions, one read of its offsets (and of the group's
 * commits when a partition there was never observed), then an observation for each partition still
 * idle and with no batch since. Returns the topics read. Never throws.
 */
export async function refreshIdleLag(deps: IdleRefreshDeps, refreshMs: number): Promise<string[]> {
  const due = new Map<string, Map<number, IdlePartition>>();
  const started = deps.now();
  for (const p of deps.partitions()) {
    if (!isIdle(p, started, refreshMs)) continue;
    const list = due.get(p.topic) ?? new Map<number, IdlePartition>();
    list.set(p.partition, p);
    due.set(p.topic, list);
  }
  // A topic whose partitions all have batches in hand for long (a training run) is read too: its
  // lag is not known otherwise, and a broker that stopped answering would look like that.
  for (const topic of deps.stale(started)) if (!due.has(topic)) due.set(topic, new Map());
  const read: string[] = [];
  for (const [topic, partitions] of due) {
    let offsets: Map<number, TopicOffsets>;
    let commits: ReadonlyMap<number, bigint> | undefined;
    try {
      const at = deps.now();
      offsets = new Map((await deps.readOffsets(topic)).map((o) => [o.partition, o]));
      read.push(topic);
      deps.known(topic, at);
      const unseen = [...partitions.values()].some((p) => p.processedTo === undefined && p.committed === undefined);
      if (unseen) commits = await deps.readCommits(topic);
    } catch (error) {
      deps.failed(topic, error);
      continue;
    }
    const now = deps.now();
    const blocked = deps.blocked(now);
    for (const p of deps.partitions()) {
      const before = partitions.get(p.partition);
      const o = offsets.get(p.partition);
      // Lost meanwhile, or a batch came (its observation is fresher than this read).
      if (p.topic !== topic || before === undefined || o === undefined) continue;
      if (p.busy || p.lastBatchAt !== before.lastBatchAt) continue;
      const start = commits === undefined ? undefined : deps.startOf(commits.get(p.partition), o.low);
      const observation = idleObservation(p, o.high, start);
      if (observation === undefined) continue;
      deps.observe(topic, p.partition, observation);
      if (blocked && observation.highWatermark > observation.committed) deps.working(topic, p.partition, now);
    }
  }
  return read;
}

/**
 * How long each owned topic's lag has not been known, for `driftline_consumer_lag_age_seconds`.
 * The lag gauges keep their last values when nothing answers: with the path to the broker slow
 * (answers 45 s late), /healthz and /readyz said 200 and every lag gauge stayed 0 for 95 s while
 * nothing was consumed. Known: a batch fetched, or a read of the topic's offsets that answered
 * (as of when it began). A topic newly assigned counts from its assignment.
 */
export class LagKnowledge {
  private readonly knownAt = new Map<string, number>();

  /** The topics owned now (after a join): new ones count from `now`; returns the topics no longer owned. */
  assigned(topics: Iterable<string>, now: number): string[] {
    const owned = new Set(topics);
    const gone = [...this.knownAt.keys()].filter((t) => !owned.has(t));
    for (const t of gone) this.knownAt.delete(t);
    for (const t of owned) if (!this.knownAt.has(t)) this.knownAt.set(t, now);
    return gone;
  }

  /** The topic's lag was known at `at` (an older answer than the one held changes nothing). */
  known(topic: string, at: number): void {
    const before = this.knownAt.get(topic);
    if (before !== undefined && at > before) this.knownAt.set(topic, at);
  }

  /** Per owned topic, milliseconds since its lag was last known. */
  ages(now: number): Array<{ readonly topic: string; readonly ageMs: number }> {
    return [...this.knownAt].map(([topic, at]) => ({ topic, ageMs: Math.max(0, now - at) }));
  }

  /** Owned topics not known for `ms` or longer. */
  stale(now: number, ms: number): string[] {
    return this.ages(now)
      .filter((a) => a.ageMs >= ms)
      .map((a) => a.topic);
  }
}
