import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRedisClient, waitReady } from '@driftline/online-store/redis';
import { eventually, freePort, uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { startServer } from './stack-fixtures.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'model-server-marker-'));

// Redis restarted empty, or a key prefix other than the materializer's: the model server answered
// 422 "no features" (or scored without them) and looked healthy; nothing told (found by a review).
describe('model-server: the materializer state marker missing is exposed', () => {
  const redis = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'model-server-marker' });
  afterAll(() => {
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  it('gauge 0 with the marker, 1 within the check period (10 s) once it is gone', async () => {
    await waitReady(redis, 10_000);
    // A key prefix of its own on the shared Redis: deleting its marker is this test's FLUSHDB.
    const keyPrefix = uniqueName('msmark');
    const marker = `${keyPrefix}:state-marker:features`;
    await redis.set(marker, new Date().toISOString());
    const runner = await startServer(stack, dir, `${uniqueName('msmark')}.`, await freePort(), {
      DRIFTLINE_FEATURE_KEY_PREFIX: keyPrefix,
    });
    try {
      const gauge = async () => {
        const text = await (await fetch(`http://127.0.0.1:${runner.httpPort}/metrics`)).text();
        const line = text.split('\n').find((l) => l.startsWith('driftline_online_store_state_missing{'));
        return line === undefined ? undefined : Number(line.split(' ').at(-1));
      };
      expect(await eventually(async () => (await gauge()) === 0 || undefined, 10_000)).toBe(true);
      await redis.del(marker);
      const deletedAt = Date.now();
      await eventually(async () => (await gauge()) === 1 || undefined, 20_000, 250);
      expect(Date.now() - deletedAt).toBeLessThan(12_000);
      expect(await redis.exists(marker)).toBe(0); // a reader never writes it
    } finally {
      await runner.stop();
    }
  });
});
