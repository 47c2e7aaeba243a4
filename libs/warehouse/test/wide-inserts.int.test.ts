import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PredictionEvent } from '@driftline/schemas';
import { describe, expect, it } from 'vitest';
import { ClickHousePredictionStore, chTime, createClickHouse, migrate, migrations } from '../src/index.js';
import { testClickHouse } from './fixtures/clickhouse.js';

// ClickHouse refuses an insert block over more than 100 partitions (max_partitions_per_insert_block),
// as TOO_MANY_PARTS (252); that was retried as an outage, so one batch of events over 120 months
// stalled the label-joiner for ever (found by a review). Every insert lifts the limit (client.ts).
const path = mkdtempSync(join(tmpdir(), 'driftline-ch-wide-'));
const database = () => `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
const MONTHS = 120;
const monthly = Array.from({ length: MONTHS }, (_, i) => Date.UTC(2010, i, 15));

const prediction = (id: string, at: number): PredictionEvent => ({
  prediction_id: id,
  model: 'wide',
  model_version: 'v1',
  entity_id: `e-${id}`,
  event_time: at,
  features: {},
  prediction: 0.4,
  predicted_class: null,
});

describe('an insert whose rows span more than 100 month partitions', () => {
  it('lands whole in labeled_predictions and unlabeled_predictions', async () => {
    const ch = await createClickHouse(testClickHouse(path, database()));
    try {
      await migrate(ch, migrations);
      const store = new ClickHousePredictionStore(ch);
      await store.insertExpired(
        monthly.map((at, i) => ({ prediction: prediction(`u${i}`, at), deadline: at + 1, expiredAt: at + 2 })),
      );
      await store.insertJoined(
        monthly.map((at, i) => ({
          prediction: prediction(`l${i}`, at),
          label: { prediction_id: `l${i}`, model: 'wide', event_time: at + 1, label: 1 },
          joinedAt: at + 2,
        })),
      );
      for (const table of ['unlabeled_predictions', 'labeled_predictions']) {
        const [row] = await ch.select<{ rows: number; partitions: number }>(
          `SELECT count() AS rows, uniqExact(_partition_id) AS partitions FROM ${ch.table(table)}`,
        );
        expect(row, table).toEqual({ rows: MONTHS, partitions: MONTHS });
      }
    } finally {
      await ch.close();
    }
  });

  it('lands in every partitioned table of the migrations (one rule for every insert)', async () => {
    const ch = await createClickHouse(testClickHouse(path, database()));
    try {
      await migrate(ch, migrations);
      const partitioned = await ch.select<{ name: string; partition_key: string }>(
        "SELECT name, partition_key FROM system.tables WHERE database = {db:String} AND partition_key != '' ORDER BY name",
        { db: ch.database },
      );
      // Every table is partitioned by the month of one time column: each gets rows over 120 months in
      // every time column it takes (a TTL counts from one), its other columns their defaults. Months
      // from now on: a TTL of a year drops older rows as they are written.
      const now = new Date();
      const ahead = Array.from({ length: MONTHS }, (_, i) => Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + i, 15));
      for (const { name, partition_key } of partitioned) {
        expect(partition_key, name).toMatch(/^toYYYYMM\(\w+\)$/);
        const times = await ch.select<{ name: string }>(
          "SELECT name FROM system.columns WHERE database = {db:String} AND table = {table:String} AND type LIKE 'DateTime%' AND default_kind IN ('', 'DEFAULT')",
          { db: ch.database, table: name },
        );
        await ch.insert(
          name,
          ahead.map((at) => Object.fromEntries(times.map((c) => [c.name, chTime(at)]))),
        );
        const [row] = await ch.select<{ partitions: number }>(
          `SELECT uniqExact(_partition_id) AS partitions FROM ${ch.table(name)}`,
        );
        expect(row, name).toEqual({ partitions: MONTHS });
      }
    } finally {
      await ch.close();
    }
  });
});
