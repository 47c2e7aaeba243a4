import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { anyBrokerAccepts } from '../src/reachability.js';

// A loopback listener stands for a broker: only whether the TCP connection opens is asked.
const servers: Server[] = [];
async function listening(host = '127.0.0.1'): Promise<number> {
  const server = createServer((socket) => socket.destroy());
  servers.push(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  return (server.address() as { port: number }).port;
}
async function closedPort(): Promise<number> {
  const port = await listening();
  await new Promise((r) => servers.pop()!.close(r));
  return port;
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

describe('anyBrokerAccepts', () => {
  it('is true when one of the brokers accepts a connection', async () => {
    const [down, up] = [await closedPort(), await listening()];
    expect(await anyBrokerAccepts([`127.0.0.1:${down}`, `127.0.0.1:${up}`])).toBe(true);
  });

  it('is false when every broker refuses, or an address is not host:port', async () => {
    const down = await closedPort();
    expect(await anyBrokerAccepts([`127.0.0.1:${down}`, 'no-port', ''])).toBe(false);
    expect(await anyBrokerAccepts([])).toBe(false);
  });

  it('reads an IPv6 address in brackets', async (ctx) => {
    const up = await listening('::1').catch(() => undefined);
    if (up === undefined) return ctx.skip(); // no IPv6 loopback on this machine
    expect(await anyBrokerAccepts([`[::1]:${up}`])).toBe(true);
  });
});
