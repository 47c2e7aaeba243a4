import { silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { parseRolloutPolicy } from '@driftline/policy';
import { describe, expect, it } from 'vitest';
import { LABEL_CLOCK_LAG_LOG_INTERVAL_MS, ModelController } from '../src/controller.js';
import { type LabelledRow, labelledTable, MemoryTransitions, transitionRow } from './memory-warehouse.js';

// max_time runs on the model's label clock, which stands still while no label arrives: when labels
// stop, every open comparison waits for good. A review ran 60 daily ticks of a canary whose labels
// had stopped: still canary, and not one line, metric or alert said so.

const T0 = Date.UTC(2026, 10, 1);
const H = 3_600_000;
const D = 24 * H;

describe("the label clock's lag: comparisons that wait for labels are told", () => {
  it('shows wall clock − label clock and the shortest open max_time per model, warns at most every 6 h while the lag is past it, and drops both once no comparison is open', async () => {
    const store = new MemoryTransitions([]);
    for (const r of [
      transitionRow('v1', 'canary', 'production', T0),
      transitionRow('v2', null, 'candidate', T0 + 1),
      transitionRow('v2', 'candidate', 'shadow', T0 + 2, 'v1'),
      {
        ...transitionRow('v2', 'shadow', 'canary', T0 + 3, 'v1'),
        canary_share: 0.1,
        evidence: JSON.stringify({ serving_from: T0 + 3 }),
      },
    ])
      store.rows.set(`fraud/${r.version}/${r.to_stage}`, r);
    // 20 labelled canary answers in the first 20 minutes, then the labels stop.
    const rows: LabelledRow[] = Array.from({ length: 20 }, (_, i) => ({
      id: `c${i}`,
      answered: 'v2',
      role: 'canary',
      predictionTime: T0 + 10 + i * 60_000,
      labelTime: T0 + 10 + i * 60_000 + 1_000,
      label: i % 2,
      scores: { v1: 0.5, v2: i % 2 === 1 ? 0.9 : 0.1 },
    }));
    const lastLabel = rows.at(-1)!.labelTime;
    const warnings: Array<Record<string, unknown>> = [];
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    let now = T0 + H;
    const controller = new ModelController({
      transitions: store,
      pairs: labelledTable(rows).reader,
      publish: async () => {},
      policies: parseRolloutPolicy({
        defaults: { promotion: { min_labels: 500, max_time: '1d' }, rollback: { max_time: '7d' } },
      }),
      maxPairs: 100_000,
      logger: {
        ...silentLogger,
        warn: (o: object, msg?: string) => {
          if (msg?.startsWith("the model's label clock lags")) warnings.push({ ...o });
        },
      },
      registry,
      now: () => now,
    });
    const gauge = async (name: string) =>
      (await registry.getSingleMetric(name)?.get())?.values.find((v) => v.labels.model === 'fraud')?.value;
    await controller.tick();
    expect(await gauge('driftline_model_controller_label_clock_lag_seconds')).toBe((now - lastLabel) / 1000);
    expect(await gauge('driftline_model_controller_label_clock_lag_limit_seconds')).toBe(D / 1000);
    expect(warnings).toEqual([]);
    // Two days on, ticked every 30 min for 12 h: still canary (decisions stay on event time), the
    // lag past the canary's max_time (1d) said at its first tick and again 6 h later.
    for (now = T0 + 2 * D; now < T0 + 2 * D + 12 * H; now += 30 * 60_000) {
      expect((await controller.tick()).transitions).toEqual([]);
    }
    expect(LABEL_CLOCK_LAG_LOG_INTERVAL_MS).toBe(6 * H);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatchObject({
      model: 'fraud',
      label_clock: lastLabel,
      lag_ms: T0 + 2 * D - lastLabel,
      max_time_ms: D,
      open: ['promotion:v2:canary'],
    });
    expect(await gauge('driftline_model_controller_label_clock_lag_seconds')).toBe(
      (T0 + 2 * D + 11.5 * H - lastLabel) / 1000,
    );
    // Labels come again: the lag is small, nothing said.
    rows.push({ ...rows[0]!, id: 'late', labelTime: now - 60_000, predictionTime: now - 120_000 });
    await controller.tick();
    expect(await gauge('driftline_model_controller_label_clock_lag_seconds')).toBe(60);
    expect(warnings).toHaveLength(2);
    // No comparison open any more (rolled back by hand): both series go.
    store.rows.set('fraud/v2/rolled_back', transitionRow('v2', 'canary', 'rolled_back', T0 + 4, 'v1'));
    await controller.tick();
    expect(await gauge('driftline_model_controller_label_clock_lag_seconds')).toBeUndefined();
    expect(await gauge('driftline_model_controller_label_clock_lag_limit_seconds')).toBeUndefined();
  });

  it('a model with no label clock at all (no labelled prediction ever, or none left after the retention) lags from its oldest open comparison, and is warned about every 6 h', async () => {
    // The regression review's world: a canary (max_time 1d) of a model that never gets a label
    // ticked every 6 h: before, no clock meant no gauge and no line, for 60 days.
    const store = new MemoryTransitions([]);
    for (const r of [
      transitionRow('v1', 'canary', 'production', T0),
      transitionRow('v2', null, 'candidate', T0 + 1),
      transitionRow('v2', 'candidate', 'shadow', T0 + 2, 'v1'),
      {
        ...transitionRow('v2', 'shadow', 'canary', T0 + 3, 'v1'),
        canary_share: 0.1,
        evidence: JSON.stringify({ serving_from: T0 + 5 }),
      },
    ])
      store.rows.set(`fraud/${r.version}/${r.to_stage}`, r);
    const rows: LabelledRow[] = [];
    const warnings: Array<Record<string, unknown>> = [];
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    let now = T0 + H;
    const controller = new ModelController({
      transitions: store,
      pairs: labelledTable(rows).reader,
      publish: async () => {},
      policies: parseRolloutPolicy({
        defaults: { promotion: { min_labels: 500, max_time: '1d' }, rollback: { max_time: '7d' } },
      }),
      maxPairs: 100_000,
      logger: {
        ...silentLogger,
        warn: (o: object, msg?: string) => {
          if (
            msg?.startsWith('the model has no labelled prediction') ||
            msg?.startsWith("the model's label clock lags")
          )
            warnings.push({ ...o, msg: msg.slice(0, 40) });
        },
      },
      registry,
      now: () => now,
    });
    const gauge = async (name: string) =>
      (await registry.getSingleMetric(name)?.get())?.values.find((v) => v.labels.model === 'fraud')?.value;
    // Within max_time of the canary's start (its serving_from): shown, not said.
    await controller.tick();
    expect(await gauge('driftline_model_controller_label_clock_lag_seconds')).toBe((now - (T0 + 5)) / 1000);
    expect(await gauge('driftline_model_controller_label_clock_lag_limit_seconds')).toBe(D / 1000);
    expect(warnings).toEqual([]);
    // Three days of ticks every 6 h: still canary; said once past max_time, then every 6 h.
    for (now = T0 + D + 6 * H; now < T0 + 3 * D; now += 6 * H)
      expect((await controller.tick()).transitions).toEqual([]);
    expect(warnings.map((w) => w.msg)).toEqual(Array(7).fill('the model has no labelled prediction (no'));
    expect(warnings[0]).toMatchObject({
      model: 'fraud',
      oldest_comparison_from: T0 + 5,
      lag_ms: T0 + D + 6 * H - (T0 + 5),
      max_time_ms: D,
      open: ['promotion:v2:canary'],
    });
    expect(await gauge('driftline_model_controller_label_clock_lag_seconds')).toBe((now - 6 * H - (T0 + 5)) / 1000);
    // One label comes, for a canary answer of its first 10 minutes: the clock is its label time,
    // still past max_time (the comparison stays open), said with the clock.
    rows.push({
      id: 'c0',
      answered: 'v2',
      role: 'canary',
      predictionTime: T0 + 600_000,
      labelTime: T0 + 660_000,
      label: 1,
      scores: { v1: 0.5, v2: 0.9 },
    });
    expect((await controller.tick()).transitions).toEqual([]);
    expect(await gauge('driftline_model_controller_label_clock_lag_seconds')).toBe((now - (T0 + 660_000)) / 1000);
    expect(warnings).toHaveLength(8);
    expect(warnings[7]).toMatchObject({ msg: "the model's label clock lags the wall cl", label_clock: T0 + 660_000 });
    // labeled_predictions' retention drops its rows (no label for 180 days): the clock is gone
    // again, and the lag does not clear itself (nor the alert): from the comparison's start.
    rows.length = 0;
    now += 180 * D;
    expect((await controller.tick()).transitions).toEqual([]);
    expect(await gauge('driftline_model_controller_label_clock_lag_seconds')).toBe((now - (T0 + 5)) / 1000);
    expect(await gauge('driftline_model_controller_label_clock_lag_limit_seconds')).toBe(D / 1000);
    expect(warnings).toHaveLength(9);
    expect(warnings[8]).toMatchObject({ msg: 'the model has no labelled prediction (no', lag_ms: now - (T0 + 5) });
  });
});
