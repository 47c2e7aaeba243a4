import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@driftline/core';
import { startRunner } from '@driftline/service';
import {
  DATABASE_99_REFUSED_LINE,
  eventually,
  expectDatabase99Refused,
  freePort,
  uniqueName,
} from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { featureApi } from '../src/service.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'feature-api-redis-db-'));
const views = join(dir, 'views.yaml');
writeFileSync(views, 'views:\n  - name: user\n    entity: user_id\n    features: { f0: double }\n');

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
    const apiPort = await freePort();
    const refused = await expectDatabase99Refused({
      service: 'feature-api',
      stack,
      env: (redisUrl) => ({
        DRIFTLINE_REDIS_URL: redisUrl,
        DRIFTLINE_FEATURE_VIEWS: views,
        DRIFTLINE_TOPIC_PREFIX: `${uniqueName('rdb')}.`,
        DRIFTLINE_HTTP_PORT: '0',
        DRIFTLINE_FEATURE_API_PORT: String(apiPort),
        DRIFTLINE_STARTUP_TIMEOUT: '0',
      }),
      cleanup: (undo) => cleanup.push(undo),
      // Started while Redis is down: the API answers 503.
      untilStarted: (child) =>
        eventually(async () => {
          child.assertRunning();
          return (await apiHealth(apiPort)) === 503 ? true : undefined;
        }, 60_000).then(() => undefined),
    });
    expect(refused).toEqual({ exit: 78, lines: [expect.stringMatching(DATABASE_99_REFUSED_LINE)] });
  });
});
