// What the model-server benchmark (bench/model-server) drives directly. Not part of the service's public API.

export { startLogThread } from '../src/log-thread.js';
export { startModelServer, THREAD_LOG_BATCH } from '../src/server.js';
export { artifactLoader } from '../src/serving.js';
