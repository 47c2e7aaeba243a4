import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { assignPorts, ephemeralPortRange, isPortFree, pickFreePort, pickFreePorts, pickRange } from '../src/ports.js';

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

  // Linux's default 32768-60999 leaves 10000-29999; a host whose range starts lower picks port 0.
  it.skipIf(pickRange(ephemeralPortRange()) === undefined)(
    'picks below the ephemeral range, where outgoing connections and port-0 binds never land',
    async () => {
      const range = pickRange(ephemeralPortRange());
      for (const p of await pickFreePorts(20)) {
        expect(p).toBeGreaterThanOrEqual(range!.low);
        expect(p).toBeLessThanOrEqual(range!.high);
      }
      expect(await pickFreePort()).toBeLessThan(ephemeralPortRange().low);
    },
  );

  it('reads the ephemeral range from /proc text, falls back on nonsense, and picks freely where nothing is below it', () => {
    expect(ephemeralPortRange('32768\t60999\n')).toEqual({ low: 32_768, high: 60_999 });
    expect(ephemeralPortRange('49152 65535')).toEqual({ low: 49_152, high: 65_535 });
    for (const bad of ['', 'x y', '60999 32768', '0 100', '1024 70000']) {
      const fallback = ephemeralPortRange(bad);
      expect(fallback.low).toBeGreaterThanOrEqual(32_768);
    }
    expect(pickRange({ low: 32_768, high: 60_999 })).toEqual({ low: 10_000, high: 29_999 });
    expect(pickRange({ low: 49_152, high: 65_535 })).toEqual({ low: 10_000, high: 29_999 });
    expect(pickRange({ low: 20_000, high: 65_535 })).toEqual({ low: 10_000, high: 19_999 });
    expect(pickRange({ low: 1_024, high: 65_535 })).toBeUndefined(); // no room below: port 0
    expect(pickRange({ low: 10_500, high: 65_535 })).toBeUndefined();
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
