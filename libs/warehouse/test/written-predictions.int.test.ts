import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LabelEvent, PredictionEvent } from '@driftline/schemas';
import { describe, expect, it } from 'vitest';
import { ClickHousePredictionStore, createClickHouse, migrate, migrations } from '../src/index.js';
import { MAX_LOOKUP_URL_BYTES } from '../src/lookup-chunks.js';
import { testClickHouse } from './fixtures/clickhouse.js';

const path = mkdtempSync(join(tmpdir(), 'driftline-ch-written-'));
const T = Date.UTC(2026, 11, 4, 10);

const prediction = (model: string, id: string, at = T): PredictionEvent => ({
  prediction_id: id,
  model,
  model_version: 'v1',
  entity_id: `e-${id}`,
  event_time: at,
  features: {},
  prediction: 0.5,
  predicted_class: null,
});
const label = (model: string, id: string): LabelEvent => ({ prediction_id: id, model, event_time: T + 1, label: 1 });

describe('writtenPredictions: which replayed predictions already have a row', () => {
  it('finds labeled and expired rows by exact (model, id), duplicates once, across chunks', async () => {
    const ch = await createClickHouse(testClickHouse(path, `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`));
    try {
      await migrate(ch, migrations);
      let queries = 0;
      let longestIds = 0;
      const store = new ClickHousePredictionStore({
        ...ch,
        select: (sql, params) => {
          queries++;
          // The ids as the URL carries them (an independent measure: JSON-quoted, URL-encoded).
          const ids = new URLSearchParams({ ids: JSON.stringify(params?.ids ?? []) }).toString().length;
          longestIds = Math.max(longestIds, ids);
          return ch.select(sql, params);
        },
      });
      // Two inserts of one row (a re-emit): two rows until a merge, one with FINAL.
      for (let i = 0; i < 2; i++) {
        await store.insertJoined([{ prediction: prediction('a', 'joined'), label: label('a', 'joined'), joinedAt: T }]);
      }
      await store.insertExpired([
        { prediction: prediction('a', 'expired'), deadline: T + 1, expiredAt: T + 2 },
        { prediction: prediction('b', 'other-model'), deadline: T + 1, expiredAt: T + 2 },
        // Near the end of a long lookup.
        { prediction: prediction('a', 'n-1990', T - 86_400_000), deadline: T + 1, expiredAt: T + 2 },
      ]);
      const refs = [
        { model: 'a', predictionId: 'joined' },
        { model: 'a', predictionId: 'joined' },
        { model: 'a', predictionId: 'expired' },
        { model: 'a', predictionId: 'never' },
        // Another model's id: the pair, not the id alone, is the key.
        { model: 'a', predictionId: 'other-model' },
        { model: 'b', predictionId: 'joined' },
        ...Array.from({ length: 2_000 }, (_, i) => ({ model: 'a', predictionId: `n-${i}` })),
      ];
      const found = await store.writtenPredictions(refs);
      expect(found.map((r) => `${r.model}/${r.predictionId}`).sort()).toEqual(['a/expired', 'a/joined', 'a/n-1990']);
      expect(queries).toBeGreaterThan(0);
      queries = 0;
      expect(await store.writtenPredictions([])).toEqual([]);
      expect(queries).toBe(0);
      // ~765 KB of ids: chunked by their bytes (parameters travel in the URL).
      longestIds = 0;
      const long = Array.from({ length: 1_500 }, (_, i) => ({ model: 'a', predictionId: `${'x'.repeat(500)}${i}` }));
      expect(await store.writtenPredictions([...long, { model: 'b', predictionId: 'other-model' }])).toEqual([
        { model: 'b', predictionId: 'other-model' },
      ]);
      expect(queries).toBeGreaterThanOrEqual(Math.ceil(765_000 / MAX_LOOKUP_URL_BYTES));
      expect(longestIds).toBeLessThanOrEqual(MAX_LOOKUP_URL_BYTES * 1.1);
    } finally {
      await ch.close();
    }
  }, 60_000);

  it('reads only the granules whose bloom filter of prediction_id may hold an id (0660; a full scan of the model before)', async () => {
    const ch = await createClickHouse(testClickHouse(path, `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`));
    try {
      await migrate(ch, migrations);
      // 200,000 rows of one model per table, in one month (one partition): 25 granules of 8,192 each.
      const rows = 200_000;
      const t0 = `toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + number`;
      await ch.command(
        `INSERT INTO ${ch.table('labeled_predictions')}
           (model, model_version, prediction_id, entity_id, prediction_time, label_time, features, prediction, label, joined_at)
         SELECT 'a', 'v1', concat('p-', toString(number)), 'e', ${t0}, ${t0}, '{}', 0.5, 1, now64(3) FROM numbers(${rows})`,
      );
      await ch.command(
        `INSERT INTO ${ch.table('unlabeled_predictions')}
           (model, model_version, prediction_id, entity_id, prediction_time, deadline, expired_at, features, prediction)
         SELECT 'a', 'v1', concat('u-', toString(number)), 'e', ${t0}, ${t0}, now64(3), '{}', 0.5 FROM numbers(${rows})`,
      );
      const sent: Array<{ sql: string; params: Record<string, unknown> }> = [];
      const store = new ClickHousePredictionStore({
        ...ch,
        select: (sql, params = {}) => {
          sent.push({ sql, params });
          return ch.select(sql, params);
        },
      });
      const refs = ['p-17', 'p-100000', 'u-199999', 'u-none'].map((predictionId) => ({ model: 'a', predictionId }));
      const found = await store.writtenPredictions(refs);
      expect(found.map((r) => r.predictionId).sort()).toEqual(['p-100000', 'p-17', 'u-199999']);
      expect(sent).toHaveLength(1);
      const { sql, params } = sent[0]!;
      // The plan of the very query the store sent: the skip index of each table drops granules.
      const plan = (await ch.select<{ explain: string }>(`EXPLAIN indexes = 1 ${sql}`, params))
        .map((r) => r.explain)
        .join('\n');
      const skipped = [...plan.matchAll(/Name: prediction_id_bloom[\s\S]*?Granules: (\d+)\/(\d+)/g)].map((m) => ({
        read: Number(m[1]),
        of: Number(m[2]),
      }));
      expect(skipped).toHaveLength(2);
      for (const { read, of } of skipped) {
        expect(of).toBeGreaterThanOrEqual(Math.floor(rows / 8_192));
        expect(read).toBeLessThanOrEqual(2);
      }
      // And what the engine read running it: a few granules, not the 400,000 rows.
      const { statistics } = (await ch.selectTyped(sql, params)) as { statistics?: { rows_read?: number } };
      expect(statistics?.rows_read).toBeGreaterThan(0);
      expect(statistics?.rows_read).toBeLessThanOrEqual(4 * 8_192);
    } finally {
      await ch.close();
    }
  }, 60_000);

  it('writtenPredictionRows: labeled or expired, each prediction time of an id, only within each look-up’s time bounds, reading those granules only', async () => {
    const ch = await createClickHouse(testClickHouse(path, `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`));
    try {
      await migrate(ch, migrations);
      const store = new ClickHousePredictionStore(ch);
      const DAY = 86_400_000;
      await store.insertJoined([{ prediction: prediction('a', 'joined'), label: label('a', 'joined'), joinedAt: T }]);
      await store.insertExpired([
        { prediction: prediction('a', 'expired', T - DAY), deadline: T + 1, expiredAt: T + 2 },
        // Both (an unlabeled row beside a labeled one): labeled.
        { prediction: prediction('a', 'joined'), deadline: T + 1, expiredAt: T + 2 },
      ]);
      const rows = await store.writtenPredictionRows([
        { model: 'a', predictionId: 'joined', from: T, to: T },
        { model: 'a', predictionId: 'expired' },
        { model: 'a', predictionId: 'never', from: T, to: T },
      ]);
      expect(rows.sort((x, y) => x.predictionId.localeCompare(y.predictionId))).toEqual([
        { model: 'a', predictionId: 'expired', labeled: false, predictionTime: T - DAY },
        { model: 'a', predictionId: 'joined', labeled: true, predictionTime: T },
      ]);
      // Outside its bounds a row is not found, even when another look-up's bounds reach it.
      expect(
        await store.writtenPredictionRows([
          { model: 'a', predictionId: 'expired', from: T - DAY + 1, to: T },
          { model: 'a', predictionId: 'joined', from: T - 2 * DAY, to: T },
        ]),
      ).toEqual([{ model: 'a', predictionId: 'joined', labeled: true, predictionTime: T }]);
      expect(await store.writtenPredictionRows([{ model: 'a', predictionId: 'joined', to: T - 1 }])).toEqual([]);
      // An id the model used again: its first prediction expired (T − 1 d), its second joined (T).
      // Every prediction time is a row of its own: the earliest, alone, hid the second from a
      // look-up bounded to T whenever another look-up of the chunk reached back to the first.
      await store.insertExpired([
        { prediction: prediction('a', 'reused', T - DAY), deadline: T + 1, expiredAt: T + 2 },
      ]);
      await store.insertJoined([{ prediction: prediction('a', 'reused'), label: label('a', 'reused'), joinedAt: T }]);
      const byTime = (x: { predictionTime: number }, y: { predictionTime: number }) =>
        x.predictionTime - y.predictionTime;
      expect(
        (
          await store.writtenPredictionRows([
            { model: 'a', predictionId: 'reused', from: T, to: T },
            { model: 'a', predictionId: 'expired', from: T - 2 * DAY, to: T },
          ])
        ).sort(byTime),
      ).toEqual([
        { model: 'a', predictionId: 'expired', labeled: false, predictionTime: T - DAY },
        { model: 'a', predictionId: 'reused', labeled: true, predictionTime: T },
      ]);
      expect(
        (await store.writtenPredictionRows([{ model: 'a', predictionId: 'reused', from: T - 2 * DAY, to: T }])).sort(
          byTime,
        ),
      ).toEqual([
        { model: 'a', predictionId: 'reused', labeled: false, predictionTime: T - DAY },
        { model: 'a', predictionId: 'reused', labeled: true, predictionTime: T },
      ]);
      expect(await store.writtenPredictions([{ model: 'a', predictionId: 'reused' }])).toEqual([
        { model: 'a', predictionId: 'reused' },
      ]);

      // 200,000 rows over 20 days: 500 ids bounded to their hour read a granule or two, where
      // the bloom filter alone passes ~40% of them (1 − 0.999^500).
      const rowsN = 200_000;
      const t0 = `toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + toIntervalMillisecond(number * 8640)`;
      await ch.command(
        `INSERT INTO ${ch.table('labeled_predictions')}
           (model, model_version, prediction_id, entity_id, prediction_time, label_time, features, prediction, label, joined_at)
         SELECT 'b', 'v1', concat('p-', toString(number)), 'e', ${t0}, ${t0}, '{}', 0.5, 1, now64(3) FROM numbers(${rowsN})`,
      );
      const from = Date.UTC(2026, 10, 10);
      const lookups = Array.from({ length: 500 }, (_, i) => ({
        model: 'b',
        predictionId: `q-${i}`,
        from,
        to: from + 3_600_000,
      }));
      const sent: Array<{ sql: string; params: Record<string, unknown> }> = [];
      const spy = new ClickHousePredictionStore({
        ...ch,
        select: (sql, params = {}) => {
          sent.push({ sql, params });
          return ch.select(sql, params);
        },
      });
      expect(await spy.writtenPredictionRows(lookups)).toEqual([]);
      const read = async (sql: string, params: Record<string, unknown>) =>
        ((await ch.selectTyped(sql, params)) as { statistics?: { rows_read?: number } }).statistics?.rows_read ?? -1;
      const bounded = await read(sent[0]!.sql, sent[0]!.params);
      expect(bounded).toBeLessThanOrEqual(2 * 8_192);
      sent.length = 0;
      await spy.writtenPredictionRows(lookups.map(({ model, predictionId }) => ({ model, predictionId })));
      expect(await read(sent[0]!.sql, sent[0]!.params)).toBeGreaterThan(10 * bounded);
    } finally {
      await ch.close();
    }
  }, 60_000);
});
