export { type FeatureApiConfig, featureApi } from './service.js';
