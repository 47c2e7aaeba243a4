import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_EVENT_TIME_BOUNDS, type Logger, silentLogger } from '@driftline/core';
import type { DecodedRecord } from '@driftline/kafka';
import { createMetricsRegistry } from '@driftline/observability';
import { parsePolicyText } from '@driftline/policy';
import type { DriftAlert } from '@driftline/schemas';
import {
  type ClickHouse,
  createClickHouse,
  type DecisionRow,
  type DecisionStore,
  migrate,
  migrations,
  warehouseOn,
} from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { triggerProcessor } from '../src/processor.js';

// A stored state that cannot be used (a row's state written by hand, a buggy writer), through the
// real engine (embedded ClickHouse): the store parsed it unguarded, so every batch of the model —
// and of any model sharing its batches — threw, retried and dead-lettered for ever (found by a review).
const T0 = Date.UTC(2024, 0, 1);
const W = 60_000;
const policy = parsePolicyText(`
models:
  '*':
    signals: { share_drifted: 0.3 }
    sustain: 2
    cooldown: 1h
    training_window: 1h
`);

const alert = (model: string, w: number): DriftAlert => ({
  alert_id: `${model}-${w}`,
  kind: 'FEATURE_DRIFT',
  model,
  model_version: 'v1',
  feature: null,
  window_start: T0 + w * W,
  window_end: T0 + (w + 1) * W,
  event_time: T0 + (w + 1) * W,
  method: 'psi',
  statistic: 0.5,
  p_value: null,
  threshold: 0.2,
  share_drifted: 0.5,
  evidence: '{}',
});

let offset = 0;
const batch = (alerts: readonly DriftAlert[]): Array<DecodedRecord<DriftAlert>> =>
  alerts.map((value) => ({
    record: {
      topic: 'alerts.v1',
      partition: 0,
      offset: String(offset++),
      key: null,
      value: null,
      headers: {},
      timestamp: 0,
    },
    value,
  }));
const ctx = { topic: 'alerts.v1', partition: 0, highWatermark: '0' };

function warnings() {
  const seen: Array<{ obj: Record<string, unknown>; msg: string | undefined }> = [];
  const logger: Logger = {
    ...silentLogger,
    warn: (obj, msg) => {
      seen.push({ obj: obj as Record<string, unknown>, msg });
    },
    child: () => logger,
  };
  return { seen, logger };
}

const trigger = (store: DecisionStore, logger: Logger = silentLogger) =>
  triggerProcessor({
    policy,
    store,
    decode: () => alert('m', 0),
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    send: async () => {},
    logger,
    registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
    now: () => T0,
  });

describe('retrain-trigger: a stored state that cannot be used, through ClickHouse (found by a review)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'retrain-stored-state-'));
  let ch: ClickHouse;
  let store: DecisionStore;

  /** The model's decisions after `seq`, in order: `alert_id:reason:seq`. */
  const decided = async (model: string, after = 0) =>
    (
      await ch.select<{ row: string }>(
        `SELECT concat(alert_id, ':', reason, ':', toString(seq)) AS row FROM ${ch.table('retrain_decisions')}
         WHERE model = {model:String} AND first = 1 AND seq > {after:UInt64} ORDER BY seq`,
        { model, after },
      )
    ).map((r) => r.row);

  beforeAll(async () => {
    ch = await createClickHouse({
      mode: 'embedded',
      path: join(dir, 'chdb'),
      database: `retrain_state_${randomUUID().slice(0, 8)}`,
    });
    await migrate(ch, migrations);
    store = warehouseOn(ch).decisions;
    // Three models with a history: window 0 sustaining, window 1 fired (seq 2, state on its row).
    const written: DecisionRow[] = [];
    const recording: DecisionStore = {
      loadStates: (models) => store.loadStates(models),
      baseline: (model, version) => store.baseline(model, version),
      recordedAlerts: (ids, through) => store.recordedAlerts(ids, through),
      async write(rows) {
        await store.write(rows);
        written.push(...rows);
      },
    };
    await trigger(recording).process(
      batch(['garbled', 'misshapen', 'fine'].flatMap((m) => [alert(m, 0), alert(m, 1)])),
      ctx,
    );
    expect(written.filter((r) => r.reason === 'fire')).toHaveLength(3);
    // Rows written by hand, each the newest state of its model: text that is not JSON, and JSON
    // that is no state (windows not a list) with a seq.
    const template = written.find((r) => r.state !== '')!;
    await ch.insert('retrain_decisions', [
      { ...template, model: 'garbled', alert_id: 'by-hand', seq: 40, state: '{"seq": 40, "windows": [' },
      {
        ...template,
        model: 'misshapen',
        alert_id: 'by-hand',
        seq: 41,
        state: '{"seq": 41, "maxWindowEnd": 0, "windows": 3, "lastFire": null}',
      },
    ]);
  });

  afterAll(async () => {
    await ch?.close();
  });

  it('the model decides from no state with one warning naming it and the row; the other models of the batch as before', async () => {
    const { seen, logger } = warnings();
    // Windows 2 and 3: from the fired state, cooldown; from no state, window 3 fires.
    await trigger(store, logger).process(
      batch(['garbled', 'misshapen', 'fine'].flatMap((m) => [alert(m, 2), alert(m, 3)])),
      ctx,
    );
    expect(await decided('fine', 2)).toEqual(['fine-2:cooldown:3', 'fine-3:cooldown:4']);
    // No state: its own seq from 0 again (the text has none to read).
    expect(await decided('garbled', 40)).toEqual([]);
    expect((await decided('garbled')).filter((r) => /^garbled-[23]:/.test(r))).toEqual([
      'garbled-2:sustaining:1',
      'garbled-3:fire:2',
    ]);
    // Its seq kept: the batch's rows order after the row by hand.
    expect(await decided('misshapen', 41)).toEqual(['misshapen-2:sustaining:42', 'misshapen-3:fire:43']);
    const lines = seen.filter((l) => /stored retrain state cannot be used/.test(l.msg ?? ''));
    expect(lines.map((l) => [l.obj.model, l.obj.seq])).toEqual([
      ['garbled', undefined],
      ['misshapen', 41],
    ]);
    for (const l of lines) expect(l.obj.row).toMatch(/retrain_decisions: the model's first = 1 row of greatest seq/);
    expect(lines[0]!.obj.problem).toMatch(/^not JSON: /);
    expect(lines[1]!.obj.problem).toBe('windows is not an array');
  });

  it("a state of a kept seq is replaced for good by the next batch's; a text without one is met again at every load", async () => {
    const { seen, logger } = warnings();
    await trigger(store, logger).process(batch([alert('misshapen', 4), alert('garbled', 4)]), ctx);
    expect(seen.map((l) => l.obj.model)).toEqual(['garbled']);
    expect(await decided('misshapen', 43)).toEqual(['misshapen-4:cooldown:44']);
  });
});
