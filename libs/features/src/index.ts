export {
  compareCodePoints,
  compareEventCopies,
  compareEventOrder,
  copyDigest,
  decodeValue,
  type EventOrderKey,
  encodeValue,
  hasFeatureType,
  isWellFormed,
  MAX_ENTITY_LENGTH,
  MAX_EVENT_ID_LENGTH,
  MAX_STRING_FEATURE_LENGTH,
  type ValidatedEvent,
  validateFeatureEvent,
} from './events.js';
export { loadFeatureViews } from './load.js';
export { type EntityWrite, planWrites } from './plan.js';
export {
  type AggregateFunction,
  type AggregateSpec,
  aggregateDefinition,
  aggregateDefinitionChanges,
  expectationsOf,
  type FeatureSpec,
  type FeatureType,
  type FeatureView,
  type FeatureViews,
  formatPath,
  freshnessSpecs,
  parseFeatureViews,
  parseFeatureViewsText,
} from './views.js';
export { aggregate, computeAggregates, lastWriteWins, offlineRow } from './windows.js';
