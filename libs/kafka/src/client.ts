import { createRequire } from 'node:module';
import { admitLine, type Logger, lineLimit, silentLogger } from '@driftline/core';
import {
  type ISocketFactory,
  Kafka,
  type KafkaConfig as KafkajsConfig,
  type logCreator,
  logLevel,
  type RetryOptions,
} from 'kafkajs';
import type { KafkaConfig } from './config.js';
import { type SaslConnection, saslAuthenticator } from './credentials.js';

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
 * kafkajs lines that each report one failed connection: a refused connect writes two ("Connection
 * error: …" and "Failed to connect to seed broker, …"), and kafkajs retries it inside every send,
 * connect and metadata read.
 */
const CONNECTION_FAILED = /^(?:Connection error: |Connection timeout|Failed to connect to (?:seed )?broker)/;
/**
 * kafkajs warns at every idempotent producer's creation when its retries are bounded. createProducer
 * bounds them on purpose (they fit the send deadline), and a failed send's resend of the same
 * records gets the same sequence numbers (kafkajs patch (8)): nothing of idempotence is lost, so the
 * line goes to debug (it was a warning at every service start).
 */
const BOUNDED_RETRIES = 'Limiting retries for the idempotent producer may invalidate EoS guarantees';
/**
 * kafkajs' lines on a refused SASL login (the broker's answer, the authenticator's failure and its
 * retry, three per connection): driftline's own line says it once, naming the variables — the
 * start-up's configuration error, the consumer's crash line, the producer's refusal.
 */
const SASL_REFUSED_LINE =
  /^(?:Response Sasl(?:Authenticate|Handshake)\(|SASL [\w -]+ authentication failed|SASL [\w-]+ mechanism is not supported|.*: Request is not valid given the current SASL state$)/;
/** While a client's connections fail, at most one such line per this interval at warn. */
export const CONNECTION_FAILURE_LOG_INTERVAL_MS = 10_000;

/** A client's routing of kafkajs' logs (see {@link kafkajsLogging}). */
interface KafkajsLogging {
  readonly logCreator: logCreator;
  /** A broker answered on a connection of the client: the next failed one is the first of an outage again. */
  readonly answered: () => void;
}

/**
 * Routes kafkajs' own logs into our structured logger (kafkajs logs error-level noise during
 * rebalances). Package-internal. Its crash and restart lines go to debug: the consumer loop logs
 * each crash itself, rate-limited (a crash loop wrote hundreds of lines with stacks a minute).
 * Its failed-connection lines are rate-limited the same way, per client (every kafkajs instance
 * made from it, a producer's own included): the first of an outage at warn, then at most one per
 * {@link CONNECTION_FAILURE_LOG_INTERVAL_MS} with the count left out since (`linesLeftOut`), the
 * others at debug, until a broker answers on a connection. A producer resending through a refusal
 * wrote 384 such lines a minute (found by a review).
 */
export function kafkajsLogging(
  logger: Logger,
  resets: Set<OffsetResetListener>,
  unknowns: Set<() => void>,
  now: () => number = Date.now,
): KafkajsLogging {
  const log = logger.child({ stage: 'kafkajs' });
  let connectionFailures = lineLimit();
  const logCreator: logCreator =
    () =>
    ({ level, log: entry }) => {
      const { message, timestamp: _t, logger: _l, ...rest } = entry;
      if (message === 'Offset out of range, resetting to default offset') {
        const { groupId, topic, partition } = rest;
        if (typeof groupId === 'string' && typeof topic === 'string' && typeof partition === 'number') {
          for (const listener of resets) listener({ groupId, topic, partition });
        }
      }
      if (rest.error === 'This server does not host this topic-partition') for (const listener of unknowns) listener();
      const consumerRestart = message.startsWith('Crash: ') || message.startsWith('Restarting the consumer in');
      if (
        (level !== logLevel.ERROR && level !== logLevel.WARN) ||
        consumerRestart ||
        message === BOUNDED_RETRIES ||
        SASL_REFUSED_LINE.test(message)
      )
        log.debug(rest, message);
      else if (CONNECTION_FAILED.test(message)) {
        const linesLeftOut = admitLine(connectionFailures, now(), CONNECTION_FAILURE_LOG_INTERVAL_MS);
        if (linesLeftOut === undefined) log.debug(rest, message);
        else log.warn({ ...rest, linesLeftOut }, message);
      } else log.warn(rest, message);
    };
  return {
    logCreator,
    answered: () => {
      // The lines left out since the last one written would be counted by no line at all.
      if (connectionFailures.unlogged > 0) {
        log.warn(
          { linesLeftOut: connectionFailures.unlogged },
          'a broker answered again; failed-connection lines left out since the last one written',
        );
      }
      connectionFailures = lineLimit();
    },
  };
}

/**
 * kafkajs' own socket factory (net or tls, keep-alive), which kafkajs does not export: 2.2.4, its
 * last release, is pinned and patched.
 */
const kafkajsSocketFactory = createRequire(import.meta.url)(
  'kafkajs/src/network/socketFactory',
) as () => ISocketFactory;

/**
 * kafkajs' sockets, reporting to `answered` the first bytes a broker sends on each: a connection
 * made and answered. Not the connect alone: a load balancer in front of a broker that is down
 * accepts the connection and then resets it.
 */
export function socketFactoryReporting(answered: () => void): ISocketFactory {
  const sockets = kafkajsSocketFactory();
  return (args) => sockets(args).once('data', answered);
}

export function createKafkaClient(config: KafkaConfig, logger: Logger = silentLogger): KafkaClient {
  const resets = new Set<OffsetResetListener>();
  const unknowns = new Set<() => void>();
  const logging = kafkajsLogging(logger, resets, unknowns);
  const kafkajsConfig: KafkajsConfig = {
    clientId: config.clientId,
    brokers: [...config.brokers],
    ssl: config.ssl,
    // The broker's answer to a failed login kept as its error's cause (see saslAuthenticator).
    ...(config.sasl === undefined
      ? {}
      : { sasl: saslAuthenticator({ ...config.sasl }, { refusalRetriable: false }) as never }),
    logLevel: logLevel.WARN,
    logCreator: logging.logCreator,
    socketFactory: socketFactoryReporting(logging.answered),
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
export function kafkajsRetrying(
  client: KafkaClient,
  retry: RetryOptions,
  options: { saslRefusalsRetriable?: boolean } = {},
): Kafka {
  const config = kafkajsConfigs.get(client);
  if (config === undefined) throw new TypeError('not a KafkaClient from createKafkaClient');
  // `saslRefusalsRetriable`: a refusal of the credentials is retried and then restarts a consumer
  // (see saslAuthenticator). A SASL object of its own per instance.
  const sasl =
    config.sasl === undefined
      ? {}
      : {
          sasl: saslAuthenticator(config.sasl as { mechanism: string }, {
            refusalRetriable: options.saslRefusalsRetriable === true,
          }) as never,
        };
  return new Kafka({ ...config, ...sasl, retry });
}

/** The brokers, SASL mechanism and user a handle connects with (package-internal; never the password). */
export function saslConnectionOf(client: KafkaClient): SaslConnection {
  const sasl = kafkajsConfigs.get(client)?.sasl as { mechanism: string; username: string } | undefined;
  return {
    brokers: client.brokers,
    ...(sasl === undefined ? {} : { sasl: { mechanism: sasl.mechanism, username: sasl.username } }),
  };
}
