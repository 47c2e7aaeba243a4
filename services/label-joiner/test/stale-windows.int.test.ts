// Regression tests: a window's performance row must not stay stale for good when a recompute pass
// races the consumer (the dirty mark) or fails after the score tallies were flushed. The timing is
// forced with gates around the real Redis join store and the real (embedded) ClickHouse warehouse.
import { SchemaRegistryCodec } from '@driftline/codec';
import { DriftlineError, SinkUnavailableError } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { createRedisClient, createRedisJoinStore, type RedisJoinStore, waitReady } from '@driftline/online-store/redis';
import { classificationMetrics, type MetricBound, windowStart } from '@driftline/performance';
import { contracts, type DriftAlert, type LabelEvent, type PredictionEvent } from '@driftline/schemas';
import { uniqueName } from '@driftline/test-support';
import { SeededRandom } from '@driftline/test-support/random';
import type { Warehouse } from '@driftline/warehouse';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { JoinEngine, type JoinerRecord, type PayloadDecoder } from '../src/engine.js';
import { ScoreCounter, WindowEstimator } from '../src/estimates.js';
import { type RecomputeOptions, WindowRecomputer } from '../src/loops.js';
import { embeddedWarehouse } from './fixtures/embedded-warehouse.js';

const stack = inject('stack');
const WINDOW = 600_000;
const JOIN = { maxDelayMs: 3_600_000, graceMs: 0, tombstoneMs: 3_600_000 };
const BOUNDS: MetricBound[] = [{ metric: 'roc_auc', op: '<', value: 0.9 }];

type ReadWindow = Warehouse['predictions']['readWindow'];
type RecomputeWarehouse = Pick<Warehouse, 'predictions' | 'performance'>;

interface LatestRow {
  labeled: string | number;
  roc_auc: number | null;
  scored: string | number;
  estimated_roc_auc: number | null;
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const metrics = () => createMetricsRegistry({ service: 'stale-windows-test', defaultMetrics: false });

/** Predictions of one model version in one window, scores uniform; labels independent of them. */
function events(r: SeededRandom, model: string, start: number, n: number) {
  const predictions: PredictionEvent[] = Array.from({ length: n }, (_, i) => ({
    prediction_id: `p-${i}`,
    model,
    model_version: 'v1',
    entity_id: `e-${i}`,
    event_time: start + 1_000 + i,
    features: {},
    prediction: r.uniform(),
    predicted_class: null,
  }));
  const labels: LabelEvent[] = predictions.map((p) => ({
    prediction_id: p.prediction_id,
    model,
    event_time: p.event_time + 500,
    label: r.uniform() < 0.5 ? 1 : 0,
  }));
  return { predictions, labels };
}

describe('label-joiner: no window stays stale after a racing or failing recompute (real Redis, registry, ClickHouse)', () => {
  const redis = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'lj-stale-test' });
  const stores: RedisJoinStore[] = [];
  const db = embeddedWarehouse('ljstale');
  afterAll(async () => {
    for (const store of stores) {
      const keys = await redis.keys(`${store.prefix}*`);
      if (keys.length > 0) await redis.unlink(...keys);
      await store.close();
    }
    redis.disconnect();
  });

  /**
   * A join store of its own key space, a seeded random source, a window start, the record encoder,
   * the window's latest whole-window row and a recompute loop on that store.
   */
  function setup(name: string, seed: number) {
    const r = new SeededRandom(seed);
    const start = windowStart(Date.now() - 60_000, WINDOW);
    const prefix = `${uniqueName(name)}:`;
    const store = createRedisJoinStore({ url: stack.redisUrl, tls: false }, { prefix, join: JOIN });
    stores.push(store);
    // The join store's client queues nothing offline: a test's first batch could come before its
    // connection (a full-suite run under load failed D with "Stream isn't writeable").
    const connected = waitReady(store.redis);
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl });
    const pc = codec.forTopic(contracts.prediction, `${prefix}predictions.v1`);
    const lc = codec.forTopic(contracts.label, `${prefix}labels.v1`);
    const decoder: PayloadDecoder = { prediction: (b) => pc.decode(b), label: (b) => lc.decode(b) };
    const records = async (es: ReadonlyArray<PredictionEvent | LabelEvent>): Promise<JoinerRecord[]> => {
      await connected;
      return Promise.all(
        es.map(
          async (event): Promise<JoinerRecord> =>
            'prediction' in event
              ? { kind: 'prediction', event, raw: (await pc.encode(event)) as Buffer }
              : { kind: 'label', event, raw: (await lc.encode(event)) as Buffer },
        ),
      );
    };
    const latest = async (model: string, start: number): Promise<LatestRow | undefined> =>
      (
        await db.ch.select<LatestRow>(
          `SELECT labeled, roc_auc, scored, estimated_roc_auc FROM ${db.ch.table('performance_windows')} FINAL
           WHERE model = {model:String} AND segment = '__all__'
             AND window_start = fromUnixTimestamp64Milli({start:Int64}, 'UTC')
           ORDER BY version DESC LIMIT 1`,
          { model, start },
        )
      )[0];
    const recomputer = (
      storeForLoop: RedisJoinStore,
      wh: RecomputeWarehouse,
      published: DriftAlert[] = [],
      extra: Partial<RecomputeOptions> = {},
    ) =>
      new WindowRecomputer(
        storeForLoop,
        wh,
        {
          windowMs: WINDOW,
          taskOf: () => 'classification',
          threshold: 0.5,
          segmentFeatures: [],
          maxSegments: 20,
          bounds: BOUNDS,
          alertMinSamples: 50,
          alertSegments: false,
          ...extra,
        },
        { publish: async (a) => void published.push(a) },
        (id) => store.wasAlerted(id),
        (id) => store.markAlerted(id, WINDOW + JOIN.maxDelayMs),
        metrics(),
      );
    return { r, start, store, decoder, records, latest, recomputer };
  }

  /** The warehouse with readWindow wrapped (the recompute pass's read of a window's rows). */
  const withRead = (wrap: (read: ReadWindow) => ReadWindow): RecomputeWarehouse => ({
    predictions: {
      ...db.warehouse.predictions,
      readWindow: wrap(db.warehouse.predictions.readWindow.bind(db.warehouse.predictions)),
    },
    performance: db.warehouse.performance,
  });

  /** The warehouse whose next `fail` window reads fail (ClickHouse briefly unavailable). */
  function flakyReads() {
    let failing = 0;
    const wh = withRead((read) => async (...a) => {
      if (failing-- > 0) throw new SinkUnavailableError('clickhouse briefly down');
      return read(...a);
    });
    return {
      wh,
      fail: (n: number) => {
        failing = n;
      },
    };
  }

  it('A: a batch that marks a window twice within one clock tick (new pending, then acked joins) leaves it dirty for a racing pass', async () => {
    const s = setup('ljstaleA', 7);
    const { start } = s;
    const model = 'fraud-a';
    const N = 100;
    // p-0..p-99 have labels (waiting); p-100 has none: it becomes pending, in the same batch.
    const { predictions, labels } = events(s.r, model, start, N + 1);
    labels.pop();

    // A recompute pass (this instance or another) starts once the batch's Lua step has marked the
    // window, reads the window before the batch's joined rows land, and writes its row only after
    // the batch has acknowledged them (which marks the window again, at the same `now`).
    const batchDone = deferred();
    const windowRead = deferred();
    let gated = true;
    const wh: RecomputeWarehouse = {
      ...withRead((read) => async (...a) => {
        const data = await read(...a);
        if (gated) windowRead.resolve();
        return data;
      }),
      performance: {
        ...db.warehouse.performance,
        insert: async (w) => {
          if (gated) await batchDone.promise;
          return db.warehouse.performance.insert(w);
        },
      },
    };
    const published: DriftAlert[] = [];
    const recomputer = s.recomputer(s.store, wh, published);
    let racing: Promise<number> | undefined;
    const sink = {
      insertJoined: async (rows: Parameters<Warehouse['predictions']['insertJoined']>[0]) => {
        racing ??= recomputer.pass();
        await windowRead.promise;
        return db.warehouse.predictions.insertJoined(rows);
      },
      insertExpired: (rows: Parameters<Warehouse['predictions']['insertExpired']>[0]) =>
        db.warehouse.predictions.insertExpired(rows),
      writtenPredictionRows: (refs: Parameters<Warehouse['predictions']['writtenPredictionRows']>[0]) =>
        db.warehouse.predictions.writtenPredictionRows(refs),
    };
    const engine = new JoinEngine(s.store, s.decoder, sink, WINDOW, metrics());

    expect((await engine.process(await s.records(labels), Date.now(), 'test/0')).joined).toBe(0);
    expect((await engine.process(await s.records(predictions), Date.now(), 'test/0')).joined).toBe(N);
    batchDone.resolve();
    expect(await racing).toBe(1);
    gated = false;
    const stale = await s.latest(model, start);
    expect(Number(stale?.labeled)).toBe(0); // the racing pass read the window before the rows landed

    // The acknowledgement's mark survived the racing pass's clear: the next pass recomputes.
    expect((await s.store.dirtyWindows(10)).length).toBe(1);
    expect(await recomputer.pass()).toBe(1);
    expect(await s.store.dirtyWindows(10)).toEqual([]);
    const truth = classificationMetrics(
      labels.map((l) => l.label),
      predictions.slice(0, N).map((p) => p.prediction),
      0.5,
    );
    const row = await s.latest(model, start);
    expect(Number(row?.labeled)).toBe(N);
    expect(row?.roc_auc).toBeCloseTo(truth.roc_auc ?? Number.NaN, 12);
    // ROC AUC ~0.5 breaks roc_auc<0.9: the PERFORMANCE alert the stale row would never have raised.
    expect(published.map((a) => [a.kind, a.method])).toEqual([['PERFORMANCE', 'roc_auc']]);
  });

  it('B: windows whose score tallies were flushed stay owed to Redis when their recompute fails', async () => {
    const s = setup('ljstaleB', 11);
    const { start } = s;
    const model = 'fraud-b';
    const N = 200;
    const { predictions } = events(s.r, model, start, N);
    const registry = metrics();
    const scores = new ScoreCounter(
      { threshold: 0.5, maxWindows: 1_000, windowMs: WINDOW, counts: () => true },
      registry,
    );
    const estimator = new WindowEstimator(db.warehouse.estimates, scores, s.store, {
      threshold: 0.5,
      falseAlarmCost: undefined,
      cacheMs: 300_000,
    });
    const engine = new JoinEngine(s.store, s.decoder, db.warehouse.predictions, WINDOW, registry, scores);
    const records = await s.records(predictions);

    // The consumer's batch lands between the first pass's flush (nothing to flush yet) and its read
    // of the dirty windows: that pass recomputes the window without the scores and clears its mark.
    let consumed = false;
    const storeForLoop = new Proxy(s.store, {
      get(target, prop, receiver) {
        if (prop === 'dirtyWindows') {
          return async (limit: number) => {
            if (!consumed) {
              consumed = true;
              await engine.process(records, Date.now(), 'test/0');
            }
            return target.dirtyWindows(limit);
          };
        }
        const v: unknown = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const flaky = flakyReads();
    const recomputer = s.recomputer(storeForLoop, flaky.wh, [], { estimator, realizedCoverage: 0.5 });

    expect(await recomputer.pass()).toBe(1);
    expect(Number((await s.latest(model, start))?.scored)).toBe(0);
    // The next pass flushes (and acknowledges) the tallies, then the window's recompute fails.
    flaky.fail(1);
    await expect(recomputer.pass()).rejects.toThrow(/briefly down/);
    expect((await s.store.dirtyWindows(10)).length).toBe(1); // still owed, whichever instance passes next
    expect(await recomputer.pass()).toBe(1);
    expect(await s.store.dirtyWindows(10)).toEqual([]);
    const row = await s.latest(model, start);
    expect(Number(row?.scored)).toBe(N);
    expect(row?.estimated_roc_auc).not.toBeNull();
  });

  it('C: a window whose recompute fails does not hold up the other dirty windows of the pass', async () => {
    const s = setup('ljstaleC', 13);
    const { start } = s;
    const engine = new JoinEngine(s.store, s.decoder, db.warehouse.predictions, WINDOW, metrics());
    // Two windows marked in order: the first (oldest mark) fails to read once.
    for (const model of ['fraud-c1', 'fraud-c2']) {
      const { predictions, labels } = events(s.r, model, start, 60);
      await engine.process(await s.records(labels), Date.now(), 'test/0');
      await engine.process(await s.records(predictions), Date.now(), 'test/0');
    }
    const flaky = flakyReads();
    flaky.fail(1);
    const recomputer = s.recomputer(s.store, flaky.wh);
    await expect(recomputer.pass()).rejects.toThrow(/briefly down/);
    expect(Number((await s.latest('fraud-c2', start))?.labeled)).toBe(60);
    expect((await s.store.dirtyWindows(10)).map((d) => JSON.parse(d.key)[0])).toEqual(['fraud-c1']);
    expect(await recomputer.pass()).toBe(1);
    expect(Number((await s.latest('fraud-c1', start))?.labeled)).toBe(60);
  });

  it('D: windows that fail for good (refused, not unavailable) do not stop the pass for the others (found by a review)', async () => {
    const s = setup('ljstaleD', 17);
    const { start } = s;
    const engine = new JoinEngine(s.store, s.decoder, db.warehouse.predictions, WINDOW, metrics());
    // Four windows of bad models marked first (oldest marks), then a good one.
    const models = ['bad-1', 'bad-2', 'bad-3', 'bad-4', 'good'];
    for (const model of models) {
      const { predictions, labels } = events(s.r, model, start, 20);
      await engine.process(await s.records(labels), Date.now(), 'test/0');
      await engine.process(await s.records(predictions), Date.now(), 'test/0');
    }
    const wh = withRead((read) => async (ref, ...rest) => {
      if (ref.model.startsWith('bad-')) throw new DriftlineError('SINK_REJECTED', `refused for ${ref.model}`);
      return read(ref, ...rest);
    });
    await expect(s.recomputer(s.store, wh).pass()).rejects.toThrow(/refused for bad-1/);
    // Three failures used to end the pass: the good window, last, was never recomputed.
    expect(Number((await s.latest('good', start))?.labeled)).toBe(20);
    expect((await s.store.dirtyWindows(10)).map((d) => JSON.parse(d.key)[0]).sort()).toEqual([
      'bad-1',
      'bad-2',
      'bad-3',
      'bad-4',
    ]);
  });
});
