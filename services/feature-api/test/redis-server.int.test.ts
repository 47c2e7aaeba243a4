import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '@driftline/core';
import { createRedisClient, waitReady } from '@driftline/online-store/redis';
import { startRunner } from '@driftline/service';
import { eventually, freePort } from '@driftline/test-support';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { featureApi } from '../src/service.js';

const dir = mkdtempSync(join(tmpdir(), 'feature-api-redis-server-'));
const views = join(dir, 'views.yaml');
writeFileSync(views, 'views:\n  - name: user\n    entity: user_id\n    features: { f0: double }\n');

/**
 * A private redis-server (never the shared stack's); `cluster`: a one-node Redis Cluster holding
 * every slot, its bus on a port picked free too (the default, port + 10000, was never checked).
 */
async function privateRedis(cluster: boolean): Promise<{ url: string; process: ChildProcess; dir: string }> {
  const port = await freePort();
  let bus = await freePort();
  while (bus === port) bus = await freePort();
  const data = mkdtempSync(join(tmpdir(), 'feature-api-private-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', data, '--save', '', '--appendonly', 'no'];
  if (cluster)
    args.push('--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(bus));
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  const tooling = createRedisClient({ url, tls: false }, 'tooling');
  tooling.on('error', () => {}); // refused until the fresh server listens
  try {
    await waitReady(tooling, 10_000);
    if (cluster) await tooling.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
  } finally {
    tooling.disconnect();
  }
  return { url, process: child, dir: data };
}

/** A logger that records its error lines (the others are dropped). */
function errorRecorder(lines: Array<{ obj: object; msg?: string }>): Logger {
  const ignore = () => {};
  const logger: Logger = {
    debug: ignore,
    info: ignore,
    warn: ignore,
    error: (obj, msg) => void lines.push(msg === undefined ? { obj } : { obj, msg }),
    child: () => logger,
  };
  return logger;
}

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
      logger: errorRecorder(lines),
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
    const redis = await privateRedis(cluster);
    cleanup.push(() => {
      redis.process.kill('SIGKILL');
      rmSync(redis.dir, { recursive: true, force: true });
    });
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
