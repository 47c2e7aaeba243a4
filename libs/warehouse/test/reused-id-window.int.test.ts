// An id a model used again (README of the label-joiner allows it): the expired rows of a window are
// the unlabeled predictions without a labeled row of the same prediction — id and time — not of the
// same id. Embedded ClickHouse (chdb), a real engine.
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { windowStart } from '@driftline/performance';
import type { LabelEvent, PredictionEvent } from '@driftline/schemas';
import { describe, expect, it } from 'vitest';
import { ClickHousePredictionStore, createClickHouse, migrate, migrations } from '../src/index.js';
import { testClickHouse } from './fixtures/clickhouse.js';

const path = mkdtempSync(join(tmpdir(), 'driftline-ch-reused-'));
const database = () => `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
const WINDOW = 3_600_000;
const START = windowStart(Date.now() - 2 * WINDOW, WINDOW); // recent: inside the tables' retention

const prediction = (id: string, t: number, user: string): PredictionEvent => ({
  prediction_id: id,
  model: 'm',
  model_version: 'v1',
  entity_id: 'e',
  event_time: t,
  features: { user },
  prediction: 0.7,
  predicted_class: null,
});
const label = (id: string, t: number): LabelEvent => ({ prediction_id: id, model: 'm', event_time: t, label: 1 });

describe('expired predictions of a window with ids used again (found by a review)', () => {
  it('counts an expired prediction whose id a later, labeled prediction reused; a labeled copy of itself still hides it', async () => {
    const ch = await createClickHouse(testClickHouse(path, database()));
    await migrate(ch, migrations);
    const store = new ClickHousePredictionStore(ch);
    // 40 ids expire unlabeled at START + i s; 25 of them are used again 20 minutes later and labeled.
    const ids = Array.from({ length: 40 }, (_, i) => `p-${i}`);
    const user = (i: number) => (i % 2 === 0 ? 'A' : 'B');
    await store.insertExpired(
      ids.map((id, i) => ({
        prediction: prediction(id, START + i * 1_000, user(i)),
        deadline: START,
        expiredAt: START,
      })),
    );
    const reused = ids.slice(0, 25).map((id, i) => {
      const t = START + 1_200_000 + i * 1_000;
      return { prediction: prediction(id, t, user(i)), label: label(id, t + 10), joinedAt: t + 20 };
    });
    // p-39 got its label after all: the joined row of the same prediction (id and time) wins.
    const late = {
      prediction: prediction('p-39', START + 39_000, user(39)),
      label: label('p-39', START + 39_010),
      joinedAt: START + 40_000,
    };
    await store.insertJoined([...reused, late]);
    const ref = { model: 'm', modelVersion: 'v1', windowStart: START };
    const whole = await store.readWindow(ref, WINDOW, ['user']);
    expect(whole.labeledCount).toBe(26);
    expect(whole.expiredCount).toBe(39); // 40 expired, less p-39 (joined); the 25 reused ids still count
    const expiredBy = (w: typeof whole) => {
      const s = w.segments[0]!;
      return Object.fromEntries(s.values.map((v, id) => [v, s.expired[id] ?? 0]));
    };
    expect(expiredBy(whole)).toEqual({ A: 20, B: 19 });
    // Read as a sample (over maxRows): the per-segment counts of expired rows by the same rule.
    const sampled = await store.readWindow(ref, WINDOW, ['user'], { maxRows: 10, maxSegments: 4 });
    expect(sampled.sampled?.labeled).toBe(26);
    expect(sampled.expiredCount).toBe(39);
    expect(expiredBy(sampled)).toEqual({ A: 20, B: 19 });
    await ch.close();
  });
});
