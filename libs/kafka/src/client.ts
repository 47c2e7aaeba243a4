import { type Logger, silentLogger } from '@driftline/core';
import { Kafka, logLevel } from 'kafkajs';
import type { KafkaConfig } from './config.js';

/**
 * A handle on a Kafka cluster, created from a KafkaConfig. Opaque on purpose: producers,
 * consumers and topic admin take it as an argument, so no kafkajs type leaves this package
 * and moving to another client touches libs/kafka only. Creating one opens no connection.
 */
export interface KafkaClient {
  readonly clientId: string;
  readonly brokers: readonly string[];
}

const clients = new WeakMap<KafkaClient, Kafka>();
const deadLetterConfig = new WeakMap<KafkaClient, NonNullable<KafkaConfig['deadLetter']>>();
const faultHolds = new WeakMap<KafkaClient, number>();

/** Routes kafkajs' own logs into our structured logger (kafkajs logs error-level noise during rebalances). */
function logCreatorFor(logger: Logger) {
  const log = logger.child({ stage: 'kafkajs' });
  return () =>
    ({ level, log: entry }: { level: logLevel; log: { message: string } & Record<string, unknown> }) => {
      const { message, timestamp: _t, logger: _l, ...rest } = entry;
      if (level === logLevel.ERROR || level === logLevel.WARN) log.warn(rest, message);
      else log.debug(rest, message);
    };
}

export function createKafkaClient(config: KafkaConfig, logger: Logger = silentLogger): KafkaClient {
  const kafka = new Kafka({
    clientId: config.clientId,
    brokers: [...config.brokers],
    ssl: config.ssl,
    ...(config.sasl === undefined ? {} : { sasl: { ...config.sasl } as never }),
    logLevel: logLevel.WARN,
    logCreator: logCreatorFor(logger),
    retry: { initialRetryTime: 100, retries: 8 },
  });
  const client: KafkaClient = Object.freeze({ clientId: config.clientId, brokers: [...config.brokers] });
  clients.set(client, kafka);
  if (config.deadLetter !== undefined) deadLetterConfig.set(client, config.deadLetter);
  if (config.faultHoldMs !== undefined) faultHolds.set(client, config.faultHoldMs);
  return client;
}

/** The dead-letter bounds configured on a handle, if any (package-internal). */
export function deadLetterConfigOf(client: KafkaClient): KafkaConfig['deadLetter'] {
  return deadLetterConfig.get(client);
}

/** The processor-fault hold configured on a handle, if any (package-internal). */
export function faultHoldOf(client: KafkaClient): number | undefined {
  return faultHolds.get(client);
}

/** The kafkajs client behind a handle (package-internal: not exported from the index). */
export function kafkajsOf(client: KafkaClient): Kafka {
  const kafka = clients.get(client);
  if (kafka === undefined) throw new TypeError('not a KafkaClient from createKafkaClient');
  return kafka;
}
