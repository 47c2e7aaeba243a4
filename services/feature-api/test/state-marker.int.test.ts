import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@driftline/core';
import { createRedisClient, waitReady } from '@driftline/online-store/redis';
import { startRunner } from '@driftline/service';
import { eventually, freePort, uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { featureApi } from '../src/service.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'feature-api-marker-'));
const views = join(dir, 'views.yaml');
writeFileSync(views, 'views:\n  - name: user\n    entity: user_id\n    features: { f0: double }\n');

// Redis restarted empty, or a key prefix other than the materializer's: the API answered
// {"found":false} to every read with /healthz 200, and nothing told (found by a review).
describe('feature-api: the materializer state marker missing is exposed, readiness kept', () => {
  const redis = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'feature-api-marker' });
  afterAll(() => {
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const thread of ['worker', 'main'] as const) {
    it(`gauge 0 with the marker within seconds of the start, 1 within the check period (10 s) once it is gone; /healthz stays 200 (${thread} thread)`, async () => {
      await waitReady(redis, 10_000);
      // A prefix of its own on the shared Redis: deleting its marker is this test's FLUSHDB.
      const keyPrefix = uniqueName('apimark');
      const marker = `${keyPrefix}:state-marker:features`;
      await redis.set(marker, new Date().toISOString());
      const apiPort = await freePort();
      const startedAt = Date.now();
      const runner = await startRunner({
        services: [featureApi as never],
        logger: silentLogger,
        env: {
          DRIFTLINE_REDIS_URL: stack.redisUrl,
          DRIFTLINE_FEATURE_VIEWS: views,
          DRIFTLINE_FEATURE_KEY_PREFIX: keyPrefix,
          DRIFTLINE_FEATURE_API_THREAD: thread,
          DRIFTLINE_HTTP_PORT: '0',
          DRIFTLINE_FEATURE_API_PORT: String(apiPort),
        },
      });
      try {
        const gauge = async () => {
          const text = await (await fetch(`http://127.0.0.1:${runner.httpPort}/metrics`)).text();
          const line = text.split('\n').find((l) => l.startsWith('driftline_online_store_state_missing{'));
          return line === undefined ? undefined : Number(line.split(' ').at(-1));
        };
        // The first check once its connection is ready: before, its GET on the connection still
        // being made failed, and the gauge appeared at the second check, 10 s later.
        expect(await eventually(async () => (await gauge()) === 0 || undefined, 10_000, 100)).toBe(true);
        // Under the 10 s period the second check would take (7.7 s seen on a loaded fresh clone): the
        // watch began after startedAt, so its second check comes 10 s after it or later.
        expect(Date.now() - startedAt).toBeLessThan(9_900);
        await redis.del(marker);
        const deletedAt = Date.now();
        await eventually(async () => (await gauge()) === 1 || undefined, 20_000, 250);
        expect(Date.now() - deletedAt).toBeLessThan(17_000); // this check (every 10 s), not the next: under two periods, slack for a loaded run
        // Not a readiness failure: a fresh deployment has no marker before the materializer starts.
        expect((await fetch(`http://127.0.0.1:${apiPort}/healthz`)).status).toBe(200);
        expect(await redis.exists(marker)).toBe(0); // a reader never writes it
      } finally {
        await runner.stop();
      }
    });
  }
});
