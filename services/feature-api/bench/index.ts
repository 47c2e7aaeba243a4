// What the online-path benchmark (bench/features) drives directly: the API server on the main
// thread or on its worker thread. Not part of the service's public API.
export { startFeatureApi } from '../src/api.js';
export { startFeatureApiThread } from '../src/thread.js';
