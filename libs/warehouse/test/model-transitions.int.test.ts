import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chTime, createClickHouse, migrate, migrations, type TransitionRow, warehouseOn } from '../src/index.js';

const path = mkdtempSync(join(tmpdir(), 'driftline-ch-'));
const T0 = Date.UTC(2026, 0, 1);

const row = (
  version: string,
  from: TransitionRow['from_stage'],
  to: TransitionRow['to_stage'],
  at: number,
  over: Partial<TransitionRow> = {},
): TransitionRow => ({
  model: 'fraud',
  version,
  from_stage: from,
  to_stage: to,
  at,
  decided_by: 'policy:promotion',
  reason: 'evidence',
  detail: 'lower bound 0.01 > bar 0 after 80 labels (alpha 0.05)',
  evidence: '{"n":80}',
  canary_share: null,
  previous_version: null,
  recorded_at: at + 5,
  ...over,
});

/** A migrated database of its own on the embedded engine. */
async function freshWarehouse() {
  const ch = await createClickHouse({
    mode: 'embedded',
    path,
    database: `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`,
  });
  await migrate(ch, migrations);
  return ch;
}

describe('model_transitions on the embedded engine', () => {
  it('lists every model, past the page size of 10,000 names', async () => {
    const ch = await freshWarehouse();
    const names = Array.from({ length: 10_001 }, (_, i) => `m${String(i).padStart(5, '0')}`);
    await warehouseOn(ch).transitions.record(names.map((model) => row('v1', null, 'production', T0, { model })));
    await warehouseOn(ch).transitions.record([row('v1', null, 'production', T0, { model: 'zz-fraud' })]);
    const models = await warehouseOn(ch).transitions.models();
    expect(models).toHaveLength(10_002);
    expect(models.at(-1)).toBe('zz-fraud');
    expect(new Set(models).size).toBe(10_002);
  });

  it('records transitions idempotently per (model, version, to_stage), reads the history ordered by at', async () => {
    const ch = await freshWarehouse();
    const wh = warehouseOn(ch);
    await wh.transitions.record([
      row('v2', null, 'candidate', T0, { decided_by: 'trainer:offline_gate', reason: 'trained', evidence: '' }),
      row('v2', 'candidate', 'shadow', T0, { decided_by: 'trainer:offline_gate', previous_version: 'v1' }),
    ]);
    await wh.transitions.record([
      row('v2', 'shadow', 'canary', T0 + 2_000, { canary_share: 0.1, previous_version: 'v1' }),
    ]);
    // The same transition again (a retried tick): replaced, not duplicated; the newest recorded_at wins.
    await wh.transitions.record([
      row('v2', 'shadow', 'canary', T0 + 2_000, { canary_share: 0.1, previous_version: 'v1', recorded_at: T0 + 9_000 }),
    ]);
    await wh.transitions.record([row('x1', null, 'candidate', T0 + 1_000, { model: 'other' })]);
    const history = await wh.transitions.history('fraud');
    expect(history.map((h) => [h.version, h.from_stage, h.to_stage, h.at])).toEqual([
      ['v2', null, 'candidate', T0],
      ['v2', 'candidate', 'shadow', T0],
      ['v2', 'shadow', 'canary', T0 + 2_000],
    ]);
    expect(history[2]).toEqual(
      row('v2', 'shadow', 'canary', T0 + 2_000, { canary_share: 0.1, previous_version: 'v1', recorded_at: T0 + 9_000 }),
    );
    expect(history[0]!.previous_version).toBeNull();
    expect((await wh.transitions.history('fraud', 'v2')).length).toBe(3);
    expect(await wh.transitions.history('fraud', 'nope')).toEqual([]);
    expect(await wh.transitions.models()).toEqual(['fraud', 'other']);
    // Artifacts come from model_versions.
    expect(await wh.transitions.artifacts('fraud', 'v2')).toBeUndefined();
    await ch.insert('model_versions', [
      {
        model: 'fraud',
        version: 'v2',
        request_id: 'req-2',
        base_version: 'v1',
        status: 'PROMOTED',
        promotion_reason: 'r',
        data_from: chTime(T0),
        data_to: chTime(T0),
        rows_train: 1,
        rows_holdout: 1,
        metrics: { roc_auc: 0.8 },
        params: '{}',
        artifact_uri: 'file:///a/model.json',
        reference_id: null,
        reference_uri: 'clickhouse://x',
        device: 'cpu',
        device_reason: '',
        published: 1,
        registered_at: chTime(T0),
        updated_at: chTime(T0),
      },
    ]);
    expect(await wh.transitions.artifacts('fraud', 'v2')).toEqual({
      request_id: 'req-2',
      artifact_uri: 'file:///a/model.json',
      reference_uri: 'clickhouse://x',
      metrics: { roc_auc: 0.8 },
    });
    await ch.close();
  });
});
