import { type AddressInfo, createServer, type Server } from 'node:net';
import type { ConfigError } from '@driftline/core';
import { afterEach, describe, expect, it } from 'vitest';
import { checkRedisDatabase, type RedisDatabaseCheckOptions } from '../src/redis/durability.js';

/**
 * A fake Redis speaking just enough RESP: it accepts the connection's own SELECT, then answers the
 * check's SELECTs with `replies` in turn (the last one repeated).
 */
async function fakeRedis(replies: readonly string[]): Promise<{ server: Server; port: number; selects: () => number }> {
  let selects = 0;
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.on('data', (data) => {
      // One reply per command (`*<n>` starts each in RESP).
      for (const command of data
        .toString()
        .split('*')
        .filter((c) => c.includes('\r\n'))) {
        const name = (command.split('\r\n').find((part, i) => i > 0 && !part.startsWith('$')) ?? '').toUpperCase();
        if (name === 'INFO') socket.write('$11\r\nloading:0\r\n\r\n');
        else if (name === 'SELECT') {
          selects++;
          socket.write(selects === 1 ? '+OK\r\n' : `${replies[Math.min(selects - 2, replies.length - 1)]}\r\n`);
        } else socket.write('+OK\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, selects: () => selects };
}

describe('checkRedisDatabase: the caller decides what a refusal does', () => {
  it('onRefused is required: no default that ends the process (services pass ctx.fatal, the runner exits)', () => {
    // Checked by the type checker (`pnpm typecheck`): it defaulted to a process.exit(78) in this library.
    type OnRefused = Pick<RedisDatabaseCheckOptions, 'onRefused'>;
    const required: OnRefused extends Required<OnRefused> ? true : false = true;
    expect(required).toBe(true);
  });
});

describe('checkRedisDatabase: only a refusal of the index is a verdict', () => {
  const servers: Server[] = [];
  afterEach(() => {
    for (const s of servers.splice(0)) s.close();
  });

  it('a BUSY reply (a script past its threshold) is an outage asked again, never exit 78', async () => {
    const fake = await fakeRedis(['-BUSY Redis is busy running a script. You can only call SCRIPT KILL.', '+OK']);
    servers.push(fake.server);
    const refused: ConfigError[] = [];
    const check = checkRedisDatabase(
      { url: `redis://127.0.0.1:${fake.port}/3`, tls: false },
      { onRefused: (e) => void refused.push(e) },
    );
    try {
      await check.whenAccepted;
      expect(refused).toEqual([]);
      expect(check.accepted()).toBe(true);
      expect(fake.selects()).toBeGreaterThanOrEqual(3); // the connect's, the BUSY one, the accepted one
    } finally {
      check.stop();
    }
  }, 30_000);

  it('ERR DB index is out of range is the refusal, naming DRIFTLINE_REDIS_URL', async () => {
    const fake = await fakeRedis(['-ERR DB index is out of range']);
    servers.push(fake.server);
    const refusal = new Promise<ConfigError>((resolve) => {
      const check = checkRedisDatabase({ url: `redis://127.0.0.1:${fake.port}/3`, tls: false }, { onRefused: resolve });
      setTimeout(() => check.stop(), 20_000).unref();
    });
    const error = await refusal;
    expect(error.field).toBe('DRIFTLINE_REDIS_URL');
    expect(error.message).toMatch(/refuses database 3 \(ERR DB index is out of range\)/);
  }, 30_000);
});
