// Found by a review, on the live stack: a request took its model's plan before its body was read,
// so a slow body ending after a rollback was acknowledged (/v1/models) was still answered by the
// rolled-back version and logged as production; and a canary taking a request-only feature as a
// number where production takes categories answered its share of entities 400 on every retry.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import { createRedisOnlineStore, type RedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import { inCanary } from '@driftline/policy';
import { loadXgboostModel } from '@driftline/scoring';
import type { Runner } from '@driftline/service';
import { eventually, freePort, uniqueName } from '@driftline/test-support';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FEATURES, VIEWS_YAML, writeVersion } from './fixtures.js';
import { deploymentTopics, startServer } from './stack-fixtures.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'plan-swap-int-'));
const prefix = `${uniqueName('msswap')}.`;
const keyPrefix = uniqueName('msswap');
const views = parseFeatureViewsText(VIEWS_YAML);
const models = { v1: writeVersion(dir, 'fraud', 'v1', 11), v2: writeVersion(dir, 'fraud', 'v2', 12) };
// Model `cat`: production v9 takes the request-only f3 as a category, canary v7 as a number.
const v9 = writeVersion(dir, 'cat', 'v9', 19);
writeFileSync(
  join(dir, 'cat', 'v9', 'meta.json'),
  JSON.stringify({ features: FEATURES, categories: { f3: ['a', 'b'] } }),
);
writeVersion(dir, 'cat', 'v7', 17);
const score = (json: unknown, row: number[]) => loadXgboostModel(json).predictOne(Float32Array.from(row));
const topics = deploymentTopics(stack, prefix, dir);

describe('model server on the real stack: the plan that scores a request', () => {
  let runner: Runner | undefined;
  let writer: RedisOnlineStore;
  let port: number;
  let base: string;
  const served = async (model: string) => {
    const { models: listed } = (await (await fetch(`${base}/v1/models`)).json()) as {
      models: Array<{ model: string; production: string; canary?: { version: string } }>;
    };
    return listed.find((m) => m.model === model);
  };
  const post = async (model: string, body: unknown) => {
    const res = await fetch(`${base}/v1/models/${model}:predict`, { method: 'POST', body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
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
      ]),
    );
    await topics.stage('fraud', 'PROMOTED', 'v1');
    await topics.stage('fraud', 'PROMOTED', 'v2', { previous_version: 'v1' });
    await topics.stage('cat', 'PROMOTED', 'v9');
    await topics.stage('cat', 'CANARY', 'v7', { canary_share: 0.3 });
    port = await freePort();
    runner = await startServer(stack, dir, prefix, port, { DRIFTLINE_FEATURE_KEY_PREFIX: keyPrefix });
    base = `http://127.0.0.1:${port}`;
    await eventually(
      async () => ((await served('fraud'))?.production === 'v2' && (await served('cat'))?.canary ? true : undefined),
      60_000,
      50,
    );
  });

  afterAll(async () => {
    await runner?.stop();
    const keys = await writer.client.keys(`${keyPrefix}:*`);
    if (keys.length > 0) await writer.client.unlink(...keys);
    await writer.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a body that ends after a rollback is acknowledged is answered and logged by the restored production', async () => {
    const body = JSON.stringify({ entity_id: 'u1', features: { f3: 2 } });
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (d) => {
      answer += String(d);
    });
    await new Promise((r) => socket.once('connect', r));
    try {
      // Headers and 5 bytes of the body: the request is in the handler (it took v2's plan there before).
      socket.write(`POST /v1/models/fraud:predict HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`);
      socket.write(body.slice(0, 5));
      const staged = Date.now();
      await topics.stage('fraud', 'ROLLED_BACK', 'v2', { previous_version: 'v1' });
      // The rollback acknowledged: /v1/models says v1 (1.9 s after the event in the review's run).
      await eventually(async () => ((await served('fraud'))?.production === 'v1' ? true : undefined), 30_000, 20);
      socket.write(body.slice(5));
      const text = await eventually(
        async () => (answer.includes('\r\n\r\n{') && answer.endsWith('}') ? answer : undefined),
        10_000,
        10,
      );
      const got = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
      expect(got).toMatchObject({ version: 'v1', role: 'production' });
      // Its features read from Redis after the swap, scored by v1.
      expect(got.score).toBe(score(models.v1, [0.25, 3, -1.5, 2]));
      const [record] = await topics.logged([got.prediction_id as string], 1);
      expect(record).toMatchObject({ model_version: 'v1', role: 'production', scores: { v1: got.score } });
      expect(record!.event_time).toBeGreaterThan(staged);
    } finally {
      socket.destroy();
    }
  });

  it('entities of a canary that cannot take a request value are answered 200 by production, counted by version', async () => {
    const instances = Array.from({ length: 300 }, (_, i) => ({ entity_id: `e${i}`, features: { f3: 'a' } }));
    const members = instances.filter((x) => inCanary('cat:v7', x.entity_id, 0.3));
    expect(members.length).toBeGreaterThan(50);
    // A member alone, twice (it was a 400 on every retry): production answers.
    const ids: string[] = [];
    for (let k = 0; k < 2; k++) {
      const one = await post('cat', members[0]);
      expect(one).toMatchObject({ status: 200, body: { version: 'v9', role: 'production' } });
      expect(one.body.score).toBe(score(v9, [Number.NaN, Number.NaN, Number.NaN, 0]));
      ids.push(one.body.prediction_id as string);
    }
    // A batch holding members: answered whole, by production (it failed whole).
    const batch = await post('cat', { instances });
    expect(batch.status).toBe(200);
    const answers = batch.body.predictions as Array<{ version: string; role: string; prediction_id: string }>;
    expect(answers).toHaveLength(300);
    expect(new Set(answers.map((p) => `${p.version}/${p.role}`))).toEqual(new Set(['v9/production']));
    ids.push(answers[instances.indexOf(members[1]!)]!.prediction_id);
    const records = await topics.logged(ids, 3);
    expect(records.map((e) => [e.model_version, e.role, Object.keys(e.scores ?? {})])).toEqual(
      ids.map(() => ['v9', 'production', ['v9']]),
    );
    const metrics = await (await fetch(`http://127.0.0.1:${runner!.httpPort}/metrics`)).text();
    const line = metrics.split('\n').find((l) => l.startsWith('driftline_model_server_canary_failures_total{'));
    expect(line).toMatch(/model="cat"/);
    expect(line).toMatch(/version="v7"/);
    expect(Number(line!.split(' ').pop())).toBe(2 + members.length);
    // A value the canary takes: the canary answers its member.
    const number = await post('cat', { entity_id: members[0]!.entity_id, features: { f3: 1 } });
    expect(number).toMatchObject({ status: 200, body: { version: 'v7', role: 'canary' } });
  });
});
