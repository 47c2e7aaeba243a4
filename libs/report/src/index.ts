export {
  type CategoricalProfileView,
  featureDistribution,
  type NumericProfileView,
  numericBinLabels,
  numericBinOf,
  type ProfileView,
} from './distribution.js';
export { isPredictionFeature, renderReport } from './html.js';
export {
  type BarChartOptions,
  barChart,
  escapeHtml,
  type LineChartOptions,
  lineChart,
  niceTicks,
  type Series,
} from './svg.js';
export type {
  DistributionBin,
  DriftPoint,
  EpochMs,
  FeatureDistribution,
  PerformancePoint,
  ReportData,
  RetrainEvent,
} from './types.js';
