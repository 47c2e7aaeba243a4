// DRIFTLINE_JOINER_WINDOW changed while predictions wait for labels, on real ClickHouse (found by
// reviews): a key of the old size is recomputed, and its score tallies written, as the current-size
// window containing its start. The old start with the new size had made windows that overlap; a
// size in the key (ce65220) made rows of two sizes share performance_windows' key, where the newer
// replaced the other, and two tally rows of one window share score_histograms_v2's key in a flush.
import { InMemoryJoinStore } from '@driftline/join';
import { createMetricsRegistry } from '@driftline/observability';
import type { LabelEvent, PredictionEvent } from '@driftline/schemas';
import { describe, expect, it } from 'vitest';
import { JoinEngine } from '../src/engine.js';
import { ScoreCounter, WindowEstimator } from '../src/estimates.js';
import { WindowRecomputer } from '../src/loops.js';
import { embeddedWarehouse } from './fixtures/embedded-warehouse.js';
import { recomputeOptions } from './fixtures/recompute-options.js';

const HOUR = 3_600_000;
const decoder = {
  prediction: (b: Buffer) => JSON.parse(b.toString()) as PredictionEvent,
  label: (b: Buffer) => JSON.parse(b.toString()) as LabelEvent,
};
const predictionEvent = (id: string, eventTime: number) => ({
  prediction_id: id,
  model: 'm',
  model_version: 'v1',
  entity_id: id,
  event_time: eventTime,
  features: {},
  prediction: 0.7,
  predicted_class: null,
});
const record = (kind: 'prediction' | 'label', event: object) =>
  ({ kind, event, raw: Buffer.from(JSON.stringify(event)) }) as never;
const prediction = (id: string, eventTime: number) => record('prediction', predictionEvent(id, eventTime));
const label = (id: string, eventTime: number) =>
  record('label', { prediction_id: id, model: 'm', event_time: eventTime, label: 1 });

describe('label-joiner: a changed DRIFTLINE_JOINER_WINDOW (ClickHouse)', () => {
  const db = embeddedWarehouse('ljwindowsize');

  const store = () => new InMemoryJoinStore<Buffer, Buffer>({ maxDelayMs: 100 * HOUR, graceMs: 0, tombstoneMs: HOUR });
  const registry = () => createMetricsRegistry({ service: 't', defaultMetrics: false });
  /** One process of the joiner with windows of `windowMs`: its engine, tallies and recompute. */
  const joiner = (join: InMemoryJoinStore<Buffer, Buffer>, windowMs: number) => {
    const metrics = registry();
    const scores = new ScoreCounter({ threshold: 0.5, maxWindows: 100, windowMs, counts: () => true }, metrics);
    const estimator = new WindowEstimator(db.warehouse.estimates, scores, join, {
      threshold: 0.5,
      falseAlarmCost: undefined,
      cacheMs: 1_000,
    });
    const engine = new JoinEngine(join, decoder, db.warehouse.predictions, windowMs, metrics, scores);
    const recomputer = new WindowRecomputer(
      join,
      db.warehouse,
      { ...recomputeOptions(windowMs), estimator },
      { publish: async () => {} },
      async () => false,
      async () => {},
      metrics,
    );
    return { engine, scores, recomputer };
  };
  const windows = (model: string) =>
    db.ch.select<{ start: string; size: string; labeled: string; pending: string }>(
      `SELECT toUnixTimestamp64Milli(window_start) AS start,
         dateDiff('millisecond', window_start, window_end) AS size, labeled, pending
       FROM ${db.ch.table('performance_windows')} FINAL
       WHERE model = {model:String} AND segment = '__all__' ORDER BY start, size`,
      { model },
    );
  const joined = async (model: string) =>
    Number(
      (
        await db.ch.select<{ n: string }>(
          `SELECT count() AS n FROM ${db.ch.table('labeled_predictions')} FINAL WHERE model = {model:String}`,
          { model },
        )
      )[0]?.n,
    );
  const sum = (rows: readonly { labeled: string }[]) => rows.reduce((a, r) => a + Number(r.labeled), 0);

  it('1h → 2h: every joined label is counted once in a 2h window, and the purge of covered 1h rows keeps them all', async () => {
    const base = Math.floor((Date.now() - 48 * HOUR) / (2 * HOUR)) * 2 * HOUR; // a 2h (and 1h) start
    const join = store();
    // 1h windows: c (base + 0.5h) and d (base + 1.5h, keyed at base + 1h: not a 2h start) wait for
    // labels; e (base + 1.2h) is labeled, so a 1h row [base + 1h, base + 2h) counts it.
    const before = joiner(join, HOUR);
    await before.engine.process(
      [prediction('c', base + 0.5 * HOUR), prediction('d', base + 1.5 * HOUR), prediction('e', base + 1.2 * HOUR)],
      1,
      'p/0',
    );
    await before.engine.process([label('e', base + 1.3 * HOUR)], 2, 'l/0');
    await before.recomputer.pass();
    expect((await windows('m')).map((r) => [Number(r.start) - base, Number(r.size)])).toEqual([
      [0, HOUR],
      [HOUR, HOUR],
    ]);
    // Restarted with 2h windows: b (base + 1.6h) is predicted and labeled, then c and d.
    const after = joiner(join, 2 * HOUR);
    await after.engine.process([prediction('b', base + 1.6 * HOUR)], 3, 'p/0');
    await after.engine.process([label('b', base + 1.7 * HOUR)], 4, 'l/0');
    await after.recomputer.pass();
    await after.engine.process([label('c', base + 0.6 * HOUR), label('d', base + 1.6 * HOUR)], 5, 'l/0');
    await after.recomputer.pass();
    expect(await joined('m')).toBe(4);
    const rows = await windows('m');
    // The 2h window [base, base + 2h) counts all four (the key at base + 1h recomputed it, never
    // [base + 1h, base + 3h)); the 1h row at base + 1h, written before the change, stays beside it.
    expect(rows.map((r) => [Number(r.start) - base, Number(r.size), Number(r.labeled), Number(r.pending)])).toEqual([
      [0, 2 * HOUR, 4, 0],
      [HOUR, HOUR, 1, 1],
    ]);
    expect(sum(rows.filter((r) => Number(r.size) === 2 * HOUR))).toBe(4);
    // The README's purge: rows of another size inside a window of the new size that has a row.
    await db.ch.command(
      `ALTER TABLE ${db.ch.table('performance_windows')} DELETE
       WHERE model = 'm' AND dateDiff('millisecond', window_start, window_end) != ${2 * HOUR}
         AND (model_version, intDiv(toUnixTimestamp64Milli(window_start), ${2 * HOUR})) IN (
           SELECT model_version, intDiv(toUnixTimestamp64Milli(window_start), ${2 * HOUR})
           FROM ${db.ch.table('performance_windows')}
           WHERE model = 'm' AND dateDiff('millisecond', window_start, window_end) = ${2 * HOUR})
       SETTINGS mutations_sync = 1`,
    );
    const purged = await windows('m');
    expect(sum(purged)).toBe(await joined('m'));
    // Every score tallied, before and after the change, is in ClickHouse once.
    const totals = await db.warehouse.estimates.scoreTotals('m');
    expect(totals.reduce((a, t) => a + t.count, 0)).toBe(4);
  });

  it("one flush writes one histogram row per window: a ce65220 sized key's tally and the current key's of one window are summed", async () => {
    const base = Math.floor((Date.now() - 48 * HOUR) / (2 * HOUR)) * 2 * HOUR;
    const join = store();
    const model = 'hist';
    const metrics = registry();
    const scores = new ScoreCounter(
      { threshold: 0.5, maxWindows: 100, windowMs: 2 * HOUR, counts: () => true },
      metrics,
    );
    // Left in Redis at the stop: a prediction keyed by ce65220 (start and size) and one keyed under
    // the old 1h size at base + 1h; then the current process (2h) keys one at base.
    const keyed = async (id: string, eventTime: number, key: string, offset: number) => {
      const e = { ...predictionEvent(id, eventTime), model };
      await join.applyPredictions(
        [
          {
            model,
            id,
            eventTime,
            windowKey: key,
            payload: Buffer.from(JSON.stringify(e)),
            tally: scores.tallyOf(e as PredictionEvent, key)!,
          },
        ],
        offset,
        'p/0',
      );
    };
    await keyed('sized', base + 1_000, JSON.stringify([model, 'v1', base, HOUR]), 1);
    await keyed('old-size', base + 1.5 * HOUR, JSON.stringify([model, 'v1', base + HOUR]), 2);
    const e = { ...predictionEvent('new', base + 2_000), model };
    await new JoinEngine(join, decoder, db.warehouse.predictions, 2 * HOUR, metrics, scores).process(
      [record('prediction', e)],
      3,
      'p/0',
    );
    const refs = await scores.flush(join, db.warehouse.estimates);
    const totals = await db.warehouse.estimates.scoreTotals(model);
    expect(totals.map((t) => [t.windowStart - base, t.count])).toEqual([[0, 3]]);
    expect(refs).toEqual([{ model, modelVersion: 'v1', windowStart: base }]);
    expect((await db.warehouse.estimates.histogram(refs[0]!, 0.5))?.counts.reduce((a, c) => a + c, 0)).toBe(3);
  });
});
