import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRunner } from '@driftline/service';
import { eventually, privateRedis, recordingLogger } from '@driftline/test-support';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { featureApi } from '../src/service.js';

const dir = mkdtempSync(join(tmpdir(), 'feature-api-redis-server-'));
const views = join(dir, 'views.yaml');
writeFileSync(views, 'views:\n  - name: user\n    entity: user_id\n    features: { f0: double }\n');

const CLUSTER_REFUSED = /^DRIFTLINE_REDIS_URL: a Redis Cluster: driftline needs a standalone Redis/;

// Found by a review: on a Redis Cluster every batch read answered 500 (its MGET: CROSSSLOT; a key
// on another node: MOVED), an error line per request, with /healthz 200. The materializer checked
// the server (checkRedisServer) and failed liveness; the API did not check.
describe('feature-api and a Redis server driftline does not support', () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const start = async (url: string, thread: 'worker' | 'main', lines: Array<{ obj: object; msg?: string }>) => {
    const runner = await startRunner({
      services: [featureApi as never],
      logger: recordingLogger('error', lines),
      env: {
        DRIFTLINE_REDIS_URL: url,
        DRIFTLINE_FEATURE_VIEWS: views,
        DRIFTLINE_FEATURE_API_THREAD: thread,
        DRIFTLINE_HTTP_PORT: '0',
        DRIFTLINE_FEATURE_API_PORT: '0',
      },
    });
    cleanup.push(() => runner.stop());
    return async (path: '/healthz' | '/readyz') => {
      const res = await fetch(`http://127.0.0.1:${runner.httpPort}${path}`);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
  };

  const server = async (cluster: boolean) => {
    const redis = await privateRedis({ cluster, args: ['--save', '', '--appendonly', 'no'] });
    cleanup.push(() => redis.stop());
    return redis;
  };

  for (const thread of ['worker', 'main'] as const) {
    it(`a one-node Redis Cluster fails liveness and readiness with one error line naming DRIFTLINE_REDIS_URL (${thread} thread)`, async () => {
      const cluster = await server(true);
      const lines: Array<{ obj: object; msg?: string }> = [];
      const probe = await start(cluster.url, thread, lines);
      const health = await eventually(async () => {
        const h = await probe('/healthz');
        return h.status === 503 ? h : undefined;
      }, 15_000);
      expect(health.body).toMatchObject({ status: 'unavailable', unhealthy: ['feature-api'] });
      expect((await probe('/readyz')).status).toBe(503);
      const naming = lines.filter((l) => JSON.stringify(l).includes('DRIFTLINE_REDIS_URL'));
      expect(naming).toEqual([
        {
          obj: { reason: expect.stringMatching(CLUSTER_REFUSED) },
          msg: 'Redis cannot serve the feature reads: /healthz fails',
        },
      ]);
    });
  }

  it('a standalone Redis passes: live and ready, no error line', async () => {
    const standalone = await server(false);
    const lines: Array<{ obj: object; msg?: string }> = [];
    const probe = await start(standalone.url, 'worker', lines);
    await eventually(async () => ((await probe('/readyz')).status === 200 ? true : undefined), 15_000);
    await new Promise((resolve) => setTimeout(resolve, 500)); // the check has had its round trips
    expect((await probe('/healthz')).status).toBe(200);
    expect(lines).toEqual([]);
  });
});
