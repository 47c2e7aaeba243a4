export * from './config.js';
export * from './duration.js';
export * from './errors.js';
export * from './event-time.js';
export * from './logger.js';
export * from './redact.js';
export * from './redis-config.js';
