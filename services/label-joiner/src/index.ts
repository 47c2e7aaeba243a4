export { type LabelJoinerConfig, labelJoinerEnvShape } from './config.js';
export { labelJoinerService } from './service.js';
