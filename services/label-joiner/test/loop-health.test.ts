// The label-joiner's loops report their health: a recompute that keeps failing is no longer silent
// (found by a review), and a failing score-histogram flush does not stop the windows' recompute.
import { SinkUnavailableError, silentLogger } from '@driftline/core';
import { InMemoryJoinStore } from '@driftline/join';
import { createMetricsRegistry, type Registry } from '@driftline/observability';
import { type WindowRef, windowKey } from '@driftline/performance';
import { describe, expect, it } from 'vitest';
import type { WindowEstimator } from '../src/estimates.js';
import { every, WindowRecomputer } from '../src/loops.js';
import { recomputeOptions } from './fixtures/recompute-options.js';

const WINDOW = 600_000;

/** The value of a metric's series with `loop` = loop. */
async function value(registry: Registry, name: string, loop: string): Promise<number | undefined> {
  const metric = await registry.getSingleMetric(name)?.get();
  return metric?.values.find((v) => v.labels.loop === loop)?.value;
}

describe('loop health metrics', () => {
  it('counts failed passes per loop and stamps the last success; both series exist before the first pass', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    let fail = true;
    let now = 5_000_000;
    const loop = every(
      3_600_000, // never ticks by itself here: passes run by runNow
      async () => {
        if (fail) throw new SinkUnavailableError('clickhouse read: timeout');
      },
      silentLogger,
      'window recompute',
      { registry, loop: 'recompute', now: () => now },
    );
    try {
      expect(await value(registry, 'driftline_joiner_loop_failures_total', 'recompute')).toBe(0);
      expect(await value(registry, 'driftline_joiner_loop_last_success_timestamp_seconds', 'recompute')).toBe(0);
      expect(await value(registry, 'driftline_joiner_loop_interval_seconds', 'recompute')).toBe(3_600);
      await loop.runNow();
      await loop.runNow();
      expect(await value(registry, 'driftline_joiner_loop_failures_total', 'recompute')).toBe(2);
      expect(await value(registry, 'driftline_joiner_loop_last_success_timestamp_seconds', 'recompute')).toBe(0);
      fail = false;
      now = 6_000_000;
      await loop.runNow();
      expect(await value(registry, 'driftline_joiner_loop_failures_total', 'recompute')).toBe(2);
      expect(await value(registry, 'driftline_joiner_loop_last_success_timestamp_seconds', 'recompute')).toBe(6_000);
    } finally {
      await loop.stop();
    }
  });

  it('a failing score-histogram flush leaves the windows recomputed, and fails the pass (found by a review)', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>({ maxDelayMs: 3_600_000, graceMs: 0, tombstoneMs: 3_600_000 });
    for (const [i, model] of ['a', 'b'].entries()) {
      const key = windowKey({ model, modelVersion: 'v1', windowStart: 0 });
      await store.applyPredictions(
        [{ model, id: `p${i}`, eventTime: 0, windowKey: key, payload: Buffer.from('x') }],
        1_000,
        'predictions/0',
      );
    }
    const estimator = {
      flush: async () => {
        throw new SinkUnavailableError('clickhouse insert score_histograms_v2: timeout');
      },
    } as unknown as WindowEstimator;
    const recomputed: string[] = [];
    const recomputer = new (class extends WindowRecomputer {
      override async recompute(ref: WindowRef) {
        recomputed.push(ref.model);
        return [];
      }
    })(
      store,
      {} as never,
      { ...recomputeOptions(WINDOW), estimator },
      { publish: async () => {} },
      async () => false,
      async () => {},
      createMetricsRegistry({ service: 'test', defaultMetrics: false }),
    );
    await expect(recomputer.pass()).rejects.toThrow(/score_histograms_v2/);
    expect(recomputed.sort()).toEqual(['a', 'b']);
    expect(await store.dirtyWindows(10)).toEqual([]);
  });
});
