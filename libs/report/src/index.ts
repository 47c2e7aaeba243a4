export {
  chartedVersions,
  featuresByDrift,
  latestEvents,
  MAX_CHART_MARKERS,
  MAX_CHART_VERSIONS,
  MAX_MODEL_CARDS,
  MAX_REPORT_FEATURES,
  MAX_TIMELINE_EVENTS,
  modelCardVersions,
} from './bounds.js';
export {
  type CategoricalProfileView,
  featureDistribution,
  type NumericProfileView,
  numericBinLabels,
  numericBinOf,
  type ProfileView,
  UNSEEN_VALUES,
} from './distribution.js';
export { DEFAULT_ALERT_MIN_SAMPLES, DEFAULT_REALIZED_COVERAGE } from './estimates.js';
export { type ReportOptions, renderReport } from './html.js';
export {
  type ModelCardData,
  type ModelCardDecision,
  type ModelCardDrift,
  type ModelCardLive,
  type ModelCardTraining,
  type ModelCardTransition,
  modelCardFileName,
  offlineComparison,
  renderModelCard,
  renderModelCardText,
} from './model-card.js';
export { productionVersion } from './production.js';
export { qualityChecks } from './quality.js';
export { skewFeatures } from './skew.js';
export {
  chartedColumns,
  MAX_TABLE_COLUMNS,
  renderTableReport,
  type TableColumnDistribution,
  type TableColumnDrift,
  type TableReportData,
} from './table-report.js';
export type {
  BusinessOutcomePoint,
  DistributionBin,
  DriftPoint,
  DriftTotals,
  EpochMs,
  FeatureDistribution,
  PerformancePoint,
  QualityCheck,
  QualityPoint,
  QualityTotals,
  ReportData,
  RetrainEvent,
  SkewFeature,
  SkewPoint,
  SkewTotals,
  TimelineTotals,
} from './types.js';
