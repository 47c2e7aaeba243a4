export type { RetrainTriggerConfig } from './config.js';
export { retrainTriggerService } from './service.js';
