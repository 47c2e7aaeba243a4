// The port, its in-memory spec and the key layout: importable without loading ioredis (the Redis
// adapters live behind the `@driftline/online-store/redis` subpath).
export {
  DEFAULT_READ_BYTES_IN_FLIGHT,
  DEFAULT_READ_ENTITIES_IN_FLIGHT,
  onlineReadEnvShape,
  onlineStoreEnvShape,
} from './env.js';
export {
  encodeEntity,
  isValidKeyPrefix,
  KEY_VERSION,
  parseRowKey,
  rowKey,
  v1RowKey,
  WINDOW_SUFFIX,
  windowKey,
} from './keys.js';
export { InMemoryOnlineStore, type InMemoryOnlineStoreOptions } from './memory-store.js';
export {
  type FeatureRow,
  MAX_READ_BATCH,
  type OnlineStore,
  ReadAbortedError,
  type ReadBatchOptions,
  type RowRequest,
  StoreOverloadedError,
  throwIfReadAborted,
  type WriteStats,
} from './port.js';
export {
  checkedProjection,
  DAMAGED_ROW,
  type DecodedRow,
  decodeProjectedRow,
  decodeStoredRow,
  fieldType,
  parseStoredRow,
  ROW_EVENT_ID,
  ROW_TIME,
  type RowProjection,
  rowProjection,
  withinTtl,
} from './rows.js';
