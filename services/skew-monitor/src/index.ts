export type { SkewConfig } from './config.js';
export { skewMonitorService } from './service.js';
