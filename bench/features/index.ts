// Benchmarks of the online feature path: materializer throughput, produce-to-readable latency at a
// fixed offered load, and feature API latency (single and batch of 100). bench/ is not a workspace
// package, so the packages are imported by relative path (their own node_modules resolve).
import { Agent, request } from 'node:http';
import { SchemaRegistryCodec } from '../../libs/codec/src/index.js';
import { silentLogger } from '../../libs/core/src/index.js';
import { parseFeatureViews, planWrites, validateFeatureEvent } from '../../libs/features/src/index.js';
import { createKafka, createProducer, ensureTopics, type Kafka } from '../../libs/kafka/src/index.js';
import { counter, createMetricsRegistry } from '../../libs/observability/src/index.js';
import { createDriftlineProducer } from '../../libs/sdk/src/index.js';
import { contracts, type FeatureEvent } from '../../schemas/src/index.js';
import { createReaderRedis, startFeatureApi } from '../../services/feature-api/src/index.js';
import {
  createWriterRedis,
  RedisFeatureWriter,
  startFeatureMaterializer,
} from '../../services/feature-materializer/src/index.js';

export interface FeatureBenchEndpoints {
  readonly kafkaBrokers: readonly string[];
  readonly schemaRegistryUrl: string;
  readonly redisUrl: string;
}

export interface FeatureBenchOptions {
  /** Events per throughput run (default 200,000). */
  readonly events?: number;
  /** Repetitions of each measurement; the median is reported (default 3). */
  readonly repeats?: number;
  readonly partitions?: number;
  readonly log?: (line: string) => void;
  /** Which measurements to run (default all); for profiling one of them. */
  readonly parts?: ReadonlyArray<'throughput' | 'e2e' | 'api'>;
}

const FEATURES = Array.from({ length: 10 }, (_, i) => `f${i}`);
const views = parseFeatureViews({
  views: [
    {
      name: 'bench',
      entity: 'entity_id',
      ttl: '1h',
      features: Object.fromEntries(FEATURES.map((f) => [f, 'double'])),
    },
  ],
});

const createdTopics: string[] = [];
const createdKeyPrefixes: string[] = [];
const keyPrefixFor = (kind: string) => {
  const p = `bench-${kind}-${Math.random().toString(36).slice(2, 10)}`;
  createdKeyPrefixes.push(p);
  return p;
};
const id = () => Math.random().toString(36).slice(2, 10);

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const round = (x: number, digits = 3) => Number(x.toFixed(digits));

function event(i: number, entities: number, time: number): FeatureEvent {
  const features: Record<string, number> = {};
  for (const [k, f] of FEATURES.entries()) features[f] = ((i * 7 + k) % 1000) / 8;
  return { event_id: `e${i}`, view: 'bench', entity_id: `ent-${i % entities}`, event_time: time + i, features };
}

async function produceEncoded(kafka: Kafka, registryUrl: string, topic: string, count: number): Promise<void> {
  const codec = new SchemaRegistryCodec({ url: registryUrl }).forTopic(contracts.feature, topic);
  const producer = await createProducer(kafka);
  const base = Date.now() - 60_000;
  const chunk = 5_000;
  for (let i = 0; i < count; i += chunk) {
    const messages = [];
    for (let j = i; j < Math.min(count, i + chunk); j++) {
      const e = event(j, 50_000, base);
      messages.push({ key: e.entity_id, value: await codec.encode(e) });
    }
    await producer.send(topic, messages);
  }
  await producer.disconnect();
}

/** One throughput run: a fresh group consumes the whole pre-produced topic; events/s from the first commit. */
async function throughputRun(
  endpoints: FeatureBenchEndpoints,
  kafka: Kafka,
  prefix: string,
  total: number,
  stats: (line: string) => void,
): Promise<number> {
  const registry = createMetricsRegistry({ service: 'bench', defaultMetrics: false });
  const redis = createWriterRedis({ url: endpoints.redisUrl, tls: false });
  const producer = await createProducer(kafka);
  const handle = await startFeatureMaterializer({
    kafka,
    producer,
    codec: new SchemaRegistryCodec({ url: endpoints.schemaRegistryUrl }),
    redis,
    views,
    logger: silentLogger,
    registry,
    groupId: `bench-${id()}`,
    keyPrefix: keyPrefixFor('tp'),
    topicPrefix: prefix,
  });
  const out = counter(registry, 'driftline_records_out_total', '', ['topic']);
  const done = async () => (await out.get()).values.reduce((a, v) => a + v.value, 0);
  let t0 = 0;
  let n0 = 0;
  for (;;) {
    const n = await done();
    if (t0 === 0 && n > 0) {
      t0 = performance.now();
      n0 = n;
    }
    if (n >= total) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const rate = (total - n0) / ((performance.now() - t0) / 1000);
  const stat = async (name: string) => {
    const m = (await registry.getSingleMetric(name)?.get())?.values ?? [];
    const sum = m
      .filter((v) => String((v as { metricName?: string }).metricName).endsWith('_sum'))
      .reduce((a, v) => a + v.value, 0);
    const count = m
      .filter((v) => String((v as { metricName?: string }).metricName).endsWith('_count'))
      .reduce((a, v) => a + v.value, 0);
    return { count, meanMs: (sum / Math.max(1, count)) * 1000 };
  };
  const batches = await stat('driftline_batch_duration_seconds');
  const pipelines = await stat('driftline_feature_redis_pipeline_seconds');
  stats(
    `${batches.count} batches of ${Math.round(total / Math.max(1, batches.count))} events, ${batches.meanMs.toFixed(1)} ms per batch (Redis pipeline ${pipelines.meanMs.toFixed(1)} ms)`,
  );
  await handle.stop();
  await producer.disconnect();
  redis.disconnect();
  return rate;
}

/**
 * Produce-to-readable at an offered rate: from the SDK publish call to the moment Redis acknowledged
 * the materializer's pipeline holding the event (from then on any reader sees it), for every event.
 */
async function latencyRun(
  endpoints: FeatureBenchEndpoints,
  kafka: Kafka,
  rate: number,
  seconds: number,
  partitions: number,
): Promise<number[]> {
  const prefix = `bench-lat-${id()}.`;
  createdTopics.push(prefix);
  const topic = `${prefix}features.v1`;
  await ensureTopics(kafka, [{ topic, partitions }, { topic: `${topic}.dlq` }]);
  const keyPrefix = keyPrefixFor('lat');
  const registry = createMetricsRegistry({ service: 'bench', defaultMetrics: false });
  const redis = createWriterRedis({ url: endpoints.redisUrl, tls: false });
  const dlqProducer = await createProducer(kafka);
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  let warm = false;
  const handle = await startFeatureMaterializer({
    kafka,
    producer: dlqProducer,
    codec: new SchemaRegistryCodec({ url: endpoints.schemaRegistryUrl }),
    redis,
    views,
    logger: silentLogger,
    registry,
    groupId: `bench-${id()}`,
    keyPrefix,
    topicPrefix: prefix,
    onWritten(events) {
      const now = performance.now();
      for (const e of events) {
        if (e.entity === 'warm') warm = true;
        const sent = sentAt.get(e.eventId);
        if (sent === undefined) continue;
        latencies.push(now - sent);
        sentAt.delete(e.eventId);
      }
    },
  });
  const sdk = await createDriftlineProducer({
    kafka,
    registryUrl: endpoints.schemaRegistryUrl,
    topicPrefix: prefix,
    lingerMs: 1,
  });
  // Warm up: schema registration, group join, first fetch.
  await sdk.publishFeatures({ view: 'bench', entity_id: 'warm', features: { f0: 1 } });
  await sdk.flush();
  while (!warm) await new Promise((r) => setTimeout(r, 20));

  const tickMs = 2;
  const start = performance.now();
  let sent = 0;
  const base = Date.now();
  while (performance.now() - start < seconds * 1000) {
    const due = Math.floor(((performance.now() - start) / 1000) * rate);
    const batch: FeatureEvent[] = [];
    for (; sent < due; sent++) {
      const e = event(sent, 1_000_000, base);
      e.entity_id = `lat-${sent}`;
      batch.push(e);
    }
    const now = performance.now();
    for (const e of batch) sentAt.set(e.event_id, now);
    if (batch.length > 0) await sdk.publishFeatures(batch);
    await new Promise((r) => setTimeout(r, Math.max(0, tickMs - (performance.now() - now))));
  }
  await sdk.flush();
  const deadline = performance.now() + 30_000;
  while (sentAt.size > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await sdk.close();
  if (process.env.DRIFTLINE_BENCH_DEBUG) {
    for (const name of [
      'driftline_record_latency_seconds',
      'driftline_batch_duration_seconds',
      'driftline_feature_redis_pipeline_seconds',
    ]) {
      const m = (await registry.getSingleMetric(name)?.get())?.values ?? [];
      const pick = (suffix: string) =>
        m
          .filter((v) => String((v as { metricName?: string }).metricName).endsWith(suffix))
          .reduce((a, v) => a + v.value, 0);
      process.stderr.write(
        `${name}: count ${pick('_count')} mean ${((pick('_sum') / Math.max(1, pick('_count'))) * 1000).toFixed(1)} ms\n`,
      );
    }
  }
  await handle.stop();
  await dlqProducer.disconnect();
  redis.disconnect();
  if (sentAt.size > 0) throw new Error(`${sentAt.size} events never became readable`);
  return latencies.sort((a, b) => a - b);
}

function httpCall(agent: Agent, port: number, method: string, path: string, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent,
        headers:
          body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.on('data', () => {});
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Sequential requests (one in flight, keep-alive), latency per request in ms, after a warm-up. */
async function apiRun(
  port: number,
  count: number,
  make: (i: number) => { method: string; path: string; body?: string },
): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const latencies: number[] = [];
  for (let i = 0; i < count + 200; i++) {
    const r = make(i);
    const t = performance.now();
    const status = await httpCall(agent, port, r.method, r.path, r.body);
    if (status !== 200) throw new Error(`feature API answered ${status}`);
    if (i >= 200) latencies.push(performance.now() - t);
  }
  agent.destroy();
  return latencies.sort((a, b) => a - b);
}

/** Runs every feature benchmark against the stack; keys as in `make bench`. */
export async function benchFeatures(
  endpoints: FeatureBenchEndpoints,
  options: FeatureBenchOptions = {},
): Promise<Record<string, number>> {
  const log = options.log ?? (() => {});
  const total = options.events ?? 200_000;
  const repeats = options.repeats ?? 3;
  const partitions = options.partitions ?? 6;
  const kafka = createKafka({ brokers: endpoints.kafkaBrokers, clientId: 'bench-features', ssl: false }, silentLogger);

  const parts = new Set(options.parts ?? ['throughput', 'e2e', 'api']);
  const result: Record<string, number> = {};
  // The API first, while the heap is small: its tail latencies are what a serving process sees.
  // Feature API: rows written by the materializer's own script.
  if (parts.has('api')) {
    const keyPrefix = keyPrefixFor('api');
    const writerRedis = createWriterRedis({ url: endpoints.redisUrl, tls: false });
    if (writerRedis.status !== 'ready') await new Promise((r) => writerRedis.once('ready', r));
    const writer = new RedisFeatureWriter(writerRedis, keyPrefix);
    const entities = 10_000;
    const rows = Array.from({ length: entities }, (_, i) =>
      validateFeatureEvent(views, event(i, entities, Date.now())),
    );
    for (let i = 0; i < rows.length; i += 1_000) await writer.write(planWrites(rows.slice(i, i + 1_000)));
    writerRedis.disconnect();
    const apiRedis = createReaderRedis({ url: endpoints.redisUrl, tls: false });
    if (apiRedis.status !== 'ready') await new Promise((r) => apiRedis.once('ready', r));
    const api = await startFeatureApi({
      redis: apiRedis,
      views,
      keyPrefix,
      registry: createMetricsRegistry({ service: 'bench', defaultMetrics: false }),
      logger: silentLogger,
    });
    const single: Array<[number, number]> = [];
    const batch: Array<[number, number]> = [];
    for (let r = 0; r < repeats; r++) {
      const s = await apiRun(api.port, 5_000, (i) => ({
        method: 'GET',
        path: `/v1/features/bench/ent-${(i * 7919) % entities}`,
      }));
      single.push([percentile(s, 50), percentile(s, 99)]);
      const b = await apiRun(api.port, 1_000, (i) => ({
        method: 'POST',
        path: '/v1/features:batch',
        body: JSON.stringify({
          requests: [
            { view: 'bench', entities: Array.from({ length: 100 }, (_, k) => `ent-${(i * 100 + k * 97) % entities}`) },
          ],
        }),
      }));
      batch.push([percentile(b, 50), percentile(b, 99)]);
      log(
        `api run ${r + 1}: single p50 ${single[r]![0].toFixed(3)} p99 ${single[r]![1].toFixed(3)} ms; batch100 p50 ${batch[r]![0].toFixed(3)} p99 ${batch[r]![1].toFixed(3)} ms`,
      );
    }
    await api.close();
    result['feature_api.single_ms.p50'] = round(median(single.map((s) => s[0])));
    result['feature_api.single_ms.p99'] = round(median(single.map((s) => s[1])));
    result['feature_api.batch100_ms.p50'] = round(median(batch.map((s) => s[0])));
    result['feature_api.batch100_ms.p99'] = round(median(batch.map((s) => s[1])));
    apiRedis.disconnect();
  }
  // Throughput: one pre-produced topic, consumed from the beginning by a fresh group per run.
  if (parts.has('throughput')) {
    const prefix = `bench-tp-${id()}.`;
    createdTopics.push(prefix);
    const topic = `${prefix}features.v1`;
    await ensureTopics(kafka, [{ topic, partitions }, { topic: `${topic}.dlq` }]);
    log(`producing ${total} events (10 features each) to ${topic}`);
    await produceEncoded(kafka, endpoints.schemaRegistryUrl, topic, total);
    const rates: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const rate = await throughputRun(endpoints, kafka, prefix, total, log);
      log(`materializer run ${r + 1}: ${Math.round(rate)} events/s`);
      rates.push(rate);
    }
    result['materializer.events_per_s'] = Math.round(median(rates));
  }

  // Produce-to-readable at an offered 5,000 events/s.
  if (parts.has('e2e')) {
    const p50s: number[] = [];
    const p99s: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const lat = await latencyRun(endpoints, kafka, 5_000, 5, partitions);
      log(
        `e2e run ${r + 1}: ${lat.length} probes, p50 ${percentile(lat, 50).toFixed(2)} ms, p99 ${percentile(lat, 99).toFixed(2)} ms`,
      );
      p50s.push(percentile(lat, 50));
      p99s.push(percentile(lat, 99));
    }
    result['materializer.e2e_ms.p50'] = round(median(p50s), 2);
    result['materializer.e2e_ms.p99'] = round(median(p99s), 2);
  }

  // Leave the shared stack as we found it: drop our keys (by our own random prefixes) and topics.
  const cleaner = createReaderRedis({ url: endpoints.redisUrl, tls: false }, 'bench-cleanup');
  if (cleaner.status !== 'ready') await new Promise((r) => cleaner.once('ready', r));
  for (const keyPrefix of createdKeyPrefixes) {
    let cursor = '0';
    do {
      const [next, keys] = await cleaner.scan(cursor, 'MATCH', `${keyPrefix}:*`, 'COUNT', 1_000);
      cursor = next;
      if (keys.length > 0) await cleaner.unlink(...keys);
    } while (cursor !== '0');
  }
  cleaner.disconnect();
  const admin = kafka.admin();
  await admin.connect();
  const benchTopics = (await admin.listTopics()).filter((t) => createdTopics.some((p) => t.startsWith(p)));
  await admin.deleteTopics({ topics: benchTopics }).catch(() => {});
  await admin.disconnect();

  return result;
}
