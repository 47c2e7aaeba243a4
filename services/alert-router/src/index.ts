export type { AlertRouterConfig } from './config.js';
export { alertRouterService } from './service.js';
