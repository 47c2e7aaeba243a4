import { silentLogger } from '@driftline/core';
import { parseFeatureViewsText } from '@driftline/features';
import { createMetricsRegistry, MAX_LABEL_VALUES, OTHER_LABEL_VALUE } from '@driftline/observability';
import { syntheticModelJson } from '@driftline/scoring/bench';
import { describe, expect, it } from 'vitest';
import { ServingTable, VersionsNotServedError } from '../src/serving.js';
import { createStageApplier } from '../src/stage-retry.js';
import type { StageEvent } from '../src/stages.js';
import { buildVersion } from '../src/version.js';
import { FEATURES, VIEWS_YAML } from './fixtures.js';

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

  it('keeps the model label of its metrics bounded, whatever model names the events bring', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const applier = createStageApplier({
      apply: async () => {
        throw new Error('ENOENT: model.json');
      },
      logger: silentLogger,
      registry,
      firstDelayMs: 60_000,
    });
    for (let i = 0; i < 3 * MAX_LABEL_VALUES; i++) await applier.apply(`model-${i}`, [promoted('v1')]);
    applier.stop();
    for (const name of ['driftline_model_server_load_failures_total', 'driftline_model_server_stage_pending']) {
      const values = (await registry.getSingleMetric(name)?.get())?.values ?? [];
      expect(values, name).toHaveLength(MAX_LABEL_VALUES + 1);
      expect(
        values.map((v) => v.labels.model),
        name,
      ).toContain(OTHER_LABEL_VALUE);
    }
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

describe('stage applier over a real serving table: versions that do not load, in order', () => {
  const views = parseFeatureViewsText(VIEWS_YAML);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  /** A serving table whose `unreadable` versions fail to load (after a 30 ms read). */
  function tableWith(unreadable: Set<string>) {
    return new ServingTable({
      views,
      canaries: new Map(),
      shadows: new Map(),
      logger: silentLogger,
      load: async (model, version) => {
        await sleep(unreadable.has(version) ? 30 : 0);
        if (unreadable.has(version)) throw new Error('ENOENT model.json');
        return buildVersion(model, version, syntheticModelJson(version.length, 5, 3, 4), { features: FEATURES });
      },
    });
  }

  it('a retry that fires while a newer PROMOTED arrives never replays the older one after it', async () => {
    const unreadable = new Set(['v2']);
    const table = tableWith(unreadable);
    const applier = createStageApplier({
      apply: (m, e) => table.apply(m, e),
      logger: silentLogger,
      firstDelayMs: 20,
      maxDelayMs: 40,
    });
    await applier.apply('fraud', [promoted('v1')]);
    await applier.apply('fraud', [promoted('v2')]); // not readable: held, retried in 20 ms
    await sleep(25); // the retry's load is in flight
    await applier.apply('fraud', [promoted('v3')]);
    unreadable.clear(); // v2's files appear later
    await sleep(300);
    expect(table.get('fraud')?.production.loaded.version).toBe('v3');
    expect(applier.pending()).toEqual([]);
    applier.stop();
  });

  it('a production that never loaded is not watched: the one that served is, and a rollback returns to it', async () => {
    const table = tableWith(new Set(['v2']));
    const applier = createStageApplier({
      apply: (m, e) => table.apply(m, e),
      logger: silentLogger,
      firstDelayMs: 60_000,
    });
    await applier.apply('fraud', [promoted('v1')]);
    await applier.apply('fraud', [promoted('v2')]);
    await applier.apply('fraud', [promoted('v3')]);
    expect(table.describe()).toEqual([{ model: 'fraud', production: 'v3', shadows: ['v1'] }]);
    expect(applier.pending()).toEqual([]);
    await applier.apply('fraud', [{ kind: 'ROLLED_BACK', version: 'v3' }]);
    expect(table.get('fraud')?.production.loaded.version).toBe('v1');
    applier.stop();
  });

  it('at start, a newest production that cannot load leaves the previous one serving, not none', async () => {
    const table = tableWith(new Set(['v2']));
    await expect(table.apply('fraud', [promoted('v1'), promoted('v2')])).rejects.toThrow(/ENOENT/);
    expect(table.get('fraud')?.production.loaded.version).toBe('v1');
    // A retry of the same replay keeps v1 serving and still asks for v2.
    await expect(table.apply('fraud', [promoted('v1'), promoted('v2')])).rejects.toThrow(/ENOENT/);
    expect(table.get('fraud')?.production.loaded.version).toBe('v1');
  });
});
