import { silentLogger } from '@driftline/core';
import { InMemoryJoinStore } from '@driftline/join';
import { createMetricsRegistry } from '@driftline/observability';
import type { LabelEvent, PredictionEvent } from '@driftline/schemas';
import type { JoinedRow } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { EARLY_LABEL_WARNING_MS, JoinEngine, type JoinerRecord } from '../src/engine.js';

const HOUR = 3_600_000;
const MINUTE = 60_000;
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const decoder = {
  prediction: (b: Buffer) => JSON.parse(b.toString()) as PredictionEvent,
  label: (b: Buffer) => JSON.parse(b.toString()) as LabelEvent,
};
const sink = {
  joined: [] as JoinedRow[],
  async insertJoined(rows: readonly JoinedRow[]) {
    this.joined.push(...rows);
  },
  async insertExpired() {},
  async writtenPredictionRows() {
    return [];
  },
};

function prediction(id: string, eventTime: number, model = 'fraud'): JoinerRecord {
  const event: PredictionEvent = {
    prediction_id: id,
    model,
    model_version: 'v1',
    entity_id: 'e',
    event_time: eventTime,
    features: {},
    prediction: 0.7,
    predicted_class: null,
  };
  return { kind: 'prediction', event, raw: json(event) };
}

function label(id: string, eventTime: number, model = 'fraud'): JoinerRecord {
  const event: LabelEvent = { prediction_id: id, model, event_time: eventTime, label: 1 };
  return { kind: 'label', event, raw: json(event) };
}

// The regression review's case (/tmp/r3/early.mts): transactions scored by a nightly batch at
// 02:00, their chargeback labels dated at the transaction, 16 h before.
const join = { maxDelayMs: 7 * 24 * HOUR, graceMs: 5 * MINUTE, tombstoneMs: 2 * HOUR, maxFutureMs: HOUR };
const scoredAt = Date.UTC(2026, 11, 7, 2);
const txAt = scoredAt - 16 * HOUR;

function setup() {
  const store = new InMemoryJoinStore<Buffer, Buffer>(join);
  const warnings: Array<{ obj: Record<string, unknown>; msg: string }> = [];
  const logger = {
    ...silentLogger,
    warn: (obj: object, msg?: string) => void warnings.push({ obj: obj as Record<string, unknown>, msg: msg ?? '' }),
  };
  const registry = createMetricsRegistry({ service: 't', defaultMetrics: false });
  const engine = new JoinEngine(store, decoder, sink, HOUR, registry, undefined, undefined, undefined, {
    config: join,
    logger,
  });
  return { store, warnings, registry, engine };
}

describe('labels dated before their prediction beyond the future bound (early)', () => {
  it('the outcome series exist at 0 before the first early label (rate() sees its first step)', async () => {
    const { registry } = setup();
    const text = await registry.getSingleMetricAsString('driftline_joiner_events_total');
    expect(text).toMatch(/kind="label",outcome="early",service="t"} 0/);
    expect(text).toMatch(/kind="prediction",outcome="pending-early-label",service="t"} 0/);
  });

  it("a label read after its prediction is early: one warning per model per 10 minutes naming its time, the bound on its prediction's, the reach and the fix; one within the reach joins without a line", async () => {
    const { warnings, engine } = setup();
    await engine.process([prediction('tx-1', scoredAt), prediction('tx-2', scoredAt)], scoredAt, 'test/0');
    const now = scoredAt + 3 * 24 * HOUR;
    const stats = await engine.process([label('tx-1', txAt), label('tx-2', txAt)], now, 'test/1');
    expect(stats.outcomes).toEqual({ 'label:early': 2 });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.obj).toEqual({
      earlyLabels: 2,
      model: 'fraud',
      prediction_id: 'tx-1',
      allowedBefore: '61m',
      labelTime: new Date(txAt).toISOString(),
      predictionTimeAfter: new Date(txAt + HOUR + MINUTE).toISOString(),
    });
    expect(warnings[0]?.msg).toContain('(early)');
    expect(warnings[0]?.msg).toContain('more than DRIFTLINE_EVENT_TIME_MAX_FUTURE (1h) + 1 minute before');
    expect(warnings[0]?.msg).toContain('DRIFTLINE_EVENT_TIME_MAX_FUTURE');
    expect(warnings[0]?.msg).toContain('date each label by when its outcome was observed');
    // Within the interval: counted, not written; another model has its own line.
    await engine.process([prediction('tx-3', scoredAt), prediction('o-1', scoredAt, 'other')], now, 'test/0');
    await engine.process([label('tx-3', txAt), label('o-1', txAt, 'other')], now + MINUTE, 'test/1');
    expect(warnings).toHaveLength(2);
    expect(warnings[1]?.obj).toMatchObject({ earlyLabels: 1, model: 'other' });
    // After it: one line with the count since the last.
    await engine.process([prediction('tx-4', scoredAt)], now, 'test/0');
    await engine.process([label('tx-4', txAt)], now + EARLY_LABEL_WARNING_MS, 'test/1');
    expect(warnings).toHaveLength(3);
    expect(warnings[2]?.obj).toMatchObject({ earlyLabels: 2, model: 'fraud', prediction_id: 'tx-4' });
    // A label within the reach (dated an hour before its prediction: its clock ahead) joins, no line.
    await engine.process([prediction('tx-5', scoredAt)], now, 'test/0');
    const joined = await engine.process([label('tx-5', scoredAt - HOUR)], now + 2 * EARLY_LABEL_WARNING_MS, 'test/1');
    expect(joined.outcomes).toEqual({ 'label:joined': 1 });
    expect(warnings).toHaveLength(3);
  });

  it('a label read first, then replaced by its prediction (pending-early-label), is warned of too', async () => {
    const { store, warnings, engine } = setup();
    // Prediction topic lagging: the label waits, then its prediction replaces it.
    expect((await engine.process([label('tx-9', txAt)], scoredAt, 'test/1')).outcomes).toEqual({ 'label:waiting': 1 });
    expect(warnings).toHaveLength(0);
    const stats = await engine.process([prediction('tx-9', scoredAt)], scoredAt + MINUTE, 'test/0');
    expect(stats.outcomes).toEqual({ 'prediction:pending-early-label': 1 });
    expect(store.states.get(JSON.stringify(['fraud', 'tx-9']))?.state.tag).toBe('P');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.obj).toEqual({
      earlyLabelsReplaced: 1,
      model: 'fraud',
      prediction_id: 'tx-9',
      allowedBefore: '61m',
      predictionTime: new Date(scoredAt).toISOString(),
      labelTimeBefore: new Date(scoredAt - HOUR - MINUTE).toISOString(),
    });
    expect(warnings[0]?.msg).toContain('never counted as an orphan');
    expect(warnings[0]?.msg).toContain('DRIFTLINE_EVENT_TIME_MAX_FUTURE');
    // The knob the line names: with DRIFTLINE_EVENT_TIME_MAX_FUTURE=17h the same labels join, either order.
    const wide = { ...join, maxFutureMs: 17 * HOUR };
    const store17 = new InMemoryJoinStore<Buffer, Buffer>(wide);
    const engine17 = new JoinEngine(store17, decoder, sink, HOUR, undefined, undefined, undefined, undefined, {
      config: wide,
      logger: { ...silentLogger, warn: () => void warnings.push({ obj: {}, msg: 'wide' }) },
    });
    await engine17.process([label('tx-9', txAt)], scoredAt, 'test/1');
    expect((await engine17.process([prediction('tx-9', scoredAt)], scoredAt, 'test/0')).outcomes).toEqual({
      'prediction:joined': 1,
    });
    await engine17.process([prediction('tx-8', scoredAt)], scoredAt, 'test/0');
    expect((await engine17.process([label('tx-8', txAt)], scoredAt, 'test/1')).outcomes).toEqual({
      'label:joined': 1,
    });
    expect(warnings).toHaveLength(1);
  });
});
