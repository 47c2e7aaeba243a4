import { type RegistryConfig, registryEnvShape, toRegistryConfig } from '@driftline/codec';
import { type Env, type EventTimeBounds, eventTimeEnvShape, parseEnv, toEventTimeBounds } from '@driftline/core';
import { type KafkaConfig, kafkaEnvShape, toKafkaConfig } from '@driftline/kafka';
import { checkedTopicPrefix } from './prefix.js';

/**
 * Reads the Kafka and Schema Registry connection from the variables the services use
 * (DRIFTLINE_KAFKA_BROKERS, _CLIENT_ID, _SSL, _SASL_*, DRIFTLINE_SCHEMA_REGISTRY_URL, _USERNAME,
 * _PASSWORD), the services' topic prefix (DRIFTLINE_TOPIC_PREFIX, with their rule: letters, digits,
 * dot, dash, underscore; '' when unset), and the services' event-time bounds (DRIFTLINE_EVENT_TIME_MAX_FUTURE, _MIN; the
 * defaults when unset), so the SDK refuses what the services would dead-letter and takes what
 * they take (a minimum moved back for a backfill); a missing or wrong one throws a ConfigError
 * naming it.
 */
export function connectionFromEnv(env: Env = process.env): {
  kafka: KafkaConfig;
  registry: RegistryConfig;
  eventTime: EventTimeBounds;
  topicPrefix: string;
} {
  return {
    kafka: toKafkaConfig(parseEnv(kafkaEnvShape, env)),
    registry: toRegistryConfig(parseEnv(registryEnvShape, env)),
    eventTime: toEventTimeBounds(parseEnv(eventTimeEnvShape, env)),
    // Before, it was not read: an SDK beside services with a prefix wrote to the unprefixed topics.
    topicPrefix: checkedTopicPrefix('DRIFTLINE_TOPIC_PREFIX', env.DRIFTLINE_TOPIC_PREFIX),
  };
}
