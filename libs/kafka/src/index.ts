export {
  type AdoptedOffset,
  adoptGroupOffsets,
  committedOffsets,
  deleteTopics,
  describeGroup,
  describeTopic,
  ensureTopics,
  groupHasCommitted,
  listGroups,
  listTopics,
  partitionCount,
  probeCluster,
  setGroupOffsets,
  type TopicSpec,
  topicOffsets,
} from './admin.js';
export { type BackoffPolicy, defaultBackoff } from './backoff.js';
export { isolateRejected } from './bisect.js';
export { createKafkaClient, type KafkaClient, saslConnectionOf } from './client.js';
export { type KafkaConfig, kafkaEnvShape, toKafkaConfig } from './config.js';
export {
  type BatchContext,
  type BatchProcessor,
  type ConsumerHandle,
  type ConsumerOptions,
  DEFAULT_FAULT_HOLD_MS,
  DEFAULT_METADATA_MAX_AGE_MS,
  DEFAULT_STALL_TIMEOUT_MS,
  type PartitionPosition,
  type ProcessResult,
  startConsumer,
  untilCaughtUp,
} from './consumer.js';
export { kafkaCredentialsError, type SaslConnection } from './credentials.js';
export { type DeadLetterLimits, deadLetterUnsent, type UnsentRecord } from './dead-letters.js';
export type { Deferral } from './deferral.js';
export { type HeldPartition, leasedPartitions, type Membership } from './group-membership.js';
export { partitionKey } from './partition-key.js';
export { partitionOf } from './partitioner.js';
export { createProducer, type EventProducer, REFUSAL_TYPES } from './producer.js';
export { createPublisher, type Publisher, type PublisherOptions } from './publisher.js';
export { DEFAULT_READ_ANSWER_TIMEOUT_MS, readToEnd } from './read-to-end.js';
export { recordFingerprint } from './record-fingerprint.js';
export {
  DEFAULT_MAX_REASON_BYTES,
  type DeadLetter,
  type DecodedRecord,
  DLQ_HEADERS,
  type InboundRecord,
  type OutboundMessage,
} from './records.js';
export {
  type DeadLetterGroup,
  type DeadLetterSelection,
  DeadLetterSummary,
  type DeadLetterView,
  headerText,
  REPLAYED_FROM_HEADER,
  readDeadLetter,
  replayMessageOf,
  selects,
  sourceRecordOf,
} from './replay.js';
export type { Stall } from './stall.js';
