export {
  type ClickHouse,
  closeEmbeddedEngine,
  createClickHouse,
  embeddedQueryAbandoned,
  type QueryParams,
  type TypedResult,
} from './client.js';
export { type ClickHouseConfig, clickhouseEnvShape, toClickHouseConfig } from './config.js';
export { ENVIRONMENT_CODES, REJECTED_CODES, UNAVAILABLE_CODES } from './error-codes.js';
export {
  ANSWER_TOO_LARGE,
  ANSWER_URL_TOO_LONG,
  ANSWER_WITHOUT_CODE,
  type ClickHouseConnection,
  type ClickHouseErrorCategory,
  type ClickHouseErrorInfo,
  classifyClickHouseError,
  toWarehouseError,
} from './errors.js';
export { type MigrateProgress, type Migration, type MigrationStatus, migrate, migrationStatus } from './migrate.js';
export { migrations } from './migrations.js';
export type { LiveOutcome, PipelineCounts, TrainedVersion, WindowVerdicts } from './read-models/pipeline-summary.js';
export type { ReportRange } from './read-models/report.js';
export type { AlertDeliveryRow, AlertDeliveryStore } from './tables/alert-deliveries.js';
export type { DataQualityRow, DataQualityStore } from './tables/data-quality-windows.js';
export type {
  Progress,
  ProgressStage,
  ProgressStore,
} from './tables/drift-progress.js';
export type { DriftQuarantineRow, DriftQuarantineStore } from './tables/drift-quarantine.js';
export type { DriftWindowRow, DriftWindowStore } from './tables/drift-windows.js';
export type { ModelTransitionStore, TransitionRow, VersionArtifacts } from './tables/model-transitions.js';
export type { ModelRegistry, ModelVersionRow } from './tables/model-versions.js';
export type {
  HistogramFlush,
  PerformanceEstimateStore,
  StoredCalibration,
} from './tables/performance-estimates.js';
export type {
  PerformanceStore,
  PerformanceWindow,
} from './tables/performance-windows.js';
export {
  ClickHousePredictionStore,
  type ExpiredPredictionRow,
  type JoinedRow,
  LABEL_CLOCK_QUORUM,
  type LabelClock,
  MAX_PAIRS_PER_READ,
  MAX_SEGMENT_CHARS,
  type PairedOutcome,
  type PairQuery,
  type PredictionStore,
  segmentValue,
  type TrainingRow,
  type WindowReadOptions,
  type WrittenLookup,
  type WrittenPrediction,
} from './tables/predictions.js';
export type { ReferenceStore } from './tables/reference-profiles.js';
export { RETENTION_DAYS } from './tables/retention.js';
export type { DecisionRow, DecisionStore } from './tables/retrain-decisions.js';
export type { SequentialDetectionRow, SequentialDetectionStore } from './tables/sequential-detections.js';
export type {
  SkewCountsRow,
  SkewPartialRow,
  SkewTotalsRow,
  SkewWindowKey,
  SkewWindowStore,
} from './tables/skew-windows.js';
export { chTime } from './time.js';
export { openWarehouse, type Warehouse, warehouseOn } from './warehouse.js';
