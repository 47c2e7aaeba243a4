export { formatDuration, parseDuration } from './duration.js';
export { onlineStoreEnvShape, type RedisConnectionConfig, toRedisConnectionConfig } from './env.js';
export {
  compareCodePoints,
  compareEventOrder,
  decodeValue,
  type EventOrderKey,
  encodeValue,
  type FeatureValue,
  isWellFormed,
  MAX_EVENT_ID_LENGTH,
  type ValidatedEvent,
  validateFeatureEvent,
} from './events.js';
export {
  encodeEntity,
  isValidKeyPrefix,
  KEY_VERSION,
  MAX_ENTITY_LENGTH,
  parseRowKey,
  rowKey,
  windowKey,
} from './keys.js';
export { loadFeatureViews } from './load.js';
export { type EntityWrite, planWrites } from './plan.js';
export {
  decodeProjectedRow,
  decodeRow,
  type FeatureRow,
  fieldType,
  ROW_EVENT_ID,
  ROW_TIME,
  type RowProjection,
  rowProjection,
} from './rows.js';
export {
  type AggregateFunction,
  type AggregateSpec,
  DEFAULT_SOURCE_TOPIC,
  type FeatureSpec,
  type FeatureType,
  type FeatureView,
  type FeatureViews,
  formatPath,
  MAX_FEATURES_PER_VIEW,
  MAX_WINDOW_MS,
  parseFeatureViews,
  parseFeatureViewsText,
} from './views.js';
export { aggregate, computeAggregates, dedupeByEventId, lastWriteWins, offlineRow } from './windows.js';
