import { ConfigError, envField } from '@driftline/core';
import { z } from 'zod';

/** Environment variables of the Kafka connection; composed into each service's config schema. */
/** host:port ([v6]:port), port 1–65535: kafkajs takes `localhost` (no port) as port NaN and fails as an outage. */
const BROKER = /^(\[[0-9A-Fa-f:.]+\]|[^:\s,[\]]+):(\d{1,5})$/;

export const kafkaEnvShape = {
  DRIFTLINE_KAFKA_BROKERS: envField.list().superRefine((brokers, ctx) => {
    for (const b of brokers) {
      const port = Number(BROKER.exec(b)?.[2] ?? 0);
      if (port < 1 || port > 65_535) {
        ctx.addIssue({ code: 'custom', message: `${JSON.stringify(b)} is not host:port (e.g. kafka-1:9092)` });
        return;
      }
    }
  }),
  DRIFTLINE_KAFKA_CLIENT_ID: envField.name().default('driftline'),
  DRIFTLINE_KAFKA_SSL: envField.bool().default(false),
  DRIFTLINE_KAFKA_SASL_MECHANISM: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']).optional(),
  DRIFTLINE_KAFKA_SASL_USERNAME: envField.name().optional(),
  DRIFTLINE_KAFKA_SASL_PASSWORD: envField.string().optional(),
  /** Bytes of one dead-letter produce request, and so the largest dead letter (larger ones are truncated). */
  DRIFTLINE_KAFKA_DLQ_MAX_BATCH_BYTES: envField.int(16 * 1024, 64 * 1024 * 1024).default(512 * 1024),
  /** Records of one dead-letter produce request. */
  DRIFTLINE_KAFKA_DLQ_MAX_BATCH_RECORDS: envField.int(1, 100_000).default(1_000),
  /**
   * How long a batch on which the processor fails every record with an unclassified error is held
   * (retried, nothing committed) before its oldest record is dead-lettered; `0` = at once.
   */
  DRIFTLINE_KAFKA_FAULT_HOLD: envField.duration(0, 3_600_000).default(60_000),
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
  /** Bounds of the consumer loop's dead-letter sends; defaults when absent (see dead-letters.ts). */
  readonly deadLetter?: { readonly maxBatchBytes: number; readonly maxBatchRecords: number };
  /** The consumer loop's hold of a suspected processor fault, in ms (`ConsumerOptions.faultHoldMs`). */
  readonly faultHoldMs?: number;
}

type KafkaEnv = z.infer<z.ZodObject<typeof kafkaEnvShape>>;

export function toKafkaConfig(env: KafkaEnv): KafkaConfig {
  const mechanism = env.DRIFTLINE_KAFKA_SASL_MECHANISM;
  const deadLetter = {
    maxBatchBytes: env.DRIFTLINE_KAFKA_DLQ_MAX_BATCH_BYTES,
    maxBatchRecords: env.DRIFTLINE_KAFKA_DLQ_MAX_BATCH_RECORDS,
  };
  if (mechanism === undefined) {
    // Credentials without a mechanism were ignored: the client connected unauthenticated, and the
    // broker's refusal looked like an outage, retried for ever.
    if (env.DRIFTLINE_KAFKA_SASL_USERNAME !== undefined || env.DRIFTLINE_KAFKA_SASL_PASSWORD !== undefined) {
      throw new ConfigError(
        'DRIFTLINE_KAFKA_SASL_MECHANISM',
        'required when DRIFTLINE_KAFKA_SASL_USERNAME or _PASSWORD is set (plain, scram-sha-256 or scram-sha-512)',
      );
    }
    return {
      brokers: env.DRIFTLINE_KAFKA_BROKERS,
      clientId: env.DRIFTLINE_KAFKA_CLIENT_ID,
      ssl: env.DRIFTLINE_KAFKA_SSL,
      deadLetter,
      faultHoldMs: env.DRIFTLINE_KAFKA_FAULT_HOLD,
    };
  }
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
    deadLetter,
    faultHoldMs: env.DRIFTLINE_KAFKA_FAULT_HOLD,
  };
}
