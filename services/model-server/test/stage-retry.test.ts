import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { DriftlineError, silentLogger } from '@driftline/core';
import { parseFeatureViewsText } from '@driftline/features';
import { createMetricsRegistry, MAX_LABEL_VALUES, OTHER_LABEL_VALUE } from '@driftline/observability';
import type { StageEvent } from '@driftline/policy';
import type { ModelEvent } from '@driftline/schemas';
import { syntheticModelJson } from '@driftline/scoring/bench';
import { describe, expect, it, vi } from 'vitest';
import { artifactLoader } from '../src/artifacts.js';
import { MAX_LOAD_THREAD_DEATHS, threadedArtifactLoader } from '../src/load-thread.js';
import { modelsFollower } from '../src/models-follower.js';
import { ServingTable, type ServingTableOptions, VersionsNotServedError } from '../src/serving.js';
import { createStageApplier, MAX_MODELS } from '../src/stage-retry.js';
import { buildVersion } from '../src/version.js';
import { FEATURES, VIEWS_YAML, writeVersion } from './fixtures.js';

const promoted = (version: string): StageEvent => ({ kind: 'PROMOTED', version });
/** A load failure as the artifact loader reports files not there yet: retriable. */
const notThereYet = (what: string) => new DriftlineError('NOT_FOUND', what, { retriable: true });

/** A serving table in which every version loads (a synthetic model of its own). */
function everyVersionLoads(): ServingTable {
  return new ServingTable({
    views: parseFeatureViewsText(VIEWS_YAML),
    canaries: new Map(),
    shadows: new Map(),
    logger: silentLogger,
    load: async (model, version) =>
      buildVersion(model, version, syntheticModelJson(version.length, 5, 3, 4), { features: FEATURES }),
  });
}

describe('stage applier: a retry reduces the held events from the stages before them (found by a property test)', () => {
  it('CANARY v1, CANARY v4, PROMOTED v4 and a shadow that loads later: no canary, before and after the retry', async () => {
    let shadowThere = false;
    const table = new ServingTable({
      views: parseFeatureViewsText(VIEWS_YAML),
      canaries: new Map(),
      shadows: new Map(),
      logger: silentLogger,
      load: async (model, version) => {
        if (version === 'v6' && !shadowThere) throw notThereYet('ENOENT: model.json');
        return buildVersion(model, version, syntheticModelJson(version.length, 5, 3, 4), { features: FEATURES });
      },
    });
    const applier = createStageApplier({
      apply: (m, e, replayed, from) => table.apply(m, e, replayed, from),
      stagesOf: (m) => table.stagesOf(m),
      logger: silentLogger,
      firstDelayMs: 5,
      maxDelayMs: 5,
    });
    const events: StageEvent[] = [
      { kind: 'CANARY', version: 'v1', canary_share: 0.1 },
      { kind: 'CANARY', version: 'v4', canary_share: 0.1 },
      promoted('v4'),
      { kind: 'SHADOW', version: 'v6' },
    ];
    await applier.apply('a', events);
    // v4 was the canary, then production: no canary is left, and v6 waits for its files.
    expect(table.describe()).toEqual([{ model: 'a', production: 'v4', shadows: [] }]);
    shadowThere = true;
    // Retried: reduced again on top of what the first attempt left, CANARY v1 came back as canary.
    await expect
      .poll(() => table.describe(), { timeout: 2_000 })
      .toEqual([{ model: 'a', production: 'v4', shadows: ['v6'] }]);
    applier.stop();
  });
});

describe('stage applier: a production version that does not load yet is retried', () => {
  it('retries with backoff until it loads, counting failures and the pending model', async () => {
    const calls: string[][] = [];
    let failuresLeft = 2;
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const applier = createStageApplier({
      apply: async (_model, events) => {
        calls.push(events.map((e) => `${e.kind}:${e.version}`));
        if (failuresLeft-- > 0) throw notThereYet('ENOENT: model.json');
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
        throw notThereYet('ENOENT: model.json');
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
        if (fail) throw notThereYet('not readable yet');
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
  function tableWith(unreadable: Set<string>, options: Partial<ServingTableOptions> = {}) {
    return new ServingTable({
      views,
      canaries: new Map(),
      shadows: new Map(),
      logger: silentLogger,
      ...options,
      load: async (model, version) => {
        await sleep(unreadable.has(version) ? 30 : 0);
        if (unreadable.has(version)) throw notThereYet('ENOENT model.json');
        return buildVersion(model, version, syntheticModelJson(version.length, 5, 3, 4), { features: FEATURES });
      },
    });
  }

  it('"version not loaded; served without it" once per model and version per 10 minutes, with the count since (it was written at every retry)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const lines: Array<Record<string, unknown>> = [];
      const table = tableWith(new Set(['v8', 'v9']), {
        logger: {
          ...silentLogger,
          warn: (obj: object, msg?: string) => {
            if (msg === 'version not loaded; served without it') lines.push(obj as Record<string, unknown>);
          },
        },
      });
      const failing = (events: StageEvent[]) =>
        expect(table.apply('m', events)).rejects.toThrow(VersionsNotServedError);
      await failing([promoted('v1'), { kind: 'SHADOW', version: 'v9' }]);
      // Retries (any application retries what does not serve): counted, not written.
      for (let i = 0; i < 5; i++) {
        vi.advanceTimersByTime(60_000);
        await failing([]);
      }
      expect(lines.map((l) => l.version)).toEqual(['v9']);
      expect(lines[0]).toEqual(
        expect.objectContaining({ model: 'm', version: 'v9', role: 'shadow', failures_since_last_line: 1 }),
      );
      // Another version of the model has a line of its own.
      await failing([{ kind: 'SHADOW', version: 'v8' }]);
      expect(lines.map((l) => l.version)).toEqual(['v9', 'v8']);
      vi.advanceTimersByTime(5 * 60_000);
      await failing([]);
      // 10 minutes after its first line: v9's next, counting the 5 retries, the v8 event's and its own.
      expect(lines.slice(2)).toEqual([expect.objectContaining({ version: 'v9', failures_since_last_line: 5 + 1 + 1 })]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a retry that fires while a newer PROMOTED arrives never replays the older one after it', async () => {
    // The retry's load of v2 stays in flight until the test ends it, so the newer PROMOTED arrives
    // during it however slow the machine is (a fixed sleep let a late timer miss the interleaving).
    let v2Loads = 0;
    let retryLoadStarted = () => {};
    const retryLoadInFlight = new Promise<void>((resolve) => {
      retryLoadStarted = resolve;
    });
    let endRetryLoad = () => {};
    const retryLoadEnded = new Promise<void>((resolve) => {
      endRetryLoad = resolve;
    });
    const table = new ServingTable({
      views,
      canaries: new Map(),
      shadows: new Map(),
      logger: silentLogger,
      load: async (model, version) => {
        if (version === 'v2' && ++v2Loads <= 2) {
          if (v2Loads === 2) {
            retryLoadStarted();
            await retryLoadEnded;
          }
          throw notThereYet('ENOENT model.json'); // v2's files appear after its retry's load
        }
        return buildVersion(model, version, syntheticModelJson(version.length, 5, 3, 4), { features: FEATURES });
      },
    });
    const applier = createStageApplier({
      apply: (m, e) => table.apply(m, e),
      logger: silentLogger,
      firstDelayMs: 5,
      maxDelayMs: 10,
    });
    await applier.apply('fraud', [promoted('v1')]);
    await applier.apply('fraud', [promoted('v2')]); // not readable: held, retried on a timer
    await retryLoadInFlight;
    const newer = applier.apply('fraud', [promoted('v3')]);
    endRetryLoad();
    await newer;
    // Whatever is still held is retried, and v2 loads now: the end state once nothing is held.
    await expect.poll(() => applier.pending(), { timeout: 10_000 }).toEqual([]);
    expect(table.get('fraud')?.production.loaded.version).toBe('v3');
    expect(v2Loads).toBe(2);
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

  it('a production that does not load is retried without repeating its ignored events or a swap to the same plan (found by a review)', async () => {
    // Before, every retry (up to once a minute, for as long as the artifacts were missing) logged
    // each ignored event of the held batch again and "model swapped production v1 previous v1".
    const lines: string[] = [];
    const keep = (_obj: object, msg?: string) => void lines.push(msg ?? '');
    const table = tableWith(new Set(['v2']), { logger: { ...silentLogger, info: keep, warn: keep } });
    let attempts = 0;
    const applier = createStageApplier({
      apply: (m, e, replayed) => table.apply(m, e, replayed),
      logger: { ...silentLogger, error: () => void attempts++ },
      firstDelayMs: 2,
      maxDelayMs: 5,
    });
    await applier.apply('fraud', [promoted('v1')]);
    await applier.apply('fraud', [promoted('v2'), { kind: 'CANARY', version: 'v4', canary_share: Number.NaN }]);
    await expect.poll(() => attempts, { timeout: 10_000 }).toBeGreaterThanOrEqual(5);
    applier.stop();
    expect(table.get('fraud')?.production.loaded.version).toBe('v1');
    expect(lines.filter((l) => l === 'models.v1 event ignored')).toHaveLength(1);
    expect(lines.filter((l) => l === 'model swapped')).toHaveLength(1); // v1's
  });

  it('a production that did not load leaves the one serving with the time it took production: an end dated before it is stale', async () => {
    const table = tableWith(new Set(['v2']));
    const at = (kind: StageEvent['kind'], version: string, t: number, previous?: string): StageEvent => ({
      kind,
      version,
      event_time: t,
      ...(previous === undefined ? {} : { previous_version: previous }),
    });
    await table.apply('fraud', [at('PROMOTED', 'v0', 5), at('PROMOTED', 'v1', 10, 'v0')]);
    await expect(table.apply('fraud', [at('PROMOTED', 'v2', 100, 'v1')])).rejects.toThrow(/ENOENT/);
    expect(table.get('fraud')?.production.loaded.version).toBe('v1');
    // Decided before v1 took production (at 10): stale.
    await table.apply('fraud', [at('ROLLED_BACK', 'v1', 8, 'v0')]);
    expect(table.get('fraud')?.production.loaded.version).toBe('v1');
    // After it (and before v2's promotion, which never served here): it applies.
    await table.apply('fraud', [at('ROLLED_BACK', 'v1', 50, 'v0')]);
    expect(table.describe()).toEqual([{ model: 'fraud', production: 'v0', shadows: [] }]);
  });

  it('exports driftline_model_serving per model, version and role; what no longer serves is removed', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const table = tableWith(new Set(['v5']), { shadows: new Map([['fraud', ['v9']]]), registry });
    const series = async () =>
      ((await registry.getSingleMetric('driftline_model_serving')?.get())?.values ?? [])
        .map((v) => `${v.labels.model} ${v.labels.version} ${v.labels.role} ${v.value}`)
        .sort();
    await table.apply('fraud', [promoted('v1'), { kind: 'SHADOW', version: 'v2' }]);
    await table.apply('fraud', [{ kind: 'CANARY', version: 'v3', canary_share: 0.2 }]);
    expect(await series()).toEqual([
      'fraud v1 production 1',
      'fraud v2 shadow 1',
      'fraud v3 canary 1',
      'fraud v9 shadow 1',
    ]);
    await table.apply('fraud', [promoted('v3')]);
    expect(await series()).toEqual([
      'fraud v1 watched 1',
      'fraud v2 shadow 1',
      'fraud v3 production 1',
      'fraud v9 shadow 1',
    ]);
    await table.apply('fraud', [{ kind: 'RETIRED', version: 'v1' }]);
    expect(await series()).toEqual(['fraud v2 shadow 1', 'fraud v3 production 1', 'fraud v9 shadow 1']);
    // A production that does not load: what serves is shown, not what the stages name.
    await expect(table.apply('fraud', [promoted('v5')])).rejects.toThrow(/ENOENT/);
    expect(await series()).toEqual(['fraud v2 shadow 1', 'fraud v3 production 1', 'fraud v9 shadow 1']);
  });

  it('driftline_model_serving keeps every model its own versions past 100 version names (found by a review)', async () => {
    // 60 models × (production + watched): 120 version names. Bounded at 100 versions per metric,
    // 20 series were version="__other__", and removing them cleared nothing.
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const table = tableWith(new Set(), { registry });
    const models = Array.from({ length: 60 }, (_, i) => `model-${i}`);
    const series = async () =>
      ((await registry.getSingleMetric('driftline_model_serving')?.get())?.values ?? []).map(
        (v) => `${v.labels.model} ${v.labels.version} ${v.labels.role}`,
      );
    for (const m of models) await table.apply(m, [promoted(`${m}-a`), promoted(`${m}-b`)]);
    expect((await series()).sort()).toEqual(
      models.flatMap((m) => [`${m} ${m}-a watched`, `${m} ${m}-b production`]).sort(),
    );
    for (const m of models) await table.apply(m, [{ kind: 'RETIRED', version: `${m}-a` }]);
    expect((await series()).sort()).toEqual(models.map((m) => `${m} ${m}-b production`).sort());
  });

  it('its error line says what serves meanwhile: the previous production, or nothing of the model (found by a review)', async () => {
    const lines: Array<{ obj: object; msg: string | undefined }> = [];
    const logger = { ...silentLogger, error: (obj: object, msg?: string) => void lines.push({ obj, msg }) };
    const table = tableWith(new Set(['v1', 'v9', 'w9']));
    const applier = createStageApplier({
      apply: (model, events, replayed) => table.apply(model, events, replayed),
      unserved: (model) => table.unservedProduction(model),
      logger,
      firstDelayMs: 60_000,
    });
    // Neither v9 nor the previous v1 loads: nothing serves fraud (it said "the previous one keeps serving").
    await applier.apply('fraud', [promoted('v1'), { kind: 'PROMOTED', version: 'v9', previous_version: 'v1' }]);
    expect(table.get('fraud')).toBeUndefined();
    expect(table.unservedProduction('fraud')).toEqual({ version: 'v9', retriable: true, code: 'NOT_FOUND' });
    // w1 loads, w9 does not: w1 serves on.
    await applier.apply('other', [promoted('w1'), { kind: 'PROMOTED', version: 'w9', previous_version: 'w1' }]);
    expect(table.get('other')?.production.loaded.version).toBe('w1');
    expect(table.unservedProduction('other')).toBeUndefined();
    expect(lines).toEqual([
      {
        obj: expect.objectContaining({ model: 'fraud', version: 'v9' }),
        msg: 'production version could not be loaded and no version of the model serves: predict answers 503 until one does; retrying',
      },
      {
        obj: expect.objectContaining({ model: 'other' }),
        msg: 'production version could not be loaded; the previous one keeps serving, retrying',
      },
    ]);
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

describe('stage applier: failures retrying cannot mend are not retried', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const views = parseFeatureViewsText(VIEWS_YAML);
  /** A logger keeping its error lines. */
  function errorLines() {
    const lines: Array<{ obj: object; msg: string | undefined }> = [];
    return { lines, logger: { ...silentLogger, error: (obj: object, msg?: string) => void lines.push({ obj, msg }) } };
  }

  it('a failure that is not retriable is applied once, not on a timer; the next event applies afresh', async () => {
    const calls: string[][] = [];
    const { lines, logger } = errorLines();
    const applier = createStageApplier({
      apply: async (_model, events) => {
        calls.push(events.map((e) => `${e.kind}:${e.version}`));
        throw new DriftlineError('VALIDATION_FAILED', 'model.json is not JSON');
      },
      logger,
      firstDelayMs: 5,
    });
    await applier.apply('fraud', [promoted('v2')]);
    await sleep(100); // twenty first delays
    expect(calls).toEqual([['PROMOTED:v2']]);
    expect(applier.pending()).toEqual([]);
    expect(applier.failed()).toEqual(['fraud']);
    expect(lines).toEqual([
      {
        obj: expect.objectContaining({ model: 'fraud', code: 'VALIDATION_FAILED' }),
        msg: expect.stringMatching(/not retried/),
      },
    ]);
    // Not held either: the next event goes alone.
    await applier.apply('fraud', [{ kind: 'SHADOW', version: 'v3' }]);
    expect(calls).toEqual([['PROMOTED:v2'], ['SHADOW:v3']]);
    applier.stop();
  });

  it('a production whose load kills the load thread is retried with backoff, then given up: one error line, a metric, no more loads until models.v1 publishes it again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ms-stage-give-up-'));
    for (const [version, seed] of [
      ['v1', 1],
      ['v2', 2],
      ['v3', 3],
    ] as const) {
      writeVersion(dir, 'fraud', version, seed);
    }
    let killing = false;
    const threads: Worker[] = [];
    // Each thread started while `killing` dies as one out of memory would, with the load posted to it.
    const loader = threadedArtifactLoader(dir, {
      onWorker: (w) => {
        threads.push(w);
        if (killing) w.once('online', () => void w.terminate());
      },
    });
    const loads: string[] = [];
    const { lines, logger } = errorLines();
    const table = new ServingTable({
      views,
      canaries: new Map(),
      shadows: new Map(),
      logger,
      load: (model, version) => {
        loads.push(version);
        return loader.load(model, version);
      },
    });
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const applier = createStageApplier({
      apply: (m, e, replayed) => table.apply(m, e, replayed),
      givenUp: (m) => table.givenUp(m),
      logger,
      registry,
      firstDelayMs: 5,
      maxDelayMs: 20,
    });
    try {
      await applier.apply('fraud', [promoted('v1')]);
      killing = true;
      await threads.at(-1)?.terminate(); // idle: v2's load starts a thread of its own
      await applier.apply('fraud', [promoted('v2')]);
      const givenUpLine = () => lines.some((l) => /given up/.test(l.msg ?? ''));
      await expect
        .poll(() => givenUpLine() || loads.length > 1 + MAX_LOAD_THREAD_DEATHS, { timeout: 10_000 })
        .toBe(true);
      await sleep(150); // many retry delays
      expect(loads).toEqual(['v1', ...Array(MAX_LOAD_THREAD_DEATHS).fill('v2')]);
      expect(applier.failed()).toEqual(['fraud']);
      expect(table.get('fraud')?.production.loaded.version).toBe('v1');
      expect(table.givenUp('fraud')).toEqual(['v2']);
      const givenUp = lines.filter((l) => /given up/.test(l.msg ?? ''));
      expect(givenUp).toEqual([
        {
          obj: expect.objectContaining({
            model: 'fraud',
            version: 'v2',
            err: expect.stringMatching(/load thread exited/),
          }),
          msg: expect.stringMatching(/given up/),
        },
      ]);
      expect(await registry.getSingleMetricAsString('driftline_model_server_versions_given_up')).toMatch(
        /model="fraud"[^}]*\} 1$/m,
      );
      // Another version's event does not load v2 again.
      killing = false;
      await applier.apply('fraud', [{ kind: 'SHADOW', version: 'v3' }]);
      expect(loads.filter((v) => v === 'v2')).toHaveLength(MAX_LOAD_THREAD_DEATHS);
      expect(table.describe()).toEqual([{ model: 'fraud', production: 'v1', shadows: ['v3'] }]);
      // A new publication of v2 loads it again (it loads now).
      await applier.apply('fraud', [promoted('v2')]);
      expect(table.get('fraud')?.production.loaded.version).toBe('v2');
      expect(table.givenUp('fraud')).toEqual([]);
      expect(await registry.getSingleMetricAsString('driftline_model_server_versions_given_up')).toMatch(
        /model="fraud"[^}]*\} 0$/m,
      );
      expect(lines.filter((l) => /given up/.test(l.msg ?? ''))).toHaveLength(1);
    } finally {
      applier.stop();
      await loader.close();
    }
  });

  it('a malformed artifact (not retriable) is given up at once, canary or production: one error line each, never retried', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ms-stage-malformed-'));
    writeVersion(dir, 'fraud', 'v1', 1);
    for (const version of ['v2', 'v3']) {
      mkdirSync(join(dir, 'fraud', version), { recursive: true });
      writeFileSync(join(dir, 'fraud', version, 'model.json'), '{"learner": 1}');
      writeFileSync(join(dir, 'fraud', version, 'meta.json'), '{}');
    }
    const loads: string[] = [];
    const { lines, logger } = errorLines();
    const table = new ServingTable({
      views,
      canaries: new Map(),
      shadows: new Map(),
      logger,
      load: (model, version) => {
        loads.push(version);
        return artifactLoader(dir)(model, version);
      },
    });
    const applier = createStageApplier({
      apply: (m, e, replayed) => table.apply(m, e, replayed),
      givenUp: (m) => table.givenUp(m),
      logger,
      firstDelayMs: 5,
    });
    await applier.apply('fraud', [promoted('v1'), { kind: 'CANARY', version: 'v2', canary_share: 0.5 }]);
    await applier.apply('fraud', [promoted('v3')]);
    await sleep(100); // twenty first delays
    expect(loads).toEqual(['v1', 'v2', 'v3']);
    expect(applier.pending()).toEqual([]);
    expect(table.describe()).toEqual([{ model: 'fraud', production: 'v1', shadows: [] }]);
    expect(table.givenUp('fraud')).toEqual(['v2', 'v3']);
    expect(lines.map((l) => (l.obj as { version?: string }).version)).toEqual(['v2', 'v3']);
    expect(lines.every((l) => /given up/.test(l.msg ?? ''))).toBe(true);
    applier.stop();
  });
});

describe('nothing of a promoted model serves: what its later events do (found by a review)', () => {
  const views = parseFeatureViewsText(VIEWS_YAML);
  /** A table and applier whose `missing` versions fail to load retriably (files not there) and `broken` ones for good (malformed). */
  function setUp() {
    const missing = new Set<string>();
    const broken = new Set<string>();
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const table = new ServingTable({
      views,
      canaries: new Map(),
      shadows: new Map(),
      logger: silentLogger,
      load: async (model, version) => {
        if (missing.has(version)) throw notThereYet(`ENOENT ${version}/model.json`);
        if (broken.has(version)) throw new DriftlineError('VALIDATION_FAILED', `${version}: model.json cut short`);
        return buildVersion(model, version, syntheticModelJson(version.length, 5, 3, 4), { features: FEATURES });
      },
    });
    const applier = createStageApplier({
      apply: (m, e, replayed) => table.apply(m, e, replayed),
      givenUp: (m) => table.givenUp(m),
      unserved: (m) => table.unservedProduction(m),
      logger: silentLogger,
      registry,
      firstDelayMs: 60_000,
    });
    const pending = async (model: string) =>
      new RegExp(`model="${model}"[^}]*\\} (\\d)$`, 'm').exec(
        await registry.getSingleMetricAsString('driftline_model_server_stage_pending'),
      )?.[1];
    return { missing, broken, table, applier, pending };
  }

  it('a rollback of a production given up serves the previous version once it loads (it stayed 503 until a restart)', async () => {
    const { missing, broken, table, applier, pending } = setUp();
    // At start v9 is malformed (given up) and the previous v1's files are missing: nothing serves.
    broken.add('v9');
    missing.add('v1');
    await applier.apply('fraud', [promoted('v1'), { kind: 'PROMOTED', version: 'v9', previous_version: 'v1' }]);
    expect(table.get('fraud')).toBeUndefined();
    expect(table.unservedProduction('fraud')).toMatchObject({ version: 'v9', retriable: false });
    expect(await pending('fraud')).toBe('1');
    // v1's files back, the controller rolls v9 back to v1: v1 serves.
    missing.delete('v1');
    await applier.apply('fraud', [{ kind: 'ROLLED_BACK', version: 'v9', previous_version: 'v1' }]);
    expect(table.describe()).toEqual([{ model: 'fraud', production: 'v1', shadows: [] }]);
    expect(table.unservedProduction('fraud')).toBeUndefined();
    expect(await pending('fraud')).toBe('0');
    applier.stop();
  });

  it('the pending gauge stays 1 through a later event while nothing serves (a TRAINED set it to 0)', async () => {
    const { broken, table, applier, pending } = setUp();
    broken.add('v1');
    await applier.apply('fraud', [promoted('v1')]);
    expect(await pending('fraud')).toBe('1');
    await applier.apply('fraud', [{ kind: 'TRAINED', version: 'v10' }]);
    expect(table.unservedProduction('fraud')).toMatchObject({ version: 'v1', retriable: false });
    expect(await pending('fraud')).toBe('1');
    // Published again with good files: served, and the gauge down.
    broken.delete('v1');
    await applier.apply('fraud', [promoted('v1')]);
    expect(table.get('fraud')?.production.loaded.version).toBe('v1');
    expect(await pending('fraud')).toBe('0');
    applier.stop();
  });

  it('a production that never loaded is not watched by the one that replaced it, which then serves with nothing pending', async () => {
    const { missing, broken, table, applier, pending } = setUp();
    // x9's files missing (held, retried), then x10 promoted and loadable: x9 was watched, retried
    // for ever as a shadow, and the model pending for good.
    missing.add('x9');
    await applier.apply('fraud', [promoted('x9')]);
    expect(applier.pending()).toEqual(['fraud']);
    await applier.apply('fraud', [{ kind: 'PROMOTED', version: 'x10', previous_version: 'x9' }]);
    expect(table.describe()).toEqual([{ model: 'fraud', production: 'x10', shadows: [] }]);
    expect(applier.pending()).toEqual([]);
    expect(await pending('fraud')).toBe('0');
    // The same for a production given up (malformed): z10 serves, z9 not watched.
    broken.add('z9');
    await applier.apply('other', [promoted('z9')]);
    await applier.apply('other', [{ kind: 'PROMOTED', version: 'z10', previous_version: 'z9' }]);
    expect(table.describe().find((d) => d.model === 'other')).toEqual({
      model: 'other',
      production: 'z10',
      shadows: [],
    });
    expect(applier.failed()).toEqual([]);
    expect(await pending('other')).toBe('0');
    // A watched version that was never tried as production here stays watched (what models.v1 says).
    await applier.apply('third', [promoted('w1'), { kind: 'PROMOTED', version: 'w2', previous_version: 'w1' }]);
    expect(table.describe().find((d) => d.model === 'third')).toEqual({
      model: 'third',
      production: 'w2',
      shadows: ['w1'],
    });
    applier.stop();
  });

  it('a successful application leaves the gauge at 1 while the model is unserved', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const applier = createStageApplier({
      apply: async () => {},
      unserved: () => ({ version: 'v9', retriable: false, code: 'VALIDATION_FAILED' }),
      logger: silentLogger,
      registry,
    });
    await applier.apply('fraud', [{ kind: 'TRAINED', version: 'v10' }]);
    expect(await registry.getSingleMetricAsString('driftline_model_server_stage_pending')).toMatch(
      /model="fraud"[^}]*\} 1$/m,
    );
    applier.stop();
  });
});

describe('stage applier: bounds on what models.v1 may make it hold (found by a review)', () => {
  it('follows at most maxModels models: the events of more are refused, counted, said once a minute', async () => {
    const applied: string[] = [];
    const lines: Array<Record<string, unknown>> = [];
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const applier = createStageApplier({
      apply: async (model) => void applied.push(model),
      logger: { ...silentLogger, error: (obj: object) => void lines.push(obj as Record<string, unknown>) },
      registry,
      maxModels: 3,
    });
    for (let i = 0; i < 6; i++) await applier.apply(`model_${i}`, [promoted('v1')]);
    // A model followed already is applied as before.
    await applier.apply('model_1', [promoted('v2')]);
    expect(applied).toEqual(['model_0', 'model_1', 'model_2', 'model_1']);
    expect(lines).toEqual([expect.objectContaining({ model: 'model_3', models: 3, refused_since_last_line: 1 })]);
    expect(await registry.getSingleMetricAsString('driftline_model_server_model_events_refused_total')).toMatch(
      /reason="too_many_models"[^}]*\} 3$/m,
    );
    expect(MAX_MODELS).toBe(1_000);
    applier.stop();
  });

  it('counts the models followed now: one whose versions all ended frees its place; the stages of at most as many such are kept', async () => {
    // Found by a review: every name ever seen on models.v1 (the replay included) held a place for
    // good, so the 1,001st name in log order was never served however many before it had ended.
    const table = everyVersionLoads();
    const forgotten: string[] = [];
    const applier = createStageApplier({
      apply: (m, e, replayed) => table.apply(m, e, replayed),
      follows: (m) => table.follows(m),
      forget: (m) => {
        forgotten.push(m);
        void table.forget(m);
      },
      logger: silentLogger,
      maxModels: 2,
    });
    const at = (kind: StageEvent['kind'], version: string, t: number): StageEvent => ({ kind, version, event_time: t });
    // Experiments shadowed then rejected, and one only trained: none is followed once applied.
    for (const name of ['exp_1', 'exp_2', 'exp_3'])
      await applier.apply(name, [at('SHADOW', 'v1', 100), at('REJECTED', 'v1', 200)]);
    await applier.apply('trained_only', [at('TRAINED', 'v1', 100)]);
    await applier.apply('a', [at('PROMOTED', 'v1', 300)]);
    await applier.apply('b', [at('PROMOTED', 'v1', 300)]);
    expect([table.get('a')?.production.loaded.version, table.get('b')?.production.loaded.version]).toEqual([
      'v1',
      'v1',
    ]);
    // Two models followed: a third is refused, and a model followed takes its events as before.
    await applier.apply('c', [at('PROMOTED', 'v1', 300)]);
    expect(table.get('c')).toBeUndefined();
    await applier.apply('a', [at('PROMOTED', 'v2', 400)]);
    expect(table.get('a')?.production.loaded.version).toBe('v2');
    // The stages of the 2 newest models no longer followed are kept; the older ones forgotten.
    expect(forgotten).toEqual(['exp_1', 'exp_2']);
    expect(table.follows('exp_3')).toBe(false);
    // A promoted model's versions cannot all end (never without production): b stays followed.
    await applier.apply('b', [at('ROLLED_BACK', 'v1', 500)]);
    expect(table.follows('b')).toBe(true);
    await applier.apply('c', [at('PROMOTED', 'v1', 600)]);
    expect(table.get('c')).toBeUndefined();
    applier.stop();
  });

  it('a model kept as no longer followed still ignores a stale event of a version that ended; one forgotten starts afresh', async () => {
    const table = everyVersionLoads();
    const applier = createStageApplier({
      apply: (m, e, replayed) => table.apply(m, e, replayed),
      follows: (m) => table.follows(m),
      forget: (m) => void table.forget(m),
      logger: silentLogger,
      maxModels: 2,
    });
    const at = (kind: StageEvent['kind'], version: string, t: number): StageEvent => ({ kind, version, event_time: t });
    for (const name of ['exp_1', 'exp_2', 'exp_3'])
      await applier.apply(name, [at('SHADOW', 'v1', 100), at('REJECTED', 'v1', 200)]);
    // A re-delivered SHADOW dated before the rejection: ignored for exp_3 (kept), applied for exp_1 (forgotten).
    await applier.apply('exp_3', [at('SHADOW', 'v1', 100)]);
    await applier.apply('exp_1', [at('SHADOW', 'v1', 100)]);
    expect([table.follows('exp_3'), table.follows('exp_1')]).toEqual([false, true]);
    applier.stop();
  });

  it('the start-up replay applies every model at once: a new model past the bound waits for the ended ones in flight, none refused while one may free a place', async () => {
    // Found by a review: the follower applies the replay with Promise.all, so the bound counted the
    // experiments still being applied, and `a` (the third name, maxModels 2) was refused and never
    // served although both experiments before it ended.
    const table = everyVersionLoads();
    const lines: Array<Record<string, unknown>> = [];
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const applier = createStageApplier({
      apply: (m, e, replayed, from) => table.apply(m, e, replayed, from),
      follows: (m) => table.follows(m),
      forget: (m) => void table.forget(m),
      logger: { ...silentLogger, error: (obj: object) => void lines.push(obj as Record<string, unknown>) },
      registry,
      maxModels: 2,
    });
    const follower = modelsFollower((model, events, replay) => applier.apply(model, events, replay), {
      admit: (model, events) => applier.admit(model, events),
    });
    const ev = (model: string, kind: ModelEvent['kind'], version: string, t: number): ModelEvent => ({
      model,
      version,
      kind,
      event_time: t,
      request_id: null,
      metrics: {},
      artifact_uri: '',
      reference_uri: null,
      decided_by: 'operator:test',
    });
    let offset = 0;
    const batch = (events: ModelEvent[]) =>
      follower.process(
        events.map((value) => ({
          record: {
            topic: 'models.v1',
            partition: 0,
            offset: String(offset++),
            key: null,
            value: null,
            headers: {},
            timestamp: 0,
          },
          value,
        })),
        { partition: 0 },
      );
    await batch([
      ev('exp_1', 'SHADOW', 'v1', 100),
      ev('exp_1', 'REJECTED', 'v1', 200),
      ev('exp_2', 'SHADOW', 'v1', 100),
      ev('exp_2', 'REJECTED', 'v1', 200),
      ev('a', 'PROMOTED', 'v1', 300),
      ev('b', 'SHADOW', 'v1', 300),
      ev('c', 'PROMOTED', 'v1', 300),
    ]);
    expect(await follower.finishReplay()).toBe(5);
    expect(table.get('a')?.production.loaded.version).toBe('v1');
    expect([table.follows('a'), table.follows('b'), table.follows('exp_1')]).toEqual([true, true, false]);
    // The bound holds: with a and b followed and nothing left under way, c is refused, once.
    expect(table.get('c')).toBeUndefined();
    expect(lines).toEqual([expect.objectContaining({ model: 'c', models: 2, refused_since_last_line: 1 })]);
    // A batch after the replay is applied at once too: d waits for a's application, which frees no
    // place (a stays followed), then is refused; b's shadow rejected in the same batch as e frees
    // its place for e.
    await batch([ev('a', 'PROMOTED', 'v2', 500), ev('d', 'PROMOTED', 'v1', 500)]);
    expect([table.get('a')?.production.loaded.version, table.get('d')]).toEqual(['v2', undefined]);
    await batch([ev('b', 'REJECTED', 'v1', 600), ev('e', 'PROMOTED', 'v1', 600)]);
    expect(table.get('e')?.production.loaded.version).toBe('v1');
    expect(table.follows('b')).toBe(false);
    expect(await registry.getSingleMetricAsString('driftline_model_server_model_events_refused_total')).toMatch(
      /reason="too_many_models"[^}]*\} 2$/m,
    );
    applier.stop();
  });

  it('a model waiting for a place takes its later events behind the first, in order, and is applied once one frees', async () => {
    const applied: Array<[string, string[]]> = [];
    let end!: () => void;
    const ended = new Promise<void>((resolve) => {
      end = resolve;
    });
    const followed = new Set<string>();
    const applier = createStageApplier({
      apply: async (model, events) => {
        if (model === 'exp') await ended;
        applied.push([model, events.map((e) => `${e.kind}:${e.version}`)]);
        if (model !== 'exp') followed.add(model);
      },
      follows: (m) => followed.has(m),
      logger: silentLogger,
      maxModels: 1,
    });
    const first = applier.apply('exp', [{ kind: 'REJECTED', version: 'v1' }]);
    const shadow = applier.apply('x', [{ kind: 'SHADOW', version: 'v1' }]);
    const promotion = applier.apply('x', [promoted('v1')]);
    expect(applied).toEqual([]);
    end();
    await Promise.all([first, shadow, promotion]);
    expect(applied).toEqual([
      ['exp', ['REJECTED:v1']],
      ['x', ['SHADOW:v1', 'PROMOTED:v1']],
    ]);
    applier.stop();
  });

  it('at most 10 retry lines a minute, the failures of the other models summed in one line at its end', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const lines: Array<{ obj: Record<string, unknown>; msg: string | undefined }> = [];
      const applier = createStageApplier({
        apply: async (model) => {
          throw notThereYet(`ENOENT ${model}/v1/model.json`);
        },
        logger: {
          ...silentLogger,
          error: (obj: object, msg?: string) => void lines.push({ obj: obj as Record<string, unknown>, msg }),
        },
        firstDelayMs: 600_000,
        maxDelayMs: 600_000,
      });
      // Before, 30 lines at once (20,000 for 20,000 models), then one per model per retry.
      for (let i = 0; i < 30; i++) await applier.apply(`model_${i}`, [promoted('v1')]);
      expect(applier.pending()).toHaveLength(30);
      expect(lines).toHaveLength(10);
      await vi.advanceTimersByTimeAsync(60_000);
      expect(lines).toHaveLength(11);
      expect(lines[10]).toEqual({
        obj: {
          models: 20,
          failures: 20,
          sample: ['model_10', 'model_11', 'model_12', 'model_13', 'model_14'],
          err: 'ENOENT model_10/v1/model.json',
        },
        msg: 'versions the stages name still do not load for 20 more models (their lines left out, at most 10 a minute); retrying: see driftline_model_server_stage_pending',
      });
      applier.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('refuses events dated beyond the event-time bound: a far-future one froze the model (every later transition stale)', async () => {
    const table = everyVersionLoads();
    const lines: Array<Record<string, unknown>> = [];
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const now = 1_800_000_000_000;
    const applier = createStageApplier({
      apply: (m, e, replayed) => table.apply(m, e, replayed),
      logger: { ...silentLogger, error: (obj: object) => void lines.push(obj as Record<string, unknown>) },
      registry,
      now: () => now,
      eventTime: { maxFutureMs: 3_600_000, minMs: 0 },
    });
    const at = (kind: StageEvent['kind'], version: string, t: number, previous?: string): StageEvent => ({
      kind,
      version,
      event_time: t,
      ...(previous === undefined ? {} : { previous_version: previous }),
    });
    await applier.apply('fraud', [at('PROMOTED', 'v1', now - 10)]);
    // 9e18 and microseconds: refused, v1 serves on.
    await applier.apply('fraud', [at('PROMOTED', 'v2', 9e18, 'v1')]);
    await applier.apply('fraud', [at('PROMOTED', 'v3', now * 1_000, 'v1')]);
    expect(table.get('fraud')?.production.loaded.version).toBe('v1');
    expect(lines).toEqual([
      expect.objectContaining({
        model: 'fraud',
        version: 'v2',
        kind: 'PROMOTED',
        err: expect.stringMatching(/in the future/),
      }),
    ]);
    expect(await registry.getSingleMetricAsString('driftline_model_server_model_events_refused_total')).toMatch(
      /reason="future_event_time"[^}]*\} 2$/m,
    );
    // Later transitions of the model apply (taken, the far-future one made them all stale).
    await applier.apply('fraud', [at('PROMOTED', 'v2', now, 'v1')]);
    expect(table.get('fraud')?.production.loaded.version).toBe('v2');
    await applier.apply('fraud', [at('ROLLED_BACK', 'v2', now + 1, 'v1')]);
    expect(table.get('fraud')?.production.loaded.version).toBe('v1');
    // Within the bound (clock skew): applied.
    await applier.apply('fraud', [at('PROMOTED', 'v4', now + 3_000_000, 'v1')]);
    expect(table.get('fraud')?.production.loaded.version).toBe('v4');
    applier.stop();
  });

  it("applies an event dated past the bound by less than the bound again (this server's clock behind its producer's), with a warning; beyond, refused", async () => {
    const table = everyVersionLoads();
    const warnings: Array<Record<string, unknown>> = [];
    const errors: Array<Record<string, unknown>> = [];
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const now = 1_800_000_000_000;
    const hour = 3_600_000;
    const applier = createStageApplier({
      apply: (m, e, replayed) => table.apply(m, e, replayed),
      logger: {
        ...silentLogger,
        warn: (obj: object) => void warnings.push(obj as Record<string, unknown>),
        error: (obj: object) => void errors.push(obj as Record<string, unknown>),
      },
      registry,
      now: () => now,
      eventTime: { maxFutureMs: hour, minMs: 0 },
    });
    const refused = async () =>
      (await registry.getSingleMetricAsString('driftline_model_server_model_events_refused_total'))
        .split('\n')
        .filter((l) => l.startsWith('driftline_'));
    await applier.apply('fraud', [{ kind: 'PROMOTED', version: 'v1', event_time: now - 10 }]);
    // The controller's clock 59 min ahead (within the bound on its own), this server's 2 min behind:
    // 61 min ahead here. Refused before, and never applied again: the canary never served here.
    await applier.apply('fraud', [
      { kind: 'SHADOW', version: 'v2', event_time: now + 61 * 60_000 },
      { kind: 'CANARY', version: 'v2', canary_share: 0.1, event_time: now + 61 * 60_000 + 1 },
    ]);
    expect(table.describe()).toEqual([
      { model: 'fraud', production: 'v1', canary: { version: 'v2', share: 0.1 }, shadows: [] },
    ]);
    // One warning a minute, the others counted in the next.
    expect(warnings).toEqual([
      expect.objectContaining({
        model: 'fraud',
        version: 'v2',
        kind: 'SHADOW',
        ahead_ms: 61 * 60_000,
        since_last_line: 1,
      }),
    ]);
    expect(errors).toEqual([]);
    // Nothing refused, and both series there from the start: an alert on increase() sees a first refusal.
    expect(await refused()).toEqual([
      expect.stringMatching(/reason="future_event_time".*\} 0$/),
      expect.stringMatching(/reason="too_many_models".*\} 0$/),
    ]);
    // Its promotion, as far ahead as twice the bound: applied too.
    await applier.apply('fraud', [
      { kind: 'PROMOTED', version: 'v2', previous_version: 'v1', event_time: now + 2 * hour },
    ]);
    expect(table.get('fraud')?.production.loaded.version).toBe('v2');
    // Beyond twice the bound: refused, with its line naming the allowed span.
    await applier.apply('fraud', [
      { kind: 'ROLLED_BACK', version: 'v2', previous_version: 'v1', event_time: now + 2 * hour + 1 },
    ]);
    expect(table.get('fraud')?.production.loaded.version).toBe('v2');
    expect(errors).toEqual([
      expect.objectContaining({
        version: 'v2',
        kind: 'ROLLED_BACK',
        err: expect.stringMatching(/at most 2 hours allowed/),
      }),
    ]);
    expect(await refused()).toEqual([
      expect.stringMatching(/reason="future_event_time".*\} 1$/),
      expect.stringMatching(/reason="too_many_models".*\} 0$/),
    ]);
    applier.stop();
  });
});
