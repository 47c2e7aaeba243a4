export { type HealthCheck, type ObservabilityServer, startObservabilityServer } from './http-server.js';
export { createLogger } from './logger.js';
export {
  type BoundedLabels,
  counter,
  createMetricsRegistry,
  gauge,
  histogram,
  MAX_LABEL_VALUES,
  OTHER_LABEL_VALUE,
  type Registry,
} from './metrics.js';
