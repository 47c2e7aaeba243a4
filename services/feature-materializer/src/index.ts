export { featureMaterializer, type MaterializerConfig } from './service.js';
