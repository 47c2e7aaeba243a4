import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRedisClient, waitReady } from '@driftline/online-store/redis';
import type { Runner } from '@driftline/service';
import { eventually, freePort, uniqueName } from '@driftline/test-support';
import { afterAll, describe, inject, it, type TestContext } from 'vitest';
import { writeVersion } from './fixtures.js';
import { deploymentTopics, startServer } from './stack-fixtures.js';

const stack = inject('stack');

/** An artifact dir of the test's own (the server writes its views file there), removed once it has finished. */
function artifacts(onTestFinished: TestContext['onTestFinished']): string {
  const dir = mkdtempSync(join(tmpdir(), 'model-server-marker-'));
  writeVersion(dir, 'fraud', 'v1', 21);
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The server's driftline_online_store_state_missing, or undefined while it has none. */
async function gauge(runner: Runner): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${runner.httpPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('driftline_online_store_state_missing{'));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

/** One prediction of `fraud`, once it is served; `features` given in the request. */
function predict(port: number, features: Record<string, number>): Promise<number> {
  return eventually(
    async () => {
      const answer = await fetch(`http://127.0.0.1:${port}/v1/models/fraud:predict`, {
        method: 'POST',
        body: JSON.stringify({ entity_id: 'u1', features }),
      }).catch(() => undefined);
      return answer === undefined || answer.status === 503 ? undefined : answer.status;
    },
    60_000,
    100,
  );
}

// Redis restarted empty, or a key prefix other than the materializer's: the model server answered
// 422 "no features" (or scored without them) and looked healthy; nothing told (found by a review).
// Each test has a key prefix, topics, an artifact dir and a server of its own: they run at once.
describe.concurrent('model-server: the materializer state marker missing is exposed while it reads the store', () => {
  const redis = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'model-server-marker' });
  afterAll(() => {
    redis.disconnect();
  });

  it('gauge 0 with the marker, 1 within the check period (10 s) once it is gone', async ({
    expect,
    onTestFinished,
  }) => {
    await waitReady(redis, 10_000);
    const dir = artifacts(onTestFinished);
    // A key prefix of its own on the shared Redis: deleting its marker is this test's FLUSHDB.
    const keyPrefix = uniqueName('msmark');
    const marker = `${keyPrefix}:state-marker:features`;
    await redis.set(marker, new Date().toISOString());
    const prefix = `${uniqueName('msmark')}.`;
    await deploymentTopics(stack, prefix, dir).stage('fraud', 'PROMOTED', 'v1');
    const port = await freePort();
    const runner = await startServer(stack, dir, prefix, port, { DRIFTLINE_FEATURE_KEY_PREFIX: keyPrefix });
    try {
      // f3 only: the others are read from the store, so the marker counts.
      expect(await predict(port, { f3: 1 })).toBe(200);
      expect(await eventually(async () => (await gauge(runner)) === 0 || undefined, 15_000)).toBe(true);
      await redis.del(marker);
      const deletedAt = Date.now();
      await eventually(async () => (await gauge(runner)) === 1 || undefined, 20_000, 250);
      expect(Date.now() - deletedAt).toBeLessThan(17_000); // this check (every 10 s), not the next: under two periods, slack for a loaded run
      expect(await redis.exists(marker)).toBe(0); // a reader never writes it
    } finally {
      await runner.stop();
    }
  });

  it('a server whose requests carry every feature keeps the gauge 0 without a marker; its first store read reports it (found by a review)', async ({
    expect,
    onTestFinished,
  }) => {
    await waitReady(redis, 10_000);
    const dir = artifacts(onTestFinished);
    const keyPrefix = uniqueName('msinline'); // no materializer, no marker: ever
    const prefix = `${uniqueName('msinline')}.`;
    await deploymentTopics(stack, prefix, dir).stage('fraud', 'PROMOTED', 'v1');
    const port = await freePort();
    const runner = await startServer(stack, dir, prefix, port, { DRIFTLINE_FEATURE_KEY_PREFIX: keyPrefix });
    try {
      const everyFeature = { f0: 0.1, f1: 2, f2: -1, f3: 1 };
      expect(await predict(port, everyFeature)).toBe(200);
      // Past the first check (at once) and the next (10 s), serving inline features all along.
      // Before, 1 from the first check on: a critical alert for ever on a server needing no store.
      const until = Date.now() + 11_000;
      while (Date.now() < until) {
        expect(await predict(port, everyFeature)).toBe(200);
        expect(await gauge(runner)).toBe(0);
        await new Promise((r) => setTimeout(r, 500));
      }
      // A request leaving features to the store: the missing marker counts from the next check.
      await predict(port, { f3: 1 });
      const readAt = Date.now();
      await eventually(async () => (await gauge(runner)) === 1 || undefined, 20_000, 250);
      expect(Date.now() - readAt).toBeLessThan(17_000); // this check (every 10 s), not the next: under two periods, slack for a loaded run
    } finally {
      await runner.stop();
    }
  });
});
