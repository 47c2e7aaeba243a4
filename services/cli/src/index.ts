export { buildAndStoreReference } from './commands/reference.js';
export { allServices } from './services.js';
