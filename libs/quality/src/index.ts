export * from './evaluate.js';
export * from './expectations.js';
export * from './freshness.js';
export * from './sketch.js';
export * from './state.js';
