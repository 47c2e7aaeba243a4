export {
  type CategoricalProfileView,
  featureDistribution,
  type NumericProfileView,
  numericBinLabels,
  numericBinOf,
  type ProfileView,
} from './distribution.js';
export { renderReport } from './html.js';
export {
  renderTableReport,
  type TableColumnDistribution,
  type TableColumnDrift,
  type TableReportData,
} from './table-report.js';
export type {
  DistributionBin,
  DriftPoint,
  EpochMs,
  FeatureDistribution,
  PerformancePoint,
  ReportData,
  RetrainEvent,
} from './types.js';
