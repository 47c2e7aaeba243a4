// What the online-path benchmark (bench/features) drives directly. Not part of the service's public API.
export { startFeatureMaterializer } from '../src/materializer.js';
