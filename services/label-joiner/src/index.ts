export type { LabelJoinerConfig } from './config.js';
export { labelJoinerService } from './service.js';
