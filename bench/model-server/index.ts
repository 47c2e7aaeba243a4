import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { silentLogger } from '@driftline/core';
import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import { createKafkaClient, createProducer, createPublisher, deleteTopics, ensureTopics } from '@driftline/kafka';
import { artifactLoader, startModelServer } from '@driftline/model-server/bench';
import { createMetricsRegistry } from '@driftline/observability';
import { createRedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import { contracts, type PredictionEvent } from '@driftline/schemas';
import { syntheticModelJson } from '@driftline/scoring/bench';
import { httpCall } from '../features/http.js';

export interface ModelServerBenchEndpoints {
  readonly kafkaBrokers: readonly string[];
  readonly schemaRegistryUrl: string;
  readonly redisUrl: string;
}

const FEATURES = Array.from({ length: 10 }, (_, i) => `f${i}`);
const ENTITIES = 10_000;

const percentile = (sorted: readonly number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const round = (x: number) => Math.round(x * 1000) / 1000;

/** Deterministic feature values of an entity (the same in Redis and inline). */
const valuesOf = (e: number) => Object.fromEntries(FEATURES.map((f, j) => [f, ((e * 31 + j * 17) % 1000) / 250 - 2]));

async function run(port: number, count: number, body: (i: number) => string): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const latencies: number[] = [];
  for (let i = 0; i < count + 200; i++) {
    const b = body(i);
    const t = performance.now();
    const status = await httpCall(agent, port, 'POST', '/v1/models/bench:predict', b);
    if (status !== 200) throw new Error(`model server answered ${status}`);
    if (i >= 200) latencies.push(performance.now() - t);
  }
  agent.destroy();
  return latencies.sort((a, b) => a - b);
}

/**
 * The model server on one keep-alive client, as issue 12's MLServer anchor: a 100-tree depth-6
 * binary:logistic model on 10 float features, every prediction logged to a real predictions.v1.
 * - model_server.single_ms / batch100_ms: features read from Redis (one batch read per request);
 * - model_server.inline.single_ms / batch100_ms: all features in the request (no Redis read).
 * p50/p99 of each run, medians over `repeats` runs.
 */
export async function benchModelServer(
  endpoints: ModelServerBenchEndpoints,
  options: { repeats?: number; log?: (line: string) => void } = {},
): Promise<Record<string, number>> {
  const log = options.log ?? (() => {});
  const repeats = options.repeats ?? 3;
  const id = Math.random().toString(36).slice(2, 10);
  const dir = mkdtempSync(join(tmpdir(), 'bench-model-server-'));
  mkdirSync(join(dir, 'bench', 'v1'), { recursive: true });
  writeFileSync(join(dir, 'bench', 'v1', 'model.json'), JSON.stringify(syntheticModelJson(7, 100, 6, 10)));
  writeFileSync(join(dir, 'bench', 'v1', 'meta.json'), JSON.stringify({ features: FEATURES, categories: {} }));
  const views = parseFeatureViewsText(
    `views:\n  - name: bench\n    entity: id\n    ttl: 1d\n    features:\n${FEATURES.map((f) => `      ${f}: double\n`).join('')}`,
  );
  const keyPrefix = `bench-ms-${id}`;
  const writer = createRedisOnlineStore({ url: endpoints.redisUrl, tls: false }, { use: 'online-write', keyPrefix });
  await waitReady(writer.client);
  const now = Date.now();
  const events = Array.from({ length: ENTITIES }, (_, e) =>
    validateFeatureEvent(views, {
      event_id: `e${e}`,
      view: 'bench',
      entity_id: `ent-${e}`,
      event_time: now,
      features: valuesOf(e),
    }),
  );
  for (let i = 0; i < events.length; i += 1_000) await writer.write(planWrites(events.slice(i, i + 1_000)));
  const reader = createRedisOnlineStore({ url: endpoints.redisUrl, tls: false }, { use: 'online-read', keyPrefix });
  await waitReady(reader.client);

  const kafka = createKafkaClient(
    { brokers: endpoints.kafkaBrokers, clientId: 'bench-model-server', ssl: false },
    silentLogger,
  );
  const topic = `bench-ms-${id}.predictions.v1`;
  await ensureTopics(kafka, [{ topic, partitions: 1 }]);
  const codec = new SchemaRegistryCodec({ url: endpoints.schemaRegistryUrl }).forTopic(contracts.prediction, topic);
  const producer = await createProducer(kafka);
  const publisher = createPublisher<PredictionEvent>({
    topic,
    producer,
    encode: (e) => codec.encode(e),
    key: contracts.prediction.key,
  });
  const server = await startModelServer({
    store: reader,
    views,
    load: artifactLoader(dir),
    publish: (e) => publisher.publish(e),
    registry: createMetricsRegistry({ service: 'bench', defaultMetrics: false }),
    logger: silentLogger,
  });
  await server.table.promote('bench', 'v1');
  const result: Record<string, number> = {};
  try {
    const entity = (i: number) => (i * 7919) % ENTITIES;
    const batchOf = (i: number, inline: boolean) =>
      Array.from({ length: 100 }, (_, k) => {
        const e = (i * 100 + k * 97) % ENTITIES;
        return inline ? { entity_id: `ent-${e}`, features: valuesOf(e) } : { entity_id: `ent-${e}` };
      });
    const shapes = {
      single: (i: number) => JSON.stringify({ entity_id: `ent-${entity(i)}` }),
      batch100: (i: number) => JSON.stringify({ instances: batchOf(i, false) }),
      'inline.single': (i: number) => JSON.stringify({ entity_id: `ent-${entity(i)}`, features: valuesOf(entity(i)) }),
      'inline.batch100': (i: number) => JSON.stringify({ instances: batchOf(i, true) }),
    };
    const runs: Record<string, Array<[number, number]>> = {};
    for (let r = 0; r < repeats; r++) {
      for (const [name, body] of Object.entries(shapes)) {
        const l = await run(server.port, name.endsWith('batch100') ? 1_000 : 5_000, body);
        const list = runs[name] ?? [];
        list.push([percentile(l, 50), percentile(l, 99)]);
        runs[name] = list;
        log(
          `model-server run ${r + 1} ${name}: p50 ${percentile(l, 50).toFixed(3)} p99 ${percentile(l, 99).toFixed(3)} ms`,
        );
      }
    }
    for (const [name, list] of Object.entries(runs)) {
      const key = `model_server.${name.replace('single', 'single_ms').replace('batch100', 'batch100_ms')}`;
      result[`${key}.p50`] = round(median(list.map((x) => x[0])));
      result[`${key}.p99`] = round(median(list.map((x) => x[1])));
    }
    await server.log.drain(30_000);
  } finally {
    await server.close();
    await producer.disconnect();
    await deleteTopics(kafka, [topic]).catch(() => {});
    const keys = await writer.client.keys(`${keyPrefix}:*`);
    for (let i = 0; i < keys.length; i += 1_000) await writer.client.unlink(...keys.slice(i, i + 1_000));
    await writer.close();
    await reader.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}
