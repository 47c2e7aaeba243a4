import { type RegistryConfig, registryEnvShape, toRegistryConfig } from '@driftline/codec';
import { type Env, parseEnv } from '@driftline/core';
import { type KafkaConfig, kafkaEnvShape, toKafkaConfig } from '@driftline/kafka';

/**
 * Reads the Kafka and Schema Registry connection from the variables the services use
 * (DRIFTLINE_KAFKA_BROKERS, _CLIENT_ID, _SSL, _SASL_*, DRIFTLINE_SCHEMA_REGISTRY_URL, _USERNAME,
 * _PASSWORD); a missing or wrong one throws a ConfigError naming it.
 */
export function connectionFromEnv(env: Env = process.env): { kafka: KafkaConfig; registry: RegistryConfig } {
  return {
    kafka: toKafkaConfig(parseEnv(kafkaEnvShape, env)),
    registry: toRegistryConfig(parseEnv(registryEnvShape, env)),
  };
}
