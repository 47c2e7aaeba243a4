import { ConfigError, isRetriable } from '@driftline/core';
import { describe, expect, inject, it } from 'vitest';
import { checkRedisDatabase, checkRedisServer, createRedisClient, waitReady } from '../src/redis/index.js';

const stack = inject('stack');
/** The stack's Redis (`databases 16`, the default) with a database path. */
const atDatabase = (db: number) => `${stack.redisUrl.replace(/\/\d*$/, '')}/${db}`;
const REFUSED_99 = /^DRIFTLINE_REDIS_URL: the server refuses database 99 \(ERR DB index is out of range\)[^\n]*$/;

describe('the database of DRIFTLINE_REDIS_URL at start-up (the stack’s Redis)', () => {
  it('one the server refuses is a one-line config error naming the variable; one it has passes', async () => {
    // ioredis only emitted the refused SELECT as an error event and read and wrote database 0.
    const refused = await checkRedisDatabase({ url: atDatabase(99), tls: false }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as ConfigError).field).toBe('DRIFTLINE_REDIS_URL');
    expect((refused as Error).message).toMatch(REFUSED_99);
    await expect(checkRedisDatabase({ url: atDatabase(15), tls: false })).resolves.toBeUndefined();
    await expect(checkRedisDatabase({ url: atDatabase(0), tls: false })).resolves.toBeUndefined();
  });

  it('the server check of a connected client refuses it too (the label-joiner’s start-up)', async () => {
    const client = createRedisClient({ url: atDatabase(99), tls: false }, 'tooling', { name: 'db-check-test' });
    client.on('error', () => {}); // the refused SELECT of the connect
    try {
      await waitReady(client);
      await expect(checkRedisServer(client)).rejects.toThrow(REFUSED_99);
    } finally {
      client.disconnect();
    }
  });

  it('Redis not answering is a retriable outage (start-up waits for it), not a config error', async () => {
    const error = await checkRedisDatabase({ url: 'redis://127.0.0.1:1/3', tls: false }, 300).catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(ConfigError);
    expect(isRetriable(error)).toBe(true);
  });
});
