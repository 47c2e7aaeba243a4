// What the model-server benchmark (bench/model-server) drives directly. Not part of the service's public API.

export { artifactLoader } from '../src/artifacts.js';
export { startThreadLog } from '../src/log-thread.js';
export { DEFAULT_LOG_BOUNDS, type PredictionLogTarget, startModelServer, THREAD_LOG_BATCH } from '../src/server.js';
