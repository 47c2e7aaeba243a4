import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Runner } from '@driftline/service';
import { eventually, freePort, privateRedis, recordingLogger, uniqueName } from '@driftline/test-support';
import { describe, inject, it, type TestContext } from 'vitest';
import { writeVersion } from './fixtures.js';
import { deploymentTopics, startServer } from './stack-fixtures.js';

const stack = inject('stack');

/** The cleanups of one test, run in reverse once it has finished. */
function cleanups(onTestFinished: TestContext['onTestFinished']): Array<() => unknown> {
  const cleanup: Array<() => unknown> = [];
  onTestFinished(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });
  return cleanup;
}

/** The runner's /healthz: its status and body. */
async function liveness(runner: Runner): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${runner.httpPort}/healthz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** One prediction of `fraud`, once served (503 while the replay is not applied): its status. */
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

const EVERY_FEATURE = { f0: 0.1, f1: 2, f2: -1, f3: 1 };
const CLUSTER_REFUSED = /^DRIFTLINE_REDIS_URL: a Redis Cluster: driftline needs a standalone Redis/;
const naming = (lines: Array<{ obj: object; msg?: string }>) =>
  lines.filter((l) => JSON.stringify(l).includes('DRIFTLINE_REDIS_URL'));

// Found by a review: the feature-materializer and the feature API check the server
// (watchRedisServer); the model server did not, so on a Redis Cluster every request reading the
// store failed with a generic error while /healthz said 200.
// Each test has topics, an artifact dir and a server of its own (the first a Redis of its own): they run at once.
describe.concurrent('model-server and a Redis server driftline does not support', () => {
  const serve = async (
    cleanup: Array<() => unknown>,
    redisUrl: string,
    lines: Array<{ obj: object; msg?: string }>,
  ) => {
    const dir = mkdtempSync(join(tmpdir(), 'model-server-redis-server-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    writeVersion(dir, 'fraud', 'v1', 21);
    const prefix = `${uniqueName('msrs')}.`;
    await deploymentTopics(stack, prefix, dir).stage('fraud', 'PROMOTED', 'v1');
    const port = await freePort();
    const runner = await startServer(
      stack,
      dir,
      prefix,
      port,
      { DRIFTLINE_REDIS_URL: redisUrl },
      recordingLogger('error', lines),
    );
    cleanup.push(() => runner.stop());
    return { runner, port };
  };

  it('a one-node Redis Cluster: one error line naming DRIFTLINE_REDIS_URL; requests carrying every feature answered and live; liveness fails once a request reads the store', async ({
    expect,
    onTestFinished,
  }) => {
    const cleanup = cleanups(onTestFinished);
    const cluster = await privateRedis({ cluster: true });
    cleanup.push(() => cluster.stop());
    const lines: Array<{ obj: object; msg?: string }> = [];
    const { runner, port } = await serve(cleanup, cluster.url, lines);
    await eventually(async () => (naming(lines).length > 0 ? true : undefined), 15_000);
    expect(naming(lines)).toEqual([
      {
        obj: { reason: expect.stringMatching(CLUSTER_REFUSED) },
        msg: "Redis cannot serve the feature reads: the runner's /healthz and /readyz (DRIFTLINE_HTTP_PORT) fail once a request reads the store (requests carrying every feature are answered)",
      },
    ]);
    // The verdict is in: an instance whose requests never read the store stays live and ready
    // (a restart loop would stop answering them, for a Redis they do not need).
    for (let i = 0; i < 3; i++) expect(await predict(port, EVERY_FEATURE)).toBe(200);
    expect((await liveness(runner)).status).toBe(200);
    expect(runner.ready()).toBe(true);
    // A request leaving f0..f2 to the store (whatever a one-node cluster answers it): not live from then on.
    await fetch(`http://127.0.0.1:${port}/v1/models/fraud:predict`, {
      method: 'POST',
      body: JSON.stringify({ entity_id: 'u1', features: { f3: 1 } }),
    });
    const health = await liveness(runner);
    expect(health).toEqual({ status: 503, body: expect.objectContaining({ unhealthy: ['model-server'] }) });
    expect(runner.ready()).toBe(false);
    expect(naming(lines)).toHaveLength(1); // one line, not one per request
  });

  it('a standalone Redis (the stack’s) passes: live after requests read the store, no line naming DRIFTLINE_REDIS_URL', async ({
    expect,
    onTestFinished,
  }) => {
    const lines: Array<{ obj: object; msg?: string }> = [];
    const { runner, port } = await serve(cleanups(onTestFinished), stack.redisUrl, lines);
    expect(await predict(port, { f3: 1 })).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 500)); // the check has had its round trips
    expect((await liveness(runner)).status).toBe(200);
    expect(naming(lines)).toEqual([]);
  });
});
