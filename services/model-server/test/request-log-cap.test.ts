import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@driftline/core';
import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import { createMetricsRegistry } from '@driftline/observability';
import { InMemoryOnlineStore } from '@driftline/online-store';
import type { PredictionEvent } from '@driftline/schemas';
import { syntheticModelJson } from '@driftline/scoring/bench';
import { eventually } from '@driftline/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addPredictionSizes, approxRecordBytes, createAdmission, stringValueBytes } from '../src/admission.js';
import { artifactLoader } from '../src/artifacts.js';
import { type ModelServer, startModelServer } from '../src/server.js';

// Found by a review: the per-request cap counted whole records, so ordinary numeric batches the
// settings allow were 413s (10,000 instances of 256 doubles, 3 versions: ~130 MB estimated), and
// it counted strings in UTF-16 units, so a 65,536-character value of `€` (196,608 UTF-8 bytes)
// passed at a third of its size. It now counts the UTF-8 bytes of string feature values only.

const record = (features: PredictionEvent['features']): PredictionEvent => ({
  prediction_id: 'p',
  model: 'm',
  model_version: 'v1',
  entity_id: 'u',
  event_time: 0,
  features,
  prediction: 0.5,
  predicted_class: null,
  role: 'production',
  scores: null,
});
const CAP = 64 * 1_048_576;
const EURO = '€'.repeat(65_536);

describe('what the per-request log cap counts', () => {
  it('the UTF-8 bytes of string feature values (a € is 3 bytes), nothing of numbers', () => {
    expect(stringValueBytes(record({ a: EURO, b: 'x'.repeat(10), c: 1.5, d: null }))).toBe(3 * 65_536 + 10);
    expect(stringValueBytes(record({ a: 1, b: 2 }))).toBe(0);
    // The buffer bound's estimate counts UTF-8 too: a 64 K-character € value is ~192 KiB, not 64 KiB.
    expect(approxRecordBytes(record({ a: EURO }))).toBeGreaterThan(3 * 65_536);
    expect(approxRecordBytes(record({ a: 'x'.repeat(65_536) }))).toBeLessThan(65_536 + 200);
  });

  it('330 copies of a 65,536-character € value in 3 versions (~186 MiB as UTF-8) are a 413', async () => {
    const admission = createAdmission<PredictionEvent>({
      bound: { records: 100_000, bytes: 256 * 1_048_576 },
      maxWaitMs: 0,
      backlog: () => 0,
      enqueue: () => {},
      sizesOf: addPredictionSizes,
      maxRequestBytes: CAP,
    });
    const rec = record({ s: EURO });
    const refused = await admission.admit(Array.from({ length: 990 }, () => rec)).catch((e: unknown) => e);
    expect(refused).toMatchObject({ status: 413 });
    expect(String((refused as Error).message)).toMatch(
      /^request would log 194641920 bytes of string feature values \(990 records, all versions\), over DRIFTLINE_MODEL_SERVER_MAX_REQUEST_LOG_BYTES \(67108864\)/,
    );
  });
});

/** 256 doubles with 16-character names (view `wide`), and a string feature the versions take as a category. */
const NUMERIC = Array.from({ length: 256 }, (_, i) => `numeric_feat_${String(i).padStart(3, '0')}`);
const FEATURES = [...NUMERIC, 'other'];
const VIEWS = `views:
  - name: wide
    entity: user_id
    ttl: 1d
    features:
${FEATURES.map((f) => `      ${f}: ${f === 'other' ? 'string' : 'double'}`).join('\n')}
`;

describe('the per-request log cap on a served model (production, canary, shadow)', () => {
  const views = parseFeatureViewsText(VIEWS);
  const dir = mkdtempSync(join(tmpdir(), 'request-log-cap-'));
  for (const [version, seed] of [
    ['v1', 1],
    ['v2', 2],
    ['v3', 3],
  ] as const) {
    const json = syntheticModelJson(seed, 10, 4, FEATURES.length) as { learner: { feature_names: string[] } };
    json.learner.feature_names = FEATURES;
    mkdirSync(join(dir, 'm', version), { recursive: true });
    writeFileSync(join(dir, 'm', version, 'model.json'), JSON.stringify(json));
    writeFileSync(
      join(dir, 'm', version, 'meta.json'),
      JSON.stringify({ features: FEATURES, categories: { other: ['x', 'y'] } }),
    );
  }
  let server: ModelServer;
  let logged = 0;
  const post = async (instances: Array<{ entity_id: string }>) => {
    const res = await fetch(`http://127.0.0.1:${server.port}/v1/models/m:predict`, {
      method: 'POST',
      body: JSON.stringify({ instances }),
    });
    return { status: res.status, body: (await res.json()) as { error?: { message: string }; predictions?: unknown[] } };
  };

  beforeAll(async () => {
    const store = new InMemoryOnlineStore();
    server = await startModelServer({
      store,
      views,
      load: artifactLoader(dir),
      log: {
        publish: async (events) => {
          logged += events.length;
        },
        deadLetter: async () => {},
      },
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      logger: silentLogger,
      maxBatch: 10_000,
      logBounds: { maxBuffered: 100_000 },
    });
    const t = Date.now();
    const numbers = (i: number) => Object.fromEntries(NUMERIC.map((f, j) => [f, i + j / 1_000]));
    const event = (id: string, i: number, other: string) =>
      validateFeatureEvent(views, {
        event_id: `e-${id}`,
        view: 'wide',
        entity_id: id,
        event_time: t,
        features: { ...numbers(i), other },
      });
    await store.write(
      planWrites([
        ...Array.from({ length: 50 }, (_, i) => event(`u${i}`, i, i % 2 === 0 ? 'x' : 'y')),
        event('big', 0, 'z'.repeat(65_536)),
      ]),
    );
    await server.table.promote('m', 'v1');
    await server.table.apply('m', [
      { kind: 'CANARY', version: 'v2', canary_share: 0.1 },
      { kind: 'SHADOW', version: 'v3' },
    ]);
  }, 60_000);
  afterAll(async () => {
    await server.close();
  });

  it('serves 10,000 instances of 256 numeric features (a 413 when the cap counted whole records)', async () => {
    const answer = await post(Array.from({ length: 10_000 }, (_, i) => ({ entity_id: `u${i % 50}` })));
    expect(answer.body.error?.message).toBeUndefined();
    expect(answer.status).toBe(200);
    expect(answer.body.predictions).toHaveLength(10_000);
    // Logged: the answered record and the shadow's of each instance.
    await eventually(async () => (logged === 20_000 ? true : undefined), 30_000, 20);
  }, 60_000);

  it('answers 413 to 1,000 copies of an entity holding a 64 KiB string (answered and shadow records: 125 MiB)', async () => {
    const answer = await post(Array.from({ length: 1_000 }, () => ({ entity_id: 'big' })));
    expect(answer.status).toBe(413);
    expect(answer.body.error?.message).toMatch(
      /^request would log 131072000 bytes of string feature values \(2000 records, all versions\), over DRIFTLINE_MODEL_SERVER_MAX_REQUEST_LOG_BYTES/,
    );
  }, 60_000);
});
