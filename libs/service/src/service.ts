import type { RegistryConfig, SchemaRegistryCodec } from '@driftline/codec';
import type { Logger } from '@driftline/core';
import type {
  ConsumerHandle,
  ConsumerOptions,
  EventProducer,
  KafkaClient,
  KafkaConfig,
  Publisher,
  TopicSpec,
} from '@driftline/kafka';
import type { Registry } from '@driftline/observability';
import type { Contract, ContractName } from '@driftline/schemas';
import type { Warehouse } from '@driftline/warehouse';
import type { z } from 'zod';
import type { CommonConfig } from './common-config.js';
import type { FatalHandler } from './fatal.js';
import type { ConsumerFetch } from './fetch-heap.js';

/**
 * A shared resource a service uses. The runner validates the variables of a resource only when a
 * started service needs it, and a service's context refuses a resource it did not declare.
 */
export type ServiceNeed = 'kafka' | 'registry' | 'clickhouse' | 'redis';

/** What `ctx.consume` needs from a service; the client, DLQ producer, logger and metrics come from the context. */
export type ConsumeOptions<T> = Omit<ConsumerOptions<T>, 'kafka' | 'producer' | 'logger' | 'registry'> & {
  readonly logger?: Logger;
  /**
   * The variable that set `maxBytesPerPartition`: a fetch bound the JS heap cannot hold fails
   * start-up naming it (see fetch-heap.ts).
   */
  readonly fetchBytesField?: string;
};

/**
 * What the runner hands every service. Clients are shared by the services of a process and created
 * on first use, so a service that uses no Kafka, registry or ClickHouse starts without them.
 */
export interface ServiceContext {
  readonly logger: Logger;
  readonly registry: Registry;
  readonly common: CommonConfig;
  /** Topic name of a contract, with the configured prefix. */
  topic(contract: ContractName): string;
  /** The process' Kafka client (needs `kafka`). */
  kafka(): KafkaClient;
  /** The shared idempotent producer, connected on first use (needs `kafka`). */
  producer(): Promise<EventProducer>;
  /** The shared Schema Registry codec (needs `registry`). */
  codec(): SchemaRegistryCodec;
  /**
   * The connection settings of the process' Kafka and registry clients, for a worker thread that
   * opens clients of its own (needs `kafka` and `registry`). They hold credentials: never log them.
   */
  connections(): { readonly kafka: KafkaConfig; readonly registry: RegistryConfig };
  /**
   * Typed sends to a contract's topic (default: the contract's prefixed topic): Avro-encoded
   * through the registry, keyed by the contract. The topic is created and the schema registered
   * before the first send, or at `prepare()` (needs `kafka` and `registry`).
   */
  publisher<T>(contract: Contract<T>, topic?: string): Publisher<T>;
  /**
   * Starts the at-least-once consumer loop on the shared client, with the shared producer for dead
   * letters; the topics and their `.dlq` topics are created first when missing (needs `kafka`).
   */
  consume<T>(options: ConsumeOptions<T>): Promise<ConsumerHandle>;
  /**
   * For a consumer a service starts itself (not through `consume`, which does this): checks that
   * one full fetch of it and of the process's other consumers, decoded, fits the JS heap — else a
   * ConfigError naming `fetchBytesField` or NODE_OPTIONS — and logs the bound and the heap limit.
   */
  checkFetch(fetch: ConsumerFetch): void;
  /** Creates missing topics, once per process; `partitions` defaults to DRIFTLINE_TOPIC_PARTITIONS (needs `kafka`). */
  ensureTopics(specs: readonly TopicSpec[]): Promise<void>;
  /** Partition count of a topic, created with the default partitions when missing (needs `kafka`). */
  partitionCount(topic: string): Promise<number>;
  /** The process' warehouse (ClickHouse stores and read models), opened and migrated on first use (needs `clickhouse`). */
  warehouse(): Promise<Warehouse>;
  /**
   * Ends the process on a configuration error found after start-up (a Redis database the server
   * refuses, known only once Redis answers): one error line naming the field and exit 78 at once,
   * without a graceful stop (the runner's `onFatal` decides; only its first call counts). A plain
   * function: pass it as a callback as it is.
   */
  readonly fatal: FatalHandler;
}

export interface RunningService {
  ready(): boolean;
  /**
   * False once the service is broken beyond what waiting cures (a worker thread it cannot do
   * without exited): liveness fails, so the orchestrator restarts the process. Absent: healthy.
   */
  healthy?(): boolean;
  /** Finish in-flight work, commit, release resources. */
  stop(): Promise<void>;
}

/** A service: what it needs, its own variables, how to read them, and start(context). */
export interface ServiceDefinition<Shape extends z.ZodRawShape = z.ZodRawShape, Config = unknown> {
  readonly name: string;
  readonly description: string;
  /** Shared resources it uses; only their variables are required when it runs. */
  readonly needs: readonly ServiceNeed[];
  readonly envShape: Shape;
  configure(env: z.infer<z.ZodObject<Shape>>): Config;
  start(context: ServiceContext, config: Config): Promise<RunningService>;
}

/** Keeps the generic link between a definition's shape and its config. */
export function defineService<Shape extends z.ZodRawShape, Config>(
  definition: ServiceDefinition<Shape, Config>,
): ServiceDefinition<Shape, Config> {
  return definition;
}
