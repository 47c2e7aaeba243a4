import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { committedOffsets, createProducer, topicOffsets } from '@driftline/kafka';
import { createRedisClient } from '@driftline/online-store/redis';
import {
  businessOutcome,
  classificationMetrics,
  estimateCbpe,
  fitIsotonicCalibration,
  windowStart,
} from '@driftline/performance';
import { contracts, type DriftAlert, type LabelEvent, type PredictionEvent } from '@driftline/schemas';
import type { Runner } from '@driftline/service';
import { eventually, kafkaFor, readTopic, removeTree, uniqueName } from '@driftline/test-support';
import { SeededRandom } from '@driftline/test-support/random';
import { type ClickHouse, createClickHouse, migrate, migrations, warehouseOn } from '@driftline/warehouse';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { startJoiner } from './fixtures/runner.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'lj-estimates-'));
const WINDOW = 600_000;
const N = 400;

/** An over-confident model, as in the NannyML fixture: right ranking, stretched logits. */
function sample(r: SeededRandom, n: number) {
  const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
  return Array.from({ length: n }, () => {
    const logit = 1.6 * r.normal() - 0.4;
    return { score: sigmoid(2.2 * logit + 0.3), label: r.uniform() < sigmoid(logit) ? 1 : 0 };
  });
}

interface WindowRow {
  scored: string | number;
  labeled: string | number;
  label_coverage: number | null;
  calibration_id: string;
  estimated_roc_auc: number | null;
  estimated_accuracy: number | null;
  roc_auc: number | null;
  accuracy: number | null;
  valued_labels: string | number;
  value_caught: number | null;
  value_missed: number | null;
  false_alarm_cost: number | null;
  business_net: number | null;
}

describe('label-joiner: CBPE estimates before labels, business outcome after (real Kafka, registry, Redis, ClickHouse)', () => {
  const runners: Runner[] = [];
  const redis = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'lj-estimates-test' });
  const prefixes: string[] = [];
  let ch: ClickHouse | undefined;
  afterAll(async () => {
    for (const runner of runners.splice(0).reverse()) await runner.stop().catch(() => {});
    for (const prefix of prefixes) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1_000);
        cursor = next;
        if (keys.length > 0) await redis.unlink(...keys);
      } while (cursor !== '0');
    }
    redis.disconnect();
    await ch?.close();
    await removeTree(dir);
  });

  it('writes estimated metrics for a window before its labels, realized and business metrics after; replays count once', async () => {
    const prefix = `${uniqueName('ljest')}.`;
    prefixes.push(`${prefix}:`);
    const database = uniqueName('ljest').replaceAll('-', '_');
    ch = await createClickHouse({ mode: 'embedded', path: join(dir, 'ch'), database });
    await migrate(ch, migrations);
    const warehouse = warehouseOn(ch);
    const r = new SeededRandom(13);
    const reference = sample(r, 3_000);
    const map = fitIsotonicCalibration(
      reference.map((p) => p.score),
      reference.map((p) => p.label),
    );
    await warehouse.estimates.saveCalibration('fraud', 'v1', 'ref-1', map);

    const runner = await startJoiner(stack, prefix, database, dir, {
      DRIFTLINE_TOPIC_PARTITIONS: '2',
      DRIFTLINE_JOINER_MAX_LABEL_DELAY: '1h',
      DRIFTLINE_JOINER_WINDOW: '10m',
      DRIFTLINE_JOINER_RECOMPUTE_INTERVAL: '300ms',
      DRIFTLINE_JOINER_EXPIRY_INTERVAL: '300ms',
      // The estimated ROC AUC (~0.83) breaks this bound: an ESTIMATED_PERFORMANCE alert.
      DRIFTLINE_JOINER_ALERT_BOUNDS: 'roc_auc<0.9',
      DRIFTLINE_JOINER_ALERT_MIN_SAMPLES: '100',
      DRIFTLINE_JOINER_FALSE_ALARM_COST: '5',
    });
    runners.push(runner);

    const now = Date.now();
    const start = windowStart(now - 60_000, WINDOW);
    const live = sample(r, N);
    const predictions: PredictionEvent[] = live.map((p, i) => ({
      prediction_id: `p-${i}`,
      model: 'fraud',
      model_version: 'v1',
      entity_id: `e-${i}`,
      event_time: start + Math.floor((i * (Math.min(now, start + WINDOW) - start - 1)) / N),
      features: {},
      prediction: p.score,
      predicted_class: null,
    }));
    const labels: LabelEvent[] = predictions.map((p, i) => ({
      prediction_id: p.prediction_id,
      model: 'fraud',
      event_time: p.event_time + 1_000,
      label: live[i]!.label,
      value: i % 7 === 0 ? null : 10 + (i % 50),
    }));

    const kafka = kafkaFor(stack.kafkaBrokers);
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl });
    const predictionTopic = `${prefix}${contracts.prediction.defaultTopic}`;
    const labelTopic = `${prefix}${contracts.label.defaultTopic}`;
    const alertTopic = `${prefix}${contracts.alert.defaultTopic}`;
    const pc = codec.forTopic(contracts.prediction, predictionTopic);
    const lc = codec.forTopic(contracts.label, labelTopic);
    const producer = await createProducer(kafka);
    // Sequential encoding: the first call registers the schema, the others hit the codec's cache.
    const sendPredictions = async (events: readonly PredictionEvent[]) => {
      const messages = [];
      for (const e of events) messages.push({ key: e.prediction_id, value: await pc.encode(e) });
      await producer.send(predictionTopic, messages);
    };

    const window = async () => {
      const rows = await ch!.select<WindowRow>(
        `SELECT * FROM ${ch!.table('performance_windows')} FINAL
         WHERE model = 'fraud' AND segment = '__all__'
           AND window_start = fromUnixTimestamp64Milli({start:Int64}, 'UTC')
         ORDER BY version DESC LIMIT 1`,
        { start },
      );
      return rows[0];
    };
    const scores = live.map((p) => p.score);
    const exact = estimateCbpe(scores, map, 0.5);

    // Phase 1: predictions only. The window gets its estimate from the scores alone.
    await sendPredictions(predictions);
    const before = await eventually(async () => {
      const w = await window();
      return w !== undefined && Number(w.scored) === N ? w : undefined;
    }, 60_000);
    expect(Number(before.labeled)).toBe(0);
    expect(before.roc_auc).toBeNull();
    expect(before.calibration_id).toBe('ref-1');
    // Histogram mode against the exact mode on the same scores: the grid's error only.
    expect(Math.abs(before.estimated_roc_auc! - exact.roc_auc!)).toBeLessThan(2e-3);
    expect(Math.abs(before.estimated_accuracy! - exact.accuracy!)).toBeLessThan(2e-3);
    expect(before.business_net).toBeNull();

    const alertCodec = codec.forTopic(contracts.alert, alertTopic);
    const alerts: DriftAlert[] = await Promise.all(
      (await readTopic(kafka, alertTopic, 1, 30_000)).map((m) => alertCodec.decode(m.value)),
    );
    expect(alerts[0]).toMatchObject({
      kind: 'ESTIMATED_PERFORMANCE',
      model: 'fraud',
      model_version: 'v1',
      method: 'roc_auc',
      threshold: 0.9,
      window_start: start,
    });
    expect(alerts[0]!.statistic).toBeCloseTo(before.estimated_roc_auc!, 9);

    // A replay of every prediction (a producer retry, a consumer restart): counted once. Consumed
    // and committed before the labels, so any wrong increment is flushed before the next recompute.
    await sendPredictions(predictions);
    await eventually(async () => {
      const ends = await topicOffsets(kafka, predictionTopic);
      const committed = await committedOffsets(kafka, `${prefix}joiner`, predictionTopic);
      return ends.every((e) => (committed.get(e.partition) ?? -1n) === e.high) ? true : undefined;
    }, 60_000);

    // Phase 2: the labels, with business values. Realized metrics and the business outcome follow.
    const labelMessages = [];
    for (const e of labels) labelMessages.push({ key: e.prediction_id, value: await lc.encode(e) });
    await producer.send(labelTopic, labelMessages);
    await producer.disconnect();
    const after = await eventually(async () => {
      const w = await window();
      return w !== undefined && Number(w.labeled) === N ? w : undefined;
    }, 60_000);
    const realized = classificationMetrics(
      live.map((p) => p.label),
      scores,
      0.5,
    );
    expect(after.roc_auc).toBeCloseTo(realized.roc_auc!, 12);
    expect(after.label_coverage).toBe(1);
    expect(Number(after.scored)).toBe(N);
    expect(after.estimated_roc_auc).toBeCloseTo(before.estimated_roc_auc!, 12);
    const business = businessOutcome(
      labels.map((l, i) => ({ score: scores[i]!, label: l.label, value: l.value ?? null })),
      { threshold: 0.5, falseAlarmCost: 5 },
    )!;
    expect(Number(after.valued_labels)).toBe(business.valued);
    expect(after.value_caught).toBeCloseTo(business.valueCaught, 9);
    expect(after.value_missed).toBeCloseTo(business.valueMissed, 9);
    expect(after.false_alarm_cost).toBe(business.falsePositives * 5);
    expect(after.business_net).toBeCloseTo(business.net, 9);
    // The estimate was close to what the labels then showed (CBPE's point).
    expect(Math.abs(after.estimated_roc_auc! - after.roc_auc!)).toBeLessThan(0.06);
  }, 180_000);
});
