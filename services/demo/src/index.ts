export { drawFeatures, eventsOfSecond, Random, truthOf } from './traffic.js';
