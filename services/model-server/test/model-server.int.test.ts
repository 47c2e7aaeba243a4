import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import { createRedisOnlineStore, type RedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import type { ModelEvent } from '@driftline/schemas';
import { loadXgboostModel } from '@driftline/scoring';
import type { Runner } from '@driftline/service';
import { eventually, freePort, uniqueName } from '@driftline/test-support';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { VIEWS_YAML, writeVersion } from './fixtures.js';
import { deploymentTopics, startServer } from './stack-fixtures.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'model-server-int-'));
const prefix = `${uniqueName('ms')}.`;
const keyPrefix = uniqueName('ms');
const views = parseFeatureViewsText(VIEWS_YAML);
const models = {
  v1: writeVersion(dir, 'fraud', 'v1', 11),
  v2: writeVersion(dir, 'fraud', 'v2', 12),
  v3: writeVersion(dir, 'fraud', 'v3', 13),
};
const score = (v: keyof typeof models, row: Array<number | null>) =>
  loadXgboostModel(models[v]).predictOne(Float32Array.from(row.map((x) => (x === null ? Number.NaN : x))));

const topics = deploymentTopics(stack, prefix, dir);
const stage = (kind: ModelEvent['kind'], version: string, extra: Partial<ModelEvent> = {}) =>
  topics.stage('fraud', kind, version, extra);
const logged = topics.logged;

describe('model-server on the real stack (Kafka, registry, Redis)', () => {
  let runner: Runner | undefined;
  let writer: RedisOnlineStore;
  let base: string;
  const post = (body: unknown) =>
    fetch(`${base}/v1/models/fraud:predict`, { method: 'POST', body: JSON.stringify(body) });
  const served = async () => {
    const { models } = (await (await fetch(`${base}/v1/models`)).json()) as {
      models: Array<{
        model: string;
        production: string;
        canary?: { version: string; share: number };
        shadows: string[];
      }>;
    };
    return models.find((m) => m.model === 'fraud') ?? { model: 'fraud', production: '', shadows: [] };
  };

  beforeAll(async () => {
    writer = createRedisOnlineStore({ url: stack.redisUrl, tls: false }, { use: 'online-write', keyPrefix });
    await waitReady(writer.client);
    const t = Date.now();
    await writer.write(
      planWrites([
        validateFeatureEvent(views, {
          event_id: 'a',
          view: 'user',
          entity_id: 'u1',
          event_time: t,
          features: { f0: 0.25, f1: 3 },
        }),
        validateFeatureEvent(views, {
          event_id: 'b',
          view: 'account',
          entity_id: 'u1',
          event_time: t,
          features: { f2: -1.5 },
        }),
        validateFeatureEvent(views, {
          event_id: 'c',
          view: 'user',
          entity_id: 'u2',
          event_time: t,
          features: { f0: -2 },
        }),
      ]),
    );
    await stage('PROMOTED', 'v1');
    const port = await freePort();
    runner = await startServer(stack, dir, prefix, port, {
      DRIFTLINE_FEATURE_KEY_PREFIX: keyPrefix,
      DRIFTLINE_MODEL_SERVER_SHADOW: 'fraud=v3',
    });
    base = `http://127.0.0.1:${port}`;
    await eventually(async () => ((await post({ entity_id: 'u1' })).status === 200 ? true : undefined), 60_000);
  });

  afterAll(async () => {
    await runner?.stop();
    const keys = await writer.client.keys(`${keyPrefix}:*`);
    if (keys.length > 0) await writer.client.unlink(...keys);
    await writer.close();
  });

  it('predicts from Redis features (one batch read), single and batch, and answers 4xx with one line', async () => {
    const one = (await (await post({ entity_id: 'u1', features: { f3: 1 } })).json()) as Record<string, unknown>;
    expect(one).toMatchObject({ model: 'fraud', entity_id: 'u1', version: 'v1', role: 'production' });
    expect(one.score).toBe(score('v1', [0.25, 3, -1.5, 1]));
    const batch = (await (await post({ instances: [{ entity_id: 'u2' }, { entity_id: 'u1' }] })).json()) as {
      predictions: Array<{ score: number; version: string }>;
    };
    expect(batch.predictions.map((p) => p.score)).toEqual([
      score('v1', [-2, null, null, null]),
      score('v1', [0.25, 3, -1.5, null]),
    ]);
    const bad = await post({ entity_id: 'nobody' });
    expect(bad.status).toBe(422);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(
      /entity "nobody" has no features/,
    );
    expect((await fetch(`${base}/v1/models/other:predict`, { method: 'POST', body: '{}' })).status).toBe(404);
  });

  it('logs every prediction to predictions.v1 with the feature vector, version and role (shadow never answered)', async () => {
    // 10 records so far: the start-up probe, test 1's single and batch (each with its shadow), this one.
    const res = (await (await post({ entity_id: 'u1', features: { f3: 9 } })).json()) as { prediction_id: string };
    const mine = await logged([res.prediction_id], 2);
    expect(mine.map((e) => [e.prediction_id, e.model_version, e.role])).toEqual([
      [res.prediction_id, 'v1', 'production'],
      [`${res.prediction_id}.shadow.v3`, 'v3', 'shadow'],
    ]);
    expect(mine[0]!.features).toEqual({ f0: 0.25, f1: 3, f2: -1.5, f3: 9 });
    expect(mine[1]!.prediction).toBe(score('v3', [0.25, 3, -1.5, 9]));
    expect(mine[0]!.scores).toEqual({ v1: score('v1', [0.25, 3, -1.5, 9]), v3: score('v3', [0.25, 3, -1.5, 9]) });
    expect(mine[1]!.scores).toBeNull();
  });

  it('a SHADOW event on models.v1: the version is scored and logged on every request, its score in `scores`', async () => {
    await stage('SHADOW', 'v2', { decided_by: 'trainer:offline_gate' });
    await eventually(async () => ((await served()).shadows.includes('v2') ? true : undefined), 30_000, 50);
    const res = (await (await post({ instances: [{ entity_id: 'u1' }, { entity_id: 'u2' }] })).json()) as {
      predictions: Array<{ prediction_id: string; version: string; score: number }>;
    };
    const ids = res.predictions.map((p) => p.prediction_id);
    const mine = await logged(ids, 6);
    const rows = { u1: [0.25, 3, -1.5, null], u2: [-2, null, null, null] } as const;
    for (const [i, p] of res.predictions.entries()) {
      const row = [...Object.values(rows)[i]!];
      const answered = mine.find((e) => e.prediction_id === p.prediction_id)!;
      expect([answered.role, answered.model_version, p.version]).toEqual(['production', 'v1', 'v1']);
      expect(answered.scores).toEqual({ v1: score('v1', row), v2: score('v2', row), v3: score('v3', row) });
      const shadow = mine.find((e) => e.prediction_id === `${p.prediction_id}.shadow.v2`)!;
      expect([shadow.role, shadow.model_version, shadow.prediction]).toEqual(['shadow', 'v2', score('v2', row)]);
    }
  });

  it('follows models.v1 and swaps under load without failing a request', async () => {
    let stop = false;
    let failures = 0;
    const seen: string[] = [];
    const client = async () => {
      while (!stop) {
        const res = await post({ instances: [{ entity_id: 'u1' }, { entity_id: 'u2' }] });
        if (res.status !== 200) failures++;
        else seen.push(((await res.json()) as { predictions: Array<{ version: string }> }).predictions[0]!.version);
      }
    };
    const clients = [client(), client(), client()];
    // v1 answered before v2 is staged (a wait of 200 ms: a loaded run's first answer came later).
    await eventually(async () => (seen.length > 0 ? true : undefined), 30_000, 20);
    await stage('PROMOTED', 'v2', { previous_version: 'v1' });
    await eventually(async () => (seen.at(-1) === 'v2' ? true : undefined), 30_000, 20);
    await new Promise((r) => setTimeout(r, 200));
    stop = true;
    await Promise.all(clients);
    expect(failures).toBe(0);
    expect(seen[0]).toBe('v1');
    expect(seen.at(-1)).toBe('v2');
    // Once swapped, never back.
    expect(seen.slice(seen.indexOf('v2')).every((v) => v === 'v2')).toBe(true);
    console.info(`swap under load: ${seen.length} requests, 0 failed, v1 → v2`);
  });

  it('a CANARY event: the canary answers its share of ≥ 5,000 distinct entities (±2 points), production scored too', async () => {
    const share = 0.3;
    await stage('CANARY', 'v3', { canary_share: share, decided_by: 'policy:promotion' });
    await eventually(async () => ((await served()).canary?.version === 'v3' ? true : undefined), 30_000, 50);
    expect(await served()).toEqual({
      model: 'fraud',
      production: 'v2',
      canary: { version: 'v3', share },
      shadows: ['v1'],
    });
    const n = 5_000;
    const roles: Record<string, number> = {};
    let sample: { prediction_id: string; entity: number } | undefined;
    for (let i = 0; i < n; i += 500) {
      const instances = Array.from({ length: 500 }, (_, k) => ({
        entity_id: `canary-${i + k}`,
        features: { f0: (i + k) / n },
      }));
      const res = await post({ instances });
      expect(res.status).toBe(200);
      const body = (await res.json()) as {
        predictions: Array<{ prediction_id: string; version: string; role: string }>;
      };
      for (const [k, p] of body.predictions.entries()) {
        roles[`${p.version}/${p.role}`] = (roles[`${p.version}/${p.role}`] ?? 0) + 1;
        if (sample === undefined && p.role === 'canary') sample = { prediction_id: p.prediction_id, entity: i + k };
      }
    }
    expect(Object.keys(roles).sort()).toEqual(['v2/production', 'v3/canary']);
    const observed = (roles['v3/canary'] ?? 0) / n;
    console.info(`canary share over ${n} entities: ${observed.toFixed(4)} (configured ${share})`);
    expect(Math.abs(observed - share)).toBeLessThanOrEqual(0.02);
    // A canary-answered record is paired: the canary's and production's scores (and the watched v1's).
    const [answered] = await logged([sample!.prediction_id], 1);
    const row = [sample!.entity / n, null, null, null];
    expect(answered).toMatchObject({ role: 'canary', model_version: 'v3' });
    expect(answered!.scores).toEqual({ v3: score('v3', row), v2: score('v2', row), v1: score('v1', row) });
  });
});
