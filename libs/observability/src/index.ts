export { type HealthCheck, type ObservabilityServer, startObservabilityServer } from './http-server.js';
export { createLogger } from './logger.js';
export { counter, createMetricsRegistry, gauge, histogram, type Registry } from './metrics.js';
