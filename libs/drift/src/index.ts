export * from './alert.js';
export * from './bounds.js';
export * from './decide.js';
export * from './merge.js';
export * from './messages.js';
export * from './partition.js';
export * from './reference.js';
export * from './window.js';
