import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@driftline/core';
import { createRedisClient, waitReady } from '@driftline/online-store/redis';
import { startRunner } from '@driftline/service';
import { eventually, removeTree, uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { skewMonitorService } from '../src/service.js';
import { skewEnv } from './fixtures/stack.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'skew-marker-'));
const chPath = mkdtempSync(join(tmpdir(), 'skew-marker-ch-'));

// Redis restarted empty, or a key prefix other than the materializer's: every comparison was
// counted missing_in_store with readiness 200, and nothing told (found by a review).
describe('skew-monitor: the materializer state marker missing is exposed, readiness kept', () => {
  const redis = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'skew-monitor-marker' });
  afterAll(async () => {
    redis.disconnect();
    await removeTree(dir);
    await removeTree(chPath);
  });

  it('gauge 0 with the marker, 1 within the check period (10 s) once it is gone; readiness stays', async () => {
    await waitReady(redis, 10_000);
    // A prefix of its own on the shared Redis: deleting its marker is this test's FLUSHDB.
    const keyPrefix = uniqueName('skewmark').replaceAll('-', '_');
    const marker = `${keyPrefix}:state-marker:features`;
    await redis.set(marker, new Date().toISOString());
    const runner = await startRunner({
      services: [skewMonitorService as never],
      logger: silentLogger,
      env: skewEnv(stack, {
        dir,
        viewsYaml: 'views:\n  - name: profile\n    entity: user_id\n    features: { age: double }\n',
        prefix: `${uniqueName('skewmark')}.`,
        database: uniqueName('skewmark').replaceAll('-', '_'),
        chPath,
        keyPrefix,
        group: 'g1',
        sampleRate: 1,
      }),
    });
    try {
      const gauge = async () => {
        const text = await (await fetch(`http://127.0.0.1:${runner.httpPort}/metrics`)).text();
        const line = text.split('\n').find((l) => l.startsWith('driftline_online_store_state_missing{'));
        return line === undefined ? undefined : Number(line.split(' ').at(-1));
      };
      expect(await eventually(async () => (await gauge()) === 0 || undefined, 10_000, 100)).toBe(true);
      await eventually(async () => (runner.ready() ? true : undefined), 30_000, 100);
      await redis.del(marker);
      const deletedAt = Date.now();
      await eventually(async () => (await gauge()) === 1 || undefined, 20_000, 250);
      expect(Date.now() - deletedAt).toBeLessThan(17_000); // this check (every 10 s), not the next: under two periods, slack for a loaded run
      // Not a readiness failure: a fresh deployment has no marker before the materializer starts.
      expect(runner.ready()).toBe(true);
      expect(await redis.exists(marker)).toBe(0); // a reader never writes it
    } finally {
      await runner.stop();
    }
  });
});
