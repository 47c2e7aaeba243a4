import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '@driftline/core';
import { createRedisClient, waitReady } from '@driftline/online-store/redis';
import { type Runner, startRunner } from '@driftline/service';
import { eventually, freePort, removeTree, uniqueName } from '@driftline/test-support';
import { afterAll, afterEach, describe, expect, inject, it } from 'vitest';
import { skewMonitorService } from '../src/service.js';
import { skewEnv } from './fixtures/stack.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'skew-redis-server-'));
// One embedded ClickHouse directory for the file (the engine binds one per process); a database per test.
const chPath = mkdtempSync(join(tmpdir(), 'skew-redis-server-ch-'));

/**
 * A private one-node Redis Cluster holding every slot (never the shared stack's Redis), its bus on
 * a port picked free too (the default, port + 10000, was never checked).
 */
async function privateCluster(): Promise<{ url: string; process: ChildProcess; dir: string }> {
  const port = await freePort();
  let bus = await freePort();
  while (bus === port) bus = await freePort();
  const data = mkdtempSync(join(tmpdir(), 'skew-private-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', data, '--save', '', '--appendonly', 'no'];
  args.push('--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(bus));
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  const tooling = createRedisClient({ url, tls: false }, 'tooling');
  tooling.on('error', () => {}); // refused until the fresh server listens
  try {
    await waitReady(tooling, 10_000);
    await tooling.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
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
    const cluster = await privateCluster();
    cleanup.push(() => {
      cluster.process.kill('SIGKILL');
      rmSync(cluster.dir, { recursive: true, force: true });
    });
    const name = uniqueName('skewrs').replaceAll('-', '_');
    const runner = await startRunner({
      services: [skewMonitorService as never],
      logger: errorRecorder(lines),
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
