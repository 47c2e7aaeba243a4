import { DriftlineError, parseEnv, type RedisConnectionConfig, toRedisConnectionConfig } from '@driftline/core';
import { freePort, uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { onlineStoreEnvShape } from '../src/index.js';
import {
  createRedisClient,
  createRedisJoinStore,
  createRedisOnlineStore,
  type RedisClient,
  type RedisUse,
  waitReady,
} from '../src/redis/index.js';
import { joinContractConfig } from './join-contract.js';

// Clients to a port nothing listens on: what matters is the options they were created with (the
// stores' chunked pipelines read the command timeout from them), not a server.
const clients: RedisClient[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const client of clients.splice(0)) client.disconnect();
});

async function configFrom(env: Record<string, string>): Promise<RedisConnectionConfig> {
  const parsed = parseEnv(onlineStoreEnvShape, {
    DRIFTLINE_FEATURE_VIEWS: 'views.yaml',
    DRIFTLINE_REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
    ...env,
  });
  return toRedisConnectionConfig(parsed);
}

function track(client: RedisClient): RedisClient {
  client.on('error', () => {}); // refused: nothing listens
  clients.push(client);
  return client;
}

const timeoutsOf = (client: RedisClient) => [client.options.commandTimeout, client.options.connectTimeout];

describe('the configured Redis timeouts reach every client, by use', () => {
  const env = {
    DRIFTLINE_REDIS_COMMAND_TIMEOUT: '30s',
    DRIFTLINE_REDIS_READ_TIMEOUT: '250ms',
    DRIFTLINE_REDIS_CONNECT_TIMEOUT: '7s',
  };

  it('feature reads take the read timeout; writes, the join state and tooling the command timeout; all the connect timeout', async () => {
    const config = await configFrom(env);
    const expected: Record<RedisUse, number[]> = {
      'online-read': [250, 7_000],
      'online-write': [30_000, 7_000],
      'join-store': [30_000, 7_000],
      tooling: [30_000, 7_000],
    };
    for (const [use, timeouts] of Object.entries(expected)) {
      expect(timeoutsOf(track(createRedisClient(config, use as RedisUse))), use).toEqual(timeouts);
    }
  });

  it('the stores’ own clients (whose command timeout sizes their chunked pipelines) get them too', async () => {
    const config = await configFrom(env);
    const reader = createRedisOnlineStore(config, { use: 'online-read', keyPrefix: uniqueName('rt') });
    const writer = createRedisOnlineStore(config, { use: 'online-write', keyPrefix: uniqueName('rt') });
    const joins = createRedisJoinStore(config, { prefix: `${uniqueName('rt')}:`, join: joinContractConfig });
    for (const client of [reader.client, writer.client, joins.redis]) track(client);
    expect(timeoutsOf(reader.client)).toEqual([250, 7_000]);
    expect(timeoutsOf(writer.client)).toEqual([30_000, 7_000]);
    expect(timeoutsOf(joins.redis)).toEqual([30_000, 7_000]);
  });

  it('unset: the defaults of each use, unchanged (10 s / 5 s; feature reads 2 s / 2 s)', async () => {
    const config = await configFrom({});
    expect(timeoutsOf(track(createRedisClient(config, 'online-write')))).toEqual([10_000, 5_000]);
    expect(timeoutsOf(track(createRedisClient(config, 'join-store')))).toEqual([10_000, 5_000]);
    expect(timeoutsOf(track(createRedisClient(config, 'online-read')))).toEqual([2_000, 2_000]);
  });

  it('a policy given in code (tests, benchmarks) still overrides the configured value', async () => {
    const config = await configFrom(env);
    const client = track(createRedisClient(config, 'online-read', { policy: { commandTimeoutMs: 123 } }));
    expect(timeoutsOf(client)).toEqual([123, 7_000]);
  });
});

describe('waitReady follows a long connect timeout', () => {
  /** waitReady(client) with its default wait, on fake timers, to a port nothing listens on: how it settled so far. */
  async function defaultWait(env: Record<string, string>): Promise<() => unknown> {
    const config = await configFrom(env);
    vi.useFakeTimers();
    const client = track(createRedisClient(config, 'join-store'));
    let settled: unknown;
    waitReady(client).then(
      () => {
        settled = 'ready';
      },
      (error: unknown) => {
        settled = error;
      },
    );
    return () => settled;
  }

  it('DRIFTLINE_REDIS_CONNECT_TIMEOUT=8s: waits 16 s by default, not 10 s (the connect was cut short)', async () => {
    const settled = await defaultWait({ DRIFTLINE_REDIS_CONNECT_TIMEOUT: '8s' });
    await vi.advanceTimersByTimeAsync(15_000);
    expect(settled()).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1_100);
    expect(settled()).toBeInstanceOf(DriftlineError);
    expect((settled() as DriftlineError).message).toMatch(/^Redis not ready within 16000 ms/);
  });

  it('the default connect timeouts keep the 10 s wait', async () => {
    const settled = await defaultWait({});
    await vi.advanceTimersByTimeAsync(10_100);
    expect((settled() as DriftlineError).message).toMatch(/^Redis not ready within 10000 ms/);
  });
});
