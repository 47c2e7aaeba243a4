import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@driftline/core';
import { startRunner } from '@driftline/service';
import {
  DATABASE_99_REFUSED_LINE,
  eventually,
  expectDatabase99Refused,
  freePort,
  uniqueName,
} from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { featureMaterializer } from '../src/service.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'feature-materializer-redis-db-'));
const views = join(dir, 'views.yaml');
writeFileSync(views, 'views:\n  - name: user\n    entity: user_id\n    features: { f0: double }\n');

/**
 * A TCP proxy to the stack's Redis on `port`. `dropsSelectOf` names a connection (CLIENT SETNAME)
 * whose first SELECT after its ready check (INFO) loses the connection: a glitch right after the
 * first ready.
 */
async function redisProxy(port: number, dropsSelectOf?: string) {
  const target = new URL(stack.redisUrl);
  const state = { dropped: false, selectsAfterDrop: 0 };
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    let named = false;
    let readyChecked = false;
    const close = (socket: Socket) => socket.destroy();
    client.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1').toLowerCase();
      const select = text.includes('\r\nselect\r\n');
      if (dropsSelectOf !== undefined && named && readyChecked && select) {
        if (!state.dropped) {
          state.dropped = true;
          close(client);
          close(upstream);
          return;
        }
        state.selectsAfterDrop++;
      }
      if (dropsSelectOf !== undefined && text.includes(dropsSelectOf)) named = true;
      if (text.includes('\r\ninfo\r\n')) readyChecked = true;
      upstream.write(chunk);
    });
    upstream.pipe(client);
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      a.on('error', () => {});
      a.on('close', () => b.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { state, close: () => new Promise((resolve) => server.close(resolve)) };
}

const env = (redisUrl: string) => ({
  DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
  DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
  DRIFTLINE_REDIS_URL: redisUrl,
  DRIFTLINE_FEATURE_VIEWS: views,
  DRIFTLINE_TOPIC_PREFIX: `${uniqueName('rdb')}.`,
  DRIFTLINE_MATERIALIZER_GROUP: uniqueName('rdb'),
  DRIFTLINE_HTTP_PORT: '0',
  DRIFTLINE_STARTUP_TIMEOUT: '0',
});

describe('feature-materializer start-up and the database of DRIFTLINE_REDIS_URL', () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('starts with Redis down and a database in the URL (`/3`): the start does not wait for it', async () => {
    // It waited 10 s for Redis and failed start-up (DRIFTLINE_STARTUP_TIMEOUT), for as long as Redis was down.
    const runner = await startRunner({
      services: [featureMaterializer as never],
      logger: silentLogger,
      env: env(`redis://127.0.0.1:${await freePort()}/3`),
    });
    cleanup.push(() => runner.stop());
    expect((await fetch(`http://127.0.0.1:${runner.httpPort}/healthz`)).status).toBe(200);
  });

  it('a connection error while checking the server is an outage: healthy once Redis answers', async () => {
    // Any rejection of checkRedisServer set `unsupported`: /healthz failed "Redis cannot run the
    // feature write script" until a restart.
    const port = await freePort();
    const redis = await redisProxy(port, 'driftline-feature-materializer');
    cleanup.push(() => redis.close());
    const runner = await startRunner({
      services: [featureMaterializer as never],
      logger: silentLogger,
      env: env(`redis://127.0.0.1:${port}/3`),
    });
    cleanup.push(() => runner.stop());
    await eventually(async () => (redis.state.dropped ? true : undefined), 30_000);
    // Checked again on the new connection, and the server passes.
    await eventually(async () => (redis.state.selectsAfterDrop > 0 ? true : undefined), 30_000);
    await eventually(async () => {
      const health = await fetch(`http://127.0.0.1:${runner.httpPort}/healthz`);
      return health.status === 200 ? true : undefined;
    }, 10_000);
  });

  it('a database the server refuses (`/99` of 16) ends the process when Redis answers: one line, exit 78', async () => {
    const refused = await expectDatabase99Refused({
      service: 'feature-materializer',
      stack,
      env,
      cleanup: (undo) => cleanup.push(undo),
    });
    expect(refused).toEqual({ exit: 78, lines: [expect.stringMatching(DATABASE_99_REFUSED_LINE)] });
  });
});
