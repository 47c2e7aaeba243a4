import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Runner, startRunner } from '@driftline/service';
import { eventually, privateRedis, recordingLogger, removeTree, uniqueName } from '@driftline/test-support';
import { afterAll, afterEach, describe, expect, inject, it } from 'vitest';
import { skewMonitorService } from '../src/service.js';
import { skewEnv } from './fixtures/stack.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'skew-redis-server-'));
// One embedded ClickHouse directory for the file (the engine binds one per process); a database per test.
const chPath = mkdtempSync(join(tmpdir(), 'skew-redis-server-ch-'));

async function liveness(runner: Runner): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${runner.httpPort}/healthz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const CLUSTER_REFUSED = /^DRIFTLINE_REDIS_URL: a Redis Cluster: driftline needs a standalone Redis/;
const naming = (lines: Array<{ obj: object; msg?: string }>) =>
  lines.filter((l) => JSON.stringify(l).includes('DRIFTLINE_REDIS_URL'));

// Found by a review: the feature-materializer and the feature API check the server
// (watchRedisServer); the skew monitor did not, so on a Redis Cluster every batch read was refused
// (CROSSSLOT, MOVED) while /healthz said 200.
describe('skew-monitor and a Redis server driftline does not support', () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });
  afterAll(async () => {
    await removeTree(dir);
    await removeTree(chPath);
  });

  const start = async (sampleRate: number, lines: Array<{ obj: object; msg?: string }>) => {
    const cluster = await privateRedis({ cluster: true });
    cleanup.push(() => cluster.stop());
    const name = uniqueName('skewrs').replaceAll('-', '_');
    const runner = await startRunner({
      services: [skewMonitorService as never],
      logger: recordingLogger('error', lines),
      env: skewEnv(
        stack,
        {
          dir,
          viewsYaml: 'views:\n  - name: profile\n    entity: user_id\n    features: { age: double }\n',
          prefix: `${name}.`,
          database: name,
          chPath,
          keyPrefix: name,
          group: 'g1',
          sampleRate,
        },
        { DRIFTLINE_REDIS_URL: cluster.url },
      ),
    });
    cleanup.push(() => runner.stop());
    return runner;
  };

  it('a one-node Redis Cluster fails liveness and readiness with one error line naming DRIFTLINE_REDIS_URL', async () => {
    const lines: Array<{ obj: object; msg?: string }> = [];
    const runner = await start(1, lines);
    const health = await eventually(async () => {
      const h = await liveness(runner);
      return h.status === 503 ? h : undefined;
    }, 15_000);
    expect(health.body).toMatchObject({ status: 'unavailable', unhealthy: ['skew-monitor'] });
    expect(runner.ready()).toBe(false);
    expect(naming(lines)).toEqual([
      {
        obj: { reason: expect.stringMatching(CLUSTER_REFUSED) },
        msg: 'Redis cannot serve the skew comparisons: /healthz fails',
      },
    ]);
  });

  it('at DRIFTLINE_SKEW_SAMPLE_RATE 0 (the store is never read) it is not checked: live, no line', async () => {
    const lines: Array<{ obj: object; msg?: string }> = [];
    const runner = await start(0, lines);
    await eventually(async () => (runner.ready() ? true : undefined), 30_000, 100);
    await new Promise((resolve) => setTimeout(resolve, 500)); // a check would have had its round trips
    expect((await liveness(runner)).status).toBe(200);
    expect(naming(lines)).toEqual([]);
  });
});
