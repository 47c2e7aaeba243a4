import { type Logger, SinkUnavailableError, silentLogger } from '@driftline/core';
import { InMemoryJoinStore } from '@driftline/join';
import { createMetricsRegistry } from '@driftline/observability';
import {
  parseBounds,
  parseCalibrationMap,
  scoreHistogram,
  WindowColumnsBuilder,
  windowKey,
} from '@driftline/performance';
import type { DriftAlert, LabelEvent, PredictionEvent } from '@driftline/schemas';
import {
  type HistogramFlush,
  type JoinedRow,
  type PerformanceEstimateStore,
  type PerformanceWindow,
  toWarehouseError,
  type Warehouse,
} from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { JoinEngine, type JoinerRecord } from '../src/engine.js';
import { ScoreCounter, WindowEstimator } from '../src/estimates.js';
import { WindowRecomputer } from '../src/loops.js';
import { recomputeOptions } from './fixtures/recompute-options.js';

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const decoder = {
  prediction: (b: Buffer) => JSON.parse(b.toString()) as PredictionEvent,
  label: (b: Buffer) => JSON.parse(b.toString()) as LabelEvent,
};
const HOUR = 3_600_000;

function prediction(id: string, score: number, model = 'm', eventTime = 1_000): JoinerRecord {
  const event: PredictionEvent = {
    prediction_id: id,
    model,
    model_version: 'v1',
    entity_id: 'e',
    event_time: eventTime,
    features: {},
    prediction: score,
    predicted_class: null,
  };
  return { kind: 'prediction', event, raw: json(event) };
}

function label(id: string): JoinerRecord {
  const event: LabelEvent = { prediction_id: id, model: 'm', event_time: 2_000, label: 1 };
  return { kind: 'label', event, raw: json(event) };
}

class Sinks {
  flushes: HistogramFlush[][] = [];
  failNext = 0;
  async insertHistograms(rows: readonly HistogramFlush[]) {
    if (this.failNext-- > 0) throw new SinkUnavailableError('clickhouse down');
    this.flushes.push([...rows]);
  }
  async insertJoined(_rows: readonly JoinedRow[]) {}
  async insertExpired() {}
  async writtenPredictionRows() {
    return [];
  }
}

function setup(maxWindows = 100) {
  const store = new InMemoryJoinStore<Buffer, Buffer>({ maxDelayMs: HOUR, graceMs: 0, tombstoneMs: HOUR });
  const counter = new ScoreCounter(
    { threshold: 0.5, maxWindows, windowMs: HOUR, counts: (model) => model !== 'price' },
    createMetricsRegistry({ service: 'test', defaultMetrics: false }),
  );
  const sinks = new Sinks();
  const engine = new JoinEngine(store, decoder, sinks, HOUR, undefined, counter);
  const run = (records: JoinerRecord[]) => engine.process(records, 5, 'test/0');
  const flush = (sink: Pick<Sinks, 'insertHistograms'> = sinks) => counter.flush(store, sink);
  return { store, counter, sinks, run, flush };
}

const ref = { model: 'm', modelVersion: 'v1', windowStart: 0 };

describe('ScoreCounter (CBPE score histograms tallied by the join)', () => {
  it('counts a prediction once: at its first transition, never on a replay or a duplicate', async () => {
    const { sinks, run, flush } = setup();
    await run([label('b')]);
    // a → pending, b → joined with its waiting label, a again in the same batch → duplicate.
    await run([prediction('a', 0.9), prediction('b', 0.2), prediction('a', 0.9)]);
    await run([prediction('a', 0.9), prediction('b', 0.2)]);
    await run([prediction('x', 0.4, 'price')]); // a regression model: not estimated
    expect(await flush()).toEqual([ref]);
    const sent = sinks.flushes[0]![0]!;
    expect(sent.histogram).toEqual(scoreHistogram([0.9, 0.2], 0.5));
    expect(windowKey(sent.ref)).toBe(windowKey(ref));
    expect(await flush()).toEqual([]);
  });

  it('warns of scores outside [0, 1] naming model and version, at most every 10 minutes per version; counts them (found by a review)', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>({ maxDelayMs: HOUR, graceMs: 0, tombstoneMs: HOUR });
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const warned: Array<{ obj: unknown; msg: string | undefined }> = [];
    const logger: Logger = {
      ...silentLogger,
      warn: (obj: unknown, msg?: string) => warned.push({ obj, msg }),
    } as Logger;
    let now = 0;
    const counter = new ScoreCounter(
      { threshold: 0.5, maxWindows: 100, windowMs: HOUR, counts: () => true, logger, now: () => now },
      registry,
    );
    const engine = new JoinEngine(store, decoder, new Sinks(), HOUR, undefined, counter);
    const sinks = new Sinks();
    await engine.process([prediction('a', 0.9), prediction('b', 1.5), prediction('c', -2)], 5, 'test/0');
    await counter.flush(store, sinks);
    expect(warned).toHaveLength(1);
    expect(warned[0]?.obj).toMatchObject({ model: 'm', model_version: 'v1', out_of_range: 2, max_share: 0.01 });
    const metric = async () =>
      (await registry.getSingleMetricAsString('driftline_joiner_scores_out_of_range_total')).split('\n').at(-1);
    expect(await metric()).toMatch(/ 2$/);
    // Within 10 minutes: counted, not logged again; after them, logged again.
    now = 9 * 60_000;
    await engine.process([prediction('d', 7)], 5, 'test/0');
    await counter.flush(store, sinks);
    expect(warned).toHaveLength(1);
    expect(await metric()).toMatch(/ 3$/);
    now = 10 * 60_000;
    await engine.process([prediction('e', Number.POSITIVE_INFINITY), prediction('f', 0.5, 'other')], 5, 'test/0');
    await counter.flush(store, sinks);
    expect(warned).toHaveLength(2);
    await engine.process([prediction('g', 9, 'other')], 5, 'test/0');
    await counter.flush(store, sinks);
    expect(warned.map((w) => (w.obj as { model: string }).model)).toEqual(['m', 'm', 'other']);
  });

  it('a failed flush is sent again with the same flush id, new counts in a later flush', async () => {
    const { sinks, run, flush } = setup();
    await run([prediction('a', 0.9)]);
    sinks.failNext = 1;
    await expect(flush()).rejects.toThrow(/clickhouse down/);
    await run([prediction('b', 0.1)]);
    await flush();
    await flush();
    const [first, second] = sinks.flushes;
    expect(first?.[0]?.histogram).toEqual(scoreHistogram([0.9], 0.5));
    expect(second?.[0]?.histogram).toEqual(scoreHistogram([0.1], 0.5));
    expect(first?.[0]?.flushId).not.toBe(second?.[0]?.flushId);
  });

  it('keeps the retried flush id (an insert that landed but answered an error replaces itself)', async () => {
    const { run, flush } = setup();
    await run([prediction('a', 0.9)]);
    const ids: string[] = [];
    const failing = {
      insertHistograms: async (rows: readonly HistogramFlush[]) => {
        ids.push(rows[0]!.flushId);
        throw new SinkUnavailableError('timeout');
      },
    };
    await expect(flush(failing)).rejects.toThrow();
    await expect(flush(failing)).rejects.toThrow();
    expect(ids).toHaveLength(2);
    expect(ids[0]).toBe(ids[1]);
  });

  it('refuses a batch BEFORE the join step when too many windows wait for ClickHouse', async () => {
    const { sinks, store, run, flush } = setup(1);
    await run([prediction('a', 0.9, 'm', 1_000)]);
    sinks.failNext = 1;
    await expect(flush()).rejects.toThrow(/clickhouse down/);
    const refused = run([prediction('b', 0.9, 'm', 2 * HOUR)]);
    await expect(refused).rejects.toThrow(SinkUnavailableError);
    // Nothing was applied: the retried batch is a first transition and is counted then.
    expect(await store.scheduledCount()).toBe(1);
    await flush();
    await run([prediction('b', 0.9, 'm', 2 * HOUR)]);
    expect(await flush()).toEqual([{ model: 'm', modelVersion: 'v1', windowStart: 2 * HOUR }]);
  });
});

describe('WindowEstimator', () => {
  // 200 labeled predictions of one window, accuracy 0.5: the bound accuracy<0.8 is breached.
  const scores = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? 0.9 : 0.1));
  const labels = Array.from({ length: 200 }, (_, i) => (i % 4 < 2 ? 1 : 0));

  function setupRecompute(
    calibration: PerformanceEstimateStore['calibration'],
    histogram: PerformanceEstimateStore['histogram'] = async () => scoreHistogram(scores, 0.5),
  ) {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const store = new InMemoryJoinStore<Buffer, Buffer>({ maxDelayMs: HOUR, graceMs: 0, tombstoneMs: HOUR });
    const warnings: unknown[] = [];
    const logger: Logger = { ...silentLogger, warn: (fields: unknown) => void warnings.push(fields) };
    const estimates: PerformanceEstimateStore = {
      insertHistograms: async () => {},
      histogram,
      scoreTotals: async () => [],
      saveCalibration: async () => {},
      calibration,
    };
    const counter = new ScoreCounter({ threshold: 0.5, maxWindows: 100, windowMs: HOUR, counts: () => true }, registry);
    const estimator = new WindowEstimator(
      estimates,
      counter,
      store,
      { threshold: 0.5, falseAlarmCost: undefined, cacheMs: 300_000, logger },
      registry,
    );
    const written: PerformanceWindow[] = [];
    const warehouse = {
      predictions: {
        readWindow: async () => {
          const b = new WindowColumnsBuilder(0);
          for (const [i, s] of scores.entries()) b.addLabeled(s, labels[i]!, []);
          return b.build();
        },
      },
      performance: { insert: async (w: PerformanceWindow) => void written.push(w) },
    } as unknown as Pick<Warehouse, 'predictions' | 'performance'>;
    const alerts: DriftAlert[] = [];
    const recomputer = new WindowRecomputer(
      store,
      warehouse,
      { ...recomputeOptions(HOUR), bounds: parseBounds('accuracy<0.8', 'B'), estimator },
      { publish: async (a) => void alerts.push(a) },
      async () => false,
      async () => {},
      registry,
    );
    return { recomputer, estimator, store, written, alerts, warnings, registry };
  }

  it('a calibration map it cannot parse: the window is written without its estimate and alerts on its labels (found by a review)', async () => {
    let reads = 0;
    // A trainer one release ahead wrote its map in a newer format: parsing it throws ConfigError.
    const { recomputer, written, alerts, warnings, registry } = setupRecompute(async (model, version) => {
      reads++;
      const json = { format: 'driftline.calibration/2', method: 'isotonic', x: [0, 1], y: [0, 1], n: 10, positives: 5 };
      return {
        referenceId: 'ref-2',
        map: parseCalibrationMap(json, `calibration_maps[${model}/${version}/ref-2].calibration`),
      };
    });
    const rows = await recomputer.recompute(ref);
    expect(rows[0]?.metrics.accuracy).toBe(0.5);
    expect(written).toHaveLength(1);
    expect(written[0]?.estimate).toBeUndefined();
    expect(written[0]?.business).toBeDefined();
    expect(alerts.map((a) => [a.kind, a.method, a.statistic])).toEqual([['PERFORMANCE', 'accuracy', 0.5]]);
    // Logged once per version, counted per window; the refusal is cached like a map.
    await recomputer.recompute({ ...ref, windowStart: HOUR });
    expect(written).toHaveLength(2);
    expect(warnings).toEqual([
      {
        model: 'm',
        model_version: 'v1',
        code: 'CONFIG_INVALID',
        err: expect.stringMatching(/calibration_maps\[m\/v1\/ref-2\]\.calibration.*driftline\.calibration\/1/),
      },
    ]);
    expect(reads).toBe(1);
    expect(await registry.getSingleMetricAsString('driftline_joiner_estimates_refused_total')).toMatch(/} 2$/m);
  });

  it('a window covered by fewer labels than the realized alert needs alerts on its estimate (found by a review)', async () => {
    // 150 predictions scored 0.6/0.4 (estimated accuracy 0.6), labeled ones 50% right, the rest
    // expired: 90 labels (coverage 0.6, under alertMinSamples 100) had alerted on neither.
    const few = Array.from({ length: 150 }, (_, i) => (i % 2 === 0 ? 0.6 : 0.4));
    const kinds = async (labeled: number) => {
      const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
      const store = new InMemoryJoinStore<Buffer, Buffer>({ maxDelayMs: HOUR, graceMs: 0, tombstoneMs: HOUR });
      const counter = new ScoreCounter(
        { threshold: 0.5, maxWindows: 100, windowMs: HOUR, counts: () => true },
        registry,
      );
      const estimates: PerformanceEstimateStore = {
        insertHistograms: async () => {},
        histogram: async () => scoreHistogram(few, 0.5),
        scoreTotals: async () => [],
        saveCalibration: async () => {},
        calibration: async () => undefined,
      };
      const estimator = new WindowEstimator(
        estimates,
        counter,
        store,
        { threshold: 0.5, falseAlarmCost: undefined, cacheMs: 300_000, logger: silentLogger },
        registry,
      );
      const warehouse = {
        predictions: {
          readWindow: async () => {
            const b = new WindowColumnsBuilder(0);
            for (const [i, s] of few.entries()) {
              if (i < labeled) b.addLabeled(s, i % 4 < 2 ? 1 : 0, []);
              else b.addExpired([]);
            }
            return b.build();
          },
        },
        performance: { insert: async () => {} },
      } as unknown as Pick<Warehouse, 'predictions' | 'performance'>;
      const alerts: DriftAlert[] = [];
      const recomputer = new WindowRecomputer(
        store,
        warehouse,
        { ...recomputeOptions(HOUR), bounds: parseBounds('accuracy<0.8', 'B'), estimator },
        { publish: async (a) => void alerts.push(a) },
        async () => false,
        async () => {},
        registry,
      );
      await recomputer.recompute(ref);
      return alerts.map((a) => [a.kind, a.method, a.statistic]);
    };
    const estimated = [['ESTIMATED_PERFORMANCE', 'accuracy', expect.closeTo(0.6, 12)]];
    expect(await kinds(70)).toEqual(estimated);
    expect(await kinds(90)).toEqual(estimated);
    expect(await kinds(100)).toEqual([['PERFORMANCE', 'accuracy', 0.5]]);
  });

  it('an outage reading the calibration still fails the recompute (retried), writing nothing', async () => {
    const { recomputer, written } = setupRecompute(async () => {
      throw new SinkUnavailableError('clickhouse down');
    });
    await expect(recomputer.recompute(ref)).rejects.toThrow(SinkUnavailableError);
    expect(written).toHaveLength(0);
  });

  it('a read of the histogram the warehouse cannot classify fails the recompute: the window stays dirty, nothing written (found by a review)', async () => {
    // What a query failing for good gives (INTERNAL, not retriable): it is no calibration map.
    const unreadable = toWarehouseError(
      'query',
      Object.assign(new Error('Code: 33. DB::Exception: Cannot read all data. Bytes read: 12. Bytes expected: 40.'), {
        code: '33',
      }),
      'server',
    );
    expect([unreadable.code, unreadable.retriable]).toEqual(['INTERNAL', false]);
    const { recomputer, store, written, warnings, registry } = setupRecompute(
      async () => undefined,
      async () => {
        throw unreadable;
      },
    );
    await expect(recomputer.recompute(ref)).rejects.toBe(unreadable);
    expect(written).toHaveLength(0);
    // Through a pass: the window keeps a dirty mark (requeued), no refusal logged or counted.
    store.dirty.set(windowKey(ref), 1);
    await expect(recomputer.pass()).rejects.toBe(unreadable);
    expect(written).toHaveLength(0);
    expect(store.dirty.has(windowKey(ref))).toBe(true);
    expect(warnings).toEqual([]);
    expect(await registry.getSingleMetricAsString('driftline_joiner_estimates_refused_total')).toMatch(/} 0$/m);
  });

  it('one warning per refused version, also with more versions than the map cache holds (found by a review)', async () => {
    const { estimator, warnings, registry } = setupRecompute(async (model, version) => ({
      referenceId: 'r',
      map: parseCalibrationMap({ format: 'driftline.calibration/2' }, `calibration_maps[${model}/${version}/r]`),
    }));
    const rows = new WindowColumnsBuilder(0).build();
    // 1,500 versions recomputed in turn, three passes: a clear at 1,000 entries had logged every window (4,500).
    for (let pass = 0; pass < 3; pass++) {
      for (let v = 0; v < 1_500; v++) {
        const extras = await estimator.extras(
          { model: 'm', modelVersion: `v${v}`, windowStart: pass * HOUR },
          rows,
          pass,
        );
        expect(extras.estimate).toBeUndefined();
      }
    }
    expect(warnings).toHaveLength(1_500);
    expect(await registry.getSingleMetricAsString('driftline_joiner_estimates_refused_total')).toMatch(/} 4500$/m);
  });

  it('past 10,000 refused versions the least recent is forgotten, not all of them', async () => {
    const { estimator, warnings } = setupRecompute(async (model, version) => ({
      referenceId: 'r',
      map: parseCalibrationMap({ format: 'driftline.calibration/2' }, `calibration_maps[${model}/${version}/r]`),
    }));
    const rows = new WindowColumnsBuilder(0).build();
    const refuse = (v: number) => estimator.extras({ model: 'm', modelVersion: `v${v}`, windowStart: 0 }, rows, 0);
    for (let v = 0; v < 10_000; v++) await refuse(v);
    await refuse(0); // refused again: now the most recent
    await refuse(10_000); // one past the bound: v1, the least recent, is forgotten
    expect(warnings).toHaveLength(10_001);
    await refuse(2);
    await refuse(0);
    expect(warnings).toHaveLength(10_001);
    await refuse(1);
    expect(warnings).toHaveLength(10_002);
  });
});
