export { chartedVersions, featuresByDrift, MAX_CHART_VERSIONS, MAX_REPORT_FEATURES } from './bounds.js';
export {
  type CategoricalProfileView,
  featureDistribution,
  type NumericProfileView,
  numericBinLabels,
  numericBinOf,
  type ProfileView,
} from './distribution.js';
export { DEFAULT_REALIZED_COVERAGE } from './estimates.js';
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
  QualityPoint,
  ReportData,
  RetrainEvent,
  SkewPoint,
} from './types.js';
