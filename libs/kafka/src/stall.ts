import { partitionKey } from './partition-key.js';
/**
 * The stall rule of the consumer loop, pure (time is passed in). A partition is stalled when it
 * has lag on its committed offset (high watermark − committed > 0) and that committed offset has
 * not moved for `timeoutMs`. Two cases are not stalls:
 * - nothing to catch up on (no lag), however old the commit;
 * - a quiet partition: everything fetched was processed and no new record arrived for `timeoutMs`,
 *   while a stateful processor holds its commit for an open window (it closes when event time
 *   moves on, which needs new records; a restart could not help). When records arrive again the
 *   clock starts over.
 */
export interface PartitionProgress {
  /** The committed offset (next offset to read after a restart). */
  readonly committed: bigint;
  /** The last high watermark seen for the partition. */
  readonly highWatermark: bigint;
  /** When the clock started: the commit moved, the partition was first seen, or had nothing to catch up on. */
  readonly since: number;
  /** The last observation: every fetched record processed, up to the high watermark. */
  readonly caughtUp: boolean;
  /**
   * When the high watermark last changed (new records), or the partition was first seen. Quiet is
   * counted from here, not from the last observation: observations that bring nothing new (the
   * batch of records an idle refresh already saw, held records delivered again after a rejoin)
   * made a quiet partition look busy, and stalled, for as long as they came after the clock started.
   */
  readonly grewAt: number;
}

export interface Stall {
  readonly topic: string;
  readonly partition: number;
  readonly lag: number;
  readonly stalledForMs: number;
}

/** Lag on the committed offset: what a restart would have to read again, never negative. */
export function committedLag(p: Pick<PartitionProgress, 'committed' | 'highWatermark'>): number {
  const lag = p.highWatermark - p.committed;
  return lag > 0n ? Number(lag) : 0;
}

/** Every fetched record processed, and no new record written for the timeout. */
function quiet(p: PartitionProgress, now: number, timeoutMs: number): boolean {
  return p.caughtUp && now - p.grewAt >= timeoutMs;
}

/** The next progress of a partition after an observation. */
export function observeProgress(
  previous: PartitionProgress | undefined,
  observation: { committed: bigint; highWatermark: bigint; caughtUp: boolean },
  now: number,
  timeoutMs: number,
): PartitionProgress {
  const restart =
    previous === undefined ||
    observation.committed > previous.committed ||
    committedLag(previous) === 0 ||
    quiet(previous, now, timeoutMs);
  const grew = previous === undefined || observation.highWatermark !== previous.highWatermark;
  return {
    ...observation,
    since: restart ? now : previous.since,
    grewAt: grew ? now : previous.grewAt,
  };
}

export function isStalled(p: PartitionProgress, now: number, timeoutMs: number): boolean {
  return committedLag(p) > 0 && now - p.since >= timeoutMs && !quiet(p, now, timeoutMs);
}

/** Progress of the partitions one consumer owns. */
export class ProgressTracker {
  private readonly partitions = new Map<string, { topic: string; partition: number; progress: PartitionProgress }>();

  constructor(private readonly timeoutMs: number) {}

  observe(
    topic: string,
    partition: number,
    observation: { committed: bigint; highWatermark: bigint; caughtUp: boolean },
    now: number,
  ): PartitionProgress {
    const key = partitionKey(topic, partition);
    const progress = observeProgress(this.partitions.get(key)?.progress, observation, now, this.timeoutMs);
    this.partitions.set(key, { topic, partition, progress });
    return progress;
  }

  /**
   * The processor reported work on a batch of this partition (`context.heartbeat()`): a long
   * batch in hand (a training run) is progress, not a stall; the stall clock starts again.
   */
  working(topic: string, partition: number, now: number): void {
    const p = this.partitions.get(partitionKey(topic, partition));
    if (p !== undefined) p.progress = { ...p.progress, since: now };
  }

  /** The committed offset last observed for a partition, if any. */
  committed(topic: string, partition: number): bigint | undefined {
    return this.partitions.get(partitionKey(topic, partition))?.progress.committed;
  }

  /** Forgets a partition's progress (its offsets started over). */
  forget(topic: string, partition: number): void {
    this.partitions.delete(partitionKey(topic, partition));
  }

  /** Forgets partitions no longer owned (a rebalance): their commits are another member's now. */
  retain(owned: (topic: string, partition: number) => boolean): void {
    for (const [key, p] of this.partitions) if (!owned(p.topic, p.partition)) this.partitions.delete(key);
  }

  stalls(now: number): Stall[] {
    const out: Stall[] = [];
    for (const { topic, partition, progress } of this.partitions.values()) {
      if (isStalled(progress, now, this.timeoutMs)) {
        out.push({ topic, partition, lag: committedLag(progress), stalledForMs: now - progress.since });
      }
    }
    return out;
  }
}
