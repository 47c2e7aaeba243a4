export { type TrainerConfig, toTrainerConfig, trainerEnvShape } from './config.js';
export {
  buildDataset,
  COLUMNS,
  type Dataset,
  datasetToArrow,
  type FeatureColumn,
  type FeatureValue,
  type LabeledRow,
  parseFeatures,
} from './dataset.js';
export { trainerMigrations } from './migrations.js';
export {
  decidePromotion,
  type PromotionMetric,
  type PromotionRule,
  type PromotionVerdict,
  versionFor,
} from './promotion.js';
export { referenceFromDataset } from './reference.js';
export { trainerService } from './service.js';
export {
  ClickHouseModelRegistry,
  LabeledPredictionsSource,
  type ModelRegistry,
  type ModelVersionRow,
  type TrainingSource,
} from './stores.js';
export { handleRequest, modelEvents, type Outcome, type TrainerDeps } from './trainer.js';
export {
  type Device,
  ensureWorkerPython,
  readWorkerResult,
  runWorker,
  WORKER_DIR,
  type WorkerResult,
} from './worker.js';
