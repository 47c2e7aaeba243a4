// What the model-server benchmark (bench/model-server) drives directly. Not part of the service's public API.
export { startModelServer } from '../src/server.js';
export { artifactLoader } from '../src/serving.js';
