import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MISSING_SEGMENT, type WindowColumns } from '@driftline/performance';
import type { PredictionEvent } from '@driftline/schemas';
import { describe, expect, it } from 'vitest';
import { ClickHousePredictionStore, createClickHouse, MAX_SEGMENT_CHARS, migrate, migrations } from '../src/index.js';
import { testClickHouse } from './fixtures/clickhouse.js';

// The embedded engine (chdb) is a real ClickHouse; one data directory per test process.
const path = mkdtempSync(join(tmpdir(), 'driftline-ch-window-'));
const database = () => `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`;

/** The window's labeled rows as sorted text lines (prediction, label, segment values), and expired counts per segment. */
function contentOf(w: WindowColumns): { labeled: string[]; expired: Array<Record<string, number>> } {
  const labeled = Array.from({ length: w.labeledCount }, (_, i) =>
    [w.predictions[i], w.labels[i], w.values[i], ...w.segments.map((s) => s.values[s.labeled[i] as number])].join(' '),
  ).sort();
  const expired = w.segments.map((s) =>
    Object.fromEntries(s.values.map((v, id) => [v, s.expired[id] ?? 0]).filter(([, n]) => (n as number) > 0)),
  );
  return { labeled, expired };
}

describe('a performance window read from ClickHouse in pages', () => {
  it('reads every labeled row once across pages (ties on time included), expired rows counted per segment', async () => {
    const ch = await createClickHouse(testClickHouse(path, database()));
    await migrate(ch, migrations);
    const store = new ClickHousePredictionStore(ch, 7); // pages of 7: the 40 rows cross six pages
    const t0 = Date.now() - 3_600_000; // recent: inside the tables' retention
    const start = t0 - (t0 % 60_000);
    const countries = ['"US"', '"FR"', '1', 'null'];
    const prediction = (i: number, version = 'v1'): PredictionEvent => ({
      prediction_id: `p${String(i).padStart(3, '0')}`,
      model: 'm',
      model_version: version,
      entity_id: 'e',
      // Four rows per millisecond (ties broken by id); rows 40 to 99 fall after the window.
      event_time: start + Math.floor(i / 4) + (i >= 40 && i < 100 ? 60_000 : 0),
      // country: a string, a number, null; absent for every fifth row.
      features: i % 5 === 0 ? { x: i } : { x: i, country: JSON.parse(countries[i % 4] as string) },
      prediction: (i % 10) / 10,
      predicted_class: null,
    });
    const joined = (i: number, version = 'v1') => ({
      prediction: prediction(i, version),
      // Every third label carries a business value.
      label: {
        prediction_id: prediction(i).prediction_id,
        model: 'm',
        event_time: start + 50_000,
        label: i % 2,
        ...(i % 3 === 0 ? { value: i * 1.5 } : {}),
      },
      joinedAt: start + 50_001,
    });
    const rows = Array.from({ length: 44 }, (_, i) => joined(i));
    await store.insertJoined([...rows, joined(3, 'v2')]);
    await store.insertJoined(rows.slice(0, 10)); // a replay: FINAL keeps one row each
    // Expired: p100..p104, and p001, which got its label after all (the labeled row wins).
    await store.insertExpired(
      [100, 101, 102, 103, 104, 1].map((i) => ({
        prediction: prediction(i),
        deadline: start + 1,
        expiredAt: start + 2,
      })),
    );
    const got = await store.readWindow({ model: 'm', modelVersion: 'v1', windowStart: start }, 60_000, ['country']);
    const segment = (i: number) => (i % 5 === 0 ? MISSING_SEGMENT : ['US', 'FR', '1', MISSING_SEGMENT][i % 4]);
    expect(contentOf(got)).toEqual({
      labeled: Array.from({ length: 40 }, (_, i) =>
        [(i % 10) / 10, i % 2, i % 3 === 0 ? i * 1.5 : Number.NaN, segment(i)].join(' '),
      ).sort(),
      expired: [{ US: 1, FR: 1, '1': 1, [MISSING_SEGMENT]: 2 }], // p100 (no country), p101 … p104
    });
    expect(got.expiredCount).toBe(5);
    await ch.close();
  });

  it('cuts a segment value to MAX_SEGMENT_CHARS in ClickHouse (string features hold 65,536) (found by a review)', async () => {
    const ch = await createClickHouse(testClickHouse(path, database()));
    await migrate(ch, migrations);
    const store = new ClickHousePredictionStore(ch);
    const t0 = Date.now() - 3_600_000;
    const start = t0 - (t0 % 60_000);
    const long = `é${'x'.repeat(65_000)}`;
    const prediction = (id: string): PredictionEvent => ({
      prediction_id: id,
      model: 'm',
      model_version: 'v1',
      entity_id: 'e',
      event_time: start + 1,
      features: { country: long },
      prediction: 0.5,
      predicted_class: null,
    });
    await store.insertJoined([
      {
        prediction: prediction('a'),
        label: { prediction_id: 'a', model: 'm', event_time: start + 2, label: 1 },
        joinedAt: start + 3,
      },
    ]);
    await store.insertExpired([{ prediction: prediction('b'), deadline: start + 4, expiredAt: start + 5 }]);
    const got = await store.readWindow({ model: 'm', modelVersion: 'v1', windowStart: start }, 60_000, ['country']);
    expect(got.segments[0]?.values).toEqual([long.slice(0, MAX_SEGMENT_CHARS)]);
    expect([got.labeledCount, got.expiredCount]).toEqual([1, 1]);
    await ch.close();
  });
});
