export type { DriftConfig } from './config.js';
export { driftMonitorService } from './service.js';
