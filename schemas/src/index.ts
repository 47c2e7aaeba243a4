export * from './contracts.js';
export * from './generated.js';
export type { FeatureValue } from './values.js';
