import { DriftlineError } from '@driftline/core';

/**
 * The end (high watermark) of `partition` in `offsets` (`topicOffsets` of `topic`): the processor's
 * `logEnd`, which confirms that rows read back name offsets past the log's end. A partition not
 * listed (metadata of a topic being deleted or created again, a partial answer) has no known end:
 * taken for 0, every row read back would be past it — a false new log epoch, the log counted
 * again —, so it is a retriable error and the batch is retried.
 */
export function logEndOf(
  offsets: ReadonlyArray<{ readonly partition: number; readonly high: bigint }>,
  topic: string,
  partition: number,
): number {
  const listed = offsets.find((o) => o.partition === partition);
  if (listed === undefined) {
    throw new DriftlineError(
      'SOURCE_UNAVAILABLE',
      `reading the end of ${topic} partition ${partition}: the partition is not listed (the topic is being recreated?)`,
      { retriable: true, details: { topic, partition, listed: offsets.map((o) => o.partition) } },
    );
  }
  return Number(listed.high);
}
