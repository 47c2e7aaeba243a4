// The drift monitor as its integration tests run it: in this process, on the shared stack, with
// windows short enough for a test.
import { type Runner, startRunner } from '@driftline/service';
import type { StackAddresses } from '@driftline/test-support';
import { afterEach } from 'vitest';
import { driftMonitorService } from '../src/service.js';

/**
 * The variables of a drift monitor for deployment `prefix` (`partitions` per topic it creates),
 * its ClickHouse embedded at `path` in `database`: windows of 1 s closed as soon as the watermark
 * passes them, a silent source partition waited for 30 s. `overrides` add or replace variables.
 * The log level is DRIFT_TEST_LOG_LEVEL's when set (to see a failing test's logs), else `error`.
 */
export function driftEnv(
  stack: Pick<StackAddresses, 'kafkaBrokers' | 'schemaRegistryUrl'>,
  deployment: {
    readonly prefix: string;
    readonly partitions: number;
    readonly database: string;
    readonly path: string;
  },
  overrides: Record<string, string> = {},
): Record<string, string> {
  return {
    DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
    DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
    DRIFTLINE_TOPIC_PREFIX: deployment.prefix,
    DRIFTLINE_TOPIC_PARTITIONS: String(deployment.partitions),
    DRIFTLINE_HTTP_PORT: '0',
    DRIFTLINE_LOG_LEVEL: process.env.DRIFT_TEST_LOG_LEVEL ?? 'error',
    DRIFTLINE_CLICKHOUSE_DATABASE: deployment.database,
    DRIFTLINE_CLICKHOUSE_PATH: deployment.path,
    DRIFTLINE_DRIFT_WINDOW: '1s',
    DRIFTLINE_DRIFT_ALLOWED_LATENESS: '0',
    DRIFTLINE_DRIFT_IDLE_TIMEOUT: '30s',
    ...overrides,
  };
}

/**
 * Drift monitors for the tests of the enclosing `describe`: `start(env)` runs one, and after each
 * test every one started is stopped, the last started first (stopping one the test stopped already
 * does nothing).
 */
export function driftMonitors(): { start(env: Record<string, string>): Promise<Runner> } {
  const runners: Runner[] = [];
  afterEach(async () => {
    for (const runner of runners.splice(0).reverse()) await runner.stop().catch(() => {});
  });
  return {
    async start(env) {
      const runner = await startRunner({ services: [driftMonitorService as never], env });
      runners.push(runner);
      return runner;
    },
  };
}
