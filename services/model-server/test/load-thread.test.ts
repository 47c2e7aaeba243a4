import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { DriftlineError, silentLogger } from '@driftline/core';
import { parseFeatureViewsText } from '@driftline/features';
import { createMetricsRegistry } from '@driftline/observability';
import { ModelFormatError } from '@driftline/scoring';
import { afterAll, describe, expect, it } from 'vitest';
import { artifactLoader } from '../src/artifacts.js';
import { MAX_ABANDONED_LOADS, MAX_LOAD_THREAD_DEATHS, threadedArtifactLoader } from '../src/load-thread.js';
import { ServingTable } from '../src/serving.js';
import { createStageApplier } from '../src/stage-retry.js';
import { FEATURES, VIEWS_YAML, writeVersion } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'ms-load-thread-'));
writeVersion(dir, 'm', 'v1', 1);
// About 13 MB of XGBoost JSON: parsing it takes the serving thread a while.
writeVersion(dir, 'm', 'big', 2, 2_000, 6);
const workers: Worker[] = [];
const loader = threadedArtifactLoader(dir, { onWorker: (w) => workers.push(w) });
afterAll(() => loader.close());

/** Runs `work` and returns the longest the event loop went without turning meanwhile (ms). */
async function longestStall(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  try {
    await work();
    return Math.max(longest, performance.now() - last);
  } finally {
    clearInterval(timer);
  }
}

describe('the model load thread', () => {
  it('loads a version that scores exactly as one loaded in place', async () => {
    const there = await loader.load('m', 'v1');
    const here = await artifactLoader(dir)('m', 'v1');
    expect(there.features).toEqual(FEATURES);
    const rows = Float32Array.from({ length: 40 }, (_, i) => (i % 7 === 3 ? Number.NaN : Math.sin(i) * 3));
    expect(there.scorer.predict(rows)).toEqual(here.scorer.predict(rows));
  });

  it('keeps the serving thread turning while a large model parses', async () => {
    const inPlace = await longestStall(() => artifactLoader(dir)('m', 'big'));
    let loaded: Awaited<ReturnType<typeof loader.load>> | undefined;
    // The least of up to three loads: a stall of this process on a loaded machine counts whole in
    // one (a parse on this thread would stall every one).
    let threaded = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 3 && threaded >= inPlace / 3; i++) {
      const stall = await longestStall(async () => {
        loaded = await loader.load('m', 'big');
      });
      threaded = Math.min(threaded, stall);
    }
    expect(loaded?.scorer.numTrees).toBe(2_000);
    console.info(
      `longest event-loop stall loading a 2,000-tree model: in place ${inPlace.toFixed(0)} ms, on the load thread ${threaded.toFixed(0)} ms`,
    );
    // In place, the parse is one stall; on the thread, only the hand-off of the arrays remains.
    expect(threaded).toBeLessThan(inPlace / 3);
  });

  it('fails a load as loading in place does: the same class, code and field', async () => {
    const bad = join(dir, 'm', 'bad');
    mkdirSync(bad, { recursive: true });
    writeFileSync(join(bad, 'model.json'), '{"learner": 1}');
    writeFileSync(join(bad, 'meta.json'), '{}');
    const wrongMeta = join(dir, 'm', 'wrong-meta');
    mkdirSync(wrongMeta, { recursive: true });
    writeVersion(dir, 'm', 'wrong-meta', 3);
    writeFileSync(join(wrongMeta, 'meta.json'), JSON.stringify({ features: ['a', 'b'] }));
    for (const version of ['bad', 'wrong-meta', 'absent', '..']) {
      const here = await artifactLoader(dir)('m', version).catch((e: unknown) => e);
      const there = await loader.load('m', version).catch((e: unknown) => e);
      expect(here, version).toBeInstanceOf(DriftlineError);
      expect(there, version).toBeInstanceOf((here as object).constructor);
      const { code, message, retriable } = here as DriftlineError;
      expect(there, version).toMatchObject({ code, message, retriable });
      if (here instanceof ModelFormatError) expect((there as ModelFormatError).field).toBe(here.field);
    }
  });

  it('a thread that dies fails the loads in flight (retriable) and the next load starts another', async () => {
    const before = workers.length;
    const load = loader.load('m', 'big');
    await workers.at(-1)!.terminate();
    await expect(load).rejects.toMatchObject({
      code: 'INTERNAL',
      retriable: true,
      message: /model load thread exited/,
    });
    await expect(loader.load('m', 'v1')).resolves.toMatchObject({ version: 'v1' });
    expect(workers.length).toBe(before + 1);
  });

  it('a version the thread dies on fails retriably, then for good; the loads waiting behind it are not failed', async () => {
    const started: Worker[] = [];
    // The first threads die as one out of memory would, each with the load of `big` posted to it.
    const dying = threadedArtifactLoader(dir, {
      onWorker: (w) => {
        started.push(w);
        if (started.length <= MAX_LOAD_THREAD_DEATHS) w.once('online', () => void w.terminate());
      },
    });
    try {
      for (let death = 1; death < MAX_LOAD_THREAD_DEATHS; death++) {
        await expect(dying.load('m', 'big')).rejects.toMatchObject({
          retriable: true,
          message: new RegExp(
            `^model m version big: the model load thread exited .*\\(${death} of ${MAX_LOAD_THREAD_DEATHS} times\\)$`,
          ),
        });
      }
      const last = dying.load('m', 'big').catch((e: unknown) => e);
      const behind = dying.load('m', 'v1'); // asked for while big loads: not blamed for its death
      expect(await last).toMatchObject({
        code: 'INTERNAL',
        retriable: false,
        message: new RegExp(
          `^model m version big: the model load thread exited .*, ${MAX_LOAD_THREAD_DEATHS} times: given up`,
        ),
      });
      await expect(behind).resolves.toMatchObject({ version: 'v1' });
      expect(started).toHaveLength(MAX_LOAD_THREAD_DEATHS + 1);
    } finally {
      await dying.close();
    }
  });

  it('a load that never answers fails retriably at its deadline: the stage is pending, said in one line, and other models still load (found by a review)', async () => {
    // A read on a hung volume: before, no timeout, no line, the pending gauge at 0, and every
    // later load of every model queued behind it (at start, the instance never became ready).
    writeVersion(dir, 'other', 'v1', 5);
    writeVersion(dir, 'third', 'v1', 6);
    const started: Worker[] = [];
    const hanging = threadedArtifactLoader(dir, {
      loadTimeoutMs: 3_000,
      stall: { 'm/v1': Number.POSITIVE_INFINITY, 'third/v1': Number.POSITIVE_INFINITY },
      onWorker: (w) => started.push(w),
    });
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const errors: Array<Record<string, unknown>> = [];
    const table = new ServingTable({
      views: parseFeatureViewsText(VIEWS_YAML),
      load: hanging.load,
      canaries: new Map(),
      shadows: new Map(),
      logger: silentLogger,
    });
    const applier = createStageApplier({
      apply: (m, e, replayed) => table.apply(m, e, replayed),
      unserved: (m) => table.unservedProduction(m),
      logger: { ...silentLogger, error: (obj: object) => void errors.push(obj as Record<string, unknown>) },
      registry,
      firstDelayMs: 60_000,
    });
    try {
      const t0 = performance.now();
      await applier.apply('m', [{ kind: 'PROMOTED', version: 'v1' }]);
      const took = performance.now() - t0;
      expect(took).toBeGreaterThanOrEqual(2_990);
      // Its deadline counts from the thread's start (seconds under tsx on a busy machine).
      expect(took).toBeLessThan(20_000);
      expect(applier.pending()).toEqual(['m']);
      expect(await registry.getSingleMetricAsString('driftline_model_server_stage_pending')).toMatch(
        /model="m"[^}]*\} 1$/m,
      );
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({
        model: 'm',
        version: 'v1',
        err: 'model m version v1: its load did not finish within 3000 ms (a hung artifact volume?); abandoned, retried',
      });
      // Another model loads on a new thread.
      await applier.apply('other', [{ kind: 'PROMOTED', version: 'v1' }]);
      expect(table.get('other')?.production.loaded.version).toBe('v1');
      expect(started).toHaveLength(2);
      // The hung version is not loaded again while its load is out: each retry on a hung volume
      // would hold one more thread of libuv's pool.
      await expect(hanging.load('m', 'v1')).rejects.toMatchObject({
        code: 'TIMEOUT',
        retriable: true,
        message: /its previous load outlived its 3000 ms deadline and has not returned/,
      });
      // With MAX_ABANDONED_LOADS out, no load starts (each fails at once, retriably).
      expect(MAX_ABANDONED_LOADS).toBe(2);
      await expect(hanging.load('third', 'v1')).rejects.toMatchObject({ code: 'TIMEOUT', retriable: true });
      await expect(hanging.load('other', 'v1')).rejects.toMatchObject({
        code: 'TIMEOUT',
        retriable: true,
        message:
          /^model other version v1: not loaded now, 2 model loads \(m\/v1, third\/v1\) outlived their 3000 ms deadline/,
      });
      expect(started).toHaveLength(2); // third/v1 hung on the second thread, and nothing started since
    } finally {
      applier.stop();
      await hanging.close();
    }
  });

  it('a load that answers after its deadline ends its thread, and its version loads again', async () => {
    writeVersion(dir, 'late', 'v1', 10);
    const started: Worker[] = [];
    const slow = threadedArtifactLoader(dir, {
      loadTimeoutMs: 300,
      stall: { 'late/v1': 1_500 },
      onWorker: (w) => started.push(w),
    });
    try {
      await expect(slow.load('late', 'v1')).rejects.toMatchObject({ code: 'TIMEOUT', retriable: true });
      const exited = new Promise((resolve) => started[0]!.once('exit', resolve));
      await expect(slow.load('late', 'v1')).rejects.toMatchObject({ message: /has not returned/ });
      // Its volume comes back: the late answer ends the abandoned thread, and the version is loaded
      // again (on a new thread, waiting as long again: the stall is per load).
      await exited;
      const stalled = slow.load('late', 'v1');
      await expect(stalled).rejects.toMatchObject({ code: 'TIMEOUT' });
      expect(started).toHaveLength(2);
    } finally {
      await slow.close();
    }
  });

  it('refuses a model whose leaves sum beyond float32: the production before it serves on (found by a review)', async () => {
    // Every leaf 3e38 in 5 trees: it loaded, was promoted, and every request was a 500 "scored Infinity".
    const json = writeVersion(dir, 'ovf', 'v2', 7, 5, 3) as {
      learner: {
        objective: { name: string };
        learner_model_param: { base_score: string };
        gradient_booster: { model: { trees: Array<{ left_children: number[]; split_conditions: number[] }> } };
      };
    };
    json.learner.objective.name = 'reg:squarederror';
    json.learner.learner_model_param.base_score = '0';
    for (const t of json.learner.gradient_booster.model.trees)
      t.split_conditions = t.split_conditions.map((c, i) => (t.left_children[i] === -1 ? 3e38 : c));
    writeFileSync(join(dir, 'ovf', 'v2', 'model.json'), JSON.stringify(json));
    writeVersion(dir, 'ovf', 'v1', 8);
    const table = new ServingTable({
      views: parseFeatureViewsText(VIEWS_YAML),
      load: loader.load,
      canaries: new Map(),
      shadows: new Map(),
      logger: silentLogger,
    });
    await table.promote('ovf', 'v1');
    await expect(table.promote('ovf', 'v2')).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      retriable: false,
      message: /beyond float32's range: a row could score Infinity/,
    });
    const plan = table.get('ovf');
    expect(plan?.production.loaded.version).toBe('v1');
    expect(Number.isFinite(plan?.production.loaded.scorer.predictOne([0.5, -1, 2, 0]))).toBe(true);
  });

  it('reads a model.json and a meta.json that start with a UTF-8 byte order mark', async () => {
    writeVersion(dir, 'bom', 'v1', 9);
    const at = join(dir, 'bom', 'v1');
    for (const name of ['model.json', 'meta.json'])
      writeFileSync(join(at, name), `\uFEFF${readFileSync(join(at, name), 'utf8')}`);
    const v = await loader.load('bom', 'v1');
    expect(v.features).toEqual(FEATURES);
  });

  it('after close, loads fail without starting a thread', async () => {
    const started: Worker[] = [];
    const closing = threadedArtifactLoader(dir, { onWorker: (w) => started.push(w) });
    const inFlight = closing.load('m', 'big').catch((e: unknown) => e);
    // Loads start on the thread one at a time, a turn later (not the 1 s default: a loaded run).
    await expect.poll(() => started.length, { timeout: 10_000 }).toBe(1);
    await closing.close();
    expect(await inFlight).toMatchObject({ code: 'SOURCE_UNAVAILABLE' });
    await expect(closing.load('m', 'v1')).rejects.toMatchObject({ code: 'SOURCE_UNAVAILABLE' });
    expect(started).toHaveLength(1); // the in-flight load's thread, none after close
  });
});
