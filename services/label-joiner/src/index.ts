export { duration, type LabelJoinerConfig, labelJoinerEnvShape, toLabelJoinerConfig } from './config.js';
export {
  type EngineStats,
  JoinEngine,
  type JoinedSink,
  type JoinerRecord,
  type PayloadDecoder,
  validateLabel,
  validatePrediction,
} from './engine.js';
export { type AlertPublisher, ExpiryScanner, every, type RecomputeOptions, WindowRecomputer } from './loops.js';
export { labelJoinerMigrations } from './migrations.js';
export { createJoinerRedis } from './redis-client.js';
export { RedisJoinStore, type RedisKeys, redisKeys } from './redis-store.js';
export { labelJoinerService } from './service.js';
export {
  chTime,
  type ExpiredPredictionRow,
  type JoinedRow,
  JoinerSink,
  segmentValue,
  type WindowData,
} from './sink.js';
