import { type ClickHouse, createClickHouse, type Migration, migrate } from '@driftline/clickhouse';
import { SchemaRegistryCodec } from '@driftline/codec';
import { ConfigError, type Env, type Logger, parseEnv, rejectUnknownEnv } from '@driftline/core';
import { createKafka, createProducer, ensureTopics } from '@driftline/kafka';
import { createLogger, createMetricsRegistry, startObservabilityServer } from '@driftline/observability';
import { type ContractName, contracts, deadLetterTopic } from '@driftline/schemas';
import { commonEnvShape, toCommonConfig } from './common-config.js';
import type { RunningService, ServiceContext, ServiceDefinition } from './service.js';

export interface RunnerOptions {
  readonly services: ReadonlyArray<ServiceDefinition<never, unknown>>;
  readonly env?: Env;
  readonly migrations?: readonly Migration[];
  readonly logger?: Logger;
  /** Every service of the binary: their variables are known even when they are not started. */
  readonly knownServices?: ReadonlyArray<ServiceDefinition<never, unknown>>;
}

export interface Runner {
  readonly context: ServiceContext;
  readonly httpPort: number;
  ready(): boolean;
  stop(): Promise<void>;
}

/**
 * Starts any subset of services in one process, sharing clients. Every variable is parsed once,
 * here, before anything connects: a wrong or unknown DRIFTLINE_* variable fails start-up with
 * its name in the message.
 */
export async function startRunner(options: RunnerOptions): Promise<Runner> {
  const env = options.env ?? process.env;
  const shapes = options.services.map((s) => s.envShape as Record<string, never>);
  const knownShapes = (options.knownServices ?? options.services).map((s) => s.envShape as Record<string, never>);
  const known = [
    ...Object.keys(commonEnvShape),
    ...[...shapes, ...knownShapes].flatMap((s) => Object.keys(s)),
    'DRIFTLINE_SERVICES',
  ];
  // The stack tool, the demo and the benchmarks have variables of their own.
  rejectUnknownEnv('DRIFTLINE_', known, env, ['DRIFTLINE_STACK_', 'DRIFTLINE_DEMO_', 'DRIFTLINE_BENCH_']);
  const common = toCommonConfig(parseEnv(commonEnvShape, env));
  const configs = options.services.map((s) => s.configure(parseEnv(s.envShape as Record<string, never>, env) as never));

  const logger = options.logger ?? createLogger({ service: 'driftline', level: common.logLevel });
  const registry = createMetricsRegistry({ service: options.services.map((s) => s.name).join('+') || 'driftline' });
  const kafka = createKafka(common.kafka, logger);
  const topic = (name: ContractName) => `${common.topicPrefix}${contracts[name].defaultTopic}`;
  await ensureTopics(
    kafka,
    (Object.keys(contracts) as ContractName[]).flatMap((name) => [
      { topic: topic(name), partitions: common.topicPartitions },
      { topic: deadLetterTopic(topic(name)), partitions: 1 },
    ]),
  );
  const producer = await createProducer(kafka, { registry });
  const codec = new SchemaRegistryCodec(common.registry);
  let clickhouse: Promise<ClickHouse> | undefined;
  const context: ServiceContext = {
    logger,
    registry,
    kafka,
    producer,
    codec,
    common,
    topic,
    clickhouse() {
      clickhouse ??= createClickHouse(common.clickhouse).then(async (ch) => {
        await migrate(ch, options.migrations ?? []);
        return ch;
      });
      return clickhouse;
    },
  };

  const running: Array<{ name: string; service: RunningService }> = [];
  try {
    for (const [i, definition] of options.services.entries()) {
      const service = await definition.start(
        { ...context, logger: logger.child({ component: definition.name }) },
        configs[i],
      );
      running.push({ name: definition.name, service });
      logger.info({ service: definition.name }, 'service started');
    }
  } catch (error) {
    for (const r of running.reverse()) await r.service.stop().catch(() => {});
    await producer.disconnect().catch(() => {});
    throw error;
  }
  const ready = () => running.every((r) => r.service.ready());
  const http = await startObservabilityServer({
    registry,
    health: { healthy: () => true, ready },
    port: common.http.port,
    host: common.http.host,
  });
  let stopping: Promise<void> | undefined;
  return {
    context,
    httpPort: http.port,
    ready,
    stop() {
      stopping ??= (async () => {
        for (const r of [...running].reverse()) {
          await r.service
            .stop()
            .catch((error: unknown) => logger.error({ err: error, service: r.name }, 'stop failed'));
        }
        await producer.disconnect().catch(() => {});
        if (clickhouse !== undefined) await (await clickhouse).close();
        await http.close();
      })();
      return stopping;
    },
  };
}

/** Picks services by name from a comma list (`all` or empty = every service). */
export function selectServices<T extends { name: string }>(all: readonly T[], names: string | undefined): T[] {
  if (names === undefined || names.trim() === '' || names.trim() === 'all') return [...all];
  const wanted = names
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean);
  const unknown = wanted.filter((n) => !all.some((s) => s.name === n));
  if (unknown.length > 0) {
    throw new ConfigError(
      'DRIFTLINE_SERVICES',
      `unknown service ${unknown.join(', ')} (known: ${all.map((s) => s.name).join(', ')})`,
    );
  }
  return all.filter((s) => wanted.includes(s.name));
}
