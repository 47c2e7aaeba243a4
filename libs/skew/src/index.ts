export {
  awaitsRelease,
  breaches,
  DEFAULT_ALERT_RULE,
  RELEASE_OVERLAP_MS,
  releaseCatchUpMs,
  releaseHorizon,
  releaseMarginMs,
  releaseRange,
  type SkewAlertRule,
  skewAlert,
  skewAlertId,
  skewAlertTime,
  type WrittenWindow,
} from './alert.js';
export {
  countsIn,
  type FeatureSources,
  type FutureRows,
  featureSources,
  foldPredictions,
  groupId,
  indexRows,
  planReads,
  type SampledPrediction,
  type SkewGroupKey,
  type StoredRow,
  type ViewRead,
  windowStartOf,
} from './batch.js';
export { DEFAULT_TOLERANCE, observe, type StoredValue, sameValue, type Tolerance } from './compare.js';
export {
  copyCounts,
  emptyCounts,
  mergeInto,
  type SkewCounts,
  type SkewSummary,
  STALENESS_BOUNDS_MS,
  STALENESS_BUCKETS,
  stalenessBucket,
  stalenessQuantile,
  summarize,
} from './counts.js';
export { isSampled, resendKey, samplingKey } from './sample.js';
