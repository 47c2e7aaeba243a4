import { type Logger, silentLogger } from '@driftline/core';
import { Kafka, type KafkaConfig as KafkajsConfig, logLevel, type RetryOptions } from 'kafkajs';
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
/** What each handle's kafkajs instance was made from: a producer's own instance is made from it too. */
const kafkajsConfigs = new WeakMap<KafkaClient, KafkajsConfig>();
const deadLetterConfig = new WeakMap<KafkaClient, NonNullable<KafkaConfig['deadLetter']>>();
const faultHolds = new WeakMap<KafkaClient, number>();
/** Clients that speak TLS or SASL: a command-line tool needs the same settings (see configDrift). */
const securedClients = new WeakSet<KafkaClient>();

/** A consumer's fetch position kafkajs moved to the group's default (earliest or latest) on its own. */
export interface OffsetReset {
  readonly groupId: string;
  readonly topic: string;
  readonly partition: number;
}

type OffsetResetListener = (reset: OffsetReset) => void;
const offsetResetListeners = new WeakMap<KafkaClient, Set<OffsetResetListener>>();
const unknownPartitionListeners = new WeakMap<KafkaClient, Set<() => void>>();

/**
 * kafkajs reports an out-of-range reset only in its log (it then fetches from the default offset,
 * skipping or re-reading records without telling its user): this routes that line to the consumer
 * loop of the group, which counts and names it. Returns the unsubscribe. Package-internal.
 */
export function onOffsetReset(client: KafkaClient, listener: OffsetResetListener): () => void {
  const listeners = offsetResetListeners.get(client);
  listeners?.add(listener);
  return () => listeners?.delete(listener);
}

/**
 * A broker answered "does not host this topic-partition" to a request of this client (kafkajs
 * logs it without the topic): a topic may have been deleted, and created again a moment later
 * (kafkajs then fetches at its old position in the new log). Returns the unsubscribe. Package-internal.
 */
export function onUnknownTopicPartition(client: KafkaClient, listener: () => void): () => void {
  const listeners = unknownPartitionListeners.get(client);
  listeners?.add(listener);
  return () => listeners?.delete(listener);
}

/**
 * Routes kafkajs' own logs into our structured logger (kafkajs logs error-level noise during
 * rebalances). Its crash and restart lines go to debug: the consumer loop logs each crash itself,
 * rate-limited (a crash loop wrote hundreds of lines with stacks a minute).
 */
function logCreatorFor(logger: Logger, resets: Set<OffsetResetListener>, unknowns: Set<() => void>) {
  const log = logger.child({ stage: 'kafkajs' });
  return () =>
    ({ level, log: entry }: { level: logLevel; log: { message: string } & Record<string, unknown> }) => {
      const { message, timestamp: _t, logger: _l, ...rest } = entry;
      if (message === 'Offset out of range, resetting to default offset') {
        const { groupId, topic, partition } = rest;
        if (typeof groupId === 'string' && typeof topic === 'string' && typeof partition === 'number') {
          for (const listener of resets) listener({ groupId, topic, partition });
        }
      }
      if (rest.error === 'This server does not host this topic-partition') for (const listener of unknowns) listener();
      const consumerRestart = message.startsWith('Crash: ') || message.startsWith('Restarting the consumer in');
      if ((level === logLevel.ERROR || level === logLevel.WARN) && !consumerRestart) log.warn(rest, message);
      else log.debug(rest, message);
    };
}

export function createKafkaClient(config: KafkaConfig, logger: Logger = silentLogger): KafkaClient {
  const resets = new Set<OffsetResetListener>();
  const unknowns = new Set<() => void>();
  const kafkajsConfig: KafkajsConfig = {
    clientId: config.clientId,
    brokers: [...config.brokers],
    ssl: config.ssl,
    ...(config.sasl === undefined ? {} : { sasl: { ...config.sasl } as never }),
    logLevel: logLevel.WARN,
    logCreator: logCreatorFor(logger, resets, unknowns),
    retry: { initialRetryTime: 100, retries: 8 },
  };
  const kafka = new Kafka(kafkajsConfig);
  const client: KafkaClient = Object.freeze({ clientId: config.clientId, brokers: [...config.brokers] });
  clients.set(client, kafka);
  kafkajsConfigs.set(client, kafkajsConfig);
  offsetResetListeners.set(client, resets);
  unknownPartitionListeners.set(client, unknowns);
  if (config.deadLetter !== undefined) deadLetterConfig.set(client, config.deadLetter);
  if (config.faultHoldMs !== undefined) faultHolds.set(client, config.faultHoldMs);
  if (config.ssl || config.sasl !== undefined) securedClients.add(client);
  return client;
}

/** Whether the handle connects with TLS or SASL (package-internal). */
export function isSecured(client: KafkaClient): boolean {
  return securedClients.has(client);
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

/**
 * A kafkajs instance on the handle's cluster (same brokers, TLS, SASL, logs) whose cluster-level
 * retries — connecting, reading metadata — are `retry` (package-internal). kafkajs runs those
 * inside every attempt of a producer's send, so a producer with a send deadline needs them bounded
 * by it: see `producerRetryTiming`.
 */
export function kafkajsRetrying(client: KafkaClient, retry: RetryOptions): Kafka {
  const config = kafkajsConfigs.get(client);
  if (config === undefined) throw new TypeError('not a KafkaClient from createKafkaClient');
  return new Kafka({ ...config, retry });
}
