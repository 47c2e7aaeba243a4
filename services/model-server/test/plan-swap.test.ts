// Found by a review: a request took its model's serving plan before its body was read and held it
// across the feature read, so a version rolled back meanwhile (acknowledged in /v1/models) still
// answered and was logged as production; and a canary that encodes a request-only feature
// differently from production answered its share of entities 400 on every retry.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Logger, silentLogger } from '@driftline/core';
import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import { createMetricsRegistry, type Registry } from '@driftline/observability';
import { InMemoryOnlineStore } from '@driftline/online-store';
import type { PredictionEvent } from '@driftline/schemas';
import { loadXgboostModel } from '@driftline/scoring';
import { syntheticModelJson } from '@driftline/scoring/bench';
import { eventually } from '@driftline/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { artifactLoader } from '../src/artifacts.js';
import { answering } from '../src/predictor.js';
import { type ModelServer, startModelServer } from '../src/server.js';
import { FEATURES, VIEWS_YAML, writeVersion } from './fixtures.js';

const views = parseFeatureViewsText(VIEWS_YAML);
const dir = mkdtempSync(join(tmpdir(), 'plan-swap-'));
const models = {
  v1: writeVersion(dir, 'm', 'v1', 1),
  v2: writeVersion(dir, 'm', 'v2', 2),
};

/** A version taking `features` (of FEATURES), `categories` by feature; its model json. */
function writeNamed(version: string, seed: number, features: string[], categories: Record<string, string[]> = {}) {
  const json = syntheticModelJson(seed, 20, 4, features.length) as { learner: { feature_names: string[] } };
  json.learner.feature_names = features;
  const at = join(dir, 'm', version);
  mkdirSync(at, { recursive: true });
  writeFileSync(join(at, 'model.json'), JSON.stringify(json));
  writeFileSync(join(at, 'meta.json'), JSON.stringify({ features, categories }));
  return json;
}
// v4 reads view `user` only, v5 view `account` only: a swap between them changes the reads.
const v4 = writeNamed('v4', 4, ['f0', 'f3']);
const v5 = writeNamed('v5', 5, ['f2', 'f3']);
// v6 takes the request-only f3 as a category, v7 as a number.
const v6 = writeNamed('v6', 6, FEATURES, { f3: ['a', 'b'] });
writeNamed('v7', 7, FEATURES);

const score = (json: unknown, row: number[]) => loadXgboostModel(json).predictOne(Float32Array.from(row));

interface Harness {
  server: ModelServer;
  base: string;
  port: number;
  logged: PredictionEvent[];
  store: InMemoryOnlineStore;
  registry: Registry;
  warned: Array<{ obj: object; msg: string | undefined }>;
}

let open: Harness | undefined;
afterEach(async () => {
  await open?.server.close();
  open = undefined;
});

/** A log whose sends wait for `gate` and that holds `maxBuffered` records (default: the server's). */
interface LogOptions {
  readonly gate?: Promise<void>;
  readonly maxBuffered?: number;
}

async function harness(logOptions: LogOptions = {}): Promise<Harness> {
  const store = new InMemoryOnlineStore();
  const logged: PredictionEvent[] = [];
  const warned: Harness['warned'] = [];
  const logger: Logger = { ...silentLogger, warn: (obj, msg) => void warned.push({ obj, msg }), child: () => logger };
  const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
  const server = await startModelServer({
    store,
    views,
    load: artifactLoader(dir),
    log: {
      publish: async (events) => {
        await logOptions.gate;
        logged.push(...events);
      },
      deadLetter: async () => {
        throw new Error('no record is refused here');
      },
    },
    registry,
    logger,
    logBounds: {
      flushIntervalMs: 5,
      ...(logOptions.maxBuffered === undefined ? {} : { maxBuffered: logOptions.maxBuffered, maxWaitMs: 10_000 }),
    },
    maxBatch: 1_000,
  });
  const t = Date.now();
  await store.write(
    planWrites([
      validateFeatureEvent(views, {
        event_id: 'a',
        view: 'user',
        entity_id: 'u1',
        event_time: t,
        features: { f0: 0.5 },
      }),
      validateFeatureEvent(views, {
        event_id: 'b',
        view: 'account',
        entity_id: 'u1',
        event_time: t,
        features: { f2: 2 },
      }),
    ]),
  );
  open = { server, base: `http://127.0.0.1:${server.port}`, port: server.port, logged, store, registry, warned };
  return open;
}

const predict = async (h: Harness, body: unknown) => {
  const res = await fetch(`${h.base}/v1/models/m:predict`, { method: 'POST', body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

/** The logged record of an answer (the log flushes every 5 ms). */
const loggedAs = (h: Harness, id: unknown) =>
  eventually(async () => h.logged.find((e) => e.prediction_id === id), 5_000, 5);

/** Runs `hook` at the store's next batch read, before the read itself; the count of reads. */
function beforeReads(store: InMemoryOnlineStore, hooks: Array<() => Promise<void>>): { reads: string[][] } {
  const seen = { reads: [] as string[][] };
  const readBatch = store.readBatch.bind(store);
  store.readBatch = async (requests) => {
    seen.reads.push(requests.map((r) => `${r.view.name}:${(r.features ?? []).join('+')}`));
    await hooks.shift()?.();
    return readBatch(requests);
  };
  return seen;
}

describe('a swap while a request is read: the request is scored by the plan current when it is scored', () => {
  it('a body that ends after a rollback is acknowledged is answered and logged by the restored production', async () => {
    const h = await harness();
    await h.server.table.promote('m', 'v1');
    await h.server.table.apply('m', [{ kind: 'PROMOTED', version: 'v2', previous_version: 'v1' }]);
    const asked: string[] = [];
    const get = h.server.table.get.bind(h.server.table);
    h.server.table.get = (model) => {
      asked.push(model);
      return get(model);
    };
    const body = JSON.stringify({ entity_id: 'u1', features: { f1: 1, f3: 2 } });
    const socket = connect(h.port, '127.0.0.1');
    let answer = '';
    socket.on('data', (d) => {
      answer += String(d);
    });
    await new Promise((r) => socket.once('connect', r));
    try {
      socket.write(`POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`);
      socket.write(body.slice(0, 5));
      // Once the request is in the handler (its plan was taken here before its body): v2 is rolled back.
      await eventually(async () => (asked.length > 0 ? true : undefined), 5_000, 1);
      await h.server.table.apply('m', [{ kind: 'ROLLED_BACK', version: 'v2', previous_version: 'v1' }]);
      expect(h.server.table.describe()).toMatchObject([{ model: 'm', production: 'v1' }]);
      socket.write(body.slice(5));
      const text = await eventually(async () => (answer.includes('}') ? answer : undefined), 5_000, 5);
      const got = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
      expect(got).toMatchObject({ version: 'v1', role: 'production', score: score(models.v1, [0.5, 1, 2, 2]) });
      expect(await loggedAs(h, got.prediction_id)).toMatchObject({ model_version: 'v1', role: 'production' });
    } finally {
      socket.destroy();
    }
  });

  it('a swap during the feature read scores with the new plan, reading again only when its reads differ', async () => {
    const h = await harness();
    await h.server.table.promote('m', 'v1');
    const seen = beforeReads(h.store, [
      // Same views and features: the rows read serve the new plan.
      () => h.server.table.promote('m', 'v2'),
    ]);
    const a = await predict(h, { entity_id: 'u1', features: { f1: 1, f3: 2 } });
    expect(a).toMatchObject({ status: 200, body: { version: 'v2', role: 'production' } });
    expect(a.body.score).toBe(score(models.v2, [0.5, 1, 2, 2]));
    expect((await loggedAs(h, a.body.prediction_id)).model_version).toBe('v2');
    expect(seen.reads).toEqual([['user:f0+f1', 'account:f2']]);

    // To a plan reading other features (v4: f0 only; v2 is its watched shadow, so the reads are
    // the same views and features): then to v5 (f2 and the watched v4's f0) during the read.
    await h.server.table.promote('m', 'v4');
    seen.reads.length = 0;
    const again = beforeReads(h.store, [() => h.server.table.apply('m', [{ kind: 'RETIRED', version: 'v2' }])]);
    const b = await predict(h, { entity_id: 'u1', features: { f3: 3 } });
    expect(b).toMatchObject({ status: 200, body: { version: 'v4', role: 'production' } });
    expect(b.body.score).toBe(score(v4, [0.5, 3]));
    // The plan with v2 read f0, f1, f2; the one without reads f0: read again, once.
    expect(again.reads).toEqual([['user:f0+f1', 'account:f2'], ['user:f0']]);
  });

  it('a plan swapped to other reads during both reads answers 503 to retry, never a third read', async () => {
    const h = await harness();
    await h.server.table.promote('m', 'v4');
    const seen = beforeReads(h.store, [
      () => h.server.table.promote('m', 'v5'),
      () => h.server.table.apply('m', [{ kind: 'RETIRED', version: 'v4' }]),
    ]);
    const a = await predict(h, { entity_id: 'u1', features: { f3: 1 } });
    expect(a).toMatchObject({
      status: 503,
      body: { error: { code: 'SINK_UNAVAILABLE', message: expect.stringMatching(/changed twice.*retry/) } },
    });
    expect(seen.reads).toEqual([['user:f0'], ['account:f2', 'user:f0']]);
    // The next request reads once, with the newest plan.
    const b = await predict(h, { entity_id: 'u1', features: { f3: 1 } });
    expect(b).toMatchObject({ status: 200, body: { version: 'v5', role: 'production' } });
    expect(seen.reads).toHaveLength(3);
  });

  it('a plan swapped away and back during the reads (A, B, A) is scored with the rows already read, no 503', async () => {
    // Found by a review: a fast-moving models.v1 (32 clients, 119 events in 8 s) answered 4.3% of
    // requests 503 "changed twice" although the newest plan read what the first read had read.
    const h = await harness();
    await h.server.table.promote('m', 'v4');
    const seen = beforeReads(h.store, [
      // A shadow reading another view (v5: f2), then retired: the plan reads f0 only again.
      () => h.server.table.apply('m', [{ kind: 'SHADOW', version: 'v5' }]),
      () => h.server.table.apply('m', [{ kind: 'RETIRED', version: 'v5' }]),
    ]);
    const a = await predict(h, { entity_id: 'u1', features: { f3: 1 } });
    expect(a).toMatchObject({ status: 200, body: { version: 'v4', role: 'production' } });
    expect(a.body.score).toBe(score(v4, [0.5, 1]));
    expect(seen.reads).toEqual([['user:f0'], ['user:f0', 'account:f2']]);
    expect(h.server.table.describe()).toMatchObject([{ model: 'm', production: 'v4', shadows: [] }]);
    // Logged by v4 alone (the shadow was retired before scoring).
    expect(await loggedAs(h, a.body.prediction_id)).toMatchObject({ model_version: 'v4', role: 'production' });
  });
  it('a plan reading the same views and features in another order is scored on the rows read, not read again', async () => {
    const h = await harness();
    await h.server.table.promote('m', 'v4');
    await h.server.table.apply('m', [{ kind: 'SHADOW', version: 'v5' }]); // reads user:f0, then account:f2
    const seen = beforeReads(h.store, [
      // v5 promoted, v4 watched: account:f2, then user:f0.
      () => h.server.table.apply('m', [{ kind: 'PROMOTED', version: 'v5', previous_version: 'v4' }]),
    ]);
    const a = await predict(h, { entity_id: 'u1', features: { f3: 1 } });
    expect(a).toMatchObject({ status: 200, body: { version: 'v5', role: 'production' } });
    expect(a.body.score).toBe(score(v5, [2, 1]));
    expect(seen.reads).toEqual([['user:f0', 'account:f2']]);
    expect((await loggedAs(h, a.body.prediction_id)).scores).toEqual({ v5: a.body.score, v4: score(v4, [0.5, 1]) });
  });
});

describe('a swap while a request waits for room in the prediction log', () => {
  it('a request scored before a rollback and admitted after it is answered and logged by the restored production', async () => {
    // Found by a review: scored by v2, then waiting up to DRIFTLINE_MODEL_SERVER_LOG_WAIT for room,
    // it was answered 200 by v2 as production 1,005 ms after v2's rollback.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const h = await harness({ gate, maxBuffered: 1 });
    await h.server.table.promote('m', 'v1');
    await h.server.table.apply('m', [{ kind: 'PROMOTED', version: 'v2', previous_version: 'v1' }]);
    let appends = 0;
    const append = h.server.log.append.bind(h.server.log);
    Object.assign(h.server.log, {
      append: (...args: Parameters<typeof append>) => {
        appends++;
        return append(...args);
      },
    });
    const body = { entity_id: 'u1', features: { f1: 1, f3: 2 } };
    const first = await predict(h, body); // its record fills the log (its send waits for the gate)
    expect(first).toMatchObject({ status: 200, body: { version: 'v2', role: 'production' } });
    const second = predict(h, body); // scored by v2, then waits for room
    await eventually(async () => (appends === 2 ? true : undefined), 5_000, 5);
    await h.server.table.apply('m', [{ kind: 'ROLLED_BACK', version: 'v2', previous_version: 'v1' }]);
    expect(h.server.table.describe()).toMatchObject([{ model: 'm', production: 'v1' }]);
    open();
    const answer = await second;
    expect(answer).toMatchObject({ status: 200, body: { version: 'v1', role: 'production' } });
    expect(answer.body.score).toBe(score(models.v1, [0.5, 1, 2, 2]));
    expect(await loggedAs(h, answer.body.prediction_id)).toMatchObject({ model_version: 'v1', role: 'production' });
  });
});

describe('a canary that cannot take a request value production takes', () => {
  it('its share is answered by production, counted by version with one warning line naming the feature', async () => {
    const h = await harness();
    await h.server.table.promote('m', 'v6');
    await h.server.table.apply('m', [{ kind: 'CANARY', version: 'v7', canary_share: 0.3 }]);
    const plan = h.server.table.get('m')!;
    const instances = Array.from({ length: 200 }, (_, i) => ({ entity_id: `e${i}`, features: { f0: i, f3: 'a' } }));
    const members = instances.filter((x) => answering(plan, x.entity_id).role === 'canary');
    expect(members.length).toBeGreaterThan(30);
    // A member alone: 200 from production, on every retry.
    for (let k = 0; k < 2; k++) {
      const one = await predict(h, members[0]);
      expect(one).toMatchObject({ status: 200, body: { version: 'v6', role: 'production' } });
      expect(one.body.score).toBe(score(v6, [members[0]!.features.f0, Number.NaN, Number.NaN, 0]));
    }
    // A batch: every instance answered by production.
    const batch = await predict(h, { instances });
    expect(batch.status).toBe(200);
    const answers = batch.body.predictions as Array<{ version: string; role: string; prediction_id: string }>;
    expect(new Set(answers.map((p) => `${p.version}/${p.role}`))).toEqual(new Set(['v6/production']));
    const record = await loggedAs(h, answers[instances.indexOf(members[0]!)]!.prediction_id);
    expect(record).toMatchObject({ model_version: 'v6', role: 'production', scores: { v6: expect.any(Number) } });
    expect(Object.keys(record.scores ?? {})).toEqual(['v6']);
    const text = await h.registry.getSingleMetricAsString('driftline_model_server_canary_failures_total');
    expect(text).toContain(
      `driftline_model_server_canary_failures_total{model="m",version="v7",service="test"} ${2 + members.length}`,
    );
    // One line for the first, the rest within the minute counted in the metric only.
    const lines = h.warned.filter((w) => w.msg?.includes('canary version could not answer'));
    expect(lines).toEqual([
      {
        obj: expect.objectContaining({
          model: 'm',
          version: 'v7',
          reason: expect.stringMatching(/^cannot take features\.f3: /),
        }),
        msg: expect.stringContaining('production answered them'),
      },
    ]);
    // A value the canary takes is still answered by it.
    const number = await predict(h, { entity_id: members[0]!.entity_id, features: { f3: 1 } });
    expect(number).toMatchObject({ status: 200, body: { version: 'v7', role: 'canary' } });
  });

  it('production failing to score for the canary pairing is counted under its own version', async () => {
    const h = await harness();
    await h.server.table.promote('m', 'v7');
    // Canary v6 (categories) for every entity: a string f3 is one production (numeric) cannot take.
    await h.server.table.apply('m', [{ kind: 'CANARY', version: 'v6', canary_share: 1 }]);
    const a = await predict(h, { entity_id: 'e1', features: { f0: 1, f3: 'a' } });
    expect(a).toMatchObject({ status: 200, body: { version: 'v6', role: 'canary' } });
    const text = await h.registry.getSingleMetricAsString('driftline_model_server_shadow_failures_total');
    expect(text).toContain('driftline_model_server_shadow_failures_total{model="m",version="v7",service="test"} 1');
  });
});
