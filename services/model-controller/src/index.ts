export type { ModelControllerConfig } from './config.js';
export { modelControllerService } from './service.js';
