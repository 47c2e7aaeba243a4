import { randomUUID } from 'node:crypto';
import { silentLogger } from '@driftline/core';
import { createKafkaClient, type KafkaClient } from '@driftline/kafka';

// Topic reads go through the Kafka facade like everything else (no client library here).
export { readTopic } from '@driftline/kafka/testing';
export {
  type BrokerProxy,
  brokerProxy,
  proxyOn,
  type StallableProxy,
  stallableProxy,
  type ThrottledProxy,
  throttledProxy,
} from './proxy.js';
export { clusterNodeArgs, type PrivateRedis, privateRedis, recordingLogger } from './redis-server.js';
export { removeTree, writeFilesFor } from './remove-tree.js';
export {
  DATABASE_99_REFUSED_LINE,
  type DriftlineRun,
  expectDatabase99Refused,
  spawnDriftlineRun,
} from './run-process.js';

/** A name no other test uses: topics, groups, key prefixes and tables are isolated per test. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** A Kafka client for the injected stack (plaintext, as the local stack runs). */
export function kafkaFor(brokers: readonly string[], clientId = uniqueName('test')): KafkaClient {
  return createKafkaClient({ brokers, clientId, ssl: false }, silentLogger);
}

/**
 * Polls `check` until it returns a defined value or the timeout passes. The timeout is a bound for
 * a hung server, not a speed check: a loaded 2-core run of the suite stretches broker steps
 * (a recreated topic once took over 30 s to be creatable).
 */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 60_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`condition not met in ${timeoutMs} ms${lastError === undefined ? '' : `: ${String(lastError)}`}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * From the stack:
 * - `freePort`: a TCP port free on loopback right now (for servers a test starts on a port of its
 *   choosing): the stack's own pick, below the ephemeral range, where a server restarted on it
 *   cannot find it taken by a port-0 bind or an outgoing connection;
 * - `startKafkaBroker`, `alterScramUsers`: a private KRaft broker (a SASL listener too: `sasl`) and
 *   its SCRAM users, for tests that need a broker of their own.
 */
export {
  alterScramUsers,
  type KafkaBroker,
  pickFreePort as freePort,
  type ScramChange,
  startKafkaBroker,
} from '@driftline/stack';

/** The endpoints a service process needs of the stack (the shape of `inject('stack')`). */
export interface StackAddresses {
  readonly kafkaBrokers: readonly string[];
  readonly schemaRegistryUrl: string;
  readonly redisUrl: string;
}

/**
 * The environment of a service started as a child process: the parent's, without its DRIFTLINE_
 * variables (so nothing leaks in from the shell), plus the stack's endpoints and `vars`.
 */
export function serviceEnv(stack: StackAddresses, vars: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('DRIFTLINE_') && v !== undefined) env[k] = v;
  return {
    ...env,
    DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
    DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
    DRIFTLINE_REDIS_URL: stack.redisUrl,
    ...vars,
  };
}
