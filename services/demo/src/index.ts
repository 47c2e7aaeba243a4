export { type DemoOptions, type DemoResult, type DemoWindow, runDemo } from './run-demo.js';
export { drawFeatures, eventsOfSecond, Random, truthOf } from './traffic.js';
