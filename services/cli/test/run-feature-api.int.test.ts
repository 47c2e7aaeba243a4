import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import { createRedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import { eventually, freePort, uniqueName } from '@driftline/test-support';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freshBundle } from './fresh-bundle.js';

const stack = inject('stack');
const VIEWS = 'views:\n  - name: profile\n    entity: user_id\n    features:\n      age: double\n';

// The compiled binary, as users run it: a fresh bundle of the current sources (the feature API's
// worker thread must be in it too).
describe('driftline run feature-api (compiled)', () => {
  const cleanup: Array<() => Promise<void>> = [];
  let main: string;
  beforeAll(async () => {
    const bundle = await freshBundle('run-feature-api');
    cleanup.push(bundle.remove);
    main = bundle.main;
  });
  afterAll(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });

  it('starts with only Redis configured (no Kafka, registry or ClickHouse), serves features and stops cleanly', async () => {
    const keyPrefix = uniqueName('cli');
    const viewsFile = join(tmpdir(), `${uniqueName('views')}.yaml`);
    writeFileSync(viewsFile, VIEWS);
    const views = parseFeatureViewsText(VIEWS);
    const store = createRedisOnlineStore({ url: stack.redisUrl, tls: false }, { use: 'online-write', keyPrefix });
    cleanup.push(() => store.close());
    await waitReady(store.client);
    await store.write(
      planWrites([
        validateFeatureEvent(views, {
          event_id: 'e1',
          view: 'profile',
          entity_id: 'u1',
          event_time: Date.now(),
          features: { age: 42 },
        }),
      ]),
    );

    const [httpPort, apiPort] = [await freePort(), await freePort()];
    // Only what the feature API needs: no DRIFTLINE_KAFKA_*, _SCHEMA_REGISTRY_*, _CLICKHOUSE_* at all.
    const env = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? tmpdir(),
      DRIFTLINE_REDIS_URL: stack.redisUrl,
      DRIFTLINE_FEATURE_VIEWS: viewsFile,
      DRIFTLINE_FEATURE_KEY_PREFIX: keyPrefix,
      DRIFTLINE_HTTP_PORT: String(httpPort),
      DRIFTLINE_FEATURE_API_PORT: String(apiPort),
      DRIFTLINE_LOG_LEVEL: 'warn',
    };
    const child: ChildProcess = spawn(process.execPath, [main, 'run', 'feature-api'], {
      cwd: tmpdir(),
      env,
      stdio: ['ignore', 'inherit', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    cleanup.push(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });

    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`driftline exited with ${child.exitCode}: ${stderr}`);
        const res = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
        return res.status === 200 ? true : undefined;
      },
      60_000,
      200,
    );
    const res = await fetch(`http://127.0.0.1:${apiPort}/v1/features/profile/u1`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ view: 'profile', entity: 'u1', found: true, features: { age: 42 } });

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
  });
});
