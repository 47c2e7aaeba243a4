import { SinkUnavailableError, toDriftlineError } from '@driftline/core';
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
