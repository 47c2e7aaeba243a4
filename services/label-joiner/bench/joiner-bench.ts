// Benchmark of the label-joiner's hot path against a real Redis: the Lua join transitions,
// the acknowledgements and the decoding of joined payloads (Avro, Confluent framing, schema
// from the real registry), with a sink that only counts rows. Kafka and ClickHouse are left
// out on purpose: they are measured by their own benchmarks, and this one says what the join
// state costs. Wired into `make bench` by bench/run.ts through `@driftline/label-joiner/bench`.
import { randomUUID } from 'node:crypto';
import { SchemaRegistryCodec } from '@driftline/codec';
import type { JoinConfig } from '@driftline/join';
import { createMetricsRegistry } from '@driftline/observability';
import { createRedisClient, RedisJoinStore, waitReady } from '@driftline/online-store/redis';
import { contracts, type LabelEvent, type PredictionEvent } from '@driftline/schemas';
import { JoinEngine, type JoinerRecord } from '../src/engine.js';
import { ScoreCounter } from '../src/estimates.js';

export { benchSinkLookup, type SinkLookupFigure } from './sink-lookup.js';
export { benchWindowRecompute } from './window-recompute.js';

export interface JoinerBenchEndpoints {
  readonly redisUrl: string;
  readonly schemaRegistryUrl: string;
}

export interface JoinerBenchOptions {
  /** Predictions (and as many labels) per repeat. */
  readonly joins?: number;
  readonly batchSize?: number;
  readonly repeats?: number;
  /** Partitions processed in parallel (the service's DRIFTLINE_JOINER_CONCURRENCY default). */
  readonly concurrency?: number;
  /** Pending predictions loaded to measure memory. */
  readonly pending?: number;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

/** A realistic prediction: 12 features (numbers, categories, a flag), a score. */
function prediction(i: number, now: number): PredictionEvent {
  return {
    prediction_id: randomUUID(),
    model: 'churn',
    model_version: 'v7',
    entity_id: `user-${i % 100_000}`,
    event_time: now - (i % 3_600_000),
    features: {
      country: ['US', 'FR', 'DE', 'BR', 'IN'][i % 5] ?? 'US',
      device: i % 3 === 0 ? 'ios' : 'android',
      plan: ['free', 'pro', 'team'][i % 3] ?? 'free',
      age: 18 + (i % 60),
      tenure_days: (i * 7) % 2_000,
      sessions_7d: (i * 13) % 90,
      spend_30d: ((i * 31) % 10_000) / 100,
      support_tickets: i % 4,
      avg_session_min: ((i * 17) % 600) / 10,
      discount: null,
      vip: i % 50 === 0,
      score_v6: ((i * 37) % 1_000) / 1_000,
    },
    prediction: ((i * 7919) % 1_000) / 1_000,
    predicted_class: null,
  };
}

/**
 * Returns `joiner.joins_per_s` (median over repeats; one join = a prediction and its label through
 * the store, the ack and the row decode, with the CBPE score tallies the service counts by default),
 * `joiner.joins_per_s.no_estimates` (the same without tallies, alternated with it in one run) and
 * `joiner.redis_bytes_per_pending` (MEMORY USAGE of the state key plus the schedule's share, per
 * pending prediction).
 */
export async function benchJoiner(
  endpoints: JoinerBenchEndpoints,
  options: JoinerBenchOptions = {},
): Promise<Record<string, number>> {
  const joins = options.joins ?? 50_000;
  const batchSize = options.batchSize ?? 500;
  const repeats = options.repeats ?? 3;
  const concurrency = options.concurrency ?? 3;
  const pendingCount = options.pending ?? 20_000;
  const config: JoinConfig = { maxDelayMs: 7 * 86_400_000, graceMs: 300_000, tombstoneMs: 3_600_000 };
  const redis = createRedisClient({ url: endpoints.redisUrl, tls: false }, 'join-store', {
    name: 'driftline-bench-joiner',
  });
  await waitReady(redis);
  const codec = new SchemaRegistryCodec({ url: endpoints.schemaRegistryUrl });
  const topicBase = `bench-${randomUUID().slice(0, 8)}.`;
  const pc = codec.forTopic(contracts.prediction, `${topicBase}${contracts.prediction.defaultTopic}`);
  const lc = codec.forTopic(contracts.label, `${topicBase}${contracts.label.defaultTopic}`);
  const decoder = { prediction: (b: Buffer) => pc.decode(b), label: (b: Buffer) => lc.decode(b) };
  let rows = 0;
  const sink = {
    async insertJoined(r: readonly unknown[]) {
      rows += r.length;
    },
    insertExpired: async () => {},
    // No replays and no copies here: nothing is looked up.
    writtenPredictionRows: async () => [],
  };
  const prefixes: string[] = [];
  const now = Date.now();

  async function records(n: number): Promise<{ predictions: JoinerRecord[]; labels: JoinerRecord[] }> {
    const predictions: JoinerRecord[] = [];
    const labels: JoinerRecord[] = [];
    for (let i = 0; i < n; i++) {
      const p = prediction(i, now);
      const l: LabelEvent = {
        prediction_id: p.prediction_id,
        model: p.model,
        event_time: p.event_time + 60_000,
        label: i % 2,
      };
      predictions.push({ kind: 'prediction', event: p, raw: await pc.encode(p) });
      labels.push({ kind: 'label', event: l, raw: await lc.encode(l) });
    }
    return { predictions, labels };
  }

  // The service's tallies (DRIFTLINE_JOINER_ESTIMATES=true, the default): every prediction's score
  // is counted in its window's histogram by the join's Lua step.
  const tallies = () =>
    new ScoreCounter(
      { threshold: 0.5, maxWindows: 1_000, windowMs: 3_600_000, counts: () => true },
      createMetricsRegistry({ service: 'bench', defaultMetrics: false }),
    );

  try {
    const rates: number[] = [];
    const plainRates: number[] = [];
    for (let r = 0; r < 2 * repeats; r++) {
      // Alternated (with, without, with, …): the machine's drift falls on both.
      const estimates = r % 2 === 0;
      const prefix = `bench:${randomUUID().slice(0, 8)}:`;
      prefixes.push(prefix);
      const store = new RedisJoinStore(redis, prefix, config);
      const engine = new JoinEngine(store, decoder, sink, 3_600_000, undefined, estimates ? tallies() : undefined);
      const { predictions, labels } = await records(joins);
      rows = 0;
      // Real traffic shape, as the service runs it: `concurrency` partitions processed in
      // parallel (predictions and labels of an id share a partition); in each, every batch brings
      // new predictions and the labels of predictions a few batches older.
      const started = process.hrtime.bigint();
      const lag = 4;
      await Promise.all(
        Array.from({ length: concurrency }, async (_, part) => {
          const mine = (xs: JoinerRecord[]) => xs.filter((_, i) => i % concurrency === part);
          const ps = mine(predictions);
          const ls = mine(labels);
          for (let b = 0; b * batchSize < ps.length + lag * batchSize; b++) {
            const from = b * batchSize;
            if (from < ps.length) await engine.process(ps.slice(from, from + batchSize), Date.now(), 'bench/0');
            const lfrom = from - lag * batchSize;
            if (lfrom >= 0 && lfrom < ls.length)
              await engine.process(ls.slice(lfrom, lfrom + batchSize), Date.now(), 'bench/0');
          }
        }),
      );
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (rows !== joins) throw new Error(`bench joined ${rows} of ${joins}`);
      (estimates ? rates : plainRates).push(joins / seconds);
    }

    const bytes: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const prefix = `bench:${randomUUID().slice(0, 8)}:`;
      prefixes.push(prefix);
      const store = new RedisJoinStore(redis, prefix, config);
      const engine = new JoinEngine(store, decoder, sink, 3_600_000);
      const { predictions } = await records(pendingCount);
      for (let i = 0; i < predictions.length; i += batchSize)
        await engine.process(predictions.slice(i, i + batchSize), now, 'bench/0');
      const p = redis.pipeline();
      for (const rec of predictions)
        p.call(
          'MEMORY',
          'USAGE',
          store.keys.state({ model: rec.event.model, id: rec.event.prediction_id }),
          'SAMPLES',
          '0',
        );
      const perKey = ((await p.exec()) ?? []).reduce((a, [, v]) => a + Number(v), 0);
      const schedule = Number(await redis.call('MEMORY', 'USAGE', store.keys.schedule, 'SAMPLES', '0'));
      const counts = Number(await redis.call('MEMORY', 'USAGE', store.keys.pending, 'SAMPLES', '0'));
      bytes.push((perKey + schedule + counts) / pendingCount);
    }
    return {
      'joiner.joins_per_s': Math.round(median(rates)),
      'joiner.joins_per_s.no_estimates': Math.round(median(plainRates)),
      'joiner.redis_bytes_per_pending': Math.round(median(bytes)),
    };
  } finally {
    for (const prefix of prefixes) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 5_000);
        cursor = next;
        if (keys.length > 0) await redis.unlink(...keys);
      } while (cursor !== '0');
    }
    redis.disconnect();
  }
}
