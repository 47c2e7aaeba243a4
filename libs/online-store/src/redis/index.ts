export {
  createRedisClient,
  REDIS_POLICIES,
  type RedisClient,
  type RedisClientOptions,
  type RedisClientPolicy,
  type RedisUse,
  STALLED_AFTER_TIMEOUTS,
  StallWatch,
  waitReady,
} from './client.js';
export {
  checkRedisDatabase,
  checkRedisDurability,
  checkRedisServer,
  type DurabilityReport,
  type DurabilityStakes,
  JOIN_STATE_STAKES,
  ONLINE_FEATURES_STAKES,
  unsupportedRedis,
  watchRedisServer,
} from './durability.js';
export { classifyRedisError } from './errors.js';
export { FEATURE_V1_READ_SCRIPT, FEATURE_WRITE_SCRIPT } from './feature-script.js';
export {
  type CreateRedisOnlineStoreOptions,
  corruptRowReporter,
  createRedisOnlineStore,
  RedisOnlineStore,
  type RedisOnlineStoreOptions,
} from './feature-store.js';
export {
  type CreateRedisJoinStoreOptions,
  createRedisJoinStore,
  JOIN_KEY_VERSION,
  RedisJoinStore,
  type RedisKeys,
  redisKeys,
} from './join-store.js';
export {
  type MarkerAtStart,
  STATE_MARKER_INTERVAL_MS,
  type StateMarker,
  type StateMarkerOptions,
  watchStateMarker,
} from './state-marker.js';
export {
  featuresStateMarkerKey,
  type StateMarkerReader,
  watchFeaturesStateMarker,
} from './state-marker-reader.js';
export { checkViewDefinitions, type StaleView, staleViewsKey, viewDefinitionsKey } from './view-definitions.js';
