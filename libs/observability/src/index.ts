export {
  CAP_WARNING_INTERVAL_MS,
  connectionsShedCounter,
  errorJson,
  guardHttpServer,
  type HttpGuard,
} from './http-guard.js';
export {
  type HealthCheck,
  MAX_OBSERVABILITY_CONNECTIONS,
  MAX_OBSERVABILITY_PIPELINED,
  OBSERVABILITY_TIMEOUTS,
  type ObservabilityServer,
  type ObservabilityTimeouts,
  startObservabilityServer,
} from './http-server.js';
export { createLogger } from './logger.js';
export {
  BOUNDED_LABEL_IDLE_MS,
  type BoundedLabels,
  counter,
  createMetricsRegistry,
  gauge,
  histogram,
  MAX_LABEL_VALUES,
  MAX_SERIES_PER_METRIC,
  OTHER_LABEL_VALUE,
  type Registry,
} from './metrics.js';
