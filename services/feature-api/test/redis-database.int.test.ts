import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '@driftline/core';
import { startRunner } from '@driftline/service';
import { eventually, freePort, proxyOn, serviceEnv, uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { featureApi } from '../src/service.js';

const stack = inject('stack');
const root = fileURLToPath(new URL('../../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'feature-api-redis-db-'));
const views = join(dir, 'views.yaml');
writeFileSync(views, 'views:\n  - name: user\n    entity: user_id\n    features: { f0: double }\n');
const REFUSED_99 = /configuration error: DRIFTLINE_REDIS_URL: the server refuses database 99 \(ERR DB index/;

const apiHealth = async (port: number) => (await fetch(`http://127.0.0.1:${port}/healthz`)).status;

describe('feature-api start-up and the database of DRIFTLINE_REDIS_URL', () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('starts with Redis down and a database in the URL (`/3`): the API answers 503, not a crash loop', async () => {
    // It waited 10 s for Redis and failed start-up (DRIFTLINE_STARTUP_TIMEOUT), for as long as Redis was down.
    const apiPort = await freePort();
    const runner = await startRunner({
      services: [featureApi as never],
      logger: silentLogger,
      env: {
        DRIFTLINE_REDIS_URL: `redis://127.0.0.1:${await freePort()}/3`,
        DRIFTLINE_FEATURE_VIEWS: views,
        DRIFTLINE_HTTP_PORT: '0',
        DRIFTLINE_FEATURE_API_PORT: String(apiPort),
        DRIFTLINE_STARTUP_TIMEOUT: '0',
      },
    });
    cleanup.push(() => runner.stop());
    expect(await apiHealth(apiPort)).toBe(503);
    expect(runner.ready()).toBe(false);
  });

  it('a database the server refuses (`/99` of 16) ends the process when Redis answers: one line, exit 78', async () => {
    const [redisPort, apiPort] = [await freePort(), await freePort()];
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions=source', 'services/cli/src/main.ts', 'run', 'feature-api'],
      {
        cwd: root,
        env: serviceEnv(stack, {
          DRIFTLINE_REDIS_URL: `redis://127.0.0.1:${redisPort}/99`,
          DRIFTLINE_FEATURE_VIEWS: views,
          DRIFTLINE_TOPIC_PREFIX: `${uniqueName('rdb')}.`,
          DRIFTLINE_HTTP_PORT: '0',
          DRIFTLINE_FEATURE_API_PORT: String(apiPort),
          DRIFTLINE_STARTUP_TIMEOUT: '0',
        }),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    cleanup.push(() => child.exitCode === null && child.kill('SIGKILL'));
    // Started while Redis is down: the API answers 503.
    await eventually(async () => {
      if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${output}`);
      return (await apiHealth(apiPort)) === 503 ? true : undefined;
    }, 60_000);
    const redis = await proxyOn(redisPort, stack.redisUrl);
    cleanup.push(() => new Promise((resolve) => redis.close(resolve)));
    expect(await exited).toBe(78);
    expect(output.split('\n').filter((line) => line.includes('DRIFTLINE_REDIS_URL'))).toEqual([
      expect.stringMatching(REFUSED_99),
    ]);
  });
});
