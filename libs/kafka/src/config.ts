import { ConfigError, envField } from '@driftline/core';
import { z } from 'zod';

/** Environment variables of the Kafka connection; composed into each service's config schema. */
export const kafkaEnvShape = {
  DRIFTLINE_KAFKA_BROKERS: envField.list(),
  DRIFTLINE_KAFKA_CLIENT_ID: envField.string().default('driftline'),
  DRIFTLINE_KAFKA_SSL: envField.bool().default(false),
  DRIFTLINE_KAFKA_SASL_MECHANISM: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']).optional(),
  DRIFTLINE_KAFKA_SASL_USERNAME: envField.string().optional(),
  DRIFTLINE_KAFKA_SASL_PASSWORD: envField.string().optional(),
};

export interface KafkaConfig {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly ssl: boolean;
  readonly sasl?: {
    readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
    readonly username: string;
    readonly password: string;
  };
}

type KafkaEnv = z.infer<z.ZodObject<typeof kafkaEnvShape>>;

export function toKafkaConfig(env: KafkaEnv): KafkaConfig {
  const mechanism = env.DRIFTLINE_KAFKA_SASL_MECHANISM;
  if (mechanism === undefined)
    return {
      brokers: env.DRIFTLINE_KAFKA_BROKERS,
      clientId: env.DRIFTLINE_KAFKA_CLIENT_ID,
      ssl: env.DRIFTLINE_KAFKA_SSL,
    };
  if (env.DRIFTLINE_KAFKA_SASL_USERNAME === undefined) {
    throw new ConfigError(
      'DRIFTLINE_KAFKA_SASL_USERNAME',
      `required when DRIFTLINE_KAFKA_SASL_MECHANISM is ${mechanism}`,
    );
  }
  if (env.DRIFTLINE_KAFKA_SASL_PASSWORD === undefined) {
    throw new ConfigError(
      'DRIFTLINE_KAFKA_SASL_PASSWORD',
      `required when DRIFTLINE_KAFKA_SASL_MECHANISM is ${mechanism}`,
    );
  }
  return {
    brokers: env.DRIFTLINE_KAFKA_BROKERS,
    clientId: env.DRIFTLINE_KAFKA_CLIENT_ID,
    ssl: env.DRIFTLINE_KAFKA_SSL,
    sasl: { mechanism, username: env.DRIFTLINE_KAFKA_SASL_USERNAME, password: env.DRIFTLINE_KAFKA_SASL_PASSWORD },
  };
}
