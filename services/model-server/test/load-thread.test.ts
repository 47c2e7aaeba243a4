import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { DriftlineError } from '@driftline/core';
import { ModelFormatError } from '@driftline/scoring';
import { afterAll, describe, expect, it } from 'vitest';
import { artifactLoader } from '../src/artifacts.js';
import { MAX_LOAD_THREAD_DEATHS, threadedArtifactLoader } from '../src/load-thread.js';
import { FEATURES, writeVersion } from './fixtures.js';

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
    const threaded = await longestStall(async () => {
      loaded = await loader.load('m', 'big');
    });
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

  it('after close, loads fail without starting a thread', async () => {
    const started: Worker[] = [];
    const closing = threadedArtifactLoader(dir, { onWorker: (w) => started.push(w) });
    const inFlight = closing.load('m', 'big').catch((e: unknown) => e);
    await expect.poll(() => started.length).toBe(1); // loads start on the thread one at a time, a turn later
    await closing.close();
    expect(await inFlight).toMatchObject({ code: 'SOURCE_UNAVAILABLE' });
    await expect(closing.load('m', 'v1')).rejects.toMatchObject({ code: 'SOURCE_UNAVAILABLE' });
    expect(started).toHaveLength(1); // the in-flight load's thread, none after close
  });
});
