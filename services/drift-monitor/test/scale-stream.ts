// The stream the scale-out tests (a new group, a grown partials topic, mixed window sizes) send,
// after the review that found those defects: model fraud v1, six windows of 1 s from T0 with 400
// events each, 200 per partition of a 2-partition predictions topic, then an event per partition a
// minute later that closes them all. And what drift_windows holds of it.
import { profilesFromCsv } from '@driftline/batch-drift';
import { type ReferenceSet, referenceSet } from '@driftline/drift';
import { eventually } from '@driftline/test-support';
import { seededUniform } from '@driftline/test-support/random';
import type { ClickHouse } from '@driftline/warehouse';
import type { PlacedPrediction } from './deployment.js';

export const T0 = 1_700_000_000_000;
export const WINDOWS = 6;
export const PER_WINDOW = 400;
export const SOURCE_PARTITIONS = 2;

export function scaleStream(seed: number): { readonly reference: ReferenceSet; readonly stream: PlacedPrediction[] } {
  const r = seededUniform(seed);
  const normal = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  const csv = ['x,prediction', ...Array.from({ length: 2000 }, () => `${normal()},${r()}`)].join('\n');
  const event = (id: string, eventTime: number) => ({
    prediction_id: id,
    model: 'fraud',
    model_version: 'v1',
    entity_id: id,
    event_time: eventTime,
    features: { x: normal() },
    prediction: r(),
    predicted_class: null,
  });
  const stream: PlacedPrediction[] = [];
  for (let w = 0; w < WINDOWS; w++) {
    for (let j = 0; j < PER_WINDOW; j++) {
      const eventTime = T0 + w * 1000 + Math.floor((j * 1000) / PER_WINDOW);
      stream.push({ event: event(`p-${w}-${j}`, eventTime), partition: j % SOURCE_PARTITIONS });
    }
  }
  for (let p = 0; p < SOURCE_PARTITIONS; p++) stream.push({ event: event(`flush-${p}`, T0 + 60_000), partition: p });
  return { reference: referenceSet('fraud', 'v1', profilesFromCsv(csv)), stream };
}

/** The x/psi rows of drift_windows (FINAL) as [start, end, events], times relative to T0, by start then end. */
export async function psiWindows(ch: ClickHouse): Promise<Array<[number, number, number]>> {
  const rows = await ch.select<{ ws: string; we: string; events: string }>(
    `SELECT toUnixTimestamp64Milli(window_start) AS ws, toUnixTimestamp64Milli(window_end) AS we, events
     FROM ${ch.table('drift_windows')} FINAL WHERE feature = 'x' AND method = 'psi' ORDER BY ws, we`,
  );
  return rows.map((row) => [Number(row.ws) - T0, Number(row.we) - T0, Number(row.events)]);
}

/** {@link psiWindows} once drift_windows holds as many windows as the stream has (waited for up to 60 s). */
export function settledWindows(ch: ClickHouse): Promise<Array<[number, number, number]>> {
  return eventually(
    async () => {
      const got = await psiWindows(ch);
      return got.length >= EXACT.length ? got : undefined;
    },
    60_000,
    250,
  );
}

/** Every window of the stream, each with all its events: what one instance writes. */
export const EXACT: Array<[number, number, number]> = Array.from({ length: WINDOWS }, (_, w) => [
  w * 1000,
  (w + 1) * 1000,
  PER_WINDOW,
]);
