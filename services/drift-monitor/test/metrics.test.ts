import { createMetricsRegistry, MAX_LABEL_VALUES } from '@driftline/observability';
import { describe, expect, it } from 'vitest';
import { driftMetrics } from '../src/metrics.js';

describe('drift metrics', () => {
  it('keep a bounded number of (model, feature) series whatever the models and features', async () => {
    const registry = createMetricsRegistry({ service: 'drift-monitor', defaultMetrics: false });
    const metrics = driftMetrics(registry);
    for (let i = 0; i < 5_000; i++) {
      metrics.statistic.set({ model: `m${i}`, feature: `f${i}` }, 0.1);
      metrics.drifted.set({ model: `m${i}`, feature: `f${i}` }, 0);
    }
    expect((await metrics.statistic.get()).values.length).toBe(MAX_LABEL_VALUES + 1);
    expect((await metrics.drifted.get()).values.length).toBe(MAX_LABEL_VALUES + 1);
  });
});
