import { rmSync } from 'node:fs';
import { ConfigError } from '@driftline/core';
import { freePort, proxyOn } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { checkRedisDatabase, checkRedisServer, createRedisClient, waitReady } from '../src/redis/index.js';
import { clusterNodeArgs, privateRedis } from './support.js';

const stack = inject('stack');
/** The stack's Redis (`databases 16`, the default) with a database path. */
const atDatabase = (db: number) => `${stack.redisUrl.replace(/\/\d*$/, '')}/${db}`;
const REFUSED_99 = /^DRIFTLINE_REDIS_URL: the server refuses database 99 \(ERR DB index is out of range\)[^\n]*$/;

describe('the database of DRIFTLINE_REDIS_URL, asked when Redis answers (the stack’s Redis)', () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  /** The check, its refusals recorded instead of ending the process. */
  function check(url: string) {
    const refusals: ConfigError[] = [];
    const database = checkRedisDatabase({ url, tls: false }, { onRefused: (error) => refusals.push(error) });
    cleanup.push(() => database.stop());
    return { database, refusals };
  }

  it('one the server refuses is a one-line config error naming the variable; one it has is accepted', async () => {
    // ioredis only emitted the refused SELECT as an error event and read and wrote database 0.
    const refused = check(atDatabase(99));
    const error = await new Promise<ConfigError>((resolve) => {
      const poll = setInterval(() => {
        if (refused.refusals.length === 0) return;
        clearInterval(poll);
        resolve(refused.refusals[0]!);
      }, 20);
    });
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.field).toBe('DRIFTLINE_REDIS_URL');
    expect(error.message).toMatch(REFUSED_99);
    expect(refused.database.accepted()).toBe(false);
    const had = check(atDatabase(15));
    await had.database.whenAccepted;
    expect(had.database.accepted()).toBe(true);
    expect(had.refusals).toEqual([]);
    expect(check(atDatabase(0)).database.accepted()).toBe(true);
  });

  it('never waits for Redis: down, it is an outage (no refusal); it asks when Redis comes up', async () => {
    // It waited 10 s for Redis, then failed start-up (retried until DRIFTLINE_STARTUP_TIMEOUT: a crash loop).
    const port = await freePort();
    const started = Date.now();
    const down = check(`redis://127.0.0.1:${port}/3`);
    expect(Date.now() - started).toBeLessThan(5_000); // not the 10 s it waited; slack for a loaded run
    await new Promise((resolve) => setTimeout(resolve, 700)); // several refused connections
    expect(down.database.accepted()).toBe(false);
    expect(down.refusals).toEqual([]);
    const redis = await proxyOn(port, stack.redisUrl);
    // Closed after the check stops: the check keeps its connection once accepted, and close waits for it.
    cleanup.unshift(() => new Promise((resolve) => redis.close(resolve)));
    await down.database.whenAccepted;
    expect(down.database.accepted()).toBe(true);
    expect(down.refusals).toEqual([]);
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

  /** A private redis-server, killed and its directory removed after the test. */
  async function ownRedis(args: string[], port?: number) {
    const server = await privateRedis(args, port);
    cleanup.push(() => {
      server.process.kill('SIGKILL');
      rmSync(server.dir, { recursive: true, force: true });
    });
    return server;
  }

  /** Resolves with the first refusal of a check (polling its record). */
  const firstRefusal = (refusals: ConfigError[]) =>
    new Promise<ConfigError>((resolve) => {
      const poll = setInterval(() => {
        if (refusals.length === 0) return;
        clearInterval(poll);
        resolve(refusals[0]!);
      }, 20);
    });

  it('a Redis Cluster node refuses SELECT 3: one refusal naming it (it was asked again for ever, silently)', async () => {
    const clusterPort = await freePort();
    const cluster = await ownRedis(await clusterNodeArgs(clusterPort), clusterPort);
    const refused = check(`${cluster.url}/3`);
    const error = await firstRefusal(refused.refusals);
    expect(error.message).toBe(
      'DRIFTLINE_REDIS_URL: the server refuses SELECT 3: ERR SELECT is not allowed in cluster mode (a Redis Cluster has only database 0)',
    );
    expect(refused.database.accepted()).toBe(false);
  });

  it('accepted, then the address serves a Redis with fewer databases: the reconnect refuses it', async () => {
    // Never asked again once accepted: the store clients' SELECT failed (an error event) and they wrote to database 0.
    const first = await ownRedis(['--databases', '16']);
    const watched = check(`${first.url}/3`);
    await watched.database.whenAccepted;
    first.process.kill('SIGKILL');
    await new Promise((resolve) => first.process.once('exit', resolve));
    await ownRedis(['--databases', '1'], first.port);
    const error = await firstRefusal(watched.refusals);
    expect(error.message).toMatch(
      /^DRIFTLINE_REDIS_URL: the server refuses database 3 \(ERR DB index is out of range\)/,
    );
    expect(watched.refusals).toHaveLength(1);
  });
});
