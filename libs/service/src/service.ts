import type { ClickHouse } from '@driftline/clickhouse';
import type { SchemaRegistryCodec } from '@driftline/codec';
import type { Logger } from '@driftline/core';
import type { EventProducer, Kafka } from '@driftline/kafka';
import type { Registry } from '@driftline/observability';
import type { ContractName } from '@driftline/schemas';
import type { z } from 'zod';
import type { CommonConfig } from './common-config.js';

/** What the runner hands every service: shared clients, created once per process. */
export interface ServiceContext {
  readonly logger: Logger;
  readonly registry: Registry;
  readonly kafka: Kafka;
  readonly producer: EventProducer;
  readonly codec: SchemaRegistryCodec;
  readonly common: CommonConfig;
  /** Topic name of a contract, with the configured prefix. */
  topic(contract: ContractName): string;
  /** The process' ClickHouse (created and migrated on first use). */
  clickhouse(): Promise<ClickHouse>;
}

export interface RunningService {
  ready(): boolean;
  /** Finish in-flight work, commit, release resources. */
  stop(): Promise<void>;
}

/** A service: its own variables, how to read them, and start(context). */
export interface ServiceDefinition<Shape extends z.ZodRawShape = z.ZodRawShape, Config = unknown> {
  readonly name: string;
  readonly description: string;
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
