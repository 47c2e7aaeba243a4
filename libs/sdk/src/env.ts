import { type RegistryConfig, registryEnvShape, toRegistryConfig } from '@driftline/codec';
import { type Env, type EventTimeBounds, eventTimeEnvShape, parseEnv, toEventTimeBounds } from '@driftline/core';
import { type KafkaConfig, kafkaEnvShape, toKafkaConfig } from '@driftline/kafka';

/**
 * Reads the Kafka and Schema Registry connection from the variables the services use
 * (DRIFTLINE_KAFKA_BROKERS, _CLIENT_ID, _SSL, _SASL_*, DRIFTLINE_SCHEMA_REGISTRY_URL, _USERNAME,
 * _PASSWORD), and the services' event-time bounds (DRIFTLINE_EVENT_TIME_MAX_FUTURE, _MIN; the
 * defaults when unset), so the SDK refuses what the services would dead-letter and takes what
 * they take (a minimum moved back for a backfill); a missing or wrong one throws a ConfigError
 * naming it.
 */
export function connectionFromEnv(env: Env = process.env): {
  kafka: KafkaConfig;
  registry: RegistryConfig;
  eventTime: EventTimeBounds;
} {
  return {
    kafka: toKafkaConfig(parseEnv(kafkaEnvShape, env)),
    registry: toRegistryConfig(parseEnv(registryEnvShape, env)),
    eventTime: toEventTimeBounds(parseEnv(eventTimeEnvShape, env)),
  };
}
