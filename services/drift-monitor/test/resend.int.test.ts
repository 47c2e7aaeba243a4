import { profilesFromCsv } from '@driftline/batch-drift';
import { referenceSet } from '@driftline/drift';
import { committedOffsets, topicOffsets } from '@driftline/kafka';
import type { PredictionEvent } from '@driftline/schemas';
import { eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import { seededUniform } from '@driftline/test-support/random';
import { describe, expect, inject, it } from 'vitest';
import { driftDatabase, driftOutcomes, type PlacedPrediction, sendPredictions } from './deployment.js';
import { driftEnv, driftMonitors } from './runner.js';

const stack = inject('stack');
const T0 = 1_700_000_000_000;
const PARTITIONS = 2;
/** Predictions of `fraud` per window; `churn` scores the first CHURN of the same requests, under the same ids. */
const FRAUD = 40;
const CHURN = 15;

const r = seededUniform(31);
const normal = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
const csv = () => ['x,prediction', ...Array.from({ length: 1000 }, () => `${normal()},${r()}`)].join('\n');

/** Request j of window w scored by `model`: id `p-w-j` (shared by both models), on partition j % 2. */
function scored(model: 'fraud' | 'churn', w: number, j: number): PlacedPrediction {
  const event: PredictionEvent = {
    prediction_id: `p-${w}-${j}`,
    model,
    model_version: 'v1',
    entity_id: `e${j}`,
    event_time: T0 + w * 1000 + j * 10,
    features: { x: normal() },
    prediction: r(),
    predicted_class: null,
  };
  return { event, partition: j % PARTITIONS };
}

/** Window w's predictions: every fraud one, each churn one beside the fraud one of its request. */
function windowOf(w: number): PlacedPrediction[] {
  return Array.from({ length: FRAUD }, (_, j) =>
    j < CHURN ? [scored('fraud', w, j), scored('churn', w, j)] : [scored('fraud', w, j)],
  ).flat();
}

/** Exact copies (a producer's retry) of the predictions of `window` by model and request j. */
function resends(window: readonly PlacedPrediction[], picks: ReadonlyArray<readonly [string, number]>) {
  return picks.map(([model, j]) => window.find((p) => p.event.model === model && p.event.entity_id === `e${j}`)!);
}

interface WindowRow {
  model: string;
  window: number;
  feature: string;
  method: string;
  events: number;
  current_size: number;
  late_events: number;
}

/**
 * A producer's re-sends (the same prediction at a later offset) through the real Kafka, the
 * registry and the service's stages: each window's drift_windows rows count distinct predictions
 * (README "Re-sent predictions"), across a restart from the committed offset too.
 */
describe('drift-monitor counts a re-sent prediction once (real Kafka, the registry, embedded ClickHouse)', () => {
  const monitors = driftMonitors();

  it('windows hold the distinct predictions: re-sends in a batch and later, a shared id of two models, a re-send after a restart', async () => {
    const prefix = `${uniqueName('drift-resend')}.`;
    const topic = `${prefix}predictions.v1`;
    const { ch, database, path } = await driftDatabase('dresend', [
      referenceSet('fraud', 'v1', profilesFromCsv(csv())),
      referenceSet('churn', 'v1', profilesFromCsv(csv())),
    ]);
    // Source idleness off: window 1 stays open until the test's last events close it.
    const env = driftEnv(
      stack,
      { prefix, partitions: PARTITIONS, database, path },
      { DRIFTLINE_DRIFT_SOURCE_IDLE: '0' },
    );
    const kafka = kafkaFor(stack.kafkaBrokers);
    const w0 = windowOf(0);
    const w1 = windowOf(1);

    const first = await monitors.start(env);
    // Window 0: re-sends in the originals' send (likely one batch) and in a send after it.
    const w0Copies = resends(w0, [
      ['fraud', 1],
      ['fraud', 6],
      ['churn', 3],
    ]);
    const w0Later = resends(w0, [
      ['fraud', 12],
      ['fraud', 33],
      ['churn', 8],
      ['churn', 14],
    ]);
    await sendPredictions(stack, topic, [...w0, ...w0Copies]);
    await sendPredictions(stack, topic, w0Later);
    const window1From = new Map((await topicOffsets(kafka, topic)).map((p) => [p.partition, p.high]));
    // Window 1's predictions close window 0; two are re-sent before the restart (window 1 still open).
    const w1Before = resends(w1, [
      ['fraud', 4],
      ['churn', 5],
    ]);
    await sendPredictions(stack, topic, [...w1, ...w1Before]);

    // Window 0 written and its records committed (the commit stays at window 1's first offset, the
    // oldest open window's); every record sent counted.
    const sentBefore = w0.length + w0Copies.length + w0Later.length + w1.length + w1Before.length;
    await eventually(
      async () => {
        const outcomes = await driftOutcomes(first);
        if ((outcomes.added ?? 0) + (outcomes.duplicate ?? 0) < sentBefore) return undefined;
        const committed = await committedOffsets(kafka, `${prefix}drift-monitor`, topic);
        if ([...window1From].some(([p, offset]) => committed.get(p) !== offset)) return undefined;
        const psi = (await windowRows()).filter((row) => row.window === 0 && row.method === 'psi');
        return psi.length >= 4 ? true : undefined; // x and the prediction, of both models
      },
      20_000,
      200,
    );
    const firstOutcomes = await driftOutcomes(first);
    await first.stop();

    // Restarted from the commit: window 1 is read again (its re-sends before the restart decided
    // again), then re-sends of window 1 and of window 0, whose originals were committed before the
    // restart: late, once more in late_events (of the window open then, 1) and nowhere else.
    const second = await monitors.start(env);
    const w1After = resends(w1, [
      ['fraud', 10],
      ['fraud', 25],
      ['churn', 0],
      ['churn', 13],
    ]);
    const w0AfterRestart = resends(w0, [
      ['fraud', 2],
      ['fraud', 7],
      ['fraud', 20],
    ]);
    const closers = Array.from({ length: PARTITIONS }, (_, p) => ({
      event: { ...scored('fraud', 2, p).event, prediction_id: `close-${p}` },
      partition: p,
    }));
    await sendPredictions(stack, topic, [...w1After, ...w0AfterRestart, ...closers]);

    const rows = await eventually(
      async () => {
        const got = await windowRows();
        return got.filter((row) => row.window === 1 && row.method === 'psi').length >= 4 ? got : undefined;
      },
      20_000,
      200,
    );
    // Per model and window, over its rows (every feature and method): the events, the summaries'
    // sizes and the late events — the distinct predictions, and the 3 late re-sends in window 1.
    const cells = (['fraud', 'churn'] as const).flatMap((model) => [0, 1].map((window) => ({ model, window })));
    const summary = ({ model, window }: { model: string; window: number }) => {
      const of = rows.filter((row) => row.model === model && row.window === window);
      return {
        model,
        window,
        features: [...new Set(of.map((row) => row.feature))].sort(),
        events: [...new Set(of.map((row) => row.events))],
        current_size: [...new Set(of.map((row) => row.current_size))],
        late_events: [...new Set(of.map((row) => row.late_events))],
      };
    };
    const distinct = { fraud: FRAUD, churn: CHURN };
    expect(cells.map(summary)).toEqual(
      cells.map(({ model, window }) => ({
        model,
        window,
        features: ['__prediction__', 'x'],
        events: [distinct[model]],
        current_size: [distinct[model]],
        late_events: [model === 'fraud' && window === 1 ? w0AfterRestart.length : 0],
      })),
    );
    expect(firstOutcomes).toEqual({
      added: w0.length + w1.length,
      duplicate: w0Copies.length + w0Later.length + w1Before.length,
    });
    // Read from the commit (no record of window 0 read again: none replayed): window 1's
    // originals and the closing events added, its re-sends of both runs duplicates.
    const sentAfter = w1.length + w1Before.length + w1After.length + w0AfterRestart.length + closers.length;
    const counted = async () => Object.values(await driftOutcomes(second)).reduce((n, v) => n + v, 0);
    await eventually(async () => ((await counted()) >= sentAfter ? true : undefined), 30_000, 100);
    expect(await driftOutcomes(second)).toEqual({
      added: w1.length + closers.length,
      duplicate: w1Before.length + w1After.length,
      late: w0AfterRestart.length,
    });
    await ch.close();

    async function windowRows(): Promise<WindowRow[]> {
      const got = await ch.select<WindowRow & { ws: string }>(
        `SELECT model, feature, method, toUnixTimestamp64Milli(window_start) AS ws, events, current_size, late_events
         FROM ${ch.table('drift_windows')} FINAL ORDER BY model, ws, feature, method`,
      );
      return got.map(({ ws, ...row }) => ({
        ...row,
        window: (Number(ws) - T0) / 1000,
        events: Number(row.events),
        current_size: Number(row.current_size),
        late_events: Number(row.late_events),
      }));
    }
  }, 60_000);
});
