// The benchmark's feature view (10 double features) and its synthetic events, shared by the
// benchmark and its child processes.
import { parseFeatureViews } from '@driftline/features';
import type { FeatureEvent } from '@driftline/schemas';

export const FEATURES = Array.from({ length: 10 }, (_, i) => `f${i}`);

export const benchViewsDocument = {
  views: [
    {
      name: 'bench',
      entity: 'entity_id',
      ttl: '1h',
      features: Object.fromEntries(FEATURES.map((f) => [f, 'double'])),
    },
    {
      // The same events with windowed aggregates over three of the features (the window-set path
      // of the write script: its members, trims and recomputes).
      name: 'bench_agg',
      entity: 'entity_id',
      ttl: '1h',
      features: Object.fromEntries(FEATURES.map((f) => [f, 'double'])),
      aggregates: [
        { feature: 'f0', function: 'count', window: '10m' },
        { feature: 'f0', function: 'sum', window: '10m' },
        { feature: 'f1', function: 'mean', window: '1h' },
        { feature: 'f2', function: 'max', window: '1d' },
      ],
    },
  ],
};

export const benchViews = parseFeatureViews(benchViewsDocument);

/** Event `i` of a stream over `entities` entities, event time `time + i`, of view `view`. */
export function benchEvent(i: number, entities: number, time: number, view = 'bench'): FeatureEvent {
  const features: Record<string, number> = {};
  for (const [k, f] of FEATURES.entries()) features[f] = ((i * 7 + k) % 1000) / 8;
  return { event_id: `e${i}`, view, entity_id: `ent-${i % entities}`, event_time: time + i, features };
}
