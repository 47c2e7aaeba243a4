import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_EVENT_TIME_BOUNDS, silentLogger } from '@driftline/core';
import type { DecodedRecord } from '@driftline/kafka';
import { createMetricsRegistry } from '@driftline/observability';
import { decide, parsePolicyText } from '@driftline/policy';
import type { DriftAlert, RetrainRequest } from '@driftline/schemas';
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
import { loadPolicy } from '../src/config.js';
import { decisionRow, triggerProcessor } from '../src/processor.js';

// The review's backlog through the real engine (embedded ClickHouse): one model with 40
// per-feature alerts per 5-minute window over 288 windows. Every row carried the model's state
// (up to ~340 KB): 1.6 GB for the last 6,520 alerts, an insert ClickHouse refused for ever.
const T0 = Date.UTC(2024, 0, 1);
const FIVE = 300_000;
const wide = (w: number, f: number): DriftAlert => ({
  alert_id: createHash('sha256').update(`wide${w}-${f}`).digest('hex').slice(0, 32),
  kind: 'FEATURE_DRIFT',
  model: 'mwide',
  model_version: 'v1',
  feature: `f${f}`,
  window_start: T0 + w * FIVE,
  window_end: T0 + (w + 1) * FIVE,
  event_time: T0 + (w + 1) * FIVE,
  method: 'psi',
  statistic: 0.5,
  p_value: null,
  threshold: 0.2,
  share_drifted: 0.6,
  evidence: '{}',
});
const backlog = Array.from({ length: 288 }, (_, w) => Array.from({ length: 40 }, (_, f) => wide(w, f))).flat();
const items = (alerts: readonly DriftAlert[]): Array<DecodedRecord<DriftAlert>> =>
  alerts.map((value, i) => ({
    record: { topic: 'alerts.v1', partition: 0, offset: String(i), key: null, value: null, headers: {}, timestamp: 0 },
    value,
  }));
const ctx = { topic: 'alerts.v1', partition: 0, highWatermark: '0' };
// The review's batches: 625 at a time, then the remaining 6,520 at once.
const BATCHES = [...Array.from({ length: 9 }, (_, i) => i * 625), backlog.length];

function processor(store: DecisionStore, sent: RetrainRequest[]) {
  return triggerProcessor({
    policy: loadPolicy(undefined),
    store,
    decode: () => backlog[0]!,
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    send: async (r) => {
      sent.push(...r);
    },
    logger: silentLogger,
    registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
    now: () => T0,
  });
}

async function run(store: DecisionStore, sent: RetrainRequest[], from = 0): Promise<void> {
  const p = processor(store, sent);
  for (let i = 0; i + 1 < BATCHES.length; i++) {
    if (BATCHES[i + 1]! <= from) continue;
    const batch = items(backlog.slice(Math.max(from, BATCHES[i]!), BATCHES[i + 1]));
    // The consumer loop retries a failed batch as it is.
    await p.process(batch, ctx).catch(() => p.process(batch, ctx));
  }
}

describe('retrain-trigger: a backlog of per-feature alerts through ClickHouse (found by a review)', () => {
  const chs: ClickHouse[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'retrain-backlog-'));
  async function database(name: string): Promise<ClickHouse> {
    const ch = await createClickHouse({
      mode: 'embedded',
      path: join(dir, 'chdb'),
      database: `retrain_${name}_${randomUUID().slice(0, 8)}`,
    });
    await migrate(ch, migrations);
    chs.push(ch);
    return ch;
  }
  afterAll(async () => {
    for (const ch of chs) await ch.close();
  });
  /** The decisions of record (FINAL), without the state column. */
  const decisions = async (ch: ClickHouse) =>
    ch.select<{ row: string }>(
      `SELECT concat(alert_id, '/', reason, '/', toString(seq), '/', toString(first), '/', ifNull(request_id, '')) AS row
       FROM ${ch.table('retrain_decisions')} FINAL ORDER BY alert_id`,
    );

  /** The store, recording the rows written through it. */
  const recording = (real: DecisionStore, written: DecisionRow[]): DecisionStore => ({
    loadStates: (models) => real.loadStates(models),
    baseline: (model, version) => real.baseline(model, version),
    recordedAlerts: (ids, through) => real.recordedAlerts(ids, through),
    async write(rows) {
      await real.write(rows);
      written.push(...rows);
    },
  });

  // The backlog decided without incident: what every other way of getting there must match.
  let reference: { ch: ClickHouse; sent: RetrainRequest[]; took: number };
  beforeAll(async () => {
    const ch = await database('clean');
    const sent: RetrainRequest[] = [];
    const started = Date.now();
    await run(warehouseOn(ch).decisions, sent);
    reference = { ch, sent, took: Date.now() - started };
  });

  it('records the backlog with one bounded state per batch; a restart replays it as duplicates', async () => {
    const { ch, sent, took } = reference;
    const [table] = await ch.select<{ rows: number; carrying: number; total: number; largest: number }>(
      `SELECT toUInt32(count()) AS rows, toUInt32(countIf(state != '')) AS carrying,
              toUInt64(sum(length(state))) AS total, toUInt64(max(length(state))) AS largest
       FROM ${ch.table('retrain_decisions')}`,
    );
    // One state per batch (9), each under 40 KB: before, 11,520 states, up to 342,790 bytes each.
    expect(table).toEqual({
      rows: backlog.length,
      carrying: BATCHES.length - 1,
      total: expect.any(Number),
      largest: expect.any(Number),
    });
    expect(Number(table!.largest)).toBeLessThan(40_000);
    expect(Number(table!.total)).toBeLessThan(9 * 40_000);
    expect(sent).toHaveLength(1); // sustain 3, then the 24 h cooldown
    console.log(
      `retrain-trigger: backlog of ${backlog.length} alerts recorded in ${took} ms, states ${table!.total} bytes`,
    );

    // A restart: the state reloads from the newest row carrying one, every alert is a duplicate.
    const before = await decisions(ch);
    const again: RetrainRequest[] = [];
    const replayed: DecisionRow[] = [];
    await run(recording(warehouseOn(ch).decisions, replayed), again);
    expect(again).toEqual([]);
    expect(replayed).toHaveLength(backlog.length);
    expect(new Set(replayed.map((r) => `${r.reason}/${r.first}/${r.state}`))).toEqual(new Set(['duplicate/0/']));
    expect(await decisions(ch)).toEqual(before);
  });

  it('an insert that lands in part (the fire among it, no state row) is decided again exactly: no second fire', async () => {
    const ch = await database('partial');
    const real = warehouseOn(ch).decisions;
    let cut = true;
    const store: DecisionStore = {
      loadStates: (models) => real.loadStates(models),
      baseline: (model, version) => real.baseline(model, version),
      recordedAlerts: (ids, through) => real.recordedAlerts(ids, through),
      async write(rows: readonly DecisionRow[]) {
        if (!cut) return real.write(rows);
        cut = false;
        // The first 200 rows land (window 2's fire is row 80; the state is on row 624), then the insert fails.
        await real.write(rows.slice(0, 200));
        throw new Error('clickhouse insert: ECONNRESET: socket hang up');
      },
    };
    const sent: RetrainRequest[] = [];
    await run(store, sent);
    expect(cut).toBe(false);
    // The fire was sent twice (before the failed record, and by the retry): the same request id.
    expect(new Set(sent.map((r) => r.request_id))).toEqual(new Set(reference.sent.map((r) => r.request_id)));
    expect(await decisions(ch)).toEqual(await decisions(reference.ch));
  });

  it('rows of the previous release (a state on every row) load: a new process decides on from them exactly', async () => {
    const ch = await database('upgrade');
    const store = warehouseOn(ch).decisions;
    const sent: RetrainRequest[] = [];
    // One alert per batch: each row carries the state after it, as every row did before.
    const old = processor(store, sent);
    for (const a of backlog.slice(0, 200)) await old.process(items([a]), ctx);
    const [carrying] = await ch.select<{ n: number }>(
      `SELECT toUInt32(countIf(state != '')) AS n FROM ${ch.table('retrain_decisions')}`,
    );
    expect(carrying!.n).toBe(200);
    await run(store, sent, 200);
    expect(new Set(sent.map((r) => r.request_id))).toEqual(new Set(reference.sent.map((r) => r.request_id)));
    expect(await decisions(ch)).toEqual(await decisions(reference.ch));
  });

  it('a state persisted before signal families (one window list for every kind) loads from retrain_decisions and decides on', async () => {
    const ch = await database('families');
    const store = warehouseOn(ch).decisions;
    const H = 3_600_000;
    const NOW = T0 + 10 * 24 * H;
    const policy = parsePolicyText(
      'models: { mperf: { signals: { performance: [{ metric: roc_auc, below: 0.7 }] } } }',
    );
    const performance = (i: number): DriftAlert => ({
      ...wide(0, 0),
      alert_id: `perf-${i}`,
      kind: 'PERFORMANCE',
      model: 'mperf',
      feature: null,
      method: 'roc_auc',
      statistic: 0.55,
      share_drifted: null,
      window_start: NOW - 48 * H + i * H,
      window_end: NOW - 47 * H + i * H,
      event_time: NOW,
    });
    // What the previous release stored after a DATA_QUALITY alert of now and two performance
    // windows 2 days back: one maxWindowEnd (now), one window list.
    const legacy = {
      seq: 3,
      maxWindowEnd: NOW,
      windows: [
        ...[0, 1].map((i) => ({
          start: performance(i).window_start,
          end: performance(i).window_end,
          signals: ['performance:roc_auc<0.7'],
          alertIds: [performance(i).alert_id],
        })),
        { start: NOW - 300_000, end: NOW, signals: [] as string[], alertIds: ['dq-now'] },
      ],
      lastFire: null,
    };
    const row = decisionRow(performance(1), decide(policy, undefined, performance(1)), T0);
    await store.write([{ ...row, seq: 3, state: JSON.stringify(legacy) }]);
    const sent: RetrainRequest[] = [];
    await triggerProcessor({
      policy,
      store,
      decode: () => performance(2),
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      send: async (r) => {
        sent.push(...r);
      },
      logger: silentLogger,
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      now: () => T0,
    }).process(items([performance(2)]), ctx);
    // The previous release held it too_late (2 days behind the DATA_QUALITY window of now).
    expect(sent.map((r) => r.data_to)).toEqual([performance(2).window_end]);
    const state = (await store.loadStates(['mperf'])).get('mperf');
    expect(state?.seq).toBe(4);
    expect(state?.performance?.windows.map((w) => w.alertIds)).toEqual([['perf-0'], ['perf-1'], ['perf-2']]);
    expect(state?.windows.map((w) => w.alertIds)).toEqual([['dq-now']]);
  });

  it('the data-quality veto: retrain_decisions takes the data_quality reason, and the spans reload with the state', async () => {
    // retrain_decisions.reason is a LowCardinality(String), no enum: any reason the policy gives lands.
    const ch = await database('quality');
    const store = warehouseOn(ch).decisions;
    const quality = (w: number): DriftAlert => ({
      ...wide(w, 0),
      alert_id: `dq-${w}`,
      kind: 'DATA_QUALITY',
      model: 'mdq',
      feature: 'merchant_id',
      method: 'missing_share',
      statistic: 1,
      share_drifted: null,
    });
    const drift = (w: number): DriftAlert => ({ ...wide(w, 0), alert_id: `fd-${w}`, model: 'mdq', feature: null });
    const sent: RetrainRequest[] = [];
    // The drift-monitor's order: a window's DATA_QUALITY alert, then its drift alert.
    await processor(store, sent).process(items([0, 1, 2].flatMap((w) => [quality(w), drift(w)])), ctx);
    expect(sent).toEqual([]);
    expect((await decisions(ch)).map((r) => r.row.split('/').slice(0, 2).join('/'))).toEqual([
      'dq-0/no_signal',
      'dq-1/no_signal',
      'dq-2/no_signal',
      'fd-0/data_quality',
      'fd-1/data_quality',
      'fd-2/data_quality',
    ]);
    const state = (await store.loadStates(['mdq'])).get('mdq');
    expect(state?.dataQuality).toEqual([{ start: T0, end: T0 + 3 * FIVE, alertIds: ['dq-0', 'dq-1', 'dq-2'] }]);
    // A new process reloads them: the run counts from window 3 on, and fires on window 5.
    await processor(store, sent).process(items([3, 4, 5].map(drift)), ctx);
    expect(sent.map((r) => r.data_to)).toEqual([T0 + 6 * FIVE]);
  });
});
