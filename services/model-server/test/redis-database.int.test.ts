import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@driftline/core';
import { startRunner } from '@driftline/service';
import { DATABASE_99_REFUSED_LINE, expectDatabase99Refused, freePort, uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { modelServer } from '../src/service.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'model-server-redis-db-'));
const views = join(dir, 'views.yaml');
writeFileSync(views, 'views:\n  - name: user\n    entity: user_id\n    features: { f0: double }\n');

const env = (redisUrl: string) => ({
  DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
  DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
  DRIFTLINE_REDIS_URL: redisUrl,
  DRIFTLINE_FEATURE_VIEWS: views,
  DRIFTLINE_TOPIC_PREFIX: `${uniqueName('rdb')}.`,
  DRIFTLINE_MODEL_SERVER_PORT: '0',
  DRIFTLINE_MODEL_SERVER_ARTIFACT_DIR: join(dir, 'models'),
  DRIFTLINE_HTTP_PORT: '0',
  DRIFTLINE_STARTUP_TIMEOUT: '0',
});

describe('model-server start-up and the database of DRIFTLINE_REDIS_URL', () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('starts with Redis down and a database in the URL (`/3`): the start does not wait for it (requests carrying every feature never need Redis)', async () => {
    // It waited 10 s for Redis and failed start-up (DRIFTLINE_STARTUP_TIMEOUT), for as long as Redis was down.
    const runner = await startRunner({
      services: [modelServer as never],
      logger: silentLogger,
      env: env(`redis://127.0.0.1:${await freePort()}/3`),
    });
    cleanup.push(() => runner.stop());
    expect((await fetch(`http://127.0.0.1:${runner.httpPort}/healthz`)).status).toBe(200);
    expect(runner.ready()).toBe(false);
  });

  it('a database the server refuses (`/99` of 16) ends the process when Redis answers: one line, exit 78', async () => {
    const refused = await expectDatabase99Refused({
      service: 'model-server',
      stack,
      env,
      cleanup: (undo) => cleanup.push(undo),
    });
    expect(refused).toEqual({ exit: 78, lines: [expect.stringMatching(DATABASE_99_REFUSED_LINE)] });
  });
});
