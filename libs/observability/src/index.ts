export {
  type HealthCheck,
  MAX_OBSERVABILITY_CONNECTIONS,
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
  OTHER_LABEL_VALUE,
  type Registry,
} from './metrics.js';
