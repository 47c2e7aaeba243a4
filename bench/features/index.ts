// Benchmarks of the online feature path: materializer throughput, produce-to-readable latency at a
// fixed offered load, and feature API latency (single and batch of 100). bench/ is not a workspace
// package, so the packages are imported by relative path (their own node_modules resolve).
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { Agent } from 'node:http';
import { fileURLToPath } from 'node:url';
import { SchemaRegistryCodec } from '@driftline/codec';
import { DEFAULT_EVENT_TIME_BOUNDS, silentLogger } from '@driftline/core';
import { startFeatureApi, startFeatureApiThread } from '@driftline/feature-api/bench';
import { startFeatureMaterializer } from '@driftline/feature-materializer/bench';
import { planWrites, validateFeatureEvent } from '@driftline/features';
import {
  createKafkaClient,
  createProducer,
  deleteTopics,
  ensureTopics,
  type KafkaClient,
  listTopics,
} from '@driftline/kafka';
import { counter, createMetricsRegistry } from '@driftline/observability';
import { createRedisClient, createRedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import { contracts, type FeatureEvent } from '@driftline/schemas';
import { createDriftlineProducer } from '@driftline/sdk';
import { median, percentile, round } from '../stats.js';
import { commandStats, commandStatsDelta, watchProcess } from './diagnostics.js';
import { httpCall } from './http.js';
import { benchEvent, benchViews, benchViewsDocument } from './views.js';

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
  readonly parts?: ReadonlyArray<'throughput' | 'throughput_aggregates' | 'e2e' | 'api' | 'under_write'>;
}

const views = benchViews;

const createdTopics: string[] = [];
const createdKeyPrefixes: string[] = [];
const keyPrefixFor = (kind: string) => {
  const p = `bench-${kind}-${Math.random().toString(36).slice(2, 10)}`;
  createdKeyPrefixes.push(p);
  return p;
};
const id = () => Math.random().toString(36).slice(2, 10);

const event = benchEvent;

async function produceEncoded(
  kafka: KafkaClient,
  registryUrl: string,
  topic: string,
  count: number,
  view = 'bench',
): Promise<void> {
  const codec = new SchemaRegistryCodec({ url: registryUrl }).forTopic(contracts.feature, topic);
  const producer = await createProducer(kafka);
  const base = Date.now() - 60_000;
  const chunk = 5_000;
  for (let i = 0; i < count; i += chunk) {
    const messages = [];
    for (let j = i; j < Math.min(count, i + chunk); j++) {
      const e = event(j, 50_000, base, view);
      messages.push({ key: e.entity_id, value: await codec.encode(e) });
    }
    await producer.send(topic, messages);
  }
  await producer.disconnect();
}

/** One throughput run: a fresh group consumes the whole pre-produced topic; events/s from the first commit. */
async function throughputRun(
  endpoints: FeatureBenchEndpoints,
  kafka: KafkaClient,
  prefix: string,
  total: number,
  stats: (line: string) => void,
): Promise<number> {
  const registry = createMetricsRegistry({ service: 'bench', defaultMetrics: false });
  const store = createRedisOnlineStore(
    { url: endpoints.redisUrl, tls: false },
    { use: 'online-write', keyPrefix: keyPrefixFor('tp') },
  );
  await waitReady(store.client);
  const producer = await createProducer(kafka);
  const handle = await startFeatureMaterializer({
    kafka,
    producer,
    codec: new SchemaRegistryCodec({ url: endpoints.schemaRegistryUrl }),
    store,
    views,
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    logger: silentLogger,
    registry,
    groupId: `bench-${id()}`,
    topicPrefix: prefix,
  });
  const out = counter(registry, 'driftline_records_out_total', '', ['topic']);
  const done = async () => (await out.get()).values.reduce((a, v) => a + v.value, 0);
  let t0 = 0;
  let n0 = 0;
  let cpu0 = process.cpuUsage();
  for (;;) {
    const n = await done();
    if (t0 === 0 && n > 0) {
      t0 = performance.now();
      cpu0 = process.cpuUsage();
      n0 = n;
    }
    if (n >= total) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const rate = (total - n0) / ((performance.now() - t0) / 1000);
  // The process' CPU per event over the same span (what the rate costs; less at the mercy of
  // other work on the machine than the rate is).
  const cpu = process.cpuUsage(cpu0);
  const cpuPerEvent = (cpu.user + cpu.system) / Math.max(1, total - n0);
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
    `${batches.count} batches of ${Math.round(total / Math.max(1, batches.count))} events, ${batches.meanMs.toFixed(1)} ms per batch (Redis pipeline ${pipelines.meanMs.toFixed(1)} ms), ${cpuPerEvent.toFixed(1)} µs CPU per event`,
  );
  await handle.stop();
  await producer.disconnect();
  await store.close();
  return rate;
}

/**
 * Produce-to-readable at an offered rate: from the SDK publish call to the moment Redis acknowledged
 * the materializer's pipeline holding the event (from then on any reader sees it), for every event.
 */
async function latencyRun(
  endpoints: FeatureBenchEndpoints,
  kafka: KafkaClient,
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
  const store = createRedisOnlineStore({ url: endpoints.redisUrl, tls: false }, { use: 'online-write', keyPrefix });
  await waitReady(store.client);
  const dlqProducer = await createProducer(kafka);
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  let warm = false;
  const handle = await startFeatureMaterializer({
    kafka,
    producer: dlqProducer,
    codec: new SchemaRegistryCodec({ url: endpoints.schemaRegistryUrl }),
    store,
    views,
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    logger: silentLogger,
    registry,
    groupId: `bench-${id()}`,
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
    client: kafka,
    registry: { url: endpoints.schemaRegistryUrl },
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
  await store.close();
  if (sentAt.size > 0) throw new Error(`${sentAt.size} events never became readable`);
  return latencies.sort((a, b) => a - b);
}

type Layout = 'same_process' | 'separate_process';
type ReadKind = 'single' | 'batch';
const childScript = fileURLToPath(new URL('./child.ts', import.meta.url));

/** A child process of child.ts, with this process' execArgv (tsx, the `source` condition). */
function forkChild(args: readonly string[]) {
  return fork(childScript, [...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

async function nextMessage<T>(child: ReturnType<typeof fork>): Promise<T> {
  const [message] = (await once(child, 'message')) as [T];
  return message;
}

interface UnderWriteResult {
  readonly latencies: number[];
  readonly eventsPerS: number;
}

/**
 * Feature API latency while the materializer ingests a pre-produced topic at full speed: the
 * materializer always runs in this process; the API server runs here too (`same_process`) or in
 * a child (`separate_process`); the HTTP client is always a child, so its own work never delays
 * the server it measures. Reads hit rows the materializer is overwriting. Only requests sent
 * between the first and the last batch the materializer committed count.
 */
async function underWriteRun(
  endpoints: FeatureBenchEndpoints,
  kafka: KafkaClient,
  topicPrefix: string,
  total: number,
  layout: Layout,
  kind: ReadKind,
  log: (line: string) => void,
): Promise<UnderWriteResult> {
  const keyPrefix = keyPrefixFor('uw');
  const entities = 10_000;
  const perCall = Number(process.env.DRIFTLINE_BENCH_ENTITIES_PER_CALL ?? 0);
  const store = createRedisOnlineStore(
    { url: endpoints.redisUrl, tls: false },
    { use: 'online-write', keyPrefix, ...(perCall > 0 ? { entitiesPerCall: perCall } : {}) },
  );
  await waitReady(store.client);
  const base = Date.now() - 3_600_000; // older than every event of the topic: the materializer's writes win
  const rows = Array.from({ length: entities }, (_, i) => validateFeatureEvent(views, event(i, entities, base)));
  for (let i = 0; i < rows.length; i += 1_000) await store.write(planWrites(rows.slice(i, i + 1_000)));

  let port: number;
  let closeApi: () => Promise<void>;
  if (layout === 'same_process' && process.env.DRIFTLINE_BENCH_API_THREAD === 'main') {
    // The layout before the fix, for comparison: the API on the materializer's own event loop.
    const reader = createRedisOnlineStore({ url: endpoints.redisUrl, tls: false }, { use: 'online-read', keyPrefix });
    await waitReady(reader.client);
    const api = await startFeatureApi({
      store: reader,
      views,
      registry: createMetricsRegistry({ service: 'bench', defaultMetrics: false }),
      logger: silentLogger,
    });
    port = api.port;
    closeApi = async () => {
      await api.close();
      await reader.close();
    };
  } else if (layout === 'same_process') {
    // As the feature-api service runs by default: on a worker thread of the materializer's process.
    const api = await startFeatureApiThread({
      redis: { url: endpoints.redisUrl, tls: false },
      keyPrefix,
      viewsText: JSON.stringify(benchViewsDocument),
      port: 0,
      host: '127.0.0.1',
      registry: createMetricsRegistry({ service: 'bench', defaultMetrics: false }),
      logger: silentLogger,
    });
    port = api.port;
    closeApi = () => api.close();
  } else {
    const child = forkChild(['api', endpoints.redisUrl, keyPrefix]);
    port = (await nextMessage<{ port: number }>(child)).port;
    closeApi = async () => {
      const exited = once(child, 'exit');
      child.send('stop');
      await exited;
    };
  }
  const client = forkChild(['client', String(port), kind, String(entities)]);
  await nextMessage<string>(client); // warmed up

  const registry = createMetricsRegistry({ service: 'bench', defaultMetrics: false });
  const producer = await createProducer(kafka);
  const stats = createRedisClient({ url: endpoints.redisUrl, tls: false }, 'tooling', { name: 'bench-stats' });
  const handle = await startFeatureMaterializer({
    kafka,
    producer,
    codec: new SchemaRegistryCodec({ url: endpoints.schemaRegistryUrl }),
    store,
    views,
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    logger: silentLogger,
    registry,
    groupId: `bench-${id()}`,
    topicPrefix,
  });
  const out = counter(registry, 'driftline_records_out_total', '', ['topic']);
  const done = async () => (await out.get()).values.reduce((a, v) => a + v.value, 0);
  let t0 = 0;
  let n0 = 0;
  let watch: ReturnType<typeof watchProcess> | undefined;
  let redisBefore: Awaited<ReturnType<typeof commandStats>> | undefined;
  for (;;) {
    const n = await done();
    if (t0 === 0 && n > 0) {
      t0 = performance.now();
      n0 = n;
      client.send('start');
      watch = watchProcess();
      redisBefore = await commandStats(stats);
    }
    if (n >= total) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const seconds = (performance.now() - t0) / 1000;
  const reply = nextMessage<{ latencies: number[] }>(client);
  client.send('stop');
  const { latencies } = await reply;
  const diag = watch!.stop();
  const redis = commandStatsDelta(redisBefore!, await commandStats(stats), ['evalsha', 'hmget', 'mget', 'get']);
  const sorted = latencies.sort((a, b) => a - b);
  const eventsPerS = (total - n0) / seconds;
  log(
    `under write, ${layout}, ${kind}: ${sorted.length} requests in ${seconds.toFixed(1)} s at ${Math.round(eventsPerS)} events/s; ` +
      `p50 ${percentile(sorted, 50).toFixed(3)} p99 ${percentile(sorted, 99).toFixed(3)} p99.9 ${percentile(sorted, 99.9).toFixed(3)} max ${sorted.at(-1)?.toFixed(1)} ms | ` +
      `bench process: loop delay p99 ${diag.loopP99Ms.toFixed(1)} max ${diag.loopMaxMs.toFixed(1)} ms, ` +
      `${diag.gcCount} GCs ${diag.gcTotalMs.toFixed(0)} ms (max ${diag.gcMaxMs.toFixed(1)}) | redis: ${redis}`,
  );
  await handle.stop();
  await producer.disconnect();
  await closeApi();
  stats.disconnect();
  await store.close();
  return { latencies: sorted, eventsPerS };
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
  const kafka = createKafkaClient(
    { brokers: endpoints.kafkaBrokers, clientId: 'bench-features', ssl: false },
    silentLogger,
  );

  const parts = new Set(options.parts ?? ['throughput', 'throughput_aggregates', 'e2e', 'api', 'under_write']);
  const result: Record<string, number> = {};
  // The API first, while the heap is small: its tail latencies are what a serving process sees.
  // Feature API: rows written by the materializer's own script.
  if (parts.has('api')) {
    const keyPrefix = keyPrefixFor('api');
    const writer = createRedisOnlineStore({ url: endpoints.redisUrl, tls: false }, { use: 'online-write', keyPrefix });
    await waitReady(writer.client);
    const entities = 10_000;
    const rows = Array.from({ length: entities }, (_, i) =>
      validateFeatureEvent(views, event(i, entities, Date.now())),
    );
    for (let i = 0; i < rows.length; i += 1_000) await writer.write(planWrites(rows.slice(i, i + 1_000)));
    await writer.close();
    const reader = createRedisOnlineStore({ url: endpoints.redisUrl, tls: false }, { use: 'online-read', keyPrefix });
    await waitReady(reader.client);
    const api = await startFeatureApi({
      store: reader,
      views,
      registry: createMetricsRegistry({ service: 'bench', defaultMetrics: false }),
      logger: silentLogger,
    });
    const single: Array<[number, number, number]> = [];
    const batch: Array<[number, number, number]> = [];
    for (let r = 0; r < repeats; r++) {
      const s = await apiRun(api.port, 5_000, (i) => ({
        method: 'GET',
        path: `/v1/features/bench/ent-${(i * 7919) % entities}`,
      }));
      single.push([percentile(s, 50), percentile(s, 99), percentile(s, 99.9)]);
      const b = await apiRun(api.port, 1_000, (i) => ({
        method: 'POST',
        path: '/v1/features:batch',
        body: JSON.stringify({
          requests: [
            { view: 'bench', entities: Array.from({ length: 100 }, (_, k) => `ent-${(i * 100 + k * 97) % entities}`) },
          ],
        }),
      }));
      batch.push([percentile(b, 50), percentile(b, 99), percentile(b, 99.9)]);
      log(
        `api run ${r + 1}: single p50 ${single[r]![0].toFixed(3)} p99 ${single[r]![1].toFixed(3)} ms; batch100 p50 ${batch[r]![0].toFixed(3)} p99 ${batch[r]![1].toFixed(3)} ms`,
      );
    }
    await api.close();
    result['feature_api.single_ms.p50'] = round(median(single.map((s) => s[0])));
    result['feature_api.single_ms.p99'] = round(median(single.map((s) => s[1])));
    result['feature_api.batch100_ms.p50'] = round(median(batch.map((s) => s[0])));
    result['feature_api.batch100_ms.p99'] = round(median(batch.map((s) => s[1])));
    result['feature_api.single_ms.p99_9'] = round(median(single.map((s) => s[2])));
    result['feature_api.batch100_ms.p99_9'] = round(median(batch.map((s) => s[2])));
    await reader.close();
  }
  // Throughput: one pre-produced topic, consumed from the beginning by a fresh group per run.
  // One pre-produced topic, consumed from the beginning by a fresh group per run (throughput and
  // reads under write).
  let sourcePrefix: string | undefined;
  const source = async () => {
    if (sourcePrefix !== undefined) return sourcePrefix;
    sourcePrefix = `bench-tp-${id()}.`;
    createdTopics.push(sourcePrefix);
    const topic = `${sourcePrefix}features.v1`;
    await ensureTopics(kafka, [{ topic, partitions }, { topic: `${topic}.dlq` }]);
    log(`producing ${total} events (10 features each) to ${topic}`);
    await produceEncoded(kafka, endpoints.schemaRegistryUrl, topic, total);
    return sourcePrefix;
  };
  if (parts.has('throughput')) {
    const prefix = await source();
    const rates: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const rate = await throughputRun(endpoints, kafka, prefix, total, log);
      log(`materializer run ${r + 1}: ${Math.round(rate)} events/s`);
      rates.push(rate);
    }
    result['materializer.events_per_s'] = Math.round(median(rates));
  }
  // The same throughput with windowed aggregates (view bench_agg): what the window sets cost.
  if (parts.has('throughput_aggregates')) {
    const prefix = `bench-tpa-${id()}.`;
    createdTopics.push(prefix);
    const topic = `${prefix}features.v1`;
    await ensureTopics(kafka, [{ topic, partitions }, { topic: `${topic}.dlq` }]);
    log(`producing ${total} events (10 features, 4 aggregates over 3 of them) to ${topic}`);
    await produceEncoded(kafka, endpoints.schemaRegistryUrl, topic, total, 'bench_agg');
    const rates: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const rate = await throughputRun(endpoints, kafka, prefix, total, log);
      log(`materializer run ${r + 1} with aggregates: ${Math.round(rate)} events/s`);
      rates.push(rate);
    }
    result['materializer.aggregated.events_per_s'] = Math.round(median(rates));
  }
  // Reads while the materializer ingests at full speed. The unqualified keys are the same-process
  // figures (the harder case: the API shares the materializer's event loop, heap and GC).
  if (parts.has('under_write')) {
    const prefix = await source();
    for (const layout of ['same_process', 'separate_process'] as const) {
      for (const kind of ['single', 'batch'] as const) {
        const runs: Array<[number, number, number]> = [];
        const rates: number[] = [];
        for (let r = 0; r < repeats; r++) {
          const { latencies, eventsPerS } = await underWriteRun(endpoints, kafka, prefix, total, layout, kind, log);
          runs.push([percentile(latencies, 50), percentile(latencies, 99), percentile(latencies, 99.9)]);
          rates.push(eventsPerS);
        }
        const name = `feature_api.under_write.${layout === 'same_process' ? '' : 'separate_process.'}${kind === 'single' ? 'single_ms' : 'batch100_ms'}`;
        result[`${name}.p50`] = round(median(runs.map((x) => x[0])));
        result[`${name}.p99`] = round(median(runs.map((x) => x[1])));
        result[`${name}.p99_9`] = round(median(runs.map((x) => x[2])));
        if (layout === 'same_process' && kind === 'single') {
          result['feature_api.under_write.events_per_s'] = Math.round(median(rates));
        }
      }
    }
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
  const cleaner = createRedisClient({ url: endpoints.redisUrl, tls: false }, 'tooling', { name: 'bench-cleanup' });
  await waitReady(cleaner);
  for (const keyPrefix of createdKeyPrefixes) {
    let cursor = '0';
    do {
      const [next, keys] = await cleaner.scan(cursor, 'MATCH', `${keyPrefix}:*`, 'COUNT', 1_000);
      cursor = next;
      if (keys.length > 0) await cleaner.unlink(...keys);
    } while (cursor !== '0');
  }
  cleaner.disconnect();
  const benchTopics = (await listTopics(kafka)).filter((t) => createdTopics.some((p) => t.startsWith(p)));
  await deleteTopics(kafka, benchTopics).catch(() => {});

  return result;
}
