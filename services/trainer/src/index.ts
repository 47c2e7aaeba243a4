export type { TrainerConfig } from './config.js';
export { trainerService } from './service.js';
