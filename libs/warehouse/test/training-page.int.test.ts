import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PredictionEvent } from '@driftline/schemas';
import { describe, expect, it } from 'vitest';
import { createClickHouse, migrate, migrations, warehouseOn } from '../src/index.js';

// The embedded engine (chdb) is a real ClickHouse; one data directory per test process.
const path = mkdtempSync(join(tmpdir(), 'driftline-ch-training-'));
const database = () => `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`;

describe('trainingPage: the base version’s score of each row (the offline gate compares with it; found by a review)', () => {
  it('reads scores[base], else the answer when the base version gave it, else null; without a base, the answer', async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    await migrate(ch, migrations);
    const wh = warehouseOn(ch);
    const t0 = Date.now() - 3_600_000;
    const rows: Array<[string, string, string, Record<string, number> | null, number]> = [
      // [id, answering version, role, scores, answered score]
      ['p1', 'v1', 'production', { v1: 0.2, v2: 0.9 }, 0.2], // base v1 answered, scores logged
      ['p2', 'v2', 'canary', { v2: 0.7, v1: 0.1 }, 0.7], // a canary answered; v1 scored it too
      ['p3', 'v2', 'canary', { v2: 0.6 }, 0.6], // a canary answered alone: no v1 score
      ['p4', 'v1', 'production', null, 0.4], // an older producer: no scores, v1 answered
      ['p5', 'v0', 'production', null, 0.8], // the version before v1 answered
    ];
    await wh.predictions.insertJoined(
      rows.map(([id, version, role, scores, score], i) => ({
        prediction: {
          prediction_id: id,
          model: 'fraud',
          model_version: version,
          entity_id: `e-${id}`,
          event_time: t0 + i,
          features: { x: i },
          prediction: score,
          predicted_class: null,
          role,
          scores,
        } as PredictionEvent,
        label: { prediction_id: id, model: 'fraud', event_time: t0 + 100, label: i % 2 },
        joinedAt: t0 + 101,
      })),
    );
    const read = async (base?: string) =>
      (await wh.predictions.trainingPage('fraud', t0, t0 + 10, 10, undefined, base))
        .reverse()
        .map((r) => [r.predictionId, r.prediction, r.baseScore]);
    expect(await read('v1')).toEqual([
      ['p1', 0.2, 0.2],
      ['p2', 0.7, 0.1],
      ['p3', 0.6, null],
      ['p4', 0.4, 0.4],
      ['p5', 0.8, null],
    ]);
    // No base version named: the answered score, as before.
    expect(await read()).toEqual(rows.map(([id, , , , score]) => [id, score, score]));
    await ch.close();
  });
});
