// A window with more labeled rows than DRIFTLINE_JOINER_MAX_WINDOW_ROWS: the recompute holds a
// deterministic sample of them for its metrics, its counts exact, and clears the dirty mark (real
// Redis join store, embedded ClickHouse). Before the bound, a window larger than the process's
// memory killed the joiner, and the restarted one read it again first (a crash loop).
import { type Logger, silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { createRedisClient, createRedisJoinStore, type RedisJoinStore, waitReady } from '@driftline/online-store/redis';
import { rocAuc, windowKey, windowStart } from '@driftline/performance';
import type { LabelEvent, PredictionEvent } from '@driftline/schemas';
import { uniqueName } from '@driftline/test-support';
import { SeededRandom } from '@driftline/test-support/random';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { WindowRecomputer } from '../src/loops.js';
import { embeddedWarehouse } from './fixtures/embedded-warehouse.js';

const stack = inject('stack');
const WINDOW = 3_600_000;
const ROWS = 6_000;
const BOUND = 1_000;
const COUNTRIES = ['US', 'FR', 'DE'];
/**
 * |sampled − exact| ROC AUC allowed: about 870 sampled rows, half positive, put the standard error
 * of an AUC near 0.8 at about 0.015 (Hanley–McNeil); 0.05 is over three of them. The sample is a
 * function of the ids, so the figure the test sees is the same on every run.
 */
const AUC_TOLERANCE = 0.05;

interface Row {
  segment_feature: string;
  segment: string;
  labeled: string | number;
  invalid_labels: string | number;
  roc_auc: number | null;
  accuracy: number | null;
  sampled_labels: string | number;
  version: string | number;
}

describe('label-joiner: a window over the row bound is recomputed from a sample (real Redis, embedded ClickHouse)', () => {
  const redis = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'lj-sample-test' });
  const db = embeddedWarehouse('ljsample');
  const stores: RedisJoinStore[] = [];
  afterAll(async () => {
    for (const store of stores) {
      const keys = await redis.keys(`${store.prefix}*`);
      if (keys.length > 0) await redis.unlink(...keys);
      await store.close();
    }
    redis.disconnect();
  });

  it('holds at most the bound, keeps the counts exact, agrees with the exact ROC AUC within the tolerance, and clears the mark', async () => {
    const r = new SeededRandom(20261206);
    const start = windowStart(Date.now() - 2 * WINDOW, WINDOW);
    const model = uniqueName('sampled');
    const ref = { model, modelVersion: 'v1', windowStart: start };
    const labels = new Float64Array(ROWS);
    const scores = new Float64Array(ROWS);
    const rows = Array.from({ length: ROWS }, (_, i) => {
      const score = r.uniform();
      const label = r.uniform() < score ? 1 : 0;
      labels[i] = label;
      scores[i] = score;
      const prediction: PredictionEvent = {
        prediction_id: `p-${i}`,
        model,
        model_version: 'v1',
        entity_id: `e-${i}`,
        event_time: start + 1_000 + i,
        features: { country: COUNTRIES[i % COUNTRIES.length] ?? 'US' },
        prediction: score,
        predicted_class: null,
      };
      const labelEvent: LabelEvent = {
        prediction_id: prediction.prediction_id,
        model,
        event_time: start + WINDOW,
        label,
      };
      return { prediction, label: labelEvent, joinedAt: start + WINDOW };
    });
    await db.warehouse.predictions.insertJoined(rows);
    const exactAuc = rocAuc(labels, scores) as number;

    // The window marked dirty as the joiner marks it: a prediction of it becomes pending.
    const store = createRedisJoinStore(
      { url: stack.redisUrl, tls: false },
      { prefix: `${uniqueName('ljsample')}:`, join: { maxDelayMs: 3_600_000, graceMs: 0, tombstoneMs: 3_600_000 } },
    );
    stores.push(store);
    await waitReady(store.redis);
    await store.applyPredictions(
      [{ model, id: 'pending-1', eventTime: start + 1, windowKey: windowKey(ref), payload: Buffer.from('x') }],
      Date.now(),
      'sample-test/0',
    );
    expect((await store.dirtyWindows(10)).map((d) => d.key)).toEqual([windowKey(ref)]);

    const registry = createMetricsRegistry({ service: 'window-sample-test', defaultMetrics: false });
    const lines: unknown[] = [];
    const logger: Logger = { ...silentLogger, info: (fields: unknown) => void lines.push(fields) };
    const recomputer = new WindowRecomputer(
      store,
      db.warehouse,
      {
        windowMs: WINDOW,
        taskOf: () => 'classification',
        threshold: 0.5,
        segmentFeatures: ['country'],
        maxSegments: 10,
        bounds: [],
        alertMinSamples: 100,
        alertSegments: false,
        maxWindowRows: BOUND,
        logger,
      },
      { publish: async () => {} },
      async () => false,
      async () => {},
      registry,
    );
    const latest = async (): Promise<Row[]> =>
      db.ch.select<Row>(
        `SELECT segment_feature, segment, labeled, invalid_labels, roc_auc, accuracy, sampled_labels, version
         FROM ${db.ch.table('performance_windows')} FINAL
         WHERE model = {model:String} AND version = (SELECT max(version) FROM ${db.ch.table('performance_windows')} WHERE model = {model:String})
         ORDER BY segment_feature, segment`,
        { model },
      );

    expect(await recomputer.pass()).toBe(1);
    expect(await store.dirtyWindows(10)).toEqual([]);
    const first = await latest();
    const whole = first.find((x) => x.segment === '__all__');
    expect(whole).toBeDefined();
    // Exact counts, the metrics from at most BOUND rows.
    expect(Number(whole?.labeled)).toBe(ROWS);
    expect(Number(whole?.invalid_labels)).toBe(0);
    const sampled = Number(whole?.sampled_labels);
    expect(sampled).toBeGreaterThan(BOUND / 2);
    expect(sampled).toBeLessThanOrEqual(BOUND);
    expect(Math.abs((whole?.roc_auc ?? Number.NaN) - exactAuc)).toBeLessThan(AUC_TOLERANCE);
    // Segment rows: exact labeled counts, metrics from their share of the sample.
    const segments = first.filter((x) => x.segment_feature === 'country');
    expect(segments.map((x) => [x.segment, Number(x.labeled)])).toEqual(COUNTRIES.toSorted().map((c) => [c, ROWS / 3]));
    expect(segments.reduce((n, x) => n + Number(x.sampled_labels), 0)).toBe(sampled);
    expect(lines).toEqual([expect.objectContaining({ model, labeled: ROWS, sample: sampled, maxWindowRows: BOUND })]);

    // Recomputed again: the same sample (a function of the ids), no second line, counted twice.
    await store.applyPredictions(
      [{ model, id: 'pending-2', eventTime: start + 2, windowKey: windowKey(ref), payload: Buffer.from('x') }],
      Date.now(),
      'sample-test/0',
    );
    expect(await recomputer.pass()).toBe(1);
    expect(await store.dirtyWindows(10)).toEqual([]);
    const again = (await latest()).find((x) => x.segment === '__all__');
    expect(Number(again?.version)).toBeGreaterThan(Number(whole?.version));
    expect([Number(again?.sampled_labels), again?.roc_auc, again?.accuracy]).toEqual([
      sampled,
      whole?.roc_auc,
      whole?.accuracy,
    ]);
    expect(lines).toHaveLength(1);
    expect(await registry.getSingleMetricAsString('driftline_joiner_windows_sampled_total')).toMatch(
      /driftline_joiner_windows_sampled_total\S* 2\b/,
    );
  });
});
