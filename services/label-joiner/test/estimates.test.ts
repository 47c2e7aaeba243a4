import { SinkUnavailableError } from '@driftline/core';
import { InMemoryJoinStore } from '@driftline/join';
import { createMetricsRegistry } from '@driftline/observability';
import { scoreHistogram, windowKey } from '@driftline/performance';
import type { LabelEvent, PredictionEvent } from '@driftline/schemas';
import type { HistogramFlush, JoinedRow } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { JoinEngine, type JoinerRecord } from '../src/engine.js';
import { ScoreCounter } from '../src/estimates.js';

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
  async writtenPredictions() {
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
