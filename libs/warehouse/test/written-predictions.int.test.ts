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
});
