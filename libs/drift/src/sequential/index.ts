export * from './alert.js';
export * from './calibrate.js';
export * from './detector.js';
export * from './grid.js';
export * from './simulate.js';
export * from './streams.js';
