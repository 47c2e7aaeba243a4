export { modelServer } from './service.js';
