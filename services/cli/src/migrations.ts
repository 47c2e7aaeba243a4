import type { Migration } from '@driftline/clickhouse';
import { driftMigrations } from '@driftline/drift-monitor';
import { labelJoinerMigrations } from '@driftline/label-joiner';
import { retrainTriggerMigrations } from '@driftline/retrain-trigger';
import { trainerMigrations } from '@driftline/trainer';

/** ClickHouse DDL of every service, applied once per database by the runner. */
export const allMigrations: readonly Migration[] = [
  ...labelJoinerMigrations, // 0200_labeled_predictions
  ...retrainTriggerMigrations, // 0300_retrain_decisions
  ...trainerMigrations, // 0350_model_versions
  ...driftMigrations, // 0100_reference_profiles, 0101_drift_windows, 0102_drift_progress
];
