import type { Migration } from './migrate.js';
import { alertDeliveriesMigration, alertDeliveryIdsMigration } from './tables/alert-deliveries.js';
import { dataQualityWindowsMigration } from './tables/data-quality-windows.js';
import { driftProgressLateFromMigration, driftProgressMigration } from './tables/drift-progress.js';
import { driftQuarantineMigration } from './tables/drift-quarantine.js';
import { driftWindowsMigration, driftWindowsTimeKeyMigration } from './tables/drift-windows.js';
import { modelTransitionsMigration } from './tables/model-transitions.js';
import { modelVersionsMigration } from './tables/model-versions.js';
import { performanceEstimatesMigration, scoreHistogramsV2Migration } from './tables/performance-estimates.js';
import { performanceWindowsMigration, performanceWindowsSampledMigration } from './tables/performance-windows.js';
import {
  pairedPredictionsMigration,
  predictionIdIndexMigration,
  predictionsMigration,
  unscoredVersionsMigration,
} from './tables/predictions.js';
import { referenceProfilesMigration } from './tables/reference-profiles.js';
import { retentionMigration } from './tables/retention.js';
import { retrainDecisionsMigration } from './tables/retrain-decisions.js';
import { sequentialDetectionsMigration } from './tables/sequential-detections.js';
import {
  skewWindowsExpiredMigration,
  skewWindowsMigration,
  skewWindowsV2Migration,
  skewWindowsWindowEndMigration,
} from './tables/skew-windows.js';
import { windowEndKeysMigration } from './tables/window-end-keys.js';

/** Every table of driftline, in the order it is created. The only list of ClickHouse DDL. */
export const migrations: readonly Migration[] = [
  referenceProfilesMigration, // 0100
  driftWindowsMigration, // 0101
  driftProgressMigration, // 0102
  driftQuarantineMigration, // 0103
  driftProgressLateFromMigration, // 0104 late_from on drift_progress
  predictionsMigration, // 0200 labeled_predictions, unlabeled_predictions
  performanceWindowsMigration, // 0201
  retrainDecisionsMigration, // 0300
  modelVersionsMigration, // 0350
  alertDeliveriesMigration, // 0400
  retentionMigration, // 0500 TTLs of the tables created without one (RETENTION_DAYS)
  modelTransitionsMigration, // 0510 (no TTL: the model-controller's state, see the file)
  pairedPredictionsMigration, // 0520 role, scores, label_value on labeled/unlabeled_predictions
  dataQualityWindowsMigration, // 0600 (TTL 400 days, in the table)
  performanceEstimatesMigration, // 0610 CBPE + business columns, score_histograms (TTL 400 days), calibration_maps
  skewWindowsMigration, // 0620 (TTL 400 days, in the table)
  sequentialDetectionsMigration, // 0640 (TTL 400 days, in the table)
  scoreHistogramsV2Migration, // 0650 score_histograms_v2: threshold in the key (a new table, both read; nothing copied)
  predictionIdIndexMigration, // 0660 bloom filter of prediction_id on labeled/unlabeled_predictions (new parts)
  skewWindowsV2Migration, // 0670 skew_windows_v2: a recreated source log's rows, its epoch in the key (both read; nothing copied)
  performanceWindowsSampledMigration, // 0680 sampled_labels on performance_windows (windows read as a sample)
  skewWindowsExpiredMigration, // 0690 expired on skew_windows and skew_windows_v2 (the monitor lagging past a view's TTL)
  unscoredVersionsMigration, // 0700 unscored on labeled/unlabeled_predictions (versions that could not score an instance)
  skewWindowsWindowEndMigration, // 0710 window_end in the key of skew_windows and skew_windows_v2 (tables made before: rebuilt, rows kept)
  alertDeliveryIdsMigration, // 0720 alert_delivery_ids: the id lookup of alert_deliveries (a view; rows before it copied in bounded calls)
  windowEndKeysMigration, // 0730 window_end in the key of drift_windows, drift_quarantine, data_quality_windows, sequential_detections (tables made before: rebuilt, rows kept; drift_windows by 0740)
  driftWindowsTimeKeyMigration, // 0740 drift_windows sorted by (model, method, window_start, …) (tables made before: rebuilt, rows kept)
];
