import { createMetricsRegistry, MAX_LABEL_VALUES } from '@driftline/observability';
import { afterEach, describe, expect, it, vi } from 'vitest';
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

  afterEach(() => {
    vi.useRealTimers();
  });

  it('a feature set once per window keeps its place for three windows (series vanished between windows)', async () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1) });
    const registry = createMetricsRegistry({ service: 'drift-monitor', defaultMetrics: false });
    const metrics = driftMetrics(registry, 3_600_000); // hourly windows
    for (let f = 0; f < MAX_LABEL_VALUES; f++) metrics.statistic.set({ model: 'a', feature: `f${f}` }, 0.1);
    vi.advanceTimersByTime(20 * 60_000); // another model's window closes 20 minutes later
    for (let f = 0; f < 10; f++) metrics.statistic.set({ model: 'a', feature: `g${f}` }, 0.2);
    const features = new Set((await metrics.statistic.get()).values.map((v) => v.labels.feature));
    expect(features.has('f0')).toBe(true);
    expect(features.has('g0')).toBe(false); // counted under __other__ until a place is idle three windows
  });
});
