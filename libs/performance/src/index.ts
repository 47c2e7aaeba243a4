export {
  type BoundOp,
  type Breach,
  evaluateBounds,
  type MetricBound,
  parseBounds,
  performanceAlertId,
} from './alerts.js';
export {
  classificationMetrics,
  logLoss,
  type MetricName,
  type Metrics,
  regressionMetrics,
  rocAuc,
  type Task,
} from './metrics.js';
export {
  ALL_SEGMENT,
  boundSegments,
  computeWindow,
  type ExpiredPoint,
  type LabeledPoint,
  MISSING_SEGMENT,
  OTHER_SEGMENT,
  type PerformanceRow,
  parseWindowKey,
  type WindowInput,
  type WindowRef,
  windowKey,
  windowStart,
} from './windows.js';
