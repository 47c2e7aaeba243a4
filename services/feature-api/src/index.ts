export {
  createReaderRedis,
  type EntityResult,
  type FeatureApiOptions,
  type FeatureApiServer,
  startFeatureApi,
} from './api.js';
export { type FeatureApiConfig, featureApi, featureApiEnvShape } from './service.js';
