export { WRITE_SCRIPT } from './lua.js';
export { type MaterializerHandle, type MaterializerOptions, startFeatureMaterializer } from './materializer.js';
export { createWriterRedis, RedisFeatureWriter, type WriteStats } from './redis-writer.js';
export { featureMaterializer, type MaterializerConfig, materializerEnvShape } from './service.js';
