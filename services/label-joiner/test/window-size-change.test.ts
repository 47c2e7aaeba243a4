// DRIFTLINE_JOINER_WINDOW changed while predictions wait for labels: each window is recomputed as
// it was keyed (found by a review: the old start with the new size made windows that overlap).
import { InMemoryJoinStore } from '@driftline/join';
import { createMetricsRegistry } from '@driftline/observability';
import { type WindowColumns, WindowColumnsBuilder, type WindowRef } from '@driftline/performance';
import type { LabelEvent, PredictionEvent } from '@driftline/schemas';
import type { JoinedRow } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { JoinEngine } from '../src/engine.js';
import { WindowRecomputer } from '../src/loops.js';
import { recomputeOptions } from './fixtures/recompute-options.js';

const HOUR = 3_600_000;
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const decoder = {
  prediction: (b: Buffer) => JSON.parse(b.toString()) as PredictionEvent,
  label: (b: Buffer) => JSON.parse(b.toString()) as LabelEvent,
};
/** A record of model m, version v1 (the join reads nothing else of it here). */
const record = <K extends 'prediction' | 'label'>(kind: K, event: object) =>
  ({ kind, event, raw: json(event) }) as { kind: K; event: never; raw: Buffer };
const prediction = (id: string, eventTime: number) =>
  record('prediction', { prediction_id: id, model: 'm', model_version: 'v1', event_time: eventTime, prediction: 0.7 });
const label = (id: string, eventTime: number) =>
  record('label', { prediction_id: id, model: 'm', event_time: eventTime, label: 1 });

const sink = {
  joined: [] as JoinedRow[],
  async insertJoined(rows: readonly JoinedRow[]) {
    this.joined.push(...rows);
  },
  async insertExpired() {},
  async writtenPredictions() {
    return [];
  },
};

/** What the recompute read and wrote: each window's range and pending count. */
function recorder() {
  const reads: Array<[number, number]> = [];
  const written: Array<{ start: number; windowMs: number; pending: number }> = [];
  const warehouse = {
    predictions: {
      readWindow: async (ref: WindowRef, windowMs: number): Promise<WindowColumns> => {
        reads.push([ref.windowStart, windowMs]);
        return new WindowColumnsBuilder(0).build();
      },
    },
    performance: {
      insert: async (w: { ref: WindowRef; windowMs: number; rows: ReadonlyArray<{ pending: number }> }) => {
        written.push({ start: w.ref.windowStart, windowMs: w.windowMs, pending: w.rows[0]!.pending });
      },
    },
  };
  return { reads, written, warehouse: warehouse as never };
}

describe('a window size change (DRIFTLINE_JOINER_WINDOW)', () => {
  it('recomputes a pending prediction’s window with its own start and size, never the old start with the new size', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>({ maxDelayMs: 100 * HOUR, graceMs: 0, tombstoneMs: HOUR });
    const registry = createMetricsRegistry({ service: 't', defaultMetrics: false });
    // Keyed under 1 h windows: [1 h, 2 h) and [3 h, 4 h).
    const before = new JoinEngine(store, decoder, sink, HOUR, registry);
    await before.process([prediction('a', 1.5 * HOUR), prediction('c', 3.5 * HOUR)], 1, 'p/0');
    // Restarted with 2 h windows: b is keyed [2 h, 4 h); a's label joins into its 1 h window.
    const after = new JoinEngine(store, decoder, sink, 2 * HOUR, registry);
    await after.process([prediction('b', 2.5 * HOUR)], 2, 'p/0');
    await after.process([label('a', 1.6 * HOUR), label('b', 2.6 * HOUR)], 3, 'l/0');
    const { reads, written, warehouse } = recorder();
    const recomputer = new WindowRecomputer(
      store,
      warehouse,
      recomputeOptions(2 * HOUR),
      { publish: async () => {} },
      async () => false,
      async () => {},
      registry,
    );
    await recomputer.pass();
    // [1 h, 2 h) as keyed, not [1 h, 3 h) (which overlapped [2 h, 4 h) and double-counted b).
    // c still waits in its 1 h window [3 h, 4 h): counted there, not in b's.
    expect(reads.sort((x, y) => x[0] - y[0])).toEqual([
      [HOUR, HOUR],
      [2 * HOUR, 2 * HOUR],
      [3 * HOUR, HOUR],
    ]);
    expect(written.sort((x, y) => x.start - y.start)).toEqual([
      { start: HOUR, windowMs: HOUR, pending: 0 },
      { start: 2 * HOUR, windowMs: 2 * HOUR, pending: 0 },
      { start: 3 * HOUR, windowMs: HOUR, pending: 1 },
    ]);
  });

  it('counts predictions keyed before keys carried a size in the window of the current size', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>({ maxDelayMs: 100 * HOUR, graceMs: 0, tombstoneMs: HOUR });
    const registry = createMetricsRegistry({ service: 't', defaultMetrics: false });
    // A prediction an older version keyed ["m","v1",start] beside one keyed now.
    await store.applyPredictions(
      [
        {
          model: 'm',
          id: 'old',
          eventTime: HOUR,
          windowKey: JSON.stringify(['m', 'v1', HOUR]),
          payload: Buffer.from('x'),
        },
      ],
      1,
      'p/0',
    );
    await new JoinEngine(store, decoder, sink, HOUR, registry).process([prediction('new', 1.5 * HOUR)], 2, 'p/0');
    const { written, warehouse } = recorder();
    const recomputer = new WindowRecomputer(
      store,
      warehouse,
      recomputeOptions(HOUR),
      { publish: async () => {} },
      async () => false,
      async () => {},
      registry,
    );
    await recomputer.recompute({ model: 'm', modelVersion: 'v1', windowStart: HOUR });
    await recomputer.recompute({ model: 'm', modelVersion: 'v1', windowStart: HOUR, windowMs: HOUR });
    expect(written).toEqual([
      { start: HOUR, windowMs: HOUR, pending: 2 },
      { start: HOUR, windowMs: HOUR, pending: 2 },
    ]);
  });
});
