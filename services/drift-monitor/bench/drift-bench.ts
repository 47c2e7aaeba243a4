import { DEFAULT_EVENT_TIME_BOUNDS } from '@driftline/core';
import { flushMessages, PartitionWindows, type ReferenceSet, referenceSet } from '@driftline/drift';
import type { DecodedRecord } from '@driftline/kafka';
import type { PredictionEvent } from '@driftline/schemas';
import { buildNumericProfile, type ReferenceProfile } from '@driftline/stats';
import { seededUniform } from '@driftline/test-support/random';
import type { ProgressStore, ReferenceStore } from '@driftline/warehouse';
import { ReferenceCache } from '../src/reference-cache.js';
import { stageOneProcessor } from '../src/stage-one.js';

/**
 * drift-monitor's service path, without Kafka or ClickHouse (wired into `make bench` as the
 * `drift` entry; `@driftline/stats/bench` reports the same keys for the summary path alone):
 * - drift.values_per_s: feature values per second through the stage-1 processor's `process`
 *   (window assignment, watermark, summaries, window close and partial serialisation), events
 *   already decoded (Avro decode EXCLUDED: it is the codec's cost, not the monitor's);
 * - drift.window_close_us_per_feature: closing one window and building its partials messages,
 *   per feature;
 * - drift.bytes_per_feature_window: bytes of the partials message per feature and window, at
 *   1e3 and 1e5 events (constant: fixed-width counts on the reference grid).
 * Figures are medians of repeated runs (shared machines).
 */
export const FEATURES = 20;
export const WINDOW_MS = 60_000;

const rng = seededUniform;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function reference(): ReferenceSet {
  const r = rng(1);
  const profiles = new Map<string, ReferenceProfile>();
  for (let f = 0; f < FEATURES; f++)
    profiles.set(`f${f}`, buildNumericProfile(Array.from({ length: 20_000 }, () => r() * 10 + f)));
  return referenceSet('bench', 'v1', profiles);
}

export function events(n: number, seed: number, spanMs: number, shift = 0.5): PredictionEvent[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const features: Record<string, number> = {};
    for (let f = 0; f < FEATURES; f++) features[`f${f}`] = r() * 10 + f + shift;
    return {
      prediction_id: `p${i}`,
      model: 'bench',
      model_version: 'v1',
      entity_id: `e${i}`,
      event_time: Math.floor((i * spanMs) / n),
      features,
      prediction: r(),
      predicted_class: null,
    };
  });
}

export function records(evts: PredictionEvent[]): DecodedRecord<PredictionEvent>[] {
  return evts.map((value, i) => ({
    record: {
      topic: 'predictions',
      partition: 0,
      offset: String(i),
      key: null,
      value: null,
      headers: {},
      timestamp: 0,
    },
    value,
  }));
}

/** In-memory stores holding one reference and no progress (the benches need no ClickHouse). */
export function benchStores(ref: ReferenceSet): { store: ReferenceStore; progress: ProgressStore } {
  const store: ReferenceStore = {
    save: async () => {},
    latest: async () => ref,
    byId: async () => ref,
    newest: async () => [ref],
    catalog: async () => [{ model: ref.model, version: ref.version, referenceId: ref.referenceId }],
  };
  return { store, progress: { load: async () => undefined, save: async () => {} } };
}

async function valuesPerSecond(ref: ReferenceSet): Promise<number> {
  const { store, progress } = benchStores(ref);
  const n = 100_000;
  // 100k events over 10 windows: the closes and their serialisation are part of the figure.
  const items = records(events(n, 7, 10 * WINDOW_MS));
  const runs: number[] = [];
  for (let run = 0; run < 7; run++) {
    const references = new ReferenceCache(store);
    await references.preload();
    let bytes = 0;
    const processor = stageOneProcessor({
      spec: { sizeMs: WINDOW_MS, latenessMs: 0 },
      references,
      progress,
      group: 'bench',
      sourceTopic: 'predictions',
      sourcePartitions: 1,
      mergePartitions: 1,
      eventTime: DEFAULT_EVENT_TIME_BOUNDS, // only decode checks it, and decode is excluded
      emit: async (messages) => {
        for (const m of messages) bytes += m.value.length;
      },
      decode: async () => {
        throw new Error('decode is excluded from this benchmark');
      },
    });
    const ctx = { topic: 'predictions', partition: 0, highWatermark: String(n) };
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i += 1000) await processor.process(items.slice(i, i + 1000), ctx);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (bytes === 0) throw new Error('no partials emitted');
    if (run > 0) runs.push((n * FEATURES) / seconds); // run 0 warms the JIT
  }
  return median(runs);
}

function closeOnce(ref: ReferenceSet, n: number, seed: number): { us: number; bytes: number } {
  const p = new PartitionWindows({ sizeMs: WINDOW_MS, latenessMs: 0 }, () => ref);
  const evts = events(n, seed, WINDOW_MS - 1);
  for (const [i, e] of evts.entries()) p.add(e, i);
  p.add({ ...evts[0]!, event_time: WINDOW_MS }, n); // moves the watermark to the window end
  const t0 = process.hrtime.bigint();
  const messages = flushMessages({ topic: 'predictions', partition: 0, partitions: 1 }, p.closeReady(), WINDOW_MS, 1);
  const us = Number(process.hrtime.bigint() - t0) / 1e3;
  const partial = messages.find((m) => m.value.includes('"type":"partial"'));
  if (partial === undefined) throw new Error('no partial');
  return { us, bytes: partial.value.length };
}

export async function benchDrift(): Promise<Record<string, number>> {
  const ref = reference();
  const valuesPerS = await valuesPerSecond(ref);
  const closes: number[] = [];
  for (let run = 0; run < 15; run++) closes.push(closeOnce(ref, 10_000, run).us / FEATURES);
  const small = median([1, 2, 3].map((s) => closeOnce(ref, 1_000, s).bytes)) / FEATURES;
  const large = median([1, 2, 3].map((s) => closeOnce(ref, 100_000, s).bytes)) / FEATURES;
  return {
    'drift.values_per_s': Math.round(valuesPerS),
    'drift.window_close_us_per_feature': Number(median(closes.slice(3)).toFixed(1)),
    'drift.bytes_per_feature_window': Math.round(large),
    'drift.bytes_per_feature_window_1e3_events': Math.round(small),
    'drift.bytes_per_feature_window_1e5_events': Math.round(large),
  };
}

export { benchMonitors, type MonitorExtra } from './monitors-bench.js';
