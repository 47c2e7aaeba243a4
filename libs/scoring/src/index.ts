export { ModelFormatError, ScoringInputError } from './errors.js';
export {
  type CompiledXgboostModel,
  compiledModelBuffers,
  compileXgboostModel,
  loadXgboostModel,
  type XgboostModel,
  xgboostModelOf,
} from './model.js';
export { SUPPORTED_OBJECTIVES } from './objective.js';
export { DEFAULT_MODEL_LIMITS, type ModelLimits, SERVED_MODEL_LIMITS } from './parse.js';
export { missingAsFloat32, type TrainerFeatureEncoder, trainerFeatureEncoder } from './trainer-meta.js';
