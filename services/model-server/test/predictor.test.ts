import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import { InMemoryOnlineStore } from '@driftline/online-store';
import { compileXgboostModel, xgboostModelOf } from '@driftline/scoring';
import { syntheticModelJson } from '@driftline/scoring/bench';
import { describe, expect, it } from 'vitest';
import { answering, MAX_READ_ROW_BYTES, scoreInstances } from '../src/predictor.js';
import type { Instance } from '../src/request.js';
import { buildVersion, type LoadedVersion, planServing, versionOf } from '../src/version.js';
import { chainModel, FEATURES, VIEWS_YAML } from './fixtures.js';

const views = parseFeatureViewsText(VIEWS_YAML);
const version = (v: string, seed: number, categories: Record<string, string[]> = {}) =>
  buildVersion('m', v, syntheticModelJson(seed, 30, 6, FEATURES.length), { features: FEATURES, categories });
// Production reads f3 as a category; the shadow takes f3 as a number, so a string f3 is a value
// only the shadow cannot take.
const production = version('v1', 1, { f3: ['a', 'b'] });
const canary = version('v2', 2, { f3: ['a', 'b'] });
const shadow = version('v3', 3);
const plan = planServing(views, { production, canary: { loaded: canary, share: 0.5 }, shadows: [shadow] });

const instance = (i: number, f3: number | string): Instance => ({
  entityId: `e${i}`,
  features: { f0: i / 10 - 1, f1: (i * 7) % 5, f2: i % 3 === 0 ? null : -i / 4, f3 },
  eventTime: undefined,
});

/** The score of one instance by one version, through the single-row path. */
function oneByOne(v: typeof production, inst: Instance): number {
  const row = new Float32Array(FEATURES.length);
  v.encoder.encode(inst.features!, row);
  return v.scorer.predictOne(row);
}

describe('scoreInstances (one batch call per version)', () => {
  it('answers and logs every version exactly as scoring row by row; a version that cannot take a value only counts a failure', async () => {
    const instances = Array.from({ length: 40 }, (_, i) => instance(i, i % 4 === 1 ? 'a' : i % 2));
    let n = 0;
    const scored = await scoreInstances(
      plan,
      { batch: true, instances },
      new InMemoryOnlineStore(),
      1_764_000_000_000,
      () => `id${n++}`,
    );
    const strings = instances.filter((x) => typeof x.features!.f3 === 'string').length;
    expect(scored.shadowFailures).toBe(strings);
    expect(scored.predictions).toHaveLength(40);
    // One answered record per instance, and one shadow record per instance the shadow could take.
    expect(scored.events).toHaveLength(40 + 40 - strings);
    const byId = new Map(scored.events.map((e) => [e.prediction_id, e]));
    instances.forEach((inst, i) => {
      const p = scored.predictions[i]!;
      const answer = answering(plan, inst.entityId);
      expect(p.entity_id).toBe(inst.entityId);
      expect(p.version).toBe(answer.loaded.version);
      expect(p.score).toBe(oneByOne(answer.loaded, inst));
      const logged = byId.get(p.prediction_id)!;
      const expected: Record<string, number> = { [p.version]: p.score };
      if (answer.role === 'canary') expected.v1 = oneByOne(production, inst);
      const shadowTakes = typeof inst.features!.f3 !== 'string';
      if (shadowTakes) expected.v3 = oneByOne(shadow, inst);
      expect(logged.scores).toEqual(expected);
      // The shadow that could not take the value is named on the answered record, with its role.
      expect(logged.unscored).toEqual(shadowTakes ? undefined : { v3: 'shadow' });
      const shadowRecord = byId.get(`${p.prediction_id}.shadow.v3`);
      if (shadowTakes) expect(shadowRecord?.prediction).toBe(expected.v3);
      else expect(shadowRecord).toBeUndefined();
    });
    // Both answering versions served part of the batch.
    expect(new Set(scored.predictions.map((p) => p.version))).toEqual(new Set(['v1', 'v2']));
  });

  it('a shadow whose scorer throws never fails the request: its scores count as failures', async () => {
    const broken = version('v9', 9);
    const throwing = {
      ...broken,
      scorer: Object.assign(Object.create(broken.scorer) as typeof broken.scorer, {
        predict: () => {
          throw new Error('the shadow model cannot score');
        },
      }),
    };
    const withBroken = planServing(views, { production, shadows: [throwing] });
    const instances = [instance(0, 1), instance(1, 0)];
    const scored = await scoreInstances(withBroken, { batch: true, instances }, new InMemoryOnlineStore(), 0);
    expect(scored.predictions.map((p) => [p.version, p.score])).toEqual(
      instances.map((inst) => ['v1', oneByOne(production, inst)]),
    );
    expect(scored.shadowFailures).toBe(2);
    expect(scored.events).toHaveLength(2); // the answered records only
    expect(scored.events.map((e) => e.unscored)).toEqual([{ v9: 'shadow' }, { v9: 'shadow' }]);
  });

  it('a canary that cannot take a value leaves the instance to production, and the answered record names it unscored as canary', async () => {
    // The canary takes f3 as a number, production as a category: a string f3 only production takes.
    const numericCanary = planServing(views, { production, canary: { loaded: shadow, share: 1 }, shadows: [] });
    const instances = [instance(1, 'a'), instance(2, 1)];
    const scored = await scoreInstances(numericCanary, { batch: true, instances }, new InMemoryOnlineStore(), 0);
    expect(scored.predictions.map((p) => [p.version, p.role])).toEqual([
      ['v1', 'production'],
      ['v3', 'canary'],
    ]);
    expect(scored.canaryFailures?.count).toBe(1);
    expect(scored.events.map((e) => [e.model_version, e.unscored])).toEqual([
      ['v1', { v3: 'canary' }],
      ['v3', undefined],
    ]);
    // Production beside the canary, unable to take a value the canary answers: unscored as production.
    const numericProduction = planServing(views, {
      production: shadow,
      canary: { loaded: production, share: 1 },
      shadows: [],
    });
    const beside = await scoreInstances(
      numericProduction,
      { batch: false, instances: [instance(1, 'b')] },
      new InMemoryOnlineStore(),
      0,
    );
    expect(beside.events.map((e) => [e.model_version, e.role, e.scores, e.unscored])).toEqual([
      ['v1', 'canary', { v1: beside.predictions[0]!.score }, { v3: 'production' }],
    ]);
  });

  it('a value the answering version cannot take is a 400 naming the instance', async () => {
    const onlyNumeric = planServing(views, { production: shadow, shadows: [] });
    await expect(
      scoreInstances(
        onlyNumeric,
        { batch: true, instances: [instance(0, 1), instance(1, 'a')] },
        new InMemoryOnlineStore(),
        0,
      ),
    ).rejects.toThrow(/instances\[1\]\.features\.f3: expected a number or boolean/);
  });
});

describe('scoreInstances on hostile models and names', () => {
  const store = new InMemoryOnlineStore();

  /**
   * A regression model whose two trees each add 3e38: every leaf is a float32, their sum is not.
   * Loading refuses it now; compiled, its leaves raised after the check, it tests the guard at
   * scoring.
   */
  function overflowing(v: string) {
    const json = syntheticModelJson(5, 2, 1, FEATURES.length) as {
      learner: {
        objective: { name: string };
        learner_model_param: { base_score: string };
      };
    };
    json.learner.objective = { name: 'reg:squarederror' };
    json.learner.learner_model_param.base_score = '[0E0]';
    const compiled = compileXgboostModel(json);
    for (let i = 0; i < compiled.value.length; i++) if (compiled.value[i] !== 0) compiled.value[i] = 3e38;
    return versionOf('m', v, xgboostModelOf(compiled), { features: FEATURES, categories: {} });
  }

  it('a score that is not a finite number is never answered (500, one line); a shadow scoring one only counts a failure', async () => {
    const bad = overflowing('v9');
    await expect(
      scoreInstances(
        planServing(views, { production: bad, shadows: [] }),
        { batch: false, instances: [instance(1, 1)] },
        store,
        0,
      ),
    ).rejects.toMatchObject({ status: 500, message: 'body: version v9 scored Infinity, not a finite number' });
    const scored = await scoreInstances(
      planServing(views, { production: shadow, shadows: [bad] }),
      { batch: true, instances: [instance(1, 1), instance(2, 2)] },
      store,
      0,
    );
    expect(scored.shadowFailures).toBe(2);
    expect(scored.events.map((e) => [e.role, Object.keys(e.scores ?? {}), e.unscored])).toEqual([
      ['production', ['v3'], { v9: 'shadow' }],
      ['production', ['v3'], { v9: 'shadow' }],
    ]);
  });

  it('a canary scoring no finite number leaves its share to production: answered, logged as production, counted with the reason', async () => {
    // Found by a review: the canary's share got a 500 on every retry while production could answer.
    const bad = overflowing('v9');
    const plan = planServing(views, { production: shadow, canary: { loaded: bad, share: 1 }, shadows: [] });
    const instances = [instance(1, 1), instance(2, 2), instance(3, 3)];
    const scored = await scoreInstances(plan, { batch: true, instances }, store, 0);
    expect(scored.predictions.map((p) => [p.version, p.role, p.score])).toEqual(
      instances.map((inst) => ['v3', 'production', oneByOne(shadow, inst)]),
    );
    expect(scored.canaryFailures).toEqual({ version: 'v9', count: 3, why: 'scored Infinity' });
    expect(scored.shadowFailures).toBe(0);
    expect(scored.events.map((e) => [e.model_version, e.role, Object.keys(e.scores ?? {}), e.unscored])).toEqual(
      instances.map(() => ['v3', 'production', ['v3'], { v9: 'canary' }]),
    );
    // Production scoring no finite number either: still a 500 (nothing to answer with).
    await expect(
      scoreInstances(
        planServing(views, { production: overflowing('v8'), canary: { loaded: bad, share: 1 }, shadows: [] }),
        { batch: false, instances: [instance(1, 1)] },
        store,
        0,
      ),
    ).rejects.toMatchObject({ status: 500 });
  });

  it('a canary whose scorer throws leaves its share to production; the request is answered', async () => {
    const broken = version('v9', 9);
    const throwing = {
      ...broken,
      scorer: Object.assign(Object.create(broken.scorer) as typeof broken.scorer, {
        predict: () => {
          throw new Error('the canary model cannot score');
        },
      }),
    };
    const plan = planServing(views, { production: shadow, canary: { loaded: throwing, share: 1 }, shadows: [] });
    const instances = [instance(1, 1), instance(2, 2)];
    const scored = await scoreInstances(plan, { batch: true, instances }, store, 0);
    expect(scored.predictions.map((p) => [p.version, p.score])).toEqual(
      instances.map((inst) => ['v3', oneByOne(shadow, inst)]),
    );
    expect(scored.canaryFailures).toEqual({
      version: 'v9',
      count: 2,
      why: 'its scorer failed: the canary model cannot score',
    });
    expect(scored.events.map((e) => e.unscored)).toEqual([{ v9: 'canary' }, { v9: 'canary' }]);
  });

  it('values beyond float32 are counted once, on the record answered, whichever version answers', async () => {
    const big = { entityId: 'e1', features: { f0: 1e39, f1: 1, f2: 1e300, f3: 1 }, eventTime: undefined };
    // Answered by the canary with production scored beside it: counted once, on the canary's record.
    const both = planServing(views, {
      production: shadow,
      canary: { loaded: version('v4', 4), share: 1 },
      shadows: [],
    });
    expect((await scoreInstances(both, { batch: false, instances: [big] }, store, 0)).outOfRange).toBe(2);
    const failing = planServing(views, {
      production: shadow,
      canary: { loaded: overflowing('v9'), share: 1 },
      shadows: [],
    });
    expect((await scoreInstances(failing, { batch: false, instances: [big] }, store, 0)).outOfRange).toBe(2);
  });

  it('a feature or a version named __proto__ is a name like any other', async () => {
    const names = ['f0', 'f1', 'f2', '__proto__'];
    const json = syntheticModelJson(8, 30, 6, names.length) as { learner: { feature_names: string[] } };
    json.learner.feature_names = names;
    const proto = buildVersion('m', '__proto__', json, { features: names, categories: {} });
    const plan = planServing(views, { production: proto, shadows: [] });
    const withValue = (x: number): Instance => ({
      entityId: 'e1',
      features: JSON.parse(`{"f0": 0.5, "f1": 1, "f2": -1, "__proto__": ${x}}`) as Instance['features'],
      eventTime: undefined,
    });
    const a = await scoreInstances(plan, { batch: false, instances: [withValue(5)] }, store, 0);
    const b = await scoreInstances(plan, { batch: false, instances: [withValue(-5)] }, store, 0);
    const row = (x: number) => Float32Array.from([0.5, 1, -1, x]);
    expect(a.predictions[0]!.score).toBe(proto.scorer.predictOne(row(5)));
    expect(b.predictions[0]!.score).toBe(proto.scorer.predictOne(row(-5)));
    expect(Object.getOwnPropertyDescriptor(a.events[0]!.features, '__proto__')?.value).toBe(5);
    expect(Object.getOwnPropertyDescriptor(a.events[0]!.scores, '__proto__')?.value).toBe(a.predictions[0]!.score);
    expect(Object.keys(a.events[0]!.scores ?? {})).toEqual(['__proto__']);
  });
});

describe('scoreInstances on the largest batches', () => {
  it('reads the online store in several batch reads when instances × views pass its bound', async () => {
    const store = new InMemoryOnlineStore();
    const t = Date.now();
    await store.write(
      planWrites([
        validateFeatureEvent(views, {
          event_id: 'a',
          view: 'user',
          entity_id: 'e5999',
          event_time: t,
          features: { f0: 2 },
        }),
        validateFeatureEvent(views, {
          event_id: 'b',
          view: 'account',
          entity_id: 'e0',
          event_time: t,
          features: { f2: 3 },
        }),
      ]),
    );
    const reads: number[] = [];
    const readBatch = store.readBatch.bind(store);
    store.readBatch = (requests) => {
      reads.push(requests.reduce((n, r) => n + r.entities.length, 0));
      return readBatch(requests);
    };
    // 6,000 instances × 2 views = 12,000 entities: one read would pass MAX_READ_BATCH (10,000).
    const instances = Array.from(
      { length: 6_000 },
      (_, i): Instance => ({
        entityId: `e${i}`,
        features: { f3: 1 },
        eventTime: undefined,
      }),
    );
    const plan1 = planServing(views, { production: shadow, shadows: [] });
    const scored = await scoreInstances(plan1, { batch: true, instances }, store, 0);
    expect(reads).toEqual([10_000, 2_000]);
    expect(scored.predictions).toHaveLength(6_000);
    expect(scored.events[0]!.features).toMatchObject({ f0: null, f2: 3 });
    expect(scored.events[5_999]!.features).toMatchObject({ f0: 2, f2: null });
  });
});

describe('the scoring work of one request', () => {
  const chain = (v: string, trees: number, depth: number) =>
    buildVersion('m', v, chainModel(trees, depth), { features: FEATURES, categories: {} });
  const batch = (n: number) => ({
    batch: true,
    instances: Array.from(
      { length: n },
      (_, i): Instance => ({
        entityId: `e${i}`,
        features: { f0: i, f1: 1, f2: 2, f3: 3 },
        eventTime: undefined,
      }),
    ),
  });

  it('refuses at once, with a 413 naming the batch bound, a request that would hold the serving thread for seconds, never a large model at the default batch (found by a review)', async () => {
    // 200 chain trees of depth 999 (199,800 levels, within the served model bounds) at a batch of
    // 1,000 held the serving thread 4 s.
    const deep = planServing(views, { production: chain('deep', 200, 999), shadows: [] });
    const started = performance.now();
    const refused = await scoreInstances(deep, batch(1_000), new InMemoryOnlineStore(), 0).catch((e: unknown) => e);
    const took = performance.now() - started;
    expect(refused).toMatchObject({ status: 413 });
    expect((refused as Error).message).toMatch(
      /^request would walk 199800000 tree levels .*more than 50000000: send at most 250 instances per request \(DRIFTLINE_MODEL_SERVER_MAX_BATCH bounds a batch\)$/,
    );
    expect(took).toBeLessThan(2_000); // refused before any read or walk (4 s of scoring before); slack for a loaded run
    const one = await scoreInstances(deep, batch(1), new InMemoryOnlineStore(), 0);
    expect(one.predictions).toHaveLength(1);
    // A large model scored by production, a canary and two shadows at the default batch passes.
    // 1,000 trees of depth 10, four versions, 1,000 instances: 40,000,000 levels.
    const [p, c, s1, s2] = ['v1', 'v2', 'v3', 'v4'].map((v) => chain(v, 1_000, 10));
    const big = planServing(views, { production: p!, canary: { loaded: c!, share: 0.5 }, shadows: [s1!, s2!] });
    const scored = await scoreInstances(big, batch(1_000), new InMemoryOnlineStore(), 0);
    expect(scored.predictions).toHaveLength(1_000);
    expect(scored.events).toHaveLength(3_000);
  });
});

describe('the scoring work of one request, whatever the rollout (a regression review)', () => {
  const numeric = (v: string, seed: number, trees = 30) =>
    buildVersion('m', v, syntheticModelJson(seed, trees, 6, FEATURES.length), { features: FEATURES, categories: {} });
  /**
   * `v` priced as a model of `totalDepth` levels: what the bounds read. Its trees stay small, so a
   * test of the bounds walks little (a walk of 200,000,000 levels takes seconds).
   */
  const priced = (v: LoadedVersion, totalDepth: number): LoadedVersion => ({
    ...v,
    scorer: Object.assign(Object.create(v.scorer) as LoadedVersion['scorer'], { totalDepth }),
  });
  const instances = (n: number) =>
    Array.from(
      { length: n },
      (_, i): Instance => ({
        entityId: `e${i}`,
        features: { f0: i / 100, f1: i % 7, f2: -i, f3: 1 },
        eventTime: undefined,
      }),
    );
  const store = new InMemoryOnlineStore();

  it('judges the 413 on production alone: beside a canary, a batch production alone scores is answered by both', async () => {
    // 4,200 instances of a 1,000-tree depth-6 model (6,000 levels): 25,200,000 levels, within the
    // bound alone; beside a canary of the same size, 50,400,000: a 413 before.
    const plan = planServing(views, {
      production: priced(numeric('v1', 1), 6_000),
      canary: { loaded: priced(numeric('v2', 2), 6_000), share: 0.5 },
      shadows: [],
    });
    const scored = await scoreInstances(plan, { batch: true, instances: instances(4_200) }, store, 0);
    expect(scored.predictions).toHaveLength(4_200);
    expect(new Set(scored.predictions.map((p) => p.role))).toEqual(new Set(['production', 'canary']));
    expect(scored.canaryFailures).toBeUndefined();
    expect(scored.events.filter((e) => e.unscored !== undefined)).toEqual([]);
    // Production alone past the bound is a 413 that names it, canary or not.
    const heavy = planServing(views, { production: priced(numeric('v1', 1), 12_000), shadows: [] });
    await expect(scoreInstances(heavy, { batch: true, instances: instances(4_200) }, store, 0)).rejects.toMatchObject({
      status: 413,
      message: expect.stringMatching(
        /^request would walk 50400000 tree levels \(4200 instances × 12000, the levels of model "m"'s production version v1\), more than 50000000: send at most 4166 instances per request/,
      ),
    });
  });

  it('leaves out of the request a canary or a shadow that alone walks past the bound: production answers, the records name them unscored', async () => {
    const production = numeric('v1', 1);
    const plan = planServing(views, {
      production,
      canary: { loaded: priced(numeric('v2', 2), 200_000), share: 0.5 },
      shadows: [priced(numeric('v3', 3), 200_000)],
    });
    const batch = instances(300);
    const scored = await scoreInstances(plan, { batch: true, instances: batch }, store, 0);
    expect(scored.predictions.map((p) => [p.version, p.role, p.score])).toEqual(
      batch.map((inst) => ['v1', 'production', oneByOne(production, inst)]),
    );
    const share = batch.filter((inst) => answering(plan, inst.entityId).role === 'canary').length;
    expect(share).toBeGreaterThan(100);
    expect(scored.canaryFailures).toEqual({
      version: 'v2',
      count: share,
      why: 'left out of the request: it would walk 60000000 tree levels (300 instances × 200000), more than the 50000000 one version may walk for a request',
    });
    expect(scored.shadowFailuresByVersion).toEqual(new Map([['v3', 300]]));
    // Answered records only (no shadow record), each naming what did not score it.
    expect(scored.events.map((e) => [e.model_version, e.scores, e.unscored])).toEqual(
      batch.map((inst, i) => [
        'v1',
        { v1: scored.predictions[i]!.score },
        answering(plan, inst.entityId).role === 'canary' ? { v2: 'canary', v3: 'shadow' } : { v3: 'shadow' },
      ]),
    );
  });

  it('leaves out the shadows that would take the request past 200,000,000 levels in all, in plan order', async () => {
    // 250 instances × 180,000 levels: 45,000,000 a version; production, the canary and two shadows
    // make 180,000,000, a third shadow would pass 200,000,000; a small fourth (30 trees) still fits.
    const at = (v: string, seed: number) => priced(numeric(v, seed), 180_000);
    const plan = planServing(views, {
      production: at('v1', 1),
      canary: { loaded: at('v2', 2), share: 0.5 },
      shadows: [at('v3', 3), at('v4', 4), at('v5', 5), numeric('v6', 6)],
    });
    const scored = await scoreInstances(plan, { batch: true, instances: instances(250) }, store, 0);
    expect(scored.canaryFailures).toBeUndefined();
    expect(scored.shadowFailuresByVersion).toEqual(new Map([['v5', 250]]));
    const answered = scored.events.filter((e) => e.role !== 'shadow');
    expect(answered.every((e) => e.unscored?.v5 === 'shadow' && Object.keys(e.unscored).length === 1)).toBe(true);
    expect(new Set(scored.events.filter((e) => e.role === 'shadow').map((e) => e.model_version))).toEqual(
      new Set(['v3', 'v4', 'v6']),
    );
  });

  // Large enough to be scored in chunks: 1,000 trees of depth 6, 6,000 levels × 1,000 instances a
  // version, chunks of 166 instances.
  const chunky = (v: string, seed: number, categories: Record<string, string[]>) =>
    buildVersion('m', v, syntheticModelJson(seed, 1_000, 6, FEATURES.length), { features: FEATURES, categories });
  const p1 = chunky('v1', 11, { f3: ['a', 'b'] });
  const c1 = chunky('v2', 12, { f3: ['a', 'b'] });
  const s1 = chunky('v3', 13, {}); // cannot take a string f3
  const mixed = Array.from({ length: 1_000 }, (_, i) => instance(i, i % 4 === 1 ? 'a' : i % 2));

  /** Turns of the event loop taken while `work` runs (none for work done without a wait). */
  async function turnsDuring<T>(work: () => Promise<T>): Promise<{ result: T; turns: number }> {
    let turns = 0;
    let running = true;
    const tick = () => {
      if (!running) return;
      turns++;
      setImmediate(tick);
    };
    setImmediate(tick);
    try {
      return { result: await work(), turns };
    } finally {
      running = false;
    }
  }

  it('scores a long request in chunks, between turns of the event loop, exactly as one batch call per version', async () => {
    const plan = planServing(views, { production: p1, canary: { loaded: c1, share: 0.5 }, shadows: [s1] });
    /** Each version's scores of every instance it can take, in ONE batch call (the scoring before chunks). */
    const oneCall = (v: LoadedVersion) => {
      const rows = new Float32Array(mixed.length * FEATURES.length);
      const at: number[] = [];
      let n = 0;
      mixed.forEach((inst, i) => {
        try {
          v.encoder.encode(inst.features!, rows, n * FEATURES.length);
          at[i] = n++;
        } catch {
          at[i] = -1;
        }
      });
      const scores = v.scorer.predict(rows.subarray(0, n * FEATURES.length));
      return (i: number) => (at[i]! < 0 ? undefined : scores[at[i]!]);
    };
    const ref = { v1: oneCall(p1), v2: oneCall(c1), v3: oneCall(s1) };
    let id = 0;
    const { result: scored, turns } = await turnsDuring(() =>
      scoreInstances(plan, { batch: true, instances: mixed }, store, 0, () => `id${id++}`),
    );
    // 7 chunks for production, 7 for the shadow, 4 for the canary's ~500: before, no turn at all.
    expect(turns).toBeGreaterThanOrEqual(15);
    const byId = new Map(scored.events.map((e) => [e.prediction_id, e]));
    mixed.forEach((inst, i) => {
      const p = scored.predictions[i]!;
      const answer = answering(plan, inst.entityId).loaded.version as 'v1' | 'v2';
      expect([p.version, p.score]).toEqual([answer, ref[answer](i)]);
      const expected: Record<string, number | undefined> = { [answer]: p.score };
      if (answer === 'v2') expected.v1 = ref.v1(i);
      if (ref.v3(i) !== undefined) expected.v3 = ref.v3(i);
      expect(byId.get(p.prediction_id)!.scores).toEqual(expected);
      expect(byId.get(`${p.prediction_id}.shadow.v3`)?.prediction).toBe(ref.v3(i));
    });
    expect(scored.shadowFailures).toBe(mixed.filter((x) => typeof x.features!.f3 === 'string').length);
  });

  it('a plan swapped between chunks scores the request (it starts again); one swapped at every turn is a 503 to retry', async () => {
    const before = planServing(views, { production: p1, shadows: [] });
    const after = planServing(views, { production: c1, shadows: [] });
    let current = before;
    setImmediate(() => {
      current = after;
    });
    const scored = await scoreInstances(() => current, { batch: true, instances: mixed }, store, 0);
    expect(scored.plan === after).toBe(true); // (not toBe: a failure would diff the models)
    expect(new Set(scored.predictions.map((p) => p.version))).toEqual(new Set(['v2']));
    expect(scored.predictions[0]!.score).toBe(oneByOne(c1, mixed[0]!));
    // Swapped while the request waits for room in the log, scored again at once (synchronous): a
    // 503 to retry rather than all its chunks in one go; a short request is scored again.
    const long = await scoreInstances(before, { batch: true, instances: mixed }, store, 0);
    expect(() => long.rescore(after)).toThrow(
      expect.objectContaining({
        status: 503,
        message: expect.stringMatching(/too long to score again at once; retry$/),
      }),
    );
    const short = await scoreInstances(before, { batch: true, instances: mixed.slice(0, 100) }, store, 0);
    expect(short.rescore(after).predictions[0]!.version).toBe('v2');
    // A plan swapped at every turn: three scorings started again, then a 503.
    let swaps = 0;
    const flip = () => {
      current = current === before ? after : before;
      if (++swaps < 100) setImmediate(flip);
    };
    setImmediate(flip);
    const refused = await scoreInstances(() => current, { batch: true, instances: mixed }, store, 0).catch(
      (e: unknown) => e,
    );
    expect(refused).toMatchObject({
      status: 503,
      message: `model "m": its serving plan changed 3 times during the request's scoring; retry`,
    });
  });
});

describe('the rows a request reads are bounded (found by a review: 1,000 rows of 512 KB were read whole)', () => {
  it('asks the store for its rows within the bound, by default 32 MiB; a read split in parts gives each what is left of it', async () => {
    const asked: Array<{ entities: number; maxRowBytes: number | undefined }> = [];
    const store = new InMemoryOnlineStore();
    const spy = Object.assign(Object.create(store) as InMemoryOnlineStore, {
      readBatch: (requests: Parameters<InMemoryOnlineStore['readBatch']>[0], options?: { maxRowBytes?: number }) => {
        asked.push({ entities: requests[0]!.entities.length, maxRowBytes: options?.maxRowBytes });
        return store.readBatch(requests, options);
      },
    });
    const bare = (n: number): Instance[] =>
      Array.from({ length: n }, (_, i) => ({ entityId: `e${i}`, features: { f3: 1 }, eventTime: undefined }));
    const small = planServing(views, { production: shadow });
    await scoreInstances(small, { batch: true, instances: bare(3) }, spy, 0);
    expect(asked).toEqual([{ entities: 3, maxRowBytes: MAX_READ_ROW_BYTES }]);
    expect(MAX_READ_ROW_BYTES).toBe(32 * 1_048_576);
    // Two views: 5,000 entities a read at most (the store's 10,000 entities per call), so 6,000
    // instances are read in two parts, each bounded by what the parts before it left (no rows here).
    asked.length = 0;
    await scoreInstances(small, { batch: true, instances: bare(6_000) }, spy, 0, undefined, 6_000_000);
    expect(asked).toEqual([
      { entities: 5_000, maxRowBytes: 6_000_000 },
      { entities: 1_000, maxRowBytes: 6_000_000 },
    ]);
  });

  it('a read split in parts is bounded as a whole: heavy rows in one part, or an entity repeated in several, are no 400 within the bound (found by a review)', async () => {
    // Before, each part had a share of the bound by its entities: 5/6 of it for the first 5,000.
    const t = Date.now();
    const store = new InMemoryOnlineStore();
    const heavy = 'x'.repeat(60_000);
    await store.write(
      planWrites(
        Array.from({ length: 15 }, (_, i) =>
          validateFeatureEvent(views, {
            event_id: `w${i}`,
            view: 'user',
            entity_id: `e${i}`,
            event_time: t,
            features: { f0: i, f1: 1, other: heavy },
          }),
        ),
      ),
    );
    const small = planServing(views, { production: shadow });
    const bare = (ids: string[]): Instance[] =>
      ids.map((entityId) => ({ entityId, features: { f3: 1 }, eventTime: undefined }));
    const ids = (from: number, n: number) => Array.from({ length: n }, (_, i) => `e${from + i}`);
    // 15 rows of 60 KB (900 KB) in the first part, within a 1 MB bound: its share was 833 KB.
    const clustered = await scoreInstances(
      small,
      { batch: true, instances: bare(ids(0, 6_000)) },
      store,
      t,
      undefined,
      1_000_000,
    );
    expect(clustered.predictions).toHaveLength(6_000);
    // 4,999 entities (3 rows of 60 KB), one of them asked for by 1,001 more instances: read once,
    // within a 200 KB bound (its second part, 1,000 times e12, had a share of 33 KB), every
    // instance given its row.
    const repeated = [...ids(12, 4_999), ...Array.from({ length: 1_001 }, () => 'e12')];
    const answer = await scoreInstances(
      small,
      { batch: true, instances: bare(repeated) },
      store,
      t,
      undefined,
      200_000,
    );
    expect(answer.events.filter((e) => e.entity_id === 'e12').map((e) => e.features.f0)).toEqual(
      Array.from({ length: 1_002 }, () => 12),
    );
    // Past the bound in all, the request is refused naming its bytes.
    await expect(
      scoreInstances(small, { batch: true, instances: bare(ids(0, 6_000)) }, store, t, undefined, 800_000),
    ).rejects.toMatchObject({ code: 'BAD_REQUEST', details: { rowBytes: expect.any(Number), maxRowBytes: 800_000 } });
  });
});
