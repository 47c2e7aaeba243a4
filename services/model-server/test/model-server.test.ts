import { mkdirSync, mkdtempSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, DriftlineError, SinkUnavailableError, silentLogger } from '@driftline/core';
import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import { createMetricsRegistry, type Registry } from '@driftline/observability';
import { InMemoryOnlineStore } from '@driftline/online-store';
import type { PredictionEvent } from '@driftline/schemas';
import { loadXgboostModel, SERVED_MODEL_LIMITS } from '@driftline/scoring';
import { syntheticModelJson } from '@driftline/scoring/bench';
import { eventually } from '@driftline/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addPredictionSizes, approxRecordBytes } from '../src/admission.js';
import { artifactLoader, MAX_ARTIFACT_FILE_BYTES } from '../src/artifacts.js';
import { createPredictionLog, PartialPublishError } from '../src/prediction-log.js';
import { parsePredictBody } from '../src/request.js';
import { type ModelServer, startModelServer } from '../src/server.js';
import { countingReads } from '../src/service.js';
import { ServingTable, VersionsNotServedError } from '../src/serving.js';
import { parseCanaries, parseShadows } from '../src/specs.js';
import { buildVersion, planServing } from '../src/version.js';
import { chainModel, FEATURES, VIEWS_YAML, writeVersion } from './fixtures.js';

const views = parseFeatureViewsText(VIEWS_YAML);
const dir = mkdtempSync(join(tmpdir(), 'model-server-'));
const models = {
  v1: writeVersion(dir, 'm', 'v1', 1),
  v2: writeVersion(dir, 'm', 'v2', 2),
  v3: writeVersion(dir, 'm', 'v3', 3),
};
const scorer = (v: keyof typeof models) => loadXgboostModel(models[v]);
const expected = (v: keyof typeof models, row: Array<number | null>) =>
  scorer(v).predictOne(Float32Array.from(row.map((x) => (x === null ? Number.NaN : x))));

describe('static specs', () => {
  it('parses canaries and shadows; errors name the variable and the entry', () => {
    expect(parseCanaries(' m=v7@0.1, n=a.b@1')).toEqual(
      new Map([
        ['m', { version: 'v7', share: 0.1 }],
        ['n', { version: 'a.b', share: 1 }],
      ]),
    );
    expect(parseShadows('m=v8,m=v9')).toEqual(new Map([['m', ['v8', 'v9']]]));
    expect(parseCanaries('')).toEqual(new Map());
    expect(() => parseCanaries('m=v7')).toThrow(/DRIFTLINE_MODEL_SERVER_CANARY.*m: expected version@share/);
    expect(() => parseCanaries('m=v7@0')).toThrow(/share must be a number in \(0, 1\]/);
    expect(() => parseCanaries('m=v7@1.5')).toThrow(/share must be a number in \(0, 1\]/);
    expect(() => parseCanaries('m=v7@0.1,m=v8@0.2')).toThrow(/one canary per model/);
    expect(() => parseShadows('m=../x')).toThrow(/DRIFTLINE_MODEL_SERVER_SHADOW.*version "..\/x"/);
    expect(() => parseShadows('m=v1,m=v1')).toThrow(/listed twice/);
  });
});

describe('serving plan', () => {
  it('reads each view once, projected to the features of all versions; request-only features read nothing', () => {
    const v = buildVersion('m', 'v1', models.v1, { features: FEATURES });
    const plan = planServing(views, {
      production: v,
      shadows: [buildVersion('m', 'v2', models.v2, { features: FEATURES })],
    });
    expect(plan.reads.map((r) => [r.view.name, r.features])).toEqual([
      ['user', ['f0', 'f1']],
      ['account', ['f2']],
    ]);
    expect([...plan.production.sources]).toEqual([0, 0, 1, -1]);
    expect(plan.shadows[0]!.role).toBe('shadow');
  });

  it('refuses a feature two views declare', () => {
    const twice = parseFeatureViewsText(
      `${VIEWS_YAML}  - name: dup\n    entity: user_id\n    features:\n      f2: double\n`,
    );
    const v = buildVersion('m', 'v1', models.v1, { features: FEATURES });
    expect(() => planServing(twice, { production: v })).toThrow(/feature "f2" is declared by views account and dup/);
  });

  it('refuses a version that takes a string feature of its view as a number (no categories in meta.json)', () => {
    const json = syntheticModelJson(1, 5, 3, 4) as { learner: { feature_names?: string[] } };
    delete json.learner.feature_names; // inputs by position, named by meta.json
    const features = ['f0', 'f1', 'f2', 'other'];
    const numeric = buildVersion('m', 'v1', json, { features });
    expect(() => planServing(views, { production: numeric })).toThrow(
      /meta\.features\.other.*view user declares a string but version v1 takes it as a number/,
    );
    const categorical = buildVersion('m', 'v1', json, { features, categories: { other: ['gold', 'silver'] } });
    expect(planServing(views, { production: categorical }).types.get('other')).toEqual({
      type: 'string',
      view: 'user',
    });
  });

  it('a shadow with a feature two views declare is served without; the model and its later stages go on', async () => {
    const withG = parseFeatureViewsText(
      `${VIEWS_YAML}  - name: g1\n    entity: user_id\n    features:\n      f4: double\n  - name: g2\n    entity: user_id\n    features:\n      f4: double\n`,
    );
    const byVersion = new Map([
      ['v1', buildVersion('m', 'v1', models.v1, { features: FEATURES })],
      [
        'v2',
        buildVersion('m', 'v2', syntheticModelJson(2, 5, 3, FEATURES.length + 1), { features: [...FEATURES, 'f4'] }),
      ],
      ['v3', buildVersion('m', 'v3', models.v2, { features: FEATURES })],
    ]);
    const table = new ServingTable({
      views: withG,
      load: async (_model, version) => byVersion.get(version)!,
      canaries: new Map(),
      shadows: new Map(),
      logger: silentLogger,
    });
    // Production serves; the caller hears that v2 does not, and that retrying cannot change it
    // (the views are what they are): its stage applier does not retry it.
    await expect(
      table.apply('m', [
        { kind: 'PROMOTED', version: 'v1' },
        { kind: 'SHADOW', version: 'v2' },
      ]),
    ).rejects.toThrow(new VersionsNotServedError('m', ['v2'], { retriable: false }));
    expect(table.describe()).toEqual([{ model: 'm', production: 'v1', shadows: [] }]);
    await expect(table.apply('m', [{ kind: 'PROMOTED', version: 'v3' }])).rejects.toThrow(VersionsNotServedError);
    expect(table.get('m')?.production.loaded.version).toBe('v3');
    // Retired: nothing unserved any more (v1, the replaced production, is watched).
    await table.apply('m', [{ kind: 'RETIRED', version: 'v2' }]);
    expect(table.describe()).toEqual([{ model: 'm', production: 'v3', shadows: ['v1'] }]);
  });
});

describe('operator canary (DRIFTLINE_MODEL_SERVER_CANARY)', () => {
  it('says once per model and staged canary that it hides the canary models.v1 stages, naming both', async () => {
    const warnings: Array<{ fields: unknown; msg: string | undefined }> = [];
    const byVersion = new Map(
      (['v1', 'v2', 'v3', 'v4'] as const).map((v) => [
        v,
        buildVersion('m', v, models[v === 'v4' ? 'v1' : v], { features: FEATURES }),
      ]),
    );
    const table = new ServingTable({
      views,
      load: async (_model, version) => byVersion.get(version as 'v1')!,
      canaries: parseCanaries('m=v2@0.05'),
      shadows: new Map(),
      logger: { ...silentLogger, warn: (fields: unknown, msg?: string) => void warnings.push({ fields, msg }) },
    });
    await table.apply('m', [
      { kind: 'PROMOTED', version: 'v1' },
      { kind: 'SHADOW', version: 'v3' },
      { kind: 'CANARY', version: 'v3', canary_share: 0.1 },
    ]);
    expect(table.describe()).toEqual([
      { model: 'm', production: 'v1', canary: { version: 'v2', share: 0.05 }, shadows: [] },
    ]);
    expect(warnings).toEqual([
      {
        fields: { model: 'm', staged_canary: 'v3', staged_share: 0.1, override_canary: 'v2', override_share: 0.05 },
        msg: expect.stringMatching(
          /^DRIFTLINE_MODEL_SERVER_CANARY serves v2 as the canary of m instead of v3, the canary models\.v1 stages: v3 is not scored here.*rolled back, too_few_labels/,
        ),
      },
    ]);
    // The same staged canary (a new share, a retry): no second line.
    await table.apply('m', [{ kind: 'CANARY', version: 'v3', canary_share: 0.2 }]);
    expect(warnings).toHaveLength(1);
    // Another staged canary: said again.
    await table.apply('m', [
      { kind: 'ROLLED_BACK', version: 'v3' },
      { kind: 'SHADOW', version: 'v4' },
      { kind: 'CANARY', version: 'v4', canary_share: 0.1 },
    ]);
    expect(warnings.map((w) => w.fields)).toEqual([
      expect.objectContaining({ staged_canary: 'v3' }),
      expect.objectContaining({ staged_canary: 'v4', override_canary: 'v2' }),
    ]);
    // The override's version promoted: it is no canary any more, the staged one serves (no line).
    await table.apply('m', [{ kind: 'PROMOTED', version: 'v2', previous_version: 'v1' }]);
    expect(table.describe()).toEqual([
      { model: 'm', production: 'v2', canary: { version: 'v4', share: 0.1 }, shadows: ['v1'] },
    ]);
    expect(warnings).toHaveLength(2);
  });
});

interface Harness {
  server: ModelServer;
  base: string;
  logged: PredictionEvent[];
  store: InMemoryOnlineStore;
  registry: Registry;
}

async function harness(options: { canary?: string; shadow?: string; maxBodyBytes?: number } = {}): Promise<Harness> {
  const store = new InMemoryOnlineStore();
  const logged: PredictionEvent[] = [];
  const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
  const server = await startModelServer({
    store,
    views,
    load: artifactLoader(dir),
    log: {
      publish: async (events) => {
        logged.push(...events);
      },
      deadLetter: async () => {
        throw new Error('no record is refused here');
      },
    },
    registry,
    logger: silentLogger,
    canaries: parseCanaries(options.canary ?? ''),
    shadows: parseShadows(options.shadow ?? ''),
    logBounds: { flushIntervalMs: 5 },
    maxBatch: 100,
    maxBodyBytes: options.maxBodyBytes ?? 4_096,
  });
  const t = Date.now();
  const event = (view: string, entity: string, features: Record<string, number>, id: string) =>
    validateFeatureEvent(views, { event_id: id, view, entity_id: entity, event_time: t, features });
  await store.write(
    planWrites([
      event('user', 'u1', { f0: 0.5, f1: -1.25 }, 'e1'),
      event('account', 'u1', { f2: 2 }, 'e2'),
      event('user', 'u2', { f0: -0.3 }, 'e3'),
    ]),
  );
  return { server, base: `http://127.0.0.1:${server.port}`, logged, store, registry };
}

const post = (h: Harness, model: string, body: unknown) =>
  fetch(`${h.base}/v1/models/${model}:predict`, {
    method: 'POST',
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

describe('model server over the in-memory store', () => {
  it('a port in use is a ConfigError naming the variable given (it was an internal error)', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      const failure = await startModelServer({
        store: new InMemoryOnlineStore(),
        views,
        load: artifactLoader(dir),
        log: { publish: async () => {}, deadLetter: async () => {} },
        registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
        logger: silentLogger,
        port,
        host: '127.0.0.1',
        listenVariables: { port: 'DRIFTLINE_MODEL_SERVER_PORT', host: 'DRIFTLINE_MODEL_SERVER_HOST' },
      }).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(ConfigError);
      expect(failure).toMatchObject({
        field: 'DRIFTLINE_MODEL_SERVER_PORT',
        message: expect.stringContaining(`cannot listen on 127.0.0.1:${port}: the port is in use`),
      });
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });

  let h: Harness;
  beforeAll(async () => {
    h = await harness({ shadow: 'm=v3' });
    await h.server.table.promote('m', 'v1');
  });
  afterAll(() => h.server.close());

  it('scores one entity from its online features, with the request overriding and missing = NaN', async () => {
    const res = await post(h, 'm', { entity_id: 'u1', features: { f3: 7 } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ model: 'm', entity_id: 'u1', version: 'v1', role: 'production' });
    expect(body.score).toBe(expected('v1', [0.5, -1.25, 2, 7]));
    expect(typeof body.prediction_id).toBe('string');
    // u2 has no account row and no f3: both missing.
    const u2 = (await (await post(h, 'm', { entity_id: 'u2', features: { f1: 1 } })).json()) as { score: number };
    expect(u2.score).toBe(expected('v1', [-0.3, 1, null, null]));
  });

  it('answers a batch in order and logs what each version saw, shadows included but never answered', async () => {
    await h.server.log.drain(5_000); // the previous test's records first
    h.logged.length = 0;
    const res = await post(h, 'm', { instances: [{ entity_id: 'u2' }, { entity_id: 'u1', features: { f0: 1 } }] });
    const body = (await res.json()) as {
      predictions: Array<{ entity_id: string; score: number; version: string; prediction_id: string }>;
    };
    expect(body.predictions.map((p) => [p.entity_id, p.version])).toEqual([
      ['u2', 'v1'],
      ['u1', 'v1'],
    ]);
    expect(body.predictions[1]!.score).toBe(expected('v1', [1, -1.25, 2, null]));
    await h.server.log.drain(5_000);
    expect(h.logged).toHaveLength(4);
    const answered = h.logged.filter((e) => e.role === 'production');
    expect(answered.map((e) => e.prediction_id)).toEqual(body.predictions.map((p) => p.prediction_id));
    expect(answered[1]!.features).toEqual({ f0: 1, f1: -1.25, f2: 2, f3: null });
    const shadow = h.logged.filter((e) => e.role === 'shadow');
    expect(shadow.map((e) => [e.model_version, e.prediction_id])).toEqual(
      body.predictions.map((p) => ['v3', `${p.prediction_id}.shadow.v3`]),
    );
    expect(shadow[1]!.prediction).toBe(expected('v3', [1, -1.25, 2, null]));
    // The answered record carries every version's score on the instance; shadow records carry none.
    expect(answered[1]!.scores).toEqual({ v1: body.predictions[1]!.score, v3: shadow[1]!.prediction });
    expect(shadow.every((e) => e.scores === null)).toBe(true);
  });

  it('stamps a prediction with the event_time the client sent (replays, a simulated clock), else now', async () => {
    await h.server.log.drain(5_000);
    h.logged.length = 0;
    const at = Date.now() - 3_600_000;
    const before = Date.now();
    const res = await post(h, 'm', { instances: [{ entity_id: 'u1', event_time: at }, { entity_id: 'u2' }] });
    expect(res.status).toBe(200);
    await h.server.log.drain(5_000);
    const answered = h.logged.filter((e) => e.role === 'production');
    expect(answered[0]!.event_time).toBe(at);
    expect(answered[1]!.event_time).toBeGreaterThanOrEqual(before);
    // The shadow's record of the same instance has the same time (paired by prediction and time).
    expect(h.logged.filter((e) => e.role === 'shadow')[0]!.event_time).toBe(at);
  });

  it('answers unknown models, bad input and entities without features with one-line 4xx', async () => {
    const cases: Array<[string, unknown, number, RegExp]> = [
      ['nope', { entity_id: 'u1' }, 404, /unknown model "nope"/],
      ['m', '{', 400, /body is not JSON/],
      ['m', { entity: 'u1' }, 400, /body: unknown field "entity"/],
      ['m', { entity_id: '' }, 400, /body.entity_id: must be a non-empty string/],
      ['m', { entity_id: 'u1', features: { zz: 1 } }, 400, /body.features.zz: not a feature of model "m"/],
      // A feature a view declares takes its declared type, as feature events do.
      [
        'm',
        { entity_id: 'u1', features: { f0: 'high' } },
        400,
        /body.features.f0: expected a double \(view user\), got string/,
      ],
      [
        'm',
        { entity_id: 'u1', features: { f0: true } },
        400,
        /body.features.f0: expected a double \(view user\), got boolean/,
      ],
      [
        'm',
        { entity_id: 'u1', features: { f0: [1] } },
        400,
        /body.features.f0: expected a number, string, boolean or null/,
      ],
      // 1e999 is valid JSON and parses to Infinity: refused like a feature event's.
      ['m', '{"entity_id":"u1","features":{"f0":1e999}}', 400, /body.features.f0: must be a finite number/],
      // A feature name the request controls stays on one line too.
      ['m', { entity_id: 'u1', features: { 'a\nb': [1] } }, 400, /body.features.a\\nb: expected a number/],
      // A batch of one is a batch: its errors name instances[0], not the body.
      [
        'm',
        { instances: [{ entity_id: 'u1', features: { zz: 1 } }] },
        400,
        /instances\[0\].features.zz: not a feature/,
      ],
      ['m', { instances: [{ entity_id: 'ghost' }] }, 422, /instances\[0\]: entity "ghost" has no features/],
      // Text the request controls stays on one line: a model name with CR LF, a body V8 quotes.
      ['m%0D%0AX-Injected%3A%20yes', { entity_id: 'u1' }, 404, /unknown model "m\\r\\nX-Injected: yes"/],
      ['m', 'x\ny', 400, /body is not JSON: .*x\\ny/],
      ['m', { instances: [] }, 400, /instances: must be a non-empty array/],
      ['m', { instances: Array(101).fill({ entity_id: 'u1' }) }, 400, /at most 100 per request/],
      [
        'm',
        { instances: [{ entity_id: 'u1' }, { entity_id: 'ghost' }] },
        422,
        /instances\[1\]: entity "ghost" has no features in views user, account/,
      ],
      ['m', { entity_id: 'x'.repeat(5_000) }, 413, /larger than 4096 bytes/],
      ['m', { entity_id: 'u1', event_time: 1.5 }, 400, /body.event_time: must be an integer of epoch milliseconds/],
      // µs where ms are expected: refused with the unit hint, like every other edge.
      ['m', { entity_id: 'u1', event_time: Date.now() * 1000 }, 400, /event_time .* in the future/],
      [
        'm',
        { instances: [{ entity_id: 'u1', event_time: -1 }] },
        400,
        /instances\[0\].event_time .* before the minimum/,
      ],
    ];
    for (const [model, body, status, message] of cases) {
      const res = await post(h, model, body);
      const json = (await res.json()) as { error: { message: string } };
      expect([res.status, json.error.message]).toEqual([status, expect.stringMatching(message)]);
      expect(json.error.message).not.toMatch(/[\r\n]/);
    }
    const get = await fetch(`${h.base}/v1/models/m:predict`);
    expect([get.status, get.headers.get('allow')]).toEqual([405, 'POST']);
    expect(await (await fetch(`${h.base}/v1/models`)).json()).toEqual({
      models: [{ model: 'm', production: 'v1', shadows: ['v3'] }],
      not_served: [],
    });
    for (const path of ['/v1/models', '/healthz']) {
      const wrong = await fetch(`${h.base}${path}`, { method: 'DELETE' });
      expect([wrong.status, wrong.headers.get('allow')]).toEqual([405, 'GET']);
    }
    // Client text in a message is escaped and cut: one short line, whatever was sent.
    const long = await post(h, 'm', { entity_id: 'u1', [`x"${'y'.repeat(2_000)}`]: 1 });
    const { error } = (await long.json()) as { error: { message: string } };
    expect(long.status).toBe(400);
    expect(error.message.length).toBeLessThan(300);
    expect(error.message).toContain('unknown field "x\\"yyy');
  });
});

describe('artifacts', () => {
  it('a model file larger than the bound is refused before it is read (a sparse file: no disk used)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ms-artifact-'));
    mkdirSync(join(dir, 'm', 'v1'), { recursive: true });
    writeFileSync(join(dir, 'm', 'v1', 'meta.json'), '{}');
    writeFileSync(join(dir, 'm', 'v1', 'model.json'), '');
    truncateSync(join(dir, 'm', 'v1', 'model.json'), MAX_ARTIFACT_FILE_BYTES + 1);
    await expect(artifactLoader(dir)('m', 'v1')).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      message: `model m version v1: model.json is ${MAX_ARTIFACT_FILE_BYTES + 1} bytes, more than ${MAX_ARTIFACT_FILE_BYTES}`,
    });
  });
});

describe("model.json checked against meta.json's model_sha256 (found by a review)", () => {
  it('loads the pair meta.json names, and refuses retriably a model.json of another run', async () => {
    const { createHash } = await import('node:crypto');
    const { readFileSync } = await import('node:fs');
    const at = mkdtempSync(join(tmpdir(), 'ms-digest-'));
    writeVersion(at, 'm', 'v1', 1);
    writeVersion(at, 'm', 'v2', 2);
    const sha = (v: string) =>
      createHash('sha256')
        .update(readFileSync(join(at, 'm', v, 'model.json')))
        .digest('hex');
    const meta = (digest: string) => JSON.stringify({ features: FEATURES, categories: {}, model_sha256: digest });
    writeFileSync(join(at, 'm', 'v1', 'meta.json'), meta(sha('v1')));
    await expect(artifactLoader(at)('m', 'v1')).resolves.toMatchObject({ version: 'v1' });
    // v2's meta names v1's model: two runs' files mixed.
    writeFileSync(join(at, 'm', 'v2', 'meta.json'), meta(sha('v1')));
    await expect(artifactLoader(at)('m', 'v2')).rejects.toMatchObject({
      code: 'NOT_FOUND',
      retriable: true,
      message: expect.stringContaining(`is not the file meta.json names (model_sha256 "${sha('v1')}")`),
    });
  });
});

describe('artifacts that are not regular files (found by a review)', () => {
  it('refuses a FIFO (the read hung) and a device (/dev/zero reports size 0) without reading them', async () => {
    const { execFileSync } = await import('node:child_process');
    const { symlinkSync } = await import('node:fs');
    const dir = mkdtempSync(join(tmpdir(), 'ms-artifact-'));
    mkdirSync(join(dir, 'm', 'v1'), { recursive: true });
    mkdirSync(join(dir, 'm', 'v2'), { recursive: true });
    writeFileSync(join(dir, 'm', 'v1', 'model.json'), '{}');
    execFileSync('mkfifo', [join(dir, 'm', 'v1', 'meta.json')]);
    writeFileSync(join(dir, 'm', 'v2', 'model.json'), '{}');
    symlinkSync('/dev/zero', join(dir, 'm', 'v2', 'meta.json'));
    for (const v of ['v1', 'v2'])
      await expect(artifactLoader(dir)('m', v)).rejects.toMatchObject({
        code: 'VALIDATION_FAILED',
        message: `model m version ${v}: meta.json is not a regular file`,
      });
  });
});

describe('served model limits', () => {
  it('refuses a model of more features than the server takes (a 1,000,000-feature model cost 11 s per 20 instances)', () => {
    expect(SERVED_MODEL_LIMITS).toEqual({ maxFeatures: 10_000, maxTotalNodes: 4_000_000, maxTotalDepth: 200_000 });
    const features = (n: number) => Array.from({ length: n }, (_, i) => `f${i}`);
    expect(() => buildVersion('m', 'v', syntheticModelJson(1, 2, 3, 10_001), { features: features(10_001) })).toThrow(
      /num_feature/,
    );
    expect(
      buildVersion('m', 'v', syntheticModelJson(1, 2, 3, 10_000), { features: features(10_000) }).features,
    ).toHaveLength(10_000);
  });
});

describe('request values', () => {
  it('a string feature value is bounded as a feature event is: it is logged, and held while Kafka is down', () => {
    const limits = { maxBatch: 10, maxBodyBytes: 1 << 20, maxFeatures: 8 };
    const body = (c: string) => JSON.stringify({ entity_id: 'u1', features: { c } });
    expect(parsePredictBody(body('x'.repeat(65_536)), limits)).toMatchObject({ batch: false });
    expect(() => parsePredictBody(body('x'.repeat(65_537)), limits)).toThrow(
      'body.features.c: at most 65536 characters, got 65537',
    );
  });
});

describe('canary', () => {
  it('answers a sticky share of entities with the canary version, logged with role canary', async () => {
    const h = await harness({ canary: 'm=v2@0.3', maxBodyBytes: 1_048_576 });
    try {
      await h.server.table.promote('m', 'v1');
      const n = 2_000;
      const instances = Array.from({ length: n }, (_, i) => ({ entity_id: `e${i}`, features: { f0: i / n } }));
      const versions: string[] = [];
      for (let i = 0; i < n; i += 100) {
        const res = await post(h, 'm', { instances: instances.slice(i, i + 100) });
        for (const p of ((await res.json()) as { predictions: Array<{ version: string; role: string }> }).predictions) {
          versions.push(`${p.version}/${p.role}`);
        }
      }
      const share = versions.filter((v) => v === 'v2/canary').length / n;
      expect(share).toBeGreaterThan(0.27);
      expect(share).toBeLessThan(0.33);
      expect(versions.every((v) => v === 'v2/canary' || v === 'v1/production')).toBe(true);
      await h.server.log.drain(5_000);
      expect(h.logged.filter((e) => e.role === 'canary').length).toBe(versions.filter((v) => v === 'v2/canary').length);
      expect(h.logged.filter((e) => e.role === 'canary').every((e) => e.model_version === 'v2')).toBe(true);
      // Sticky: the same entities again get the same versions.
      const again = (await (await post(h, 'm', { instances: instances.slice(0, 100) })).json()) as {
        predictions: Array<{ version: string; role: string }>;
      };
      expect(again.predictions.map((p) => `${p.version}/${p.role}`)).toEqual(versions.slice(0, 100));
      // Every canary-answered record is scored by production too (the pair); production-answered ones by production only.
      for (const e of h.logged) {
        if (e.role === 'canary') {
          expect(Object.keys(e.scores ?? {}).sort()).toEqual(['v1', 'v2']);
          expect(e.scores?.v2).toBe(e.prediction);
          expect(e.scores?.v1).toBe(expected('v1', [e.features.f0 as number, null, null, null]));
        } else expect(e.scores).toEqual({ v1: e.prediction });
      }
      // Promoting the canary makes it production: no canary left; the replaced v1 is watched (a shadow).
      await h.server.table.promote('m', 'v2');
      expect(h.server.table.describe()).toEqual([{ model: 'm', production: 'v2', shadows: ['v1'] }]);
    } finally {
      await h.server.close();
    }
  });
});

describe('stage following', () => {
  it('applies models.v1 events to the plan in order; a production that cannot load leaves the rest applied', async () => {
    const h = await harness({ shadow: 'm=v3' });
    const served = () => h.server.table.describe();
    try {
      await h.server.table.apply('m', [{ kind: 'SHADOW', version: 'v2' }]);
      expect(served()).toEqual([]); // no production yet: nothing served
      await h.server.table.apply('m', [{ kind: 'PROMOTED', version: 'v1' }]);
      expect(served()).toEqual([{ model: 'm', production: 'v1', shadows: ['v2', 'v3'] }]);
      await h.server.table.apply('m', [{ kind: 'CANARY', version: 'v2', canary_share: 0.4 }]);
      expect(served()).toEqual([
        { model: 'm', production: 'v1', canary: { version: 'v2', share: 0.4 }, shadows: ['v3'] },
      ]);
      await h.server.table.apply('m', [
        { kind: 'PROMOTED', version: 'v2', previous_version: 'v1' },
        { kind: 'ROLLED_BACK', version: 'v2', previous_version: 'v1' },
      ]);
      expect(served()).toEqual([{ model: 'm', production: 'v1', shadows: ['v3'] }]);
      // A production version without artifacts: v1 keeps serving, the shadow change applies all the same.
      await expect(
        h.server.table.apply('m', [
          { kind: 'SHADOW', version: 'v2' },
          { kind: 'PROMOTED', version: 'v6' },
        ]),
      ).rejects.toThrow(/no artifacts/);
      expect(served()).toEqual([{ model: 'm', production: 'v1', shadows: ['v2', 'v3'] }]);
      // A request answered by production is scored by every shadow: all of them in `scores`.
      const res = (await (await post(h, 'm', { entity_id: 'u1' })).json()) as { prediction_id: string };
      await h.server.log.drain(5_000);
      const answered = h.logged.find((e) => e.prediction_id === res.prediction_id);
      expect(Object.keys(answered?.scores ?? {}).sort()).toEqual(['v1', 'v2', 'v3']);
      // Its artifacts written, the same PROMOTED published again swaps it in (not a replay of a
      // change already made), and the version that replaced nothing before is not watched.
      writeVersion(dir, 'm', 'v6', 9);
      await h.server.table.apply('m', [{ kind: 'PROMOTED', version: 'v6' }]);
      expect(served()).toEqual([{ model: 'm', production: 'v6', shadows: ['v2', 'v1', 'v3'] }]);
      await h.server.table.apply('m', [{ kind: 'PROMOTED', version: 'v8' }]).catch(() => {});
      await h.server.table.apply('m', [{ kind: 'PROMOTED', version: 'v2' }]);
      // v6 is watched (it served before v2), v8 (never loaded) is not.
      expect(served()).toEqual([{ model: 'm', production: 'v2', shadows: ['v6', 'v3'] }]);
    } finally {
      await h.server.close();
    }
  });
});

describe('swaps', () => {
  it('a swap under load fails no request; a version that cannot load leaves the current one serving', async () => {
    const h = await harness();
    try {
      await h.server.table.promote('m', 'v1');
      let stop = false;
      const seen: Record<string, number> = {};
      let failures = 0;
      const client = async () => {
        while (!stop) {
          const res = await post(h, 'm', { entity_id: 'u1' });
          if (res.status !== 200) failures++;
          const v = ((await res.json()) as { version: string }).version;
          seen[v] = (seen[v] ?? 0) + 1;
        }
      };
      const clients = [client(), client(), client(), client()];
      // Each version serves until a request has seen it (a fixed 30 ms left v3 unseen on a loaded machine).
      const served = (v: string) => eventually(async () => ((seen[v] ?? 0) > 0 ? true : undefined), 10_000, 5);
      await served('v1');
      for (const v of ['v2', 'v1', 'v2', 'v3', 'v2']) {
        const before = seen[v] ?? 0;
        await h.server.table.promote('m', v);
        await eventually(async () => ((seen[v] ?? 0) > before ? true : undefined), 10_000, 5);
      }
      await expect(h.server.table.promote('m', 'v9')).rejects.toThrow(/no artifacts/);
      await served('v2');
      stop = true;
      await Promise.all(clients);
      expect(failures).toBe(0);
      expect(Object.keys(seen).sort()).toEqual(['v1', 'v2', 'v3']);
      expect(h.server.table.get('m')!.production.loaded.version).toBe('v2');
    } finally {
      await h.server.close();
    }
  });
});

describe('prediction log', () => {
  const ev = (i: number) => ({ prediction_id: `p${i}` }) as PredictionEvent;
  const noDeadLetters = async () => {
    throw new Error('no record is refused in this test');
  };

  /**
   * A Kafka stand-in that acknowledges a send only when told (`release`, the latest send), until
   * `auto()`: from then on at once (the one held now included). `sent` in acknowledgement order.
   */
  function manualKafka() {
    let release: (() => void) | undefined;
    let manual = true;
    const sent: string[] = [];
    return {
      sent,
      publish: (events: readonly PredictionEvent[]) =>
        new Promise<void>((resolve) => {
          release = () => {
            sent.push(...events.map((e) => e.prediction_id));
            resolve();
          };
          if (!manual) release();
        }),
      release: () => release?.(),
      auto() {
        manual = false;
        release?.();
      },
    };
  }

  it('dead-letters the records Kafka refuses as they are, sends the others, and goes on', async () => {
    const sent: string[] = [];
    const letters: Array<{ id: string; code: string }> = [];
    const rejectedCounts: number[] = [];
    let dlqDown = true;
    const settled: number[] = [];
    const log = createPredictionLog({
      // p3 and p6 can never be written (too large); any batch holding one is refused whole.
      publish: async (events) => {
        const bad = events.find((e) => e.prediction_id === 'p3' || e.prediction_id === 'p6');
        if (bad !== undefined) throw new DriftlineError('SINK_REJECTED', `${bad.prediction_id} too large`);
        sent.push(...events.map((e) => e.prediction_id));
      },
      deadLetter: async (rejected) => {
        if (dlqDown) throw new SinkUnavailableError('dlq down'); // retriable: the batch waits
        letters.push(...rejected.map((r) => ({ id: r.record.prediction_id, code: r.error.code })));
      },
      maxBuffered: 100,
      maxWaitMs: 0,
      flushIntervalMs: 5,
      maxBatch: 8,
      logger: silentLogger,
      onRejected: (n) => rejectedCounts.push(n),
      onSettled: (n) => settled.push(n),
    });
    await log.append(Array.from({ length: 8 }, (_, i) => ev(i + 1)));
    await new Promise((r) => setTimeout(r, 40));
    expect(log.backlog()).toBe(8); // the dead-letter topic is down: nothing leaves the log
    expect(letters).toEqual([]);
    dlqDown = false;
    expect(await log.drain(2_000)).toBe(0);
    expect(letters).toEqual([
      { id: 'p3', code: 'SINK_REJECTED' },
      { id: 'p6', code: 'SINK_REJECTED' },
    ]);
    expect(rejectedCounts).toEqual([2]);
    // Every good record sent (the halves sent before the DLQ came back are sent again: at-least-once).
    expect(new Set(sent)).toEqual(new Set(['p1', 'p2', 'p4', 'p5', 'p7', 'p8']));
    await log.append([ev(9)]);
    expect(await log.drain(2_000)).toBe(0);
    expect(sent.at(-1)).toBe('p9');
    // Each record left the log once (the serving thread's bound counts on it), whatever was resent.
    expect(settled.reduce((a, b) => a + b, 0)).toBe(9);
    await log.close();
  });

  it('after a send that failed part-way, retries only the records not yet acknowledged', async () => {
    const sent: string[] = [];
    const settled: number[] = [];
    let failures = 2;
    const log = createPredictionLog({
      // Acknowledges the first 3 records of a batch, then fails (as a chunked send can), twice.
      publish: async (events) => {
        if (failures-- > 0 && events.length > 3) {
          sent.push(...events.slice(0, 3).map((e) => e.prediction_id));
          throw new PartialPublishError(3, new SinkUnavailableError('broker down'));
        }
        sent.push(...events.map((e) => e.prediction_id));
      },
      deadLetter: noDeadLetters,
      maxBuffered: 100,
      maxWaitMs: 0,
      flushIntervalMs: 5,
      maxBatch: 100,
      logger: silentLogger,
      onSettled: (n) => settled.push(n),
    });
    await log.append(Array.from({ length: 10 }, (_, i) => ev(i)));
    expect(await log.drain(2_000)).toBe(0);
    expect(sent).toEqual(Array.from({ length: 10 }, (_, i) => `p${i}`)); // once each, in order
    expect(settled).toEqual([3, 3, 4]);
    await log.close();
  });

  it('sends the rest of a failed batch again exactly as it was, nothing appended since, so Kafka can drop a copy', async () => {
    const batches: string[][] = [];
    let failures = 3;
    let started!: () => void;
    const firstStarted = new Promise<void>((r) => {
      started = r;
    });
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    const log = createPredictionLog({
      // The first attempt acknowledges 1 record of 3 and fails (held until more records arrived), the next two fail.
      publish: async (events) => {
        batches.push(events.map((e) => e.prediction_id));
        if (failures-- === 3) {
          started();
          await released;
          throw new PartialPublishError(1, new SinkUnavailableError('broker killed'));
        }
        if (failures >= 0) throw new SinkUnavailableError('broker down');
      },
      deadLetter: noDeadLetters,
      maxBuffered: 100,
      maxWaitMs: 0,
      flushIntervalMs: 5,
      maxBatch: 10,
      logger: silentLogger,
    });
    await log.append([ev(0), ev(1), ev(2)]);
    await firstStarted;
    await log.append([ev(3), ev(4)]); // arrives while the first batch is in flight
    release();
    expect(await log.drain(2_000)).toBe(0);
    // The idempotent producer numbers a retry like its first attempt only if it holds the same records.
    expect(batches).toEqual([
      ['p0', 'p1', 'p2'],
      ['p1', 'p2'],
      ['p1', 'p2'],
      ['p1', 'p2'],
      ['p3', 'p4'],
    ]);
    await log.close();
  });

  it('is bounded: refuses (503) beyond maxBuffered without a wait; a failed send is kept and retried in order', async () => {
    let fail = true;
    const sent: string[] = [];
    const log = createPredictionLog({
      publish: async (events) => {
        if (fail) throw new SinkUnavailableError('broker down');
        sent.push(...events.map((e) => e.prediction_id));
      },
      maxBuffered: 5,
      maxWaitMs: 0,
      flushIntervalMs: 5,
      maxBatch: 2,
      deadLetter: noDeadLetters,
      logger: silentLogger,
    });
    await log.append([ev(1), ev(2), ev(3)]);
    await log.append([ev(4), ev(5)]);
    await expect(log.append([ev(6)])).rejects.toThrow(/prediction log backlog full \(5 records/);
    await new Promise((r) => setTimeout(r, 30));
    expect(log.backlog()).toBe(5);
    fail = false;
    expect(await log.drain(2_000)).toBe(0);
    expect(sent).toEqual(['p1', 'p2', 'p3', 'p4', 'p5']);
    await log.append([ev(6)]);
    await log.close();
    expect(sent).toHaveLength(6);
  });

  it('a request with more records than the bound is admitted alone once the backlog is empty, not refused every time', async () => {
    const kafka = manualKafka();
    const { sent } = kafka;
    const log = createPredictionLog({
      publish: kafka.publish,
      maxBuffered: 4,
      maxWaitMs: 2_000,
      flushIntervalMs: 5,
      maxBatch: 10,
      deadLetter: noDeadLetters,
      logger: silentLogger,
    });
    const big = Array.from({ length: 6 }, (_, i) => ev(i + 1)); // a batch times its shadows, say
    await log.append(big); // the log is empty: in at once
    expect(log.backlog()).toBe(6);
    let admitted = false;
    const next = log.append(big.map((e) => ({ ...e, prediction_id: `${e.prediction_id}b` }))).then(() => {
      admitted = true;
    });
    await new Promise((r) => setTimeout(r, 30));
    expect(admitted).toBe(false); // waits for the first to be acknowledged
    kafka.auto();
    await next;
    expect(await log.drain(2_000)).toBe(0);
    expect(sent).toHaveLength(12);
    await log.close();
  });

  it('under a backlog, requests wait for room in arrival order and are refused only after the wait', async () => {
    const kafka = manualKafka();
    const { sent } = kafka;
    const log = createPredictionLog({
      publish: kafka.publish,
      maxBuffered: 4,
      maxWaitMs: 300,
      flushIntervalMs: 5,
      maxBatch: 4,
      deadLetter: noDeadLetters,
      logger: silentLogger,
    });
    await log.append([ev(1), ev(2), ev(3), ev(4)]); // full: sent, not yet acknowledged
    const order: string[] = [];
    const a = log.append([ev(5), ev(6)]).then(() => order.push('a'));
    const b = log.append([ev(7)]).then(() => order.push('b'));
    await new Promise((r) => setTimeout(r, 30));
    expect(order).toEqual([]); // both wait: nothing was acknowledged
    kafka.release(); // 4 acknowledged: room for a (2) and then b (1), in that order
    await Promise.all([a, b]);
    expect(order).toEqual(['a', 'b']);
    expect(log.backlog()).toBe(3);
    // Nothing acknowledged for longer than the wait: refused, after about maxWaitMs.
    await new Promise((r) => setTimeout(r, 30)); // the next send (5, 6, 7) is in flight
    await log.append([ev(8)]); // fits (3 + 1)
    const t0 = Date.now();
    await expect(log.append([ev(9), ev(10)])).rejects.toThrow(/backlog full \(4 records .* after waiting 300 ms/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    kafka.auto();
    expect(await log.drain(2_000)).toBe(0);
    expect(sent).toEqual(['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8']);
    await log.close();
  });

  it('is not ready while it refuses for lack of room, and ready again once acknowledgements make room (liveness holds)', async () => {
    // It stayed ready while every request past the bound waited and got its 503: a load balancer
    // kept sending the instance traffic it could only refuse (found by a review).
    const kafka = manualKafka();
    const log = createPredictionLog({
      publish: kafka.publish,
      maxBuffered: 4,
      maxWaitMs: 50,
      flushIntervalMs: 5,
      maxBatch: 4,
      deadLetter: noDeadLetters,
      logger: silentLogger,
    });
    await log.append([ev(1), ev(2), ev(3), ev(4)]); // full: sent, never acknowledged (Kafka hung)
    expect(log.ready()).toBe(true); // full, but nothing refused: waiting is back-pressure
    const waiting = log.append([ev(5)]);
    await new Promise((r) => setTimeout(r, 20));
    expect(log.ready()).toBe(true); // still within its wait
    await expect(waiting).rejects.toThrow(/backlog full/);
    expect(log.ready()).toBe(false);
    expect(log.alive()).toBe(true); // an outage is not a dead log: liveness holds
    kafka.release(); // Kafka answers: room again, with no request needed to find out
    await eventually(async () => (log.ready() ? true : undefined), 2_000, 5);
    await log.append([ev(6)]);
    expect(log.ready()).toBe(true);
    kafka.auto();
    expect(await log.drain(2_000)).toBe(0);
    await log.close();
  });

  it('refuses appends once closing (they were queued, answered and never sent nor counted lost)', async () => {
    const kafka = manualKafka();
    kafka.auto();
    const log = createPredictionLog({
      publish: kafka.publish,
      maxBuffered: 10,
      maxWaitMs: 0,
      flushIntervalMs: 5,
      maxBatch: 100,
      deadLetter: noDeadLetters,
      logger: silentLogger,
    });
    await log.append([ev(1)]);
    await log.close(1_000);
    await expect(log.append([ev(2)])).rejects.toThrow(/not running/);
    expect(log.backlog()).toBe(0);
    expect(kafka.sent).toEqual(['p1']);
  });

  it('bounds bytes as well as records: a request waits until the oldest requests are wholly acknowledged', async () => {
    const kafka = manualKafka();
    const text = (i: number, chars: number): PredictionEvent => ({
      ...ev(i),
      model: 'm',
      model_version: 'v1',
      entity_id: `e${i}`,
      event_time: 0,
      prediction: 0.5,
      features: { note: 'n'.repeat(chars) },
    });
    const log = createPredictionLog({
      publish: kafka.publish,
      maxBuffered: 1_000,
      maxBufferedBytes: 25_000,
      sizesOf: addPredictionSizes,
      maxWaitMs: 2_000,
      flushIntervalMs: 5,
      maxBatch: 1, // one record per send: the first request is acknowledged in two steps
      deadLetter: noDeadLetters,
      logger: silentLogger,
    });
    await log.append([text(1, 10_000), text(2, 10_000)]); // ~20 KB of 25
    let admitted = false;
    const next = log.append([text(3, 10_000)]).then(() => {
      admitted = true;
    });
    await new Promise((r) => setTimeout(r, 30));
    expect(admitted).toBe(false); // 30 KB would exceed 25: it waits
    kafka.release(); // p1 acknowledged: its request is only partly settled and keeps its bytes
    await new Promise((r) => setTimeout(r, 30));
    expect(admitted).toBe(false);
    kafka.auto(); // p2 too: the first request is wholly settled
    await next;
    expect(admitted).toBe(true);
    expect(await log.drain(2_000)).toBe(0);
    expect(kafka.sent).toEqual(['p1', 'p2', 'p3']);
    await log.close();
  });

  it('approxRecordBytes counts string feature values by length, other values and scores at a fixed cost', () => {
    const base = { ...ev(1), model: 'm', model_version: 'v1', entity_id: 'e', event_time: 0, prediction: 0.5 };
    const short = approxRecordBytes({ ...base, features: { a: 1, b: 'x' } });
    const long = approxRecordBytes({ ...base, features: { a: 1, b: 'x'.repeat(65_536) } });
    expect(long - short).toBe(65_535);
    expect(approxRecordBytes({ ...base, features: {}, scores: { v1: 0.5, v2: 0.4 } })).toBe(
      approxRecordBytes({ ...base, features: {}, scores: null }) + 2 * (2 + 9),
    );
  });

  /** A log on `publish` holding 3 records (sends of 2), and what its close counts lost and unknown. */
  async function closingLog(publish: (events: readonly PredictionEvent[]) => Promise<void>) {
    const lost: number[] = [];
    const unknown: number[] = [];
    const log = createPredictionLog({
      publish,
      maxBuffered: 10,
      maxWaitMs: 0,
      flushIntervalMs: 5,
      maxBatch: 2,
      deadLetter: noDeadLetters,
      logger: silentLogger,
      onLost: (n) => lost.push(n),
      onUnknown: (n) => unknown.push(n),
    });
    await log.append([ev(1), ev(2), ev(3)]);
    return { log, lost, unknown };
  }

  // Counting the batch tried as lost too had an operator backfill records that had landed (a review).
  it('counts what a close never sent as lost, the batch its failing sends tried as unknown', async () => {
    const { log, lost, unknown } = await closingLog(async () => {
      throw new SinkUnavailableError('broker down');
    });
    await log.close(30);
    expect(lost).toEqual([1]);
    expect(unknown).toEqual([2]);
    expect(log.alive()).toBe(false); // closed: it sends nothing more
  });

  it('a close waits for a send that hangs only until its deadline, then counts its records unknown, the rest lost', async () => {
    const { log, lost, unknown } = await closingLog(() => new Promise<void>(() => {})); // Kafka never answers
    const t0 = Date.now();
    await log.close(100);
    expect(Date.now() - t0).toBeLessThan(5_000); // the 100 ms deadline, slack for a loaded run
    expect(lost).toEqual([1]);
    expect(unknown).toEqual([2]);
  });
});

describe('a promoted model of which no version loads (found by a review)', () => {
  const answer = async (h: Harness, model: string) => {
    const res = await post(h, model, { entity_id: 'u1', features: { f3: 1 } });
    const body = (await res.json()) as { version?: string; error?: { code: string; message: string } };
    return { status: res.status, retryAfter: res.headers.get('retry-after'), ...body };
  };

  it('answers 503 with the version and why, Retry-After, while it does not load; 404 only for a model never promoted', async () => {
    const h = await harness();
    try {
      // fraud at production v9 (v1 before it), neither's files there: as a restart with the
      // artifact directory moved away.
      await expect(
        h.server.table.apply('fraud', [
          { kind: 'PROMOTED', version: 'v1' },
          { kind: 'PROMOTED', version: 'v9', previous_version: 'v1' },
        ]),
      ).rejects.toThrow(/no artifacts/);
      expect(await answer(h, 'fraud')).toEqual({
        status: 503,
        retryAfter: '1',
        error: {
          code: 'SINK_UNAVAILABLE',
          message: 'model "fraud": production v9 not loaded yet (artifacts missing or unreadable); retrying',
        },
      });
      expect(await answer(h, 'nope')).toMatchObject({ status: 404, error: { code: 'NOT_FOUND' } });
      expect(await (await fetch(`${h.base}/v1/models`)).json()).toEqual({
        models: [],
        not_served: [
          {
            model: 'fraud',
            production: 'v9',
            reason: 'production v9 not loaded yet (artifacts missing or unreadable); retrying',
          },
        ],
      });
      // Its files back, the retry (the stage applier's, here by hand) serves it, and says nothing more.
      writeVersion(dir, 'fraud', 'v1', 8);
      writeVersion(dir, 'fraud', 'v9', 9);
      await h.server.table.apply('fraud', [
        { kind: 'PROMOTED', version: 'v1' },
        { kind: 'PROMOTED', version: 'v9', previous_version: 'v1' },
      ]);
      expect(await answer(h, 'fraud')).toMatchObject({ status: 200, version: 'v9' });
      expect(((await (await fetch(`${h.base}/v1/models`)).json()) as { not_served: unknown[] }).not_served).toEqual([]);
      // v9's folder gone and v1's model.json cut short (v1 given up): the same answer, for v9.
      writeVersion(dir, 'cut', 'v1', 7);
      truncateSync(join(dir, 'cut', 'v1', 'model.json'), 100);
      await expect(
        h.server.table.apply('cut', [
          { kind: 'PROMOTED', version: 'v1' },
          { kind: 'PROMOTED', version: 'v9', previous_version: 'v1' },
        ]),
      ).rejects.toThrow(/no artifacts/);
      expect(await answer(h, 'cut')).toMatchObject({
        status: 503,
        error: { message: 'model "cut": production v9 not loaded yet (artifacts missing or unreadable); retrying' },
      });
    } finally {
      await h.server.close();
    }
  });

  it('a production given up with nothing serving is a 503 saying so, through later events of the model, until published again', async () => {
    const h = await harness();
    try {
      const at = join(dir, 'broken', 'v1');
      mkdirSync(at, { recursive: true });
      writeFileSync(join(at, 'model.json'), '{"learner": ');
      writeFileSync(join(at, 'meta.json'), JSON.stringify({ features: FEATURES }));
      await expect(h.server.table.apply('broken', [{ kind: 'PROMOTED', version: 'v1' }])).rejects.toThrow();
      const given = {
        status: 503,
        retryAfter: '1',
        error: {
          code: 'SINK_UNAVAILABLE',
          message: expect.stringMatching(
            /^model "broken": production v1 cannot be loaded here \(given up: [A-Z_]+\); nothing serves the model on this instance until models.v1 publishes a version again$/,
          ),
        },
      };
      expect(await answer(h, 'broken')).toEqual(given);
      // A later event tries it and the previous productions again: none loads, the same answer.
      await expect(h.server.table.apply('broken', [{ kind: 'TRAINED', version: 'v2' }])).rejects.toThrow();
      expect(await answer(h, 'broken')).toEqual(given);
      // Published again with good files: served.
      writeVersion(dir, 'broken', 'v1', 4);
      await h.server.table.apply('broken', [{ kind: 'PROMOTED', version: 'v1' }]);
      expect(await answer(h, 'broken')).toMatchObject({ status: 200, version: 'v1' });
    } finally {
      await h.server.close();
    }
  });

  it('a canary and a shadow whose files are gone at start: production answers every entity, the canary share included', async () => {
    const h = await harness();
    try {
      writeVersion(dir, 'cs', 'v1', 5);
      await expect(
        h.server.table.apply('cs', [
          { kind: 'PROMOTED', version: 'v1' },
          { kind: 'CANARY', version: 'v2', canary_share: 1 },
          { kind: 'SHADOW', version: 'v3' },
        ]),
      ).rejects.toThrow(VersionsNotServedError);
      const res = await post(h, 'cs', {
        instances: Array.from({ length: 20 }, (_, i) => ({ entity_id: `e${i}`, features: { f3: i } })),
      });
      expect(res.status).toBe(200);
      const { predictions } = (await res.json()) as { predictions: Array<{ version: string; role: string }> };
      expect(new Set(predictions.map((p) => `${p.version}/${p.role}`))).toEqual(new Set(['v1/production']));
    } finally {
      await h.server.close();
    }
  });
});

describe('numbers beyond float32 (found by a review)', () => {
  it('are missing to the model and logged as null, from the request or the store; float32-range numbers as sent', async () => {
    const h = await harness({ shadow: 'm=v2' });
    try {
      await h.server.table.promote('m', 'v1');
      await h.store.write(
        planWrites([
          validateFeatureEvent(views, {
            event_id: 'big',
            view: 'user',
            entity_id: 'u-big',
            event_time: Date.now(),
            features: { f0: -1e300, f1: 2 },
          }),
        ]),
      );
      const res = await post(h, 'm', {
        instances: [
          { entity_id: 'u1', features: { f0: 1e308, f1: 3.5e38, f2: -3.5e38, f3: 3.4e38 } },
          { entity_id: 'u-big', features: { f3: 1 } },
          // float32's bound: from halfway between its largest and 2^128 a number rounds to ±Infinity.
          { entity_id: 'u3', features: { f0: 3.4028235677973366e38, f1: -3.4028235677973362e38, f3: 1 } },
        ],
      });
      expect(res.status).toBe(200);
      const { predictions } = (await res.json()) as { predictions: Array<{ score: number; prediction_id: string }> };
      expect(predictions.map((p) => p.score)).toEqual([
        expected('v1', [null, null, null, 3.4e38]),
        expected('v1', [null, 2, null, 1]),
        expected('v1', [null, -3.4028235677973362e38, null, 1]),
      ]);
      await h.server.log.drain(5_000);
      const byId = new Map(h.logged.map((e) => [e.prediction_id, e.features]));
      expect(byId.get(predictions[0]!.prediction_id)).toEqual({ f0: null, f1: null, f2: null, f3: 3.4e38 });
      expect(byId.get(predictions[1]!.prediction_id)).toEqual({ f0: null, f1: 2, f2: null, f3: 1 });
      expect(byId.get(predictions[2]!.prediction_id)).toEqual({
        f0: null,
        f1: -3.4028235677973362e38,
        f2: null,
        f3: 1,
      });
      expect(h.logged.filter((e) => e.role === 'shadow')).toHaveLength(3);
      // Counted once per value of the answered records (the shadow's copies are not): the trainer
      // reads these as null, no longer as out_of_range_values.
      expect(await h.registry.getSingleMetricAsString('driftline_model_server_out_of_range_values_total')).toMatch(
        /model="m"[^}]*\} 5$/m,
      );
    } finally {
      await h.server.close();
    }
  });
});

describe("the stored rows a request reads are bounded, as the feature API's (found by a review)", () => {
  /** A server over the in-memory store whose view `user` holds rows of ~60 KB (a long `other`) for u0..u{n-1}. */
  async function withLargeRows(n: number, options: { maxReadRowBytes?: number; asTheService?: boolean } = {}) {
    const store = new InMemoryOnlineStore();
    const { maxReadRowBytes } = options;
    const server = await startModelServer({
      // The service counts the reads (it dropped readBatch's options: the bound never reached the store).
      store: options.asTheService === true ? countingReads(store, () => {}) : store,
      views,
      load: artifactLoader(dir),
      log: { publish: async () => {}, deadLetter: async () => {} },
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      logger: silentLogger,
      maxBatch: 1_000,
      ...(maxReadRowBytes === undefined ? {} : { maxReadRowBytes }),
    });
    await server.table.promote('m', 'v1');
    const t = Date.now();
    const long = 'x'.repeat(60_000);
    await store.write(
      planWrites(
        Array.from({ length: n }, (_, i) =>
          validateFeatureEvent(views, {
            event_id: `e${i}`,
            view: 'user',
            entity_id: `u${i}`,
            event_time: t,
            features: { f0: i, f1: 1, other: long },
          }),
        ),
      ),
    );
    const predict = (entities: number) =>
      fetch(`http://127.0.0.1:${server.port}/v1/models/m:predict`, {
        method: 'POST',
        body: JSON.stringify({ instances: Array.from({ length: entities }, (_, i) => ({ entity_id: `u${i}` })) }),
      });
    return { server, predict };
  }

  it('refuses (400, one line) a request whose rows hold more than the bound, before reading them; within it, scores', async () => {
    const { server, predict } = await withLargeRows(5, { maxReadRowBytes: 200_000 });
    try {
      // The model reads f0 and f1 of `user`, but rows are read whole: `other` counts.
      expect((await predict(3)).status).toBe(200);
      const refused = await predict(5);
      const body = (await refused.json()) as { error?: { code: string; message: string } };
      expect([refused.status, body.error?.code]).toEqual([400, 'BAD_REQUEST']);
      expect(body.error?.message).toMatch(
        /^the rows of the request's entities hold 3\d{5} bytes in the online store \(every view the model reads\), more than the 200000 one request may read: send fewer instances per request$/,
      );
    } finally {
      await server.close();
    }
  });

  it('bounds them at 32 MiB by default (the feature API passes its 32 MiB answer bound), through the store as the service wraps it', async () => {
    const { server, predict } = await withLargeRows(600, { asTheService: true });
    try {
      expect((await predict(500)).status).toBe(200);
      const refused = await predict(600);
      expect(refused.status).toBe(400);
      expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(
        /more than the 33554432 one request may read/,
      );
    } finally {
      await server.close();
    }
  });
});

describe('a long scoring leaves the server answering (found by a review: 4 s with /healthz held)', () => {
  it('answers /healthz between the chunks of a request that walks 50,000,000 tree levels', async () => {
    // 200 chain trees of depth 999 (199,800 levels) at 250 instances: 49,950,000 levels, within the
    // bound; one batch call held the serving thread, /healthz included, for seconds.
    const deep = buildVersion('m', 'deep', chainModel(200, 999), { features: FEATURES, categories: {} });
    let calls = 0; // batch calls of the scorer so far
    const counted = {
      ...deep,
      scorer: Object.assign(Object.create(deep.scorer) as typeof deep.scorer, {
        predict: (rows: Float32Array, out?: Float64Array) => {
          calls++;
          return deep.scorer.predict(rows, out);
        },
      }),
    };
    const server = await startModelServer({
      store: new InMemoryOnlineStore(),
      views,
      load: async () => counted,
      log: { publish: async () => {}, deadLetter: async () => {} },
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      logger: silentLogger,
      maxBatch: 1_000,
    });
    try {
      await server.table.promote('m', 'deep');
      const base = `http://127.0.0.1:${server.port}`;
      const instances = Array.from({ length: 250 }, (_, i) => ({
        entity_id: `u${i}`,
        features: { f0: i, f1: 1, f2: 2, f3: 3 },
      }));
      let answered = false;
      const predicting = fetch(`${base}/v1/models/m:predict`, {
        method: 'POST',
        body: JSON.stringify({ instances }),
      }).finally(() => {
        answered = true;
      });
      // Probes sent once the scoring began (a batch call made), and the batch calls made by their answer.
      const probes: Array<{ took: number; callsThen: number }> = [];
      const deadline = performance.now() + 60_000;
      while (!answered && performance.now() < deadline) {
        const began = calls > 0;
        const sent = performance.now();
        const health = await fetch(`${base}/healthz`);
        await health.text();
        expect(health.status).toBe(200);
        if (began) probes.push({ took: performance.now() - sent, callsThen: calls });
      }
      const res = await predicting;
      expect(res.status).toBe(200);
      expect(((await res.json()) as { predictions: unknown[] }).predictions).toHaveLength(250);
      // Answered while the scoring went on: batch calls came after the answer.
      const during = probes.filter((p) => p.callsThen < calls);
      expect(during.length).toBeGreaterThan(0);
      // Between chunks, not after seconds of scoring (one batch call held it); slack for a loaded run.
      expect(Math.min(...during.map((p) => p.took))).toBeLessThan(1_000);
    } finally {
      await server.close();
    }
  });
});
