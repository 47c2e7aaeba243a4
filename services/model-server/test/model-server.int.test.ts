import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import { createProducer, ensureTopics } from '@driftline/kafka';
import { createRedisOnlineStore, type RedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import { contracts, type ModelEvent, type PredictionEvent } from '@driftline/schemas';
import { loadXgboostModel } from '@driftline/scoring';
import { type Runner, type ServiceDefinition, startRunner } from '@driftline/service';
import { eventually, freePort, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { modelServer } from '../src/index.js';
import { VIEWS_YAML, writeVersion } from './fixtures.js';

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

async function promote(version: string): Promise<void> {
  const kafka = kafkaFor(stack.kafkaBrokers);
  const topic = `${prefix}models.v1`;
  await ensureTopics(kafka, [{ topic, partitions: 1 }]);
  const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.model, topic);
  const producer = await createProducer(kafka);
  const event: ModelEvent = {
    model: 'fraud',
    version,
    kind: 'PROMOTED',
    event_time: Date.now(),
    request_id: null,
    metrics: {},
    artifact_uri: `file://${join(dir, 'fraud', version, 'model.json')}`,
    reference_uri: null,
  };
  await producer.send(topic, [{ key: 'fraud', value: await codec.encode(event) }]);
  await producer.disconnect();
}

describe('model-server on the real stack (Kafka, registry, Redis)', () => {
  let runner: Runner | undefined;
  let writer: RedisOnlineStore;
  let base: string;
  const post = (body: unknown) =>
    fetch(`${base}/v1/models/fraud:predict`, { method: 'POST', body: JSON.stringify(body) });

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
    const viewsFile = join(dir, 'views.yaml');
    writeFileSync(viewsFile, VIEWS_YAML);
    await promote('v1');
    const port = await freePort();
    runner = await startRunner({
      services: [modelServer as unknown as ServiceDefinition<never, unknown>],
      env: {
        DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
        DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
        DRIFTLINE_REDIS_URL: stack.redisUrl,
        DRIFTLINE_TOPIC_PREFIX: prefix,
        DRIFTLINE_TOPIC_PARTITIONS: '1',
        DRIFTLINE_HTTP_PORT: '0',
        DRIFTLINE_LOG_LEVEL: 'warn',
        DRIFTLINE_FEATURE_VIEWS: viewsFile,
        DRIFTLINE_FEATURE_KEY_PREFIX: keyPrefix,
        DRIFTLINE_MODEL_SERVER_PORT: String(port),
        DRIFTLINE_MODEL_SERVER_ARTIFACT_DIR: dir,
        DRIFTLINE_MODEL_SERVER_SHADOW: 'fraud=v3',
      },
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
    const records = await readTopic(kafkaFor(stack.kafkaBrokers), `${prefix}predictions.v1`, 10, 30_000);
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(
      contracts.prediction,
      `${prefix}predictions.v1`,
    );
    const events: PredictionEvent[] = [];
    for (const r of records) events.push(await codec.decode(r.value!));
    const mine = events.filter((e) => e.prediction_id.startsWith(res.prediction_id));
    expect(mine.map((e) => [e.prediction_id, e.model_version, e.role])).toEqual([
      [res.prediction_id, 'v1', 'production'],
      [`${res.prediction_id}.shadow.v3`, 'v3', 'shadow'],
    ]);
    expect(mine[0]!.features).toEqual({ f0: 0.25, f1: 3, f2: -1.5, f3: 9 });
    expect(mine[1]!.prediction).toBe(score('v3', [0.25, 3, -1.5, 9]));
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
    await new Promise((r) => setTimeout(r, 200));
    await promote('v2');
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
});
