import type { Migration } from './migrate.js';
import { alertDeliveriesMigration } from './tables/alert-deliveries.js';
import { driftProgressMigration } from './tables/drift-progress.js';
import { driftQuarantineMigration } from './tables/drift-quarantine.js';
import { driftWindowsMigration } from './tables/drift-windows.js';
import { modelVersionsMigration } from './tables/model-versions.js';
import { performanceWindowsMigration } from './tables/performance-windows.js';
import { predictionsMigration } from './tables/predictions.js';
import { referenceProfilesMigration } from './tables/reference-profiles.js';
import { retentionMigration } from './tables/retention.js';
import { retrainDecisionsMigration } from './tables/retrain-decisions.js';

/** Every table of driftline, in the order it is created. The only list of ClickHouse DDL. */
export const migrations: readonly Migration[] = [
  referenceProfilesMigration, // 0100
  driftWindowsMigration, // 0101
  driftProgressMigration, // 0102
  driftQuarantineMigration, // 0103
  predictionsMigration, // 0200 labeled_predictions, unlabeled_predictions
  performanceWindowsMigration, // 0201
  retrainDecisionsMigration, // 0300
  modelVersionsMigration, // 0350
  alertDeliveriesMigration, // 0400
  retentionMigration, // 0500 TTLs of the tables created without one (RETENTION_DAYS)
];
