import { profilesFromCsv } from '@driftline/batch-drift';
import { SchemaRegistryCodec } from '@driftline/codec';
import { referenceSet } from '@driftline/drift';
import { contracts, type DriftAlert, type PredictionEvent } from '@driftline/schemas';
import { kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { seededUniform } from '@driftline/test-support/random';
import { describe, expect, inject, it } from 'vitest';
import { driftDatabase, type PlacedPrediction, sendPredictions } from './deployment.js';
import { driftEnv, driftMonitors } from './runner.js';

const stack = inject('stack');
const T0 = 1_700_000_000_000;
const PER_WINDOW = 200;
const PARTITIONS = 2;
const r = seededUniform(11);

// The model was trained on x and y, neither ever missing.
const referenceCsv = ['x,y,prediction', ...Array.from({ length: 2000 }, () => `${r() * 4 - 2},${r()},${r()}`)].join(
  '\n',
);

// Window 0: x and y arrive. Window 1: an upstream outage, y absent from every event (the key not
// sent at all), and x shifted, so the window also raises FEATURE_DRIFT (an alert to wait for).
const predictions: PlacedPrediction[] = [];
for (let w = 0; w < 2; w++) {
  for (let j = 0; j < PER_WINDOW; j++) {
    const x = r() * 4 - 2 + (w === 1 ? 3 : 0);
    const event: PredictionEvent = {
      prediction_id: `p-${w}-${j}`,
      model: 'outage',
      model_version: 'v1',
      entity_id: `e${j}`,
      event_time: T0 + w * 1000 + Math.floor((j * 1000) / PER_WINDOW),
      features: w === 1 ? { x } : { x, y: r() },
      prediction: r(),
      predicted_class: null,
    };
    predictions.push({ event, partition: j % PARTITIONS });
  }
}
// One event a minute later on each partition closes both windows (allowed lateness 0).
for (let p = 0; p < PARTITIONS; p++) {
  const event = { ...predictions[0]!.event, prediction_id: `flush-${p}`, event_time: T0 + 60_000 };
  predictions.push({ event, partition: p });
}

/**
 * Every alert of the deployment once window 1's FEATURE_DRIFT is there (a window's DATA_QUALITY
 * alert goes out before it, in the same send), then until no more arrive within 3 s; in the
 * topic's order (one model: one partition).
 */
async function alertsOf(prefix: string): Promise<DriftAlert[]> {
  const topic = `${prefix}alerts.v1`;
  const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.alert, topic);
  const kafka = kafkaFor(stack.kafkaBrokers);
  const decode = (records: ReadonlyArray<{ value: Buffer | null }>) =>
    Promise.all(records.map((m) => codec.decode(m.value!)));
  let all = await decode(
    await readTopic(
      kafka,
      topic,
      async (records) =>
        (await decode(records)).some((a) => a.kind === 'FEATURE_DRIFT' && a.window_start === T0 + 1000),
      60_000,
    ),
  );
  for (let n = all.length + 1; ; n++) {
    const more = await readTopic(kafka, topic, n, 3_000).catch(() => undefined);
    if (more === undefined) return all;
    all = await decode(more);
  }
}

describe('the built-in missing-share check in the drift-monitor (real Kafka, registry, embedded ClickHouse)', () => {
  const monitors = driftMonitors();

  /** The deployment's alerts, and its `missing_share` rows (written before the alerts are sent). */
  async function run(
    overrides: Record<string, string>,
  ): Promise<{ alerts: DriftAlert[]; rows: Array<{ ws: number; feature: string; passed: number; count: number }> }> {
    const prefix = `${uniqueName('missing')}.`;
    const { ch, database, path } = await driftDatabase('missing', [
      referenceSet('outage', 'v1', profilesFromCsv(referenceCsv)),
    ]);
    try {
      // No feature views: no expectation is configured.
      await monitors.start(
        driftEnv(
          stack,
          { prefix, partitions: PARTITIONS, database, path },
          { DRIFTLINE_DRIFT_PARTIALS_PARTITIONS: '2', ...overrides },
        ),
      );
      await sendPredictions(stack, `${prefix}predictions.v1`, predictions);
      const alerts = await alertsOf(prefix);
      const rows = await ch.select<{ ws: number | string; feature: string; passed: number; count: number | string }>(
        `SELECT toUnixTimestamp64Milli(window_start) AS ws, feature, passed, count
         FROM ${ch.table('data_quality_windows')} FINAL
         WHERE model = 'outage' AND expectation = 'missing_share' ORDER BY ws, feature`,
      );
      return {
        alerts,
        rows: rows.map((r) => ({
          ws: Number(r.ws) - T0,
          feature: r.feature,
          passed: r.passed,
          count: Number(r.count),
        })),
      };
    } finally {
      await ch.close();
    }
  }

  it('a feature absent from every event of a window → one DATA_QUALITY alert naming it, and its rows', async () => {
    const { alerts, rows } = await run({});
    const quality = alerts.filter((a) => a.kind === 'DATA_QUALITY');
    expect(quality.map((a) => [a.window_start - T0, a.feature, a.method, a.statistic])).toEqual([
      [1000, 'y', 'missing_share', 1],
    ]);
    expect(quality[0]!.p_value!).toBeLessThan(1e-10);
    const evidence = JSON.parse(quality[0]!.evidence) as { events: number; failed: Array<{ feature: string }> };
    expect(evidence.events).toBe(PER_WINDOW);
    expect(evidence.failed.map((f) => f.feature)).toEqual(['y']);
    // y is not a drifted feature: FEATURE_DRIFT counts it in the denominator only (x drifted).
    const drift = alerts.find((a) => a.kind === 'FEATURE_DRIFT' && a.window_start === T0 + 1000)!;
    expect(drift).toMatchObject({ feature: 'x', share_drifted: 0.5 });
    // On the topic the window's DATA_QUALITY alert comes first: the retrain policy's veto reads
    // the window as broken before its drift alert (after it, the first broken window could fire).
    expect(alerts.indexOf(quality[0]!)).toBeLessThan(alerts.indexOf(drift));
    // One data_quality_windows row per input feature checked and window (Grafana's and the
    // report's failed expectations read them); the flush window has 2 events: not checked.
    expect(rows).toEqual([
      { ws: 0, feature: 'x', passed: 1, count: PER_WINDOW },
      { ws: 0, feature: 'y', passed: 1, count: PER_WINDOW },
      { ws: 1000, feature: 'x', passed: 1, count: PER_WINDOW },
      { ws: 1000, feature: 'y', passed: 0, count: PER_WINDOW },
    ]);
  });

  it('DRIFTLINE_DRIFT_MISSING_ALERT=false → no DATA_QUALITY alert, no row', async () => {
    const { alerts, rows } = await run({ DRIFTLINE_DRIFT_MISSING_ALERT: 'false' });
    expect(rows).toEqual([]);
    expect(alerts.some((a) => a.kind === 'FEATURE_DRIFT' && a.window_start === T0 + 1000)).toBe(true);
    expect(alerts.filter((a) => a.kind === 'DATA_QUALITY')).toEqual([]);
  });
});
