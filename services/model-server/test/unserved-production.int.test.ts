import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadXgboostModel } from '@driftline/scoring';
import { eventually, freePort, uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { writeVersion } from './fixtures.js';
import { deploymentTopics, startServer } from './stack-fixtures.js';

const stack = inject('stack');

// Found by a review: started with no version of a promoted model readable, the server was ready and
// answered 404 "unknown model" (no client retries that), logging that "the previous one keeps serving".
describe('model server on the real stack: a promoted model whose artifacts are missing at start', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unserved-production-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('answers 503 with the version and why until its files return, then serves it; a canary and shadow gone fall back to production', async () => {
    writeVersion(dir, 'fraud', 'v1', 1);
    writeVersion(dir, 'fraud', 'v9', 9);
    const canaried = writeVersion(dir, 'canaried', 'v1', 21);
    const prefix = `${uniqueName('unserved')}.`;
    const topics = deploymentTopics(stack, prefix, dir);
    await topics.stage('fraud', 'PROMOTED', 'v1');
    await topics.stage('fraud', 'PROMOTED', 'v9', { previous_version: 'v1' });
    // canaried: production v1 present; its canary (all entities) and shadow have no files.
    await topics.stage('canaried', 'PROMOTED', 'v1');
    await topics.stage('canaried', 'CANARY', 'v2', { canary_share: 1 });
    await topics.stage('canaried', 'SHADOW', 'v3');
    // The artifact directory of fraud moved away before the start.
    renameSync(join(dir, 'fraud'), join(dir, 'fraud.away'));

    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const runner = await startServer(stack, dir, prefix, port, {
      DRIFTLINE_LOG_LEVEL: 'fatal',
      DRIFTLINE_FEATURE_KEY_PREFIX: uniqueName('k'),
    });
    const predict = async (model: string, body: unknown) => {
      const res = await fetch(`${base}/v1/models/${model}:predict`, { method: 'POST', body: JSON.stringify(body) });
      return {
        status: res.status,
        retryAfter: res.headers.get('retry-after'),
        body: (await res.json()) as {
          version?: string;
          prediction_id?: string;
          score?: number;
          predictions?: Array<{ version: string; role: string }>;
          error?: { code: string; message: string };
        },
      };
    };
    try {
      await eventually(async () => ((await fetch(`${base}/healthz`)).status === 200 ? true : undefined), 30_000, 50);
      const one = { entity_id: 'u1', features: { f3: 1 } };
      expect(await predict('fraud', one)).toEqual({
        status: 503,
        retryAfter: '1',
        body: {
          error: {
            code: 'SINK_UNAVAILABLE',
            message: 'model "fraud": production v9 not loaded yet (artifacts missing or unreadable); retrying',
          },
        },
      });
      expect(await predict('never', one)).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
      // Ready all the same: the instance serves its other models (README, "Nothing serves a promoted model").
      expect(runner.ready()).toBe(true);
      const listed = (await (await fetch(`${base}/v1/models`)).json()) as {
        models: Array<{ model: string; production: string; shadows: string[]; canary?: unknown }>;
        not_served: Array<{ model: string; production: string }>;
      };
      expect(listed.not_served).toEqual([expect.objectContaining({ model: 'fraud', production: 'v9' })]);
      expect(listed.models).toEqual([{ model: 'canaried', production: 'v1', shadows: [] }]);

      // The canary's share (every entity) and the shadow fall back to production: 200 from v1.
      const batch = await predict('canaried', {
        instances: Array.from({ length: 50 }, (_, i) => ({ entity_id: `e${i}`, features: { f3: i } })),
      });
      expect(batch.status).toBe(200);
      expect(new Set(batch.body.predictions?.map((p) => `${p.version}/${p.role}`))).toEqual(new Set(['v1/production']));

      // A number beyond float32 is missing to the model: logged as null, not as the number sent.
      const big = await predict('canaried', { entity_id: 'u1', features: { f0: 1e308, f1: -3.5e38, f2: 2, f3: 1 } });
      expect(big.status).toBe(200);
      expect(big.body.score).toBe(
        loadXgboostModel(canaried).predictOne(Float32Array.from([Number.NaN, Number.NaN, 2, 1])),
      );
      const [record] = await topics.logged([big.body.prediction_id!], 1);
      expect(record!.features).toEqual({ f0: null, f1: null, f2: 2, f3: 1 });

      // The files back: served by the stage retries (1 s doubling), no event needed.
      renameSync(join(dir, 'fraud.away'), join(dir, 'fraud'));
      const served = await eventually(
        async () => {
          const r = await predict('fraud', one);
          return r.status === 200 ? r : undefined;
        },
        40_000,
        250,
      );
      expect(served.body.version).toBe('v9');
      const after = (await (await fetch(`${base}/v1/models`)).json()) as { not_served: unknown[] };
      expect(after.not_served).toEqual([]);
    } finally {
      await runner.stop();
    }
  });
});
