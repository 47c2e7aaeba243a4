import { getHeapStatistics } from 'node:v8';
import { SchemaRegistryCodec } from '@driftline/codec';
import { DriftlineError, type Logger } from '@driftline/core';
import {
  type ConsumerHandle,
  createKafkaClient,
  createProducer,
  createPublisher,
  type EventProducer,
  ensureTopics,
  type KafkaClient,
  partitionCount,
  type Stall,
  startConsumer,
  type TopicSpec,
} from '@driftline/kafka';
import type { Registry } from '@driftline/observability';
import { type ContractName, contracts, deadLetterTopic } from '@driftline/schemas';
import { openWarehouse, type Warehouse } from '@driftline/warehouse';
import type { CommonConfig } from './common-config.js';
import type { FatalHandler } from './fatal.js';
import { type ConsumerFetch, checkFetchHeap } from './fetch-heap.js';
import type { ResourceConfigs } from './resource-config.js';
import type { ServiceContext, ServiceNeed } from './service.js';

export interface SharedResourcesOptions {
  readonly common: CommonConfig;
  readonly configs: ResourceConfigs;
  readonly logger: Logger;
  readonly registry: Registry;
  /** `ServiceContext.fatal` of every context (the runner's, once per process). */
  readonly fatal: FatalHandler;
}

export interface SharedResources {
  /** A context that allows the resources in `needs` only (the runner's own context: every configured one). */
  context(needs: ReadonlySet<ServiceNeed>, logger: Logger, owner: string): ServiceContext;
  /** Stops the consumers services started, then disconnects what was created (nothing else). */
  close(): Promise<void>;
  /** Stalled partitions of every consumer started through a context (lag, no commit for the stall timeout). */
  stalls(): Stall[];
  /** Consumers started through a context that will consume nothing more (kafkajs gave up on them). */
  crashedConsumers(): number;
}

/** `{ [key]: value }`, or nothing when the value is undefined (exactOptionalPropertyTypes). */
function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/** Memoises an async creation; a failure is forgotten so the next call tries again. */
function once<T>(create: () => Promise<T>): { get(): Promise<T>; peek(): Promise<T> | undefined } {
  let value: Promise<T> | undefined;
  return {
    get() {
      value ??= create().catch((error: unknown) => {
        value = undefined;
        throw error;
      });
      return value;
    },
    peek: () => value,
  };
}

/**
 * The clients shared by the services of one process, each created on first use: the Kafka client,
 * the idempotent producer, the registry codec and ClickHouse. Topics are created as they are used
 * (consumed, published to, or asked for), once per process.
 */
export function createSharedResources(options: SharedResourcesOptions): SharedResources {
  const { common, configs, logger, registry, fatal } = options;
  let kafka: KafkaClient | undefined;
  let codec: SchemaRegistryCodec | undefined;
  const ensured = new Map<string, Promise<void>>();
  const consumers: ConsumerHandle[] = [];
  /** The fetch bounds of the process's consumers, which fetch at the same time (all of them on a backlog). */
  const fetches: ConsumerFetch[] = [];

  const kafkaClient = (): KafkaClient => {
    if (configs.kafka === undefined) throw new DriftlineError('INTERNAL', 'Kafka is not configured');
    kafka ??= createKafkaClient(configs.kafka, logger);
    return kafka;
  };
  const producer = once<EventProducer>(() => createProducer(kafkaClient(), { registry }));
  // The warehouse applies its own (complete, ordered) migrations when it opens.
  const warehouse = once<Warehouse>(async () => {
    if (configs.clickhouse === undefined) throw new DriftlineError('INTERNAL', 'ClickHouse is not configured');
    return openWarehouse(configs.clickhouse);
  });
  const registryCodec = (): SchemaRegistryCodec => {
    if (configs.registry === undefined) throw new DriftlineError('INTERNAL', 'the Schema Registry is not configured');
    codec ??= new SchemaRegistryCodec(configs.registry, { logger });
    return codec;
  };
  /** Checks a consumer's fetch against the heap, with those of the consumers counted before it, and counts it. */
  const checkFetch = (fetch: ConsumerFetch, logger: Logger): void => {
    const heap = checkFetchHeap(fetch, fetches, getHeapStatistics().heap_size_limit);
    fetches.push(fetch);
    if (heap.tight) logger.warn(heap.fields, heap.message);
    else logger.info(heap.fields, heap.message);
  };
  const topicOf = (name: ContractName) => `${common.topicPrefix}${contracts[name].defaultTopic}`;

  /** A contract topic's configs (e.g. models.v1 kept for good) under the spec's own. */
  const configOf = (s: TopicSpec): Readonly<Record<string, string>> | undefined => {
    const contract = Object.values(contracts).find((c) => topicOf(c.name as ContractName) === s.topic);
    if (contract?.topicConfig === undefined) return s.config;
    return { ...contract.topicConfig, ...s.config };
  };

  async function ensure(specs: readonly TopicSpec[]): Promise<void> {
    const missing = specs.filter((s) => !ensured.has(s.topic));
    if (missing.length > 0) {
      const created = ensureTopics(
        kafkaClient(),
        missing.map((s) => ({
          ...s,
          ...optional('config', configOf(s)),
          partitions: s.partitions ?? common.topicPartitions,
          ...optional('replicationFactor', s.replicationFactor ?? common.topicReplicationFactor),
          ...optional('minInsyncReplicas', s.minInsyncReplicas ?? common.topicMinInsyncReplicas),
        })),
      );
      for (const s of missing) {
        ensured.set(
          s.topic,
          created.catch((error: unknown) => {
            ensured.delete(s.topic);
            throw error;
          }),
        );
      }
    }
    await Promise.all(specs.map((s) => ensured.get(s.topic)));
  }

  return {
    context(needs, serviceLogger, owner) {
      const need = (resource: ServiceNeed) => {
        if (!needs.has(resource)) {
          throw new DriftlineError('INTERNAL', `${owner} uses ${resource} but does not declare it in needs`);
        }
      };
      return {
        logger: serviceLogger,
        registry,
        common,
        topic: topicOf,
        kafka() {
          need('kafka');
          return kafkaClient();
        },
        async producer() {
          need('kafka');
          return producer.get();
        },
        codec() {
          need('registry');
          return registryCodec();
        },
        publisher(contract, topic = `${common.topicPrefix}${contract.defaultTopic}`) {
          need('kafka');
          need('registry');
          const topicCodec = registryCodec().forTopic(contract, topic);
          return createPublisher({
            topic,
            producer: () => producer.get(),
            encode: (value) => topicCodec.encode(value),
            key: contract.key,
            async prepare() {
              await ensure([{ topic }]);
              await topicCodec.register();
            },
          });
        },
        async consume({ fetchBytesField, ...consumeOptions }) {
          need('kafka');
          const logger = consumeOptions.logger ?? serviceLogger;
          // Before any broker is asked: a fetch that cannot fit the heap is a configuration error.
          checkFetch(
            {
              groupId: consumeOptions.groupId,
              maxBytesPerPartition: consumeOptions.maxBytesPerPartition,
              fetchBytesField,
            },
            logger,
          );
          await ensure(
            consumeOptions.topics.flatMap((topic) => [{ topic }, { topic: deadLetterTopic(topic), partitions: 1 }]),
          );
          // An input subject nobody checks (NONE) is warned about once; in the background, bounded by
          // the registry timeout: the consumer does not wait for the registry to start.
          if (configs.registry !== undefined) {
            for (const topic of consumeOptions.topics) void registryCodec().checkInput(topic);
          }
          const handle = await startConsumer({
            stallTimeoutMs: common.stallTimeoutMs,
            ...consumeOptions,
            kafka: kafkaClient(),
            producer: await producer.get(),
            logger,
            registry,
          });
          consumers.push(handle);
          return handle;
        },
        checkFetch(fetch) {
          checkFetch(fetch, serviceLogger);
        },
        async ensureTopics(specs) {
          need('kafka');
          await ensure(specs);
        },
        async partitionCount(topic) {
          need('kafka');
          await ensure([{ topic }]);
          return partitionCount(kafkaClient(), topic);
        },
        connections() {
          need('kafka');
          need('registry');
          if (configs.kafka === undefined || configs.registry === undefined) {
            throw new DriftlineError('INTERNAL', 'Kafka or the Schema Registry is not configured');
          }
          return { kafka: configs.kafka, registry: configs.registry };
        },
        async warehouse() {
          need('clickhouse');
          return warehouse.get();
        },
        fatal,
      };
    },
    stalls: () => consumers.flatMap((c) => c.stalls()),
    crashedConsumers: () => consumers.filter((c) => !c.healthy() && c.stalls().length === 0).length,
    async close() {
      // Every consumer a service started, before the producer they dead-letter with: a service
      // whose start failed after its first consume() (a broker restart during start-up) left
      // that consumer running, outside health and shutdown, one more on every retried start.
      // Stopping one already stopped does nothing.
      for (const c of [...consumers].reverse()) await c.stop().catch(() => {});
      await producer
        .peek()
        ?.then((p) => p.disconnect())
        .catch(() => {});
      const wh = warehouse.peek();
      if (wh !== undefined) await (await wh.catch(() => undefined))?.close();
    },
  };
}
