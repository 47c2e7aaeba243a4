import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { type Logger, silentLogger } from '@driftline/core';
import { joinKey } from '@driftline/join';
import { createProducer } from '@driftline/kafka';
import { createRedisClient } from '@driftline/online-store/redis';
import { windowStart } from '@driftline/performance';
import { contracts } from '@driftline/schemas';
import type { Runner } from '@driftline/service';
import { eventually, kafkaFor, removeTree, uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { consumedAll, fraudLabel, fraudPrediction } from './fixtures/events.js';
import { startJoiner } from './fixtures/runner.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'lj-resent-'));
const HOUR = 3_600_000;
const MINUTE = 60_000;

/**
 * Copies of records sent again WITHOUT the replay header (a producer or an upstream job
 * re-publishing), under new offsets, after the tombstones expired; and labels read after their
 * prediction expired. Max delay 1 h, grace 1 ms, on the real stack.
 */
describe('label-joiner: copies after the tombstones, labels after the expiry (real Kafka, registry, Redis, ClickHouse)', () => {
  const runners: Runner[] = [];
  const redis = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'lj-resent' });
  const keyPrefixes: string[] = [];
  afterAll(async () => {
    for (const runner of runners.splice(0).reverse()) await runner.stop().catch(() => {});
    for (const keyPrefix of keyPrefixes) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 1_000);
        cursor = next;
        if (keys.length > 0) await redis.unlink(...keys);
      } while (cursor !== '0');
    }
    redis.disconnect();
    await removeTree(dir);
  });

  async function deployment(tag: string, vars: Record<string, string>, logger: Logger = silentLogger) {
    const prefix = `${uniqueName(tag)}.`;
    const keyPrefix = `${prefix}:`;
    keyPrefixes.push(keyPrefix);
    const group = `${prefix}joiner`;
    const database = uniqueName(tag).replaceAll('-', '_');
    const runner = await startJoiner(
      stack,
      prefix,
      database,
      dir,
      {
        DRIFTLINE_TOPIC_PARTITIONS: '1',
        DRIFTLINE_LOG_LEVEL: 'fatal',
        DRIFTLINE_JOINER_MAX_LABEL_DELAY: '1h',
        DRIFTLINE_JOINER_EXPIRY_GRACE: '1',
        DRIFTLINE_JOINER_EXPIRY_INTERVAL: '100ms',
        DRIFTLINE_JOINER_RECOMPUTE_INTERVAL: '200ms',
        ...vars,
      },
      logger,
    );
    runners.push(runner);
    const kafka = kafkaFor(stack.kafkaBrokers);
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl });
    const predictionTopic = `${prefix}${contracts.prediction.defaultTopic}`;
    const labelTopic = `${prefix}${contracts.label.defaultTopic}`;
    const pc = codec.forTopic(contracts.prediction, predictionTopic);
    const lc = codec.forTopic(contracts.label, labelTopic);
    const producer = await createProducer(kafka);
    const warehouse = await runner.context.warehouse();
    return {
      runner,
      async stop() {
        await producer.disconnect();
        for (const r of runners.splice(0).reverse()) await r.stop();
      },
      async sendPredictions(predictions: Array<[string, number]>) {
        await producer.send(
          predictionTopic,
          await Promise.all(
            predictions.map(async ([id, t]) => ({ key: id, value: await pc.encode(fraudPrediction(id, t)) })),
          ),
        );
        await consumedAll(kafka, group, predictionTopic);
      },
      async sendLabels(labels: Array<[string, number]>) {
        await producer.send(
          labelTopic,
          await Promise.all(labels.map(async ([id, t]) => ({ key: id, value: await lc.encode(fraudLabel(id, t)) }))),
        );
        await consumedAll(kafka, group, labelTopic);
      },
      /** Labeled and expired rows and tallied scores over the windows of `times`. */
      async rows(times: readonly number[]) {
        let labeled = 0;
        let expired = 0;
        let scored = 0;
        for (const start of new Set(times.map((t) => windowStart(t, HOUR)))) {
          const ref = { model: 'fraud', modelVersion: 'v1', windowStart: start };
          const w = await warehouse.predictions.readWindow(ref, HOUR, []);
          labeled += w.labeledCount;
          expired += w.expiredCount;
          scored += (await warehouse.estimates.histogram(ref, 0.5))?.counts.reduce((a, b) => a + b, 0) ?? 0;
        }
        return { labeled, expired, scored };
      },
      pending: async () =>
        Object.values(await redis.hgetall(`${keyPrefix}pending`)).reduce((sum, n) => sum + Number(n), 0),
      scheduled: () => redis.zcard(`${keyPrefix}v2:schedule`),
      state: (id: string) => redis.get(`${keyPrefix}v2:s:${joinKey({ model: 'fraud', id })}`),
      states: async () => (await redis.keys(`${keyPrefix}v2:s:*`)).length,
      events: () => runner.context.registry.getSingleMetricAsString('driftline_joiner_events_total'),
    };
  }

  it('counts predictions sent again without the header, after the tombstones expired, once: no pending, no second score, same rows; a label’s copy counts in no window', async () => {
    // Tombstones gone at once: what two hours leave of them by default.
    const d = await deployment('ljrs', { DRIFTLINE_JOINER_TOMBSTONE_TTL: '1' });
    try {
      const now = Date.now();
      // p-0 and p-1 are labeled; p-2, two hours old, expires unlabeled at the first expiry pass.
      const times: Record<string, number> = { 'p-0': now - MINUTE, 'p-1': now - MINUTE, 'p-2': now - 2 * HOUR };
      const all = Object.entries(times);
      await d.sendPredictions(all);
      await d.sendLabels([
        ['p-0', now - 30_000],
        ['p-1', now - 30_000],
      ]);
      const settled = { labeled: 2, expired: 1, scored: 3 };
      await eventually(
        async () => (JSON.stringify(await d.rows(Object.values(times))) === JSON.stringify(settled) ? true : undefined),
        60_000,
      );
      expect(await d.pending()).toBe(0);
      // The tombstones (TTL 1 ms) are gone: only the warehouse remembers these predictions.
      await eventually(async () => ((await d.states()) === 0 ? true : undefined), 30_000);

      // A producer publishes the same predictions again (new offsets, no replay header), and a
      // labeler the label of p-1.
      await d.sendPredictions(all);
      await d.sendLabels([['p-1', now - 30_000]]);
      // No prediction pends or is tallied again (recompute passes flush tallies every 200 ms).
      expect(await d.pending()).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      expect(await d.rows(Object.values(times))).toEqual(settled);
      const events = await d.events();
      expect(events).toMatch(/kind="prediction",outcome="sink-duplicate"[^}]*} 3/);
      // The label's copy is not looked up (read 30 s after its event time, its prediction cannot
      // have expired): it waits, alone, for the max delay and is dropped as an orphan, counted in
      // no window (README, "Copies after the tombstones").
      expect(events).toMatch(/kind="label",outcome="waiting"[^}]*} 1/);
      expect(await d.scheduled()).toBe(1);
      expect(await d.state('p-1')).toMatch(/^L/);
    } finally {
      await d.stop();
    }
  }, 180_000);

  it('a label on time by event time read after its prediction expired (its tombstone gone) is expired-before-label, with a warning naming the grace; it does not wait', async () => {
    const warnings: string[] = [];
    const logger: Logger = {
      ...silentLogger,
      warn: (_obj, msg) => void warnings.push(msg ?? ''),
      child: () => logger,
    };
    const d = await deployment('ljeb', { DRIFTLINE_JOINER_TOMBSTONE_TTL: '1' }, logger);
    try {
      const now = Date.now();
      // Both expire at the first pass (deadline an hour ago).
      await d.sendPredictions([
        ['p-0', now - 2 * HOUR],
        ['p-1', now - 2 * HOUR],
      ]);
      await eventually(async () => ((await d.rows([now - 2 * HOUR])).expired === 2 ? true : undefined), 60_000);
      await eventually(async () => ((await d.states()) === 0 ? true : undefined), 30_000);
      // A nightly batch: p-0's label observed 5 minutes before its deadline (on time), p-1's
      // 30 s ago (an hour and a half past its deadline: late).
      await d.sendLabels([
        ['p-0', now - HOUR - 5 * MINUTE],
        ['p-1', now - 30_000],
      ]);
      const events = await d.events();
      expect(events).toMatch(/kind="label",outcome="expired-before-label"[^}]*} 1/);
      // p-0's label holds no state (it used to wait for the max delay, then count as an orphan).
      expect(await d.state('p-0')).toBeNull();
      // p-1's is not recognised without its tombstone (its prediction is older than the label's
      // max delay, outside the look-up): it waits like an orphan label, as before.
      expect(await d.scheduled()).toBe(1);
      expect(warnings.filter((w) => w.includes('expired') && w.includes('DRIFTLINE_JOINER_EXPIRY_GRACE'))).toHaveLength(
        1,
      );
      const { labeled, expired } = await d.rows([now - 2 * HOUR]);
      expect({ labeled, expired }).toEqual({ labeled: 0, expired: 2 });
    } finally {
      await d.stop();
    }
  }, 180_000);

  it('the same with the expired tombstone still there: expired-before-label for the label on time, late for the late one', async () => {
    const d = await deployment('ljex', {});
    try {
      const now = Date.now();
      await d.sendPredictions([
        ['p-0', now - 2 * HOUR],
        ['p-1', now - 2 * HOUR],
      ]);
      await eventually(async () => ((await d.rows([now - 2 * HOUR])).expired === 2 ? true : undefined), 60_000);
      await eventually(async () => ((await d.state('p-0')) === 'X' ? true : undefined), 30_000);
      await d.sendLabels([
        ['p-0', now - HOUR - 5 * MINUTE],
        ['p-1', now - 30_000],
      ]);
      const events = await d.events();
      expect(events).toMatch(/kind="label",outcome="expired-before-label"[^}]*} 1/);
      expect(events).toMatch(/kind="label",outcome="late"[^}]*} 1/);
      expect(await d.scheduled()).toBe(0);
    } finally {
      await d.stop();
    }
  }, 180_000);
});
