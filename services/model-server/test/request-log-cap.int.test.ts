import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import { createRedisOnlineStore, type RedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import { syntheticModelJson } from '@driftline/scoring/bench';
import type { Runner } from '@driftline/service';
import { eventually, freePort, uniqueName } from '@driftline/test-support';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DEFAULT_PREDICT_LIMITS } from '../src/request.js';
import { deploymentTopics, startServer } from './stack-fixtures.js';

// Found by a review: one entity holding a 65,536-character string, named 1,000 times in a 20 KB
// request, made the server queue 3,000 records of 64 KB (production and two shadows) and slowed
// every other client's requests from ~2 ms to seconds. Such a request is now a 413 naming the
// setting, while a full batch of ordinary numeric features is served.

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'model-server-cap-'));
const prefix = `${uniqueName('mscap')}.`;
const keyPrefix = uniqueName('mscap');
/** 256 numeric features with 16-character names, and one string feature the models take as a category. */
const NUMERIC = Array.from({ length: 256 }, (_, i) => `numeric_feat_${String(i).padStart(3, '0')}`);
const FEATURES = [...NUMERIC, 'other'];
const VIEWS = `views:
  - name: user
    entity: user_id
    ttl: 1d
    features:
${FEATURES.map((f) => `      ${f}: ${f === 'other' ? 'string' : 'double'}`).join('\n')}
`;
const views = parseFeatureViewsText(VIEWS);
for (const [version, seed] of [
  ['v1', 21],
  ['v2', 22],
  ['v3', 23],
] as const) {
  const at = join(dir, 'fraud', version);
  mkdirSync(at, { recursive: true });
  // Unnamed features (as the trainer's): meta.json names them.
  const json = syntheticModelJson(seed, 10, 4, FEATURES.length) as { learner: Record<string, unknown> };
  json.learner.feature_names = [];
  json.learner.feature_types = [];
  writeFileSync(join(at, 'model.json'), JSON.stringify(json));
  writeFileSync(join(at, 'meta.json'), JSON.stringify({ features: FEATURES, categories: { other: ['x', 'y'] } }));
}
const viewsFile = join(dir, 'cap-views.yaml');
writeFileSync(viewsFile, VIEWS);
const topics = deploymentTopics(stack, prefix, dir);
/** DRIFTLINE_MODEL_SERVER_MAX_REQUEST_LOG_BYTES's default (README): 64 MiB. */
const CAP = 67_108_864;

describe('the log bytes one request may take (real stack)', () => {
  let runner: Runner | undefined;
  let writer: RedisOnlineStore;
  let base: string;
  const post = (body: unknown) =>
    fetch(`${base}/v1/models/fraud:predict`, { method: 'POST', body: JSON.stringify(body) });

  beforeAll(async () => {
    writer = createRedisOnlineStore({ url: stack.redisUrl, tls: false }, { use: 'online-write', keyPrefix });
    await waitReady(writer.client);
    const t = Date.now();
    const numbers = (i: number) => Object.fromEntries(NUMERIC.map((f, j) => [f, i + j / 1_000]));
    const events = Array.from({ length: DEFAULT_PREDICT_LIMITS.maxBatch }, (_, i) =>
      validateFeatureEvent(views, {
        event_id: `e${i}`,
        view: 'user',
        entity_id: `u${i}`,
        event_time: t,
        features: { ...numbers(i), other: i % 2 === 0 ? 'x' : 'y' },
      }),
    );
    events.push(
      validateFeatureEvent(views, {
        event_id: 'e-big',
        view: 'user',
        entity_id: 'big',
        event_time: t,
        features: { ...numbers(0), other: 'z'.repeat(65_536) },
      }),
    );
    for (let from = 0; from < events.length; from += 200)
      await writer.write(planWrites(events.slice(from, from + 200)));
    await topics.stage('fraud', 'PROMOTED', 'v1');
    const port = await freePort();
    runner = await startServer(stack, dir, prefix, port, {
      DRIFTLINE_FEATURE_KEY_PREFIX: keyPrefix,
      DRIFTLINE_FEATURE_VIEWS: viewsFile,
      DRIFTLINE_MODEL_SERVER_SHADOW: 'fraud=v2,fraud=v3',
    });
    base = `http://127.0.0.1:${port}`;
    await eventually(async () => ((await post({ entity_id: 'u1' })).status === 200 ? true : undefined), 60_000);
  }, 120_000);

  afterAll(async () => {
    await runner?.stop();
    const keys = await writer.client.keys(`${keyPrefix}:*`);
    if (keys.length > 0) await writer.client.unlink(...keys);
    await writer.close();
  });

  it('answers 413 naming the cap and its setting to a small request that would log more, and serves a full batch of 256 numeric features', async () => {
    const body = { instances: Array.from({ length: DEFAULT_PREDICT_LIMITS.maxBatch }, () => ({ entity_id: 'big' })) };
    expect(JSON.stringify(body).length).toBeLessThan(25_000);
    const big = await post(body);
    const answer = (await big.json()) as { error?: { code: string; message: string } };
    expect(big.status).toBe(413);
    expect(answer.error?.code).toBe('BAD_REQUEST');
    expect(answer.error?.message).toMatch(
      new RegExp(
        `^request would log \\d+ bytes of string feature values \\(3000 records, all versions\\), over DRIFTLINE_MODEL_SERVER_MAX_REQUEST_LOG_BYTES \\(${CAP}\\)`,
      ),
    );
    expect(answer.error?.message).not.toContain('\n');

    // The default max batch of ordinary features, production and two shadows: ~19 MiB, served.
    const full = await post({
      instances: Array.from({ length: DEFAULT_PREDICT_LIMITS.maxBatch }, (_, i) => ({ entity_id: `u${i}` })),
    });
    const served = (await full.json()) as { predictions: Array<{ entity_id: string; version: string }> };
    expect(full.status).toBe(200);
    expect(served.predictions).toHaveLength(DEFAULT_PREDICT_LIMITS.maxBatch);
    expect(served.predictions.every((p, i) => p.entity_id === `u${i}` && p.version === 'v1')).toBe(true);

    // One copy of the long string is an ordinary request (~200 KB logged): served.
    expect((await post({ instances: [{ entity_id: 'big' }, { entity_id: 'u1' }] })).status).toBe(200);
  }, 120_000);
});
