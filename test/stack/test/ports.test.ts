import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { assignPorts, isPortFree, pickFreePort, pickFreePorts } from '../src/ports.js';

describe('port picking', () => {
  it('picks distinct, bindable ports', async () => {
    const ports = await pickFreePorts(5);
    expect(new Set(ports).size).toBe(5);
    for (const p of ports) {
      expect(p).toBeGreaterThan(0);
      expect(p).toBeLessThan(65536);
      expect(await isPortFree(p)).toBe(true);
    }
  });

  it('reports a port in use as not free', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    try {
      expect(await isPortFree(address.port)).toBe(false);
      await expect(assignPorts([{ name: 'redis', fixed: address.port }])).rejects.toThrow(
        /for redis.* is already in use/,
      );
      // The error names the variable that fixed the port, so the user knows what to change.
      await expect(
        assignPorts([{ name: 'redis', fixed: address.port, variable: 'DRIFTLINE_STACK_REDIS_PORT' }]),
      ).rejects.toThrow(
        `port ${address.port} for redis (DRIFTLINE_STACK_REDIS_PORT=${address.port}) is already in use`,
      );
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('keeps fixed ports and picks the others distinct from them', async () => {
    const fixed = await pickFreePort();
    const assigned = await assignPorts([{ name: 'a', fixed }, { name: 'b' }, { name: 'c' }]);
    expect(assigned.get('a')).toBe(fixed);
    const values = [...assigned.values()];
    expect(new Set(values).size).toBe(3);
  });

  it('rejects the same fixed port twice', async () => {
    const fixed = await pickFreePort();
    await expect(
      assignPorts([
        { name: 'a', fixed },
        { name: 'b', fixed },
      ]),
    ).rejects.toThrow(/requested twice/);
  });
});
