export {
  type CategoricalProfileView,
  featureDistribution,
  type NumericProfileView,
  numericBinLabels,
  numericBinOf,
  type ProfileView,
} from './distribution.js';
export { renderReport } from './html.js';
export type {
  DistributionBin,
  DriftPoint,
  EpochMs,
  FeatureDistribution,
  PerformancePoint,
  ReportData,
  RetrainEvent,
} from './types.js';
