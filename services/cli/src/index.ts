export { allMigrations } from './migrations.js';
export { allServices } from './services.js';
