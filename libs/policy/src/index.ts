export * from './canary.js';
export * from './comparison.js';
export * from './comparison-config.js';
export * from './confidence-sequence.js';
export * from './config.js';
export * from './decide.js';
export * from './signals.js';
export * from './stages.js';
