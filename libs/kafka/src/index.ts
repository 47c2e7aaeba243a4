export { committedOffsets, ensureTopics, type TopicSpec } from './admin.js';
export { type BackoffPolicy, backoffDelay, defaultBackoff } from './backoff.js';
export { deliverWithBisect } from './bisect.js';
export { createKafka, type Kafka } from './client.js';
export { type KafkaConfig, kafkaEnvShape, toKafkaConfig } from './config.js';
export {
  type BatchContext,
  type BatchProcessor,
  type ConsumerHandle,
  type ConsumerOptions,
  type ProcessResult,
  startConsumer,
} from './consumer.js';
export { createProducer, type EventProducer } from './producer.js';
export {
  type DeadLetter,
  type DecodedRecord,
  DLQ_HEADERS,
  deadLetterMessage,
  type InboundRecord,
  type OutboundMessage,
} from './records.js';
