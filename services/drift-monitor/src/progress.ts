import { SinkUnavailableError, toDriftlineError } from '@driftline/core';
import type { GroupRecord } from '@driftline/drift';
import type { Progress, ProgressStage, ProgressStore } from '@driftline/warehouse';

/**
 * Records a stage's own `drift_progress` row; any failure is retriable (SINK_UNAVAILABLE). The row
 * is built by the service from windows already counted and sent, so no record can be at fault:
 * thrown as it came, an unclassified storage failure (`store/` replaced by a file) made the consumer
 * dead-letter a batch whose predictions stage one had counted — replaying the DLQ would count them
 * twice — and made the merge quarantine one window again on every retry (found by a review).
 */
export async function saveProgress(
  store: ProgressStore,
  stage: ProgressStage,
  group: string,
  topic: string,
  partition: number,
  progress: Progress,
): Promise<void> {
  try {
    await store.save(stage, group, topic, partition, progress);
  } catch (thrown) {
    const error = toDriftlineError(thrown);
    if (error.retriable) throw error;
    throw new SinkUnavailableError(
      `${topic}[${partition}]: drift_progress (${stage}) could not be recorded, retried: ${error.message}`,
      { cause: thrown, details: { ...error.details, refusedCode: error.code } },
    );
  }
}

/**
 * A stage-one group's record (`GroupRecord` of @driftline/drift) in drift_progress: the row of
 * stage `stage1`, the group, its partials topic and partition 0 — stage one's own rows name the
 * predictions topic, so no row of theirs shares the key — with `position` the partition count its
 * partials are routed over and `offset` its window size in ms. Written at every start it allows
 * (the same values: a start that differs is refused), which also keeps the row within
 * drift_progress' retention (400 days from the last write).
 */
const RECORD_PARTITION = 0;

export async function loadGroupRecord(
  store: ProgressStore,
  group: string,
  partialsTopic: string,
): Promise<GroupRecord | undefined> {
  const row = await store.load('stage1', group, partialsTopic, RECORD_PARTITION);
  return row === undefined ? undefined : { partialsPartitions: row.position, windowMs: row.offset };
}

export function saveGroupRecord(
  store: ProgressStore,
  group: string,
  partialsTopic: string,
  record: GroupRecord,
): Promise<void> {
  return saveProgress(store, 'stage1', group, partialsTopic, RECORD_PARTITION, {
    position: record.partialsPartitions,
    offset: record.windowMs,
  });
}
