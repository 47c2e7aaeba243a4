// Fault injection keeps data: a stack of its own (restarting the shared one would break other tests).
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pauseComponent, restartComponent, stackDown, stackUp } from '../src/index.js';

const stateDir = mkdtempSync(join(tmpdir(), 'driftline-stack-restart-'));

function redis(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let reply = '';
    socket.setTimeout(5_000, () => socket.destroy(new Error('no reply')));
    socket.once('error', reject);
    socket.once('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('utf8');
      if (reply.endsWith('\r\n')) {
        socket.end();
        resolve(reply.trim());
      }
    });
  });
}

describe('restartComponent / pauseComponent', () => {
  afterAll(async () => {
    await stackDown({ stateDir });
    rmSync(stateDir, { recursive: true, force: true });
  }, 60_000);

  it('restarts the registry and Redis on their data, and pauses Redis', async () => {
    const { endpoints } = await stackUp({ stateDir, durableRedis: true });
    const url = endpoints.schemaRegistryUrl;
    const registered = await fetch(`${url}/subjects/restart-value/versions`, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
      body: JSON.stringify({
        schema: JSON.stringify({ type: 'record', name: 'R', fields: [{ name: 'a', type: 'long' }] }),
      }),
    });
    const { id } = (await registered.json()) as { id: number };
    // Killed right after the write: nothing may depend on a clean shutdown or a write delay.
    await restartComponent('schema-registry', { stateDir });
    const port = Number(new URL(endpoints.redisUrl).port);
    expect(await redis(port, 'SET restart-key kept')).toBe('+OK');
    await restartComponent('redis', { stateDir });

    const schema = await fetch(`${url}/schemas/ids/${id}`);
    expect(schema.status).toBe(200);
    expect(await redis(port, 'GET restart-key')).toBe('$4\r\nkept');

    await pauseComponent('redis', true, { stateDir });
    await expect(redis(port, 'PING')).rejects.toThrow('no reply');
    await pauseComponent('redis', false, { stateDir });
    expect(await redis(port, 'PING')).toBe('+PONG');
  }, 240_000);
});
