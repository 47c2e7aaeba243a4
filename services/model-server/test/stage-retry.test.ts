import { silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { describe, expect, it } from 'vitest';
import { VersionsNotServedError } from '../src/serving.js';
import { createStageApplier } from '../src/stage-retry.js';
import type { StageEvent } from '../src/stages.js';

const promoted = (version: string): StageEvent => ({ kind: 'PROMOTED', version });

describe('stage applier: a production version that does not load yet is retried', () => {
  it('retries with backoff until it loads, counting failures and the pending model', async () => {
    const calls: string[][] = [];
    let failuresLeft = 2;
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const applier = createStageApplier({
      apply: async (_model, events) => {
        calls.push(events.map((e) => `${e.kind}:${e.version}`));
        if (failuresLeft-- > 0) throw new Error('ENOENT: model.json');
      },
      logger: silentLogger,
      registry,
      firstDelayMs: 5,
    });
    await applier.apply('fraud', [promoted('v2')]);
    expect(applier.pending()).toEqual(['fraud']);
    await expect.poll(() => calls.length, { timeout: 2_000 }).toBe(3);
    expect(calls).toEqual([['PROMOTED:v2'], ['PROMOTED:v2'], ['PROMOTED:v2']]);
    expect(applier.pending()).toEqual([]);
    expect(await registry.getSingleMetricAsString('driftline_model_server_load_failures_total')).toMatch(
      /model="fraud"[^}]*\} 2$/m,
    );
    expect(await registry.getSingleMetricAsString('driftline_model_server_stage_pending')).toMatch(
      /model="fraud"[^}]*\} 0$/m,
    );
    applier.stop();
  });

  it("a model's next events go after the ones still waiting, at once; stop ends the retries", async () => {
    const calls: string[][] = [];
    let fail = true;
    const applier = createStageApplier({
      apply: async (_model, events) => {
        calls.push(events.map((e) => `${e.kind}:${e.version}`));
        if (fail) throw new Error('not readable yet');
      },
      logger: silentLogger,
      firstDelayMs: 60_000,
    });
    await applier.apply('fraud', [promoted('v2')]);
    fail = false;
    await applier.apply('fraud', [{ kind: 'SHADOW', version: 'v3' }]);
    expect(calls).toEqual([['PROMOTED:v2'], ['PROMOTED:v2', 'SHADOW:v3']]);
    expect(applier.pending()).toEqual([]);
    fail = true;
    await applier.apply('other', [promoted('v1')]);
    applier.stop();
    expect(applier.pending()).toEqual([]);
  });

  it('a canary or shadow that does not serve is retried too (production serves meanwhile), with a warning naming it', async () => {
    const warnings: unknown[] = [];
    let failuresLeft = 2;
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const applier = createStageApplier({
      apply: async (model) => {
        if (failuresLeft-- > 0) throw new VersionsNotServedError(model, ['v3']);
      },
      logger: { ...silentLogger, warn: (obj: object) => void warnings.push(obj) },
      registry,
      firstDelayMs: 5,
    });
    await applier.apply('fraud', [{ kind: 'SHADOW', version: 'v3' }]);
    expect(applier.pending()).toEqual(['fraud']);
    await expect.poll(() => applier.pending(), { timeout: 2_000 }).toEqual([]);
    expect(warnings).toEqual([
      expect.objectContaining({ model: 'fraud', versions: ['v3'], attempt: 1 }),
      expect.objectContaining({ model: 'fraud', versions: ['v3'], attempt: 2 }),
    ]);
    expect(await registry.getSingleMetricAsString('driftline_model_server_stage_pending')).toMatch(
      /model="fraud"[^}]*\} 0$/m,
    );
    applier.stop();
  });
});
