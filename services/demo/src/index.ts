export { type DemoOptions, type DemoResult, type DemoWindow, runDemo } from './run-demo.js';
