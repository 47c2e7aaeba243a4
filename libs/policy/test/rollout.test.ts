import { ConfigError } from '@driftline/core';
import type { DriftAlert } from '@driftline/schemas';
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import {
  ARRIVAL_GRACE_MS,
  applyStageEvent,
  awaitsAnswered,
  type ComparisonPlan,
  closedArrivalBound,
  comparisonsOf,
  DEFAULT_ARRIVAL_BUCKET_MS,
  decide,
  EMPTY_STAGES,
  eventKindOf,
  type ModelState,
  operatorTransitions,
  type PairInput,
  type PlannedTransition,
  parsePolicy,
  parseRolloutPolicy,
  parseRolloutPolicyText,
  planKey,
  type RolloutPolicy,
  rolloutPolicyFor,
  servesProduction,
  type TransitionFact,
  tickModel,
  usableTransitions,
  viewOf,
} from '../src/index.js';

const T0 = Date.UTC(2026, 0, 1);
const MIN = 60_000;

const policy: RolloutPolicy = rolloutPolicyFor(
  parseRolloutPolicy({
    defaults: { promotion: { min_labels: 30, max_time: '1d' }, rollback: { min_labels: 30, max_time: '1d' } },
    models: { '*': { canary_share: 0.25 } },
  }),
  'fraud',
) as RolloutPolicy;

/**
 * Seeded labelled pairs predicted from `since`, one a second, each labelled `delayMs` after it was
 * predicted. Each version's score is the label's evidence plus its own noise; `quality` 1 is a
 * sharp model, 0 a coin. Deterministic per seed.
 */
function pairs(
  since: number,
  n: number,
  incumbentQuality: number,
  challengerQuality: number,
  seed = 7,
  delayMs = 1000,
): PairInput[] {
  const r = new SeededRandom(seed);
  const score = (label: number, q: number) =>
    Math.min(1, Math.max(0, 0.5 + (label === 1 ? 0.45 : -0.45) * q + (r.uniform() - 0.5) * 0.3));
  return Array.from({ length: n }, (_, i) => {
    const label = r.uniform() < 0.4 ? 1 : 0;
    return {
      predictionTime: since + i * 1000,
      labelTime: since + i * 1000 + delayMs,
      label,
      incumbent: score(label, incumbentQuality),
      challenger: score(label, challengerQuality),
    };
  });
}

const fact = (
  version: string,
  from: TransitionFact['from_stage'],
  to: TransitionFact['to_stage'],
  at: number,
  previous: string | null = null,
): TransitionFact => ({
  version,
  from_stage: from,
  to_stage: to,
  at,
  previous_version: previous,
});

/** v2 trained at T0, gated against v1 (promoted by the trainer's direct rollout: no record of its own). */
const shadowOfV2 = [fact('v2', null, 'candidate', T0), fact('v2', 'candidate', 'shadow', T0, 'v1')];

function apply(history: TransitionFact[], t: PlannedTransition | undefined): TransitionFact[] {
  if (t === undefined) throw new Error('expected a transition');
  return [...history, fact(t.version, t.from_stage, t.to_stage, t.at, t.previous_version)];
}

describe('rollout policy file', () => {
  it('merges defaults under each model, falls back to *, and validates with the comparison parsers', () => {
    const p = parseRolloutPolicyText(
      `defaults:\n  promotion: { alpha: 0.01, min_labels: 200 }\n  canary_share: 0.2\nmodels:\n  fraud:\n    promotion: { min_labels: 50 }\n  "*": {}\n`,
      'rollout.yaml',
    );
    expect(rolloutPolicyFor(p, 'fraud')?.promotion).toMatchObject({ alpha: 0.01, minLabels: 50 });
    expect(rolloutPolicyFor(p, 'fraud')?.canaryShare).toBe(0.2);
    expect(rolloutPolicyFor(p, 'other')?.promotion.minLabels).toBe(200);
    expect(rolloutPolicyFor(parseRolloutPolicy(undefined), 'any')?.canaryShare).toBe(0.1);
  });

  it('a model the file does not list gets the defaults (without a `*`); `manual: true` is the only opt-out', () => {
    const p = parseRolloutPolicyText(
      `defaults:\n  promotion: { min_labels: 200, max_time: 2d }\n  canary_share: 0.2\nmodels:\n  fraud:\n    promotion: { min_labels: 50 }\n`,
      'rollout.yaml',
    );
    // churn is not listed: the defaults, exactly as a `"*": {}` would give them.
    const churn = rolloutPolicyFor(p, 'churn');
    expect(churn).toEqual(
      rolloutPolicyFor(
        parseRolloutPolicyText(
          `defaults:\n  promotion: { min_labels: 200, max_time: 2d }\n  canary_share: 0.2\nmodels:\n  "*": {}\n`,
          'rollout.yaml',
        ),
        'churn',
      ),
    );
    expect(churn).toMatchObject({ canaryShare: 0.2, promotion: { minLabels: 200, maxTimeMs: 2 * 86_400_000 } });
    expect(rolloutPolicyFor(p, 'fraud')?.promotion.minLabels).toBe(50);
    expect(rolloutPolicyFor(parseRolloutPolicy({ models: { fraud: {} } }), 'other')?.canaryShare).toBe(0.1);
    expect(rolloutPolicyFor(parseRolloutPolicy({ models: { fraud: {} } }), 'constructor')).toBeDefined();
    // The opt-out is explicit: per model, or for every model not listed (on `*`).
    const manual = parseRolloutPolicy({ models: { legacy: { manual: true }, fraud: { manual: false } } });
    expect(rolloutPolicyFor(manual, 'legacy')).toBeUndefined();
    expect(rolloutPolicyFor(manual, 'fraud')?.canaryShare).toBe(0.1);
    expect(rolloutPolicyFor(manual, 'other')?.canaryShare).toBe(0.1);
    const onlyFraud = parseRolloutPolicy({ models: { fraud: {}, '*': { manual: true } } });
    expect(rolloutPolicyFor(onlyFraud, 'fraud')).toBeDefined();
    expect(rolloutPolicyFor(onlyFraud, 'churn')).toBeUndefined();
    // A bad default is named where it is written, also when only the unlisted models use it.
    expect(() =>
      parseRolloutPolicy(
        { defaults: { promotion: { min_labels: 0 } }, models: { fraud: { promotion: { min_labels: 5 } } } },
        'r',
      ),
    ).toThrow(/^r\.defaults\.promotion\.min_labels/);
  });

  it('a model named like a property of every object (constructor, toString, __proto__) gets the * policy', () => {
    const p = parseRolloutPolicyText('models:\n  "*": { canary_share: 0.3 }\n', 'rollout.yaml');
    for (const model of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
      expect(rolloutPolicyFor(p, model)?.canaryShare, model).toBe(0.3);
    }
  });

  it.each([
    [{ models: { fraud: { promotion: { min_labels: 0 } } } }, 'r.models.fraud.promotion.min_labels'],
    [{ models: { fraud: { rollback: { margin: 2 } } } }, 'r.models.fraud.rollback.margin'],
    [{ defaults: { canary_share: 0 } }, 'r.defaults.canary_share'],
    [{ models: { fraud: { canary: 0.1 } } }, 'r.models.fraud'],
    [{ models: { legacy: { manual: true, canary_share: 0.5 } } }, 'r.models.legacy.canary_share'],
    [{ models: { legacy: { manual: 'yes' } } }, 'r.models.legacy.manual'],
    [{ defaults: { manual: true } }, 'r.defaults'],
    [
      { models: { fraud: { promotion: { guards: [{ name: 'latency', max: 0.1 }] } } } },
      'r.models.fraud.promotion.guards.0.name',
    ],
    // Guards written under `defaults` are named there, not under the model that merges them (found by a review).
    [
      {
        defaults: {
          promotion: {
            min_labels: 50,
            max_labels: 80,
            guards: [{ name: 'positive_rate', max: 0.5, min_observations: 100 }],
          },
        },
      },
      'r.defaults.promotion.guards.0.min_observations',
    ],
    [
      {
        defaults: { promotion: { guards: [{ name: 'positive_rate', max: 0.5, min_observations: 500 }] } },
        models: { fraud: { promotion: { min_labels: 100, max_labels: 300 } } },
      },
      'r.defaults.promotion.guards.0.min_observations',
    ],
    [
      { defaults: { rollback: { guards: [{ name: 'latency', max: 0.1 }] } }, models: { fraud: {} } },
      'r.defaults.rollback.guards.0.name',
    ],
    [{ defaults: { rollback: { guards: [{ name: 'x', max: 2 }] } } }, 'r.defaults.rollback.guards.0.max'],
    // The model's own guards (over defaults that have some) are the model's.
    [
      {
        defaults: { promotion: { guards: [{ name: 'positive_rate', max: 0.5 }] } },
        models: {
          fraud: {
            promotion: {
              min_labels: 30,
              max_labels: 50,
              guards: [{ name: 'positive_rate', max: 0.5, min_observations: 60 }],
            },
          },
        },
      },
      'r.models.fraud.promotion.guards.0.min_observations',
    ],
    // A bad field of `defaults` is named there, not under the first model listed (found by a review:
    // `models.fraud.promotion.alpha: Too big` for an alpha written in defaults).
    [
      { defaults: { promotion: { alpha: 0.9 } }, models: { fraud: { canary_share: 0.2 } } },
      'r.defaults.promotion.alpha',
    ],
    [{ defaults: { rollback: { margin: 2 } }, models: { fraud: {}, '*': {} } }, 'r.defaults.rollback.margin'],
    [{ defaults: { arrival_bucket: '2d' } }, 'r.defaults.arrival_bucket'],
    [{ models: { fraud: { arrival_bucket: -1 } } }, 'r.models.fraud.arrival_bucket'],
    [{ models: { legacy: { manual: true, arrival_bucket: '1h' } } }, 'r.models.legacy.arrival_bucket'],
  ])('names the bad field: %j', (doc, field) => {
    let error: unknown;
    try {
      parseRolloutPolicy(doc, 'r');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe(field);
  });
});

describe('rollout policy file: defaults and arrival_bucket', () => {
  it('defaults are checked field by field on their own; how fields combine is checked per model, merged', () => {
    // max_labels 100 alone is below the default min_labels (500): valid once every model's section sets its own.
    const p = parseRolloutPolicy(
      {
        defaults: { promotion: { max_labels: 100 } },
        models: { fraud: { promotion: { min_labels: 50 } }, '*': { promotion: { min_labels: 20 } } },
      },
      'r',
    );
    expect(rolloutPolicyFor(p, 'fraud')?.promotion).toMatchObject({ minLabels: 50, maxLabels: 100 });
    expect(rolloutPolicyFor(p, 'churn')?.promotion).toMatchObject({ minLabels: 20, maxLabels: 100 });
  });

  it('arrival_bucket: an hour by default, a duration up to a day, 0 for the order of arrival; a model overrides the defaults', () => {
    expect(rolloutPolicyFor(parseRolloutPolicy(undefined), 'fraud')?.arrivalBucketMs).toBe(DEFAULT_ARRIVAL_BUCKET_MS);
    expect(DEFAULT_ARRIVAL_BUCKET_MS).toBe(3_600_000);
    const p = parseRolloutPolicyText(
      'defaults:\n  arrival_bucket: 10m\nmodels:\n  fraud: { arrival_bucket: 0 }\n  churn: { arrival_bucket: 1d }\n',
      'rollout.yaml',
    );
    expect(rolloutPolicyFor(p, 'fraud')?.arrivalBucketMs).toBe(0);
    expect(rolloutPolicyFor(p, 'churn')?.arrivalBucketMs).toBe(86_400_000);
    expect(rolloutPolicyFor(p, 'other')?.arrivalBucketMs).toBe(600_000);
  });

  it("arrival_bucket with label_maturity is refused where the bucket is written (it was ignored in silence); a model's own label_maturity overrides a bucket of the defaults", () => {
    const refused = (doc: unknown) => {
      try {
        parseRolloutPolicy(doc, 'r');
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return `${(e as ConfigError).field}: ${(e as ConfigError).message}`;
      }
      return 'accepted';
    };
    expect(refused({ models: { fraud: { label_maturity: '1d', arrival_bucket: '6h' } } })).toMatch(
      /^r\.models\.fraud\.arrival_bucket: .*label_maturity \(r\.models\.fraud\.label_maturity\).*remove arrival_bucket$/,
    );
    expect(refused({ defaults: { label_maturity: '1d', arrival_bucket: '2h' }, models: { fraud: {} } })).toMatch(
      /^r\.defaults\.arrival_bucket: .*\(r\.defaults\.label_maturity\)/,
    );
    expect(refused({ defaults: { label_maturity: '1d', arrival_bucket: '2h' } })).toMatch(
      /^r\.defaults\.arrival_bucket: /,
    );
    // A model's bucket under the defaults' label_maturity: named in the model.
    expect(refused({ defaults: { label_maturity: '1d' }, models: { churn: { arrival_bucket: '2h' } } })).toMatch(
      /^r\.models\.churn\.arrival_bucket: .*\(r\.defaults\.label_maturity\)/,
    );
    // The defaults' bucket, a model's own label_maturity (the README's example): the model's wins.
    const p = parseRolloutPolicy(
      {
        defaults: { arrival_bucket: '2h' },
        models: { fraud: { label_maturity: '1d' }, legacy: { label_maturity: '1d', arrival_bucket: 0 }, churn: {} },
      },
      'r',
    );
    expect(rolloutPolicyFor(p, 'fraud')).toMatchObject({ labelMaturityMs: 86_400_000 });
    expect(rolloutPolicyFor(p, 'legacy')).toMatchObject({ labelMaturityMs: 86_400_000, arrivalBucketMs: 0 });
    expect(rolloutPolicyFor(p, 'churn')).toMatchObject({ labelMaturityMs: 0, arrivalBucketMs: 7_200_000 });
    // label_maturity alone keeps the default bucket, unused (nothing written to refuse).
    expect(refused({ defaults: { label_maturity: '1d' } })).toBe('accepted');
  });

  it('closedArrivalBound: the start of the bucket that holds now − the grace, cut from the epoch', () => {
    const H = 3_600_000;
    const hour = Date.UTC(2026, 5, 1, 13);
    expect(closedArrivalBound(hour + ARRIVAL_GRACE_MS - 1, H)).toBe(hour - H);
    expect(closedArrivalBound(hour + ARRIVAL_GRACE_MS, H)).toBe(hour);
    expect(closedArrivalBound(hour + H - 1, H)).toBe(hour);
    expect(closedArrivalBound(hour + 7 * 60_000, 600_000)).toBe(hour);
  });
});

describe('the view of recorded transitions', () => {
  it('takes production from the gate before any promotion, then from promotions and rollbacks', () => {
    expect(viewOf(shadowOfV2)).toMatchObject({ production: 'v1' });
    expect(comparisonsOf(viewOf(shadowOfV2))).toEqual([
      {
        kind: 'promotion',
        subject: 'v2',
        stage: 'shadow',
        incumbent: 'v1',
        challenger: 'v2',
        since: T0,
        from: T0,
        answeredBy: { version: 'v1', role: 'production' },
      },
    ]);
    const promoted = [
      ...shadowOfV2,
      fact('v2', 'shadow', 'canary', T0 + MIN, 'v1'),
      fact('v2', 'canary', 'production', T0 + 2 * MIN, 'v1'),
    ];
    const view = viewOf(promoted);
    expect(view.production).toBe('v2');
    expect(view.watch).toEqual({ production: 'v2', previous: 'v1', since: T0 + 2 * MIN });
    expect(comparisonsOf(view)).toEqual([
      {
        kind: 'rollback',
        subject: 'v2',
        stage: 'production',
        incumbent: 'v2',
        challenger: 'v1',
        since: T0 + 2 * MIN,
        from: T0 + 2 * MIN,
        answeredBy: { version: 'v2', role: 'production' },
      },
    ]);
    const rolledBack = viewOf([...promoted, fact('v2', 'production', 'rolled_back', T0 + 3 * MIN, 'v1')]);
    expect(rolledBack.production).toBe('v1');
    expect(rolledBack.watch).toBeUndefined();
    expect(comparisonsOf(rolledBack)).toEqual([]);
    const kept = viewOf([...promoted, fact('v1', 'production', 'retired', T0 + 3 * MIN, 'v2')]);
    expect(kept).toMatchObject({ production: 'v2' });
    expect(kept.watch).toBeUndefined();
    expect(comparisonsOf(kept)).toEqual([]);
    // Input order does not matter.
    expect(viewOf([...promoted].reverse())).toEqual(view);
  });

  it("reads each stage of a version on requests of its own: production's answers, then its canary answers, then its production answers (found by a review)", () => {
    const sourceOf = (history: TransitionFact[], subject: string) =>
      comparisonsOf(viewOf(history)).find((p) => p.subject === subject)?.answeredBy;
    const canary = [...shadowOfV2, fact('v2', 'shadow', 'canary', T0 + MIN, 'v1')];
    const promoted = [...canary, fact('v2', 'canary', 'production', T0 + 2 * MIN, 'v1')];
    const sources = [sourceOf(shadowOfV2, 'v2'), sourceOf(canary, 'v2'), sourceOf(promoted, 'v2')];
    expect(sources).toEqual([
      { version: 'v1', role: 'production' },
      { version: 'v2', role: 'canary' },
      { version: 'v2', role: 'production' },
    ]);
    // A row has one answering version and role: no row is evidence for two stages of v2.
    expect(new Set(sources.map((s) => `${s?.version}/${s?.role}`)).size).toBe(3);
    // A shadow during the watch is scored on the requests production (v2) answers.
    const v3 = [
      ...promoted,
      fact('v3', null, 'candidate', T0 + 3 * MIN),
      fact('v3', 'candidate', 'shadow', T0 + 3 * MIN, 'v2'),
    ];
    expect(sourceOf(v3, 'v3')).toEqual({ version: 'v2', role: 'production' });
    // The source is part of the plan's key (the pairs read for it).
    const [shadowPlan] = comparisonsOf(viewOf(shadowOfV2));
    expect(planKey(shadowPlan!)).not.toBe(planKey({ ...shadowPlan!, answeredBy: { version: 'v2', role: 'canary' } }));
  });

  it('opens nothing without a known production version', () => {
    expect(comparisonsOf(viewOf([fact('v2', null, 'candidate', T0), fact('v2', 'candidate', 'shadow', T0)]))).toEqual(
      [],
    );
  });
});

describe('servesProduction (the retrain-trigger asks it of every alert)', () => {
  it('a row written by hand with a stage none of ours is left out, as the model-controller leaves it out (found by a review)', () => {
    const history = [fact('v1', null, 'production', T0), fact('v2', null, 'candidate', T0 + 1)];
    const handWritten = {
      ...fact('v9', null, 'production', T0 + 2),
      to_stage: 'Production',
    } as unknown as TransitionFact;
    const badTime = fact('v8', null, 'production', 1.5);
    expect(usableTransitions([...history, handWritten, badTime])).toEqual(history);
    // v9's only row is not ours: v9 is as unknown as to the controller, so its alerts count (they
    // were held as not_serving: the row's stage is not 'production').
    expect(servesProduction([...history, handWritten, badTime], 'v9')).toBe(true);
    expect(servesProduction([...history, handWritten], 'v1')).toBe(true);
    expect(servesProduction([...history, handWritten], 'v2')).toBe(false);
  });

  it('the production a promotion replaced still serves while watched: a promoted version that fails to load leaves it answering (found by a regression review)', () => {
    // v2 promoted over v1; the controller retires v1 only when the rollback watch ends. The
    // model-server scores v1 as a shadow meanwhile, but answers with it when v2 does not load
    // (its fallback): counting only v2 held every alert of the model `not_serving` for the watch's
    // max_time (7 days), a sustained drift of v1 never fired.
    const history = [
      fact('v1', null, 'production', T0),
      fact('v2', null, 'candidate', T0 + MIN),
      fact('v2', 'candidate', 'shadow', T0 + MIN, 'v1'),
      fact('v2', 'shadow', 'canary', T0 + 2 * MIN, 'v1'),
      fact('v2', 'canary', 'production', T0 + 3 * MIN, 'v1'),
    ];
    expect(servesProduction(history, 'v1')).toBe(true);
    expect(servesProduction(history, 'v2')).toBe(true);
    const retrain = parsePolicy({ models: { fraud: { signals: { share_drifted: 0.3 }, sustain: 3 } } });
    const drift = (i: number): DriftAlert => ({
      alert_id: `drift-v1-${i}`,
      kind: 'FEATURE_DRIFT',
      model: 'fraud',
      model_version: 'v1',
      feature: null,
      window_start: T0 + (10 + i) * 5 * MIN,
      window_end: T0 + (11 + i) * 5 * MIN,
      event_time: T0 + (11 + i) * 5 * MIN,
      method: 'psi',
      statistic: 0.4,
      p_value: null,
      threshold: 0.2,
      share_drifted: 0.6,
      evidence: '{}',
    });
    let state: ModelState | undefined;
    const decisions: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = decide(retrain, state, drift(i), undefined, servesProduction(history, 'v1'));
      state = r.state;
      decisions.push(r.decision.kind === 'fire' ? 'fire' : r.decision.reason);
    }
    expect(decisions).toEqual(['sustaining', 'sustaining', 'fire']);
    // Once the watch ends (v1 retired), v1 no longer serves.
    const ended = [...history, fact('v1', 'production', 'retired', T0 + 60 * MIN, 'v2')];
    expect(servesProduction(ended, 'v1')).toBe(false);
    expect(servesProduction(ended, 'v2')).toBe(true);
  });
});

describe('tickModel', () => {
  const only = (data: PairInput[]) => () => data;

  it('promotes a better shadow to canary at the deciding pair, with the canary share; replay gives the same', () => {
    const data = pairs(T0, 400, 0.2, 0.8);
    const a = tickModel(shadowOfV2, only(data), policy);
    expect(a.transition).toMatchObject({
      version: 'v2',
      from_stage: 'shadow',
      to_stage: 'canary',
      decided_by: 'policy:promotion',
      reason: 'evidence',
      canary_share: 0.25,
      previous_version: 'v1',
    });
    const used = a.outcomes[0]!.pairs;
    expect(used).toBeGreaterThanOrEqual(30);
    expect(used).toBeLessThan(400);
    expect(a.transition!.at).toBe(data[used - 1]!.labelTime);
    expect(JSON.parse(a.transition!.evidence)).toMatchObject({ test: 'prpl_eb_confidence_sequence', n: used });
    expect(tickModel([...shadowOfV2].reverse(), only(data), policy)).toEqual(a);
    // More labels after the decision change nothing: the decision and its time are those of the replay.
    expect(tickModel(shadowOfV2, only(pairs(T0, 800, 0.2, 0.8)), policy).transition).toEqual(a.transition);
  });

  it('rejects a worse shadow, and waits (continue) with too few labels', () => {
    expect(tickModel(shadowOfV2, only(pairs(T0, 400, 0.8, 0.2)), policy).transition).toMatchObject({
      version: 'v2',
      to_stage: 'rejected',
      previous_version: 'v1',
    });
    const few = tickModel(shadowOfV2, only(pairs(T0, 10, 0.2, 0.8)), policy);
    expect(few.transition).toBeUndefined();
    expect(few.outcomes[0]!.decision).toMatchObject({ action: 'continue', reason: 'min_labels' });
  });

  it('lets max_time decide on the newest labelled prediction time (a tick), never on wall clock', () => {
    const equal = pairs(T0, 20, 0.5, 0.5); // under min_labels
    expect(tickModel(shadowOfV2, only(equal), policy).transition).toBeUndefined();
    const day = 86_400_000;
    const late = { predictionTime: T0 + day, labelTime: T0 + day + 5_000, label: 1, incumbent: 0.5, challenger: 0.5 };
    // Decided when the deciding label arrived: the transition is dated by the label, not the prediction.
    expect(tickModel(shadowOfV2, only([...equal, late]), policy).transition).toMatchObject({
      to_stage: 'rejected',
      reason: 'too_few_labels',
      at: T0 + day + 5_000,
    });
    // A label a day late of a prediction made a second after the start is not a day of evidence.
    const delayed = { ...late, predictionTime: T0 + 1_000 };
    expect(tickModel(shadowOfV2, only([...equal, delayed]), policy).transition).toBeUndefined();
  });

  it('gives a comparison max_time of predictions whatever the label delay (30-day labels, 1-day max_time)', () => {
    // On label time, the first label (30 days after the start) already ended the comparison on
    // max_time, rejecting a better candidate with one pair.
    const month = 30 * 86_400_000;
    const better = pairs(T0, 400, 0.2, 0.8, 7, month);
    const r = tickModel(shadowOfV2, only(better), policy, {
      labelTime: T0 + month + 400_000,
      predictionTime: T0 + 400_000,
    });
    expect(r.transition).toMatchObject({ to_stage: 'canary', reason: 'evidence' });
    expect(r.transition!.at).toBeGreaterThan(T0 + month);
    // Labels of predictions made before the stage began move the label clock, not max_time's.
    const before = tickModel(shadowOfV2, only([]), policy, { labelTime: T0 + month, predictionTime: T0 - 1_000 });
    expect(before.transition).toBeUndefined();
  });

  it("ends a comparison that gets no pairs on max_time by the model's own clock", () => {
    // A watched or challenged version nobody scores gives no pairs: without the model's clock the
    // comparison never ended (found by the demo: a rollback watch of a version never served).
    const day = 86_400_000;
    expect(tickModel(shadowOfV2, only([]), policy).transition).toBeUndefined();
    expect(
      tickModel(shadowOfV2, only([]), policy, { labelTime: T0 + 2_000, predictionTime: T0 + 1_000 }).transition,
    ).toBeUndefined();
    expect(
      tickModel(shadowOfV2, only([]), policy, { labelTime: T0 + day + 60_000, predictionTime: T0 + day }).transition,
    ).toMatchObject({ to_stage: 'rejected', reason: 'too_few_labels', at: T0 + day + 60_000 });
    // The clock never moves time back (pairs labelled after it wait for it, see below).
    const equal = pairs(T0, 20, 0.5, 0.5);
    expect(
      tickModel(shadowOfV2, only(equal), policy, { labelTime: T0, predictionTime: T0 }).transition,
    ).toBeUndefined();
  });

  it("a pair labelled after the model's clock waits for it: a decision is never dated before its deciding label (found by the time model)", () => {
    const better = pairs(T0, 800, 0.2, 0.8);
    const decided = tickModel(shadowOfV2, only(better), policy).transition!;
    // The deciding pair is labelled at decided.at; a clock one ms before it (a quorum's, with event
    // time ahead of the wall clock) dated the promotion at the clock, before that label.
    const before = { labelTime: decided.at - 1, predictionTime: decided.at - 1_001 };
    expect(tickModel(shadowOfV2, only(better), policy, before).transition).toBeUndefined();
    const reached = { labelTime: decided.at, predictionTime: decided.at - 1_000 };
    expect(tickModel(shadowOfV2, only(better), policy, reached).transition).toEqual({
      ...decided,
      evidence: JSON.stringify({ ...JSON.parse(decided.evidence), serving_from: decided.at }),
    });
  });

  it('pairs come in arrival order: a decision is dated at the newest label among the pairs it used, not at the deciding pair (found by a review)', () => {
    const better = pairs(T0, 800, 0.2, 0.8);
    const decided = tickModel(shadowOfV2, only(better), policy).transition!;
    // The first pair to arrive was labelled an hour after the deciding pair (which arrived later,
    // its label delayed): the decision needed that label, and is dated at it, not before it.
    const firstLabelledLater = { ...better[0]!, labelTime: decided.at + 3_600_000 };
    const arrived = [firstLabelledLater, ...better.slice(1)];
    const t = tickModel(shadowOfV2, only(arrived), policy).transition!;
    expect([t.to_stage, t.reason, JSON.parse(t.evidence).n]).toEqual([
      decided.to_stage,
      decided.reason,
      JSON.parse(decided.evidence).n,
    ]);
    expect(t.at).toBe(decided.at + 3_600_000);
  });

  it('a pair waiting for the clock holds back every pair that arrived after it: skipped alone, it came back into the middle of a path already tested', () => {
    const better = pairs(T0, 800, 0.2, 0.8);
    const newest = better[better.length - 1]!;
    const clock = { labelTime: newest.labelTime, predictionTime: newest.predictionTime };
    // The first to arrive is labelled after the clock (a producer's clock ahead): nothing after it is used yet.
    const ahead = { ...better[0]!, labelTime: clock.labelTime + 60_000 };
    const waiting = tickModel(shadowOfV2, only([ahead, ...better.slice(1)]), policy, clock);
    expect(waiting.transition).toBeUndefined();
    expect(waiting.outcomes[0]!.pairs).toBe(0);
    // Once the clock reaches it, the path is the one that arrived, that pair first.
    const reached = { ...clock, labelTime: ahead.labelTime };
    const t = tickModel(shadowOfV2, only([ahead, ...better.slice(1)]), policy, reached).transition!;
    expect(t).toMatchObject({ to_stage: 'canary', reason: 'evidence', at: ahead.labelTime });
  });

  it('while a pair waits for the clock, max_time does not run past its prediction time: a comparison whose evidence waits is not ended on max_time (found by a review)', () => {
    const hourly = rolloutPolicyFor(
      parseRolloutPolicy({ defaults: { promotion: { min_labels: 30, max_time: '1h' } } }),
      'fraud',
    ) as RolloutPolicy;
    // One pair every 30 s, labelled 1 s later; label 1, so d = (1 − v1)² − (1 − v2)².
    const at = (i: number, v1: number, v2: number): PairInput => ({
      predictionTime: T0 + i * 30_000,
      labelTime: T0 + i * 30_000 + 1_000,
      label: 1,
      incumbent: v1,
      challenger: v2,
    });
    const even = Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? at(i, 0.5, 1) : at(i, 1, 0.5)));
    const better = Array.from({ length: 150 }, (_, i) => at(51 + i, 0.5, 1));
    const newest = better[better.length - 1]!;
    // 100 min of predictions: max_time (1 h) is up on the clock's prediction time.
    const clock = { labelTime: newest.labelTime, predictionTime: newest.predictionTime };
    // The 51st to arrive is labelled 50 min after the clock (its source's clock ahead, within the bound).
    const held = { ...at(50, 0.5, 1), labelTime: clock.labelTime + 50 * MIN };
    const arrived = [...even, held, ...better];
    // The clock's prediction time ended it on max_time with 50 even pairs (rejected), while 151
    // pairs favouring the challenger waited for one label.
    const waiting = tickModel(shadowOfV2, only(arrived), hourly, clock);
    expect(waiting.transition).toBeUndefined();
    expect(waiting.outcomes[0]!.pairs).toBe(50);
    expect(waiting.outcomes[0]!.decision).toMatchObject({ action: 'continue' });
    // Once the clock passes the held label, the whole path decides on evidence, dated at that label.
    const passed = { labelTime: held.labelTime, predictionTime: newest.predictionTime + 50 * MIN };
    const t = tickModel(shadowOfV2, only(arrived), hourly, passed).transition!;
    expect(t).toMatchObject({ to_stage: 'canary', reason: 'evidence', at: held.labelTime });
  });

  describe("a canary's or watch's max_time counts from when it could serve (found by the time model)", () => {
    const day = 86_400_000;
    const backlog = T0 + 3 * day; // the model's label clock when the shadow was decided: 3 days of backlog
    const better = pairs(T0, 800, 0.2, 0.8);
    const promoted = tickModel(shadowOfV2, only(better), policy, {
      labelTime: backlog,
      predictionTime: backlog - 1_000,
    }).transition!;
    const canary = [
      ...shadowOfV2,
      { ...fact('v2', 'shadow', 'canary', promoted.at, 'v1'), evidence: promoted.evidence },
    ];
    const at = (prediction: number) => ({ labelTime: prediction + 1_000, predictionTime: prediction });
    const canaryOn = (data: PairInput[], prediction: number) =>
      tickModel(canary, only(data), policy, at(prediction)).outcomes[0]!.decision;

    it('the transition stores the label clock of the tick that decided it', () => {
      expect(promoted).toMatchObject({ to_stage: 'canary' });
      expect(promoted.at).toBeLessThan(T0 + 2 * MIN); // dated by its deciding label, days before the clock
      expect(JSON.parse(promoted.evidence)).toMatchObject({ serving_from: backlog });
    });

    it('no own answer: the canary ends max_time after serving_from, not after its since (event time, whatever the wall clock)', () => {
      // Before: rolled back too_few_labels at the first tick, max_time long spent since `since`.
      expect(canaryOn([], backlog - 1_000)).toMatchObject({ action: 'continue' });
      expect(canaryOn([], backlog + day - 1)).toMatchObject({ action: 'continue' });
      expect(canaryOn([], backlog + day)).toMatchObject({ action: 'reject', reason: 'too_few_labels' });
    });

    it('own answers: max_time counts from the first, when later (the servers switched late, labels came late)', () => {
      const first = backlog + 2 * 3_600_000;
      const own = pairs(first, 10, 0.5, 0.5);
      expect(canaryOn(own, backlog + day + MIN)).toMatchObject({ action: 'continue' });
      expect(canaryOn(own, first + day)).toMatchObject({ action: 'reject', reason: 'too_few_labels' });
    });

    it('a watch: production is asked whether it answered only max_time after its serving_from', () => {
      const prod = tickModel(canary, only(pairs(backlog, 800, 0.2, 0.8)), policy, at(backlog + 5 * day)).transition!;
      expect(prod).toMatchObject({ to_stage: 'production' });
      const served = JSON.parse(prod.evidence).serving_from as number;
      expect(served).toBe(backlog + 5 * day + 1_000);
      const watched = [...canary, { ...fact('v2', 'canary', 'production', prod.at, 'v1'), evidence: prod.evidence }];
      const watch = (prediction: number) => tickModel(watched, only([]), policy, at(prediction)).outcomes;
      // A day after `since` (its since: prod.at) the watch is not up: its time runs from serving_from.
      expect(
        watch(served + day - 1_001).map((o) => [o.plan.kind, o.decision.action, awaitsAnswered(o.plan, o.decision)]),
      ).toEqual([['rollback', 'continue', false]]);
      const up = watch(served + day);
      expect(awaitsAnswered(up[0]!.plan, up[0]!.decision)).toBe(true);
    });

    it('a pair waiting for the clock does not move the start: the same decision with or without it (found by a review)', () => {
      const clock = at(backlog + day + 10 * MIN);
      const used = pairs(backlog + 2 * 3_600_000, 3, 0.5, 0.5); // own answers, labelled before the clock
      // An own answer predicted earlier, labelled after the clock: it waits, and must not make the
      // canary's max_time start earlier (it ended the canary too_few_labels on its account).
      const waiting = {
        predictionTime: backlog + 10 * MIN,
        labelTime: clock.labelTime + 1,
        label: 0,
        incumbent: 0.4,
        challenger: 0.6,
      };
      const without = tickModel(canary, only(used), policy, clock).outcomes[0]!.decision;
      expect(without).toMatchObject({ action: 'continue' });
      // The same decision, but for the time: while it waits, max_time runs only to the pairs used
      // (from the same start, the first own answer used).
      const waited = tickModel(canary, only([...used, waiting]), policy, clock).outcomes[0]!.decision;
      const elapsed = used[2]!.predictionTime - used[0]!.predictionTime;
      expect(waited).toEqual({ ...without, evidence: { ...without.evidence, elapsed_ms: elapsed } });
    });

    it("a serving_from past the model's clock (written by hand: no controller writes one) is ignored: the stage counts from `since`", () => {
      const ahead = JSON.stringify({ ...JSON.parse(promoted.evidence), serving_from: backlog + 365 * day });
      // (one max_time past the clock is tolerated: a host whose wall clock is behind the last one's)
      const held = [...shadowOfV2, { ...fact('v2', 'shadow', 'canary', promoted.at, 'v1'), evidence: ahead }];
      // Kept, it held the canary (and every later promotion) for a year.
      expect(tickModel(held, only([]), policy, at(backlog + 2 * day)).outcomes[0]!.decision).toMatchObject({
        action: 'reject',
        reason: 'too_few_labels',
      });
    });

    it('rows recorded before (no serving_from, or evidence that is not JSON) count from `since`, as before', () => {
      for (const evidence of ['', 'not json {', JSON.stringify({ n: 3 })]) {
        const old = [...shadowOfV2, { ...fact('v2', 'shadow', 'canary', promoted.at, 'v1'), evidence }];
        expect(tickModel(old, only([]), policy, at(promoted.at + day)).outcomes[0]!.decision).toMatchObject({
          action: 'reject',
          reason: 'too_few_labels',
        });
      }
    });
  });

  it('skips pairs that would be poison (label not 0/1, score outside [0, 1]) and counts them', () => {
    const data = [
      { predictionTime: T0, labelTime: T0 + 1, label: 0.5, incumbent: 0.1, challenger: 0.2 },
      { predictionTime: T0, labelTime: T0 + 2, label: 1, incumbent: 2, challenger: 0.2 },
      { predictionTime: -1, labelTime: T0 + 3, label: 1, incumbent: 0.5, challenger: 0.2 },
      { predictionTime: T0, labelTime: 1.5, label: 1, incumbent: 0.5, challenger: 0.2 },
      ...pairs(T0, 5, 0.2, 0.8),
    ];
    const r = tickModel(shadowOfV2, only(data), policy);
    expect(r.outcomes[0]).toMatchObject({ pairs: 5, skipped: 4 });
  });

  it('takes a better candidate through shadow and canary to production, then keeps it (old version retired)', () => {
    let history: TransitionFact[] = shadowOfV2;
    const byPlan = new Map<string, PairInput[]>();
    const read = (plan: ComparisonPlan) => {
      const key = planKey(plan);
      // The candidate is better; during the watch production (v2) is the better one.
      if (!byPlan.has(key))
        byPlan.set(
          key,
          plan.kind === 'promotion'
            ? pairs(plan.since, 400, 0.2, 0.8, byPlan.size + 1)
            : pairs(plan.since, 400, 0.8, 0.2, 99),
        );
      return byPlan.get(key)!;
    };
    const stages: string[] = [];
    for (let i = 0; i < 3; i++) {
      const t = tickModel(history, read, policy).transition;
      history = apply(history, t);
      stages.push(`${t!.version}:${t!.from_stage}>${t!.to_stage}`);
    }
    expect(stages).toEqual(['v2:shadow>canary', 'v2:canary>production', 'v1:production>retired']);
    const final = viewOf(history);
    expect(final.production).toBe('v2');
    expect(tickModel(history, read, policy)).toMatchObject({ outcomes: [], waiting: [] });
    expect(history.map((h) => h.at)).toEqual([...history.map((h) => h.at)].sort((a, b) => a - b));
  });

  it('rolls a degrading production back to the version it replaced', () => {
    const history = [
      ...shadowOfV2,
      fact('v2', 'shadow', 'canary', T0 + MIN, 'v1'),
      fact('v2', 'canary', 'production', T0 + 2 * MIN, 'v1'),
    ];
    const r = tickModel(history, only(pairs(T0 + 2 * MIN, 400, 0.2, 0.8)), policy);
    expect(r.transition).toMatchObject({
      version: 'v2',
      from_stage: 'production',
      to_stage: 'rolled_back',
      decided_by: 'policy:rollback',
      previous_version: 'v1',
    });
    expect(viewOf(apply(history, r.transition)).production).toBe('v1');
  });

  describe('a comparison whose time is up without evidence (found by reviews)', () => {
    const day = 86_400_000;
    // v2 promoted at T0 + 2 min, replacing v1; the watch's max_time (1 d) is up by the model's clock.
    const promoted = [
      ...shadowOfV2,
      fact('v2', 'shadow', 'canary', T0 + MIN, 'v1'),
      fact('v2', 'canary', 'production', T0 + 2 * MIN, 'v1'),
    ];
    const timeUp = { predictionTime: T0 + 2 * MIN + day, labelTime: T0 + 2 * MIN + day + 5_000 };
    /** What the controller read for each plan it asked about: whether production answered since the watch began. */
    const answered = (value: boolean) => {
      const asked: ComparisonPlan[] = [];
      const of = (plan: ComparisonPlan) => {
        asked.push(plan);
        return value;
      };
      return { asked, of };
    };

    it('a production that answered but gives no pair (rows without a scores map) is kept, the replaced version retired', () => {
      // The SDK, outside producers and rows before 0520 write no `scores`: no pair, production serves.
      const a = answered(true);
      const r = tickModel(promoted, only([]), policy, timeUp, a.of);
      expect(r.outcomes[0]!.decision).toMatchObject({ action: 'keep', reason: 'too_few_labels' });
      expect(r.transition).toMatchObject({
        version: 'v1',
        from_stage: 'production',
        to_stage: 'retired',
        previous_version: 'v2',
        reason: 'too_few_labels',
        at: timeUp.labelTime,
      });
      expect(r.transition!.detail).toBe(
        `${day} ms elapsed with 0/30 labels: no pair; v2 (production) answered predictions since ${T0 + 2 * MIN}: it serves, v1 is retired`,
      );
      expect(JSON.parse(r.transition!.evidence)).toMatchObject({ n: 0, production_answered: true });
      expect(viewOf(apply(promoted, r.transition)).production).toBe('v2');
      // Asked about the watch (production v2, since its promotion), and only about it.
      expect(a.asked.filter((p) => p.kind === 'rollback')).toMatchObject([
        { incumbent: 'v2', challenger: 'v1', since: T0 + 2 * MIN },
      ]);
    });

    it('a margin-score production (rows scored, never a usable pair) that answered is kept', () => {
      const margins = pairs(T0 + 2 * MIN, 40, 0.5, 0.5).map((p) => ({ ...p, incumbent: 2.5, challenger: -1.5 }));
      const r = tickModel(promoted, only(margins), policy, timeUp, answered(true).of);
      expect(r.outcomes[0]).toMatchObject({ pairs: 0, skipped: 40, decision: { action: 'keep' } });
      expect(r.transition).toMatchObject({ version: 'v1', to_stage: 'retired', previous_version: 'v2' });
    });

    it('a production that answered nothing is rolled back (it never served), never the version serving retired', () => {
      const r = tickModel(promoted, only([]), policy, timeUp, answered(false).of);
      expect(r.transition).toMatchObject({
        version: 'v2',
        from_stage: 'production',
        to_stage: 'rolled_back',
        previous_version: 'v1',
        reason: 'not_scored',
        at: timeUp.labelTime,
      });
      expect(r.transition!.detail).toBe(
        `${day} ms elapsed with 0/30 labels: no pair; v2 (production) answered no prediction since ${T0 + 2 * MIN}: it does not serve, v1 is restored`,
      );
      expect(JSON.parse(r.transition!.evidence)).toMatchObject({ n: 0, production_answered: false });
      const after = apply(promoted, r.transition);
      expect(viewOf(after).production).toBe('v1');
      expect(servesProduction(after, 'v1')).toBe(true);
      expect(servesProduction(after, 'v2')).toBe(false);
    });

    it('not knowing whether production answered (the read failed), the watch stays undecided: no default', () => {
      for (const r of [
        tickModel(promoted, only([]), policy, timeUp),
        tickModel(promoted, only([]), policy, timeUp, () => undefined),
      ]) {
        expect(r.transition).toBeUndefined();
        expect(r.outcomes[0]!.decision).toMatchObject({ action: 'continue', reason: 'too_few_labels' });
        expect(awaitsAnswered(r.outcomes[0]!.plan, r.outcomes[0]!.decision)).toBe(true);
      }
      // Before max_time a watch with no pair waits for labels, and asks nothing.
      const early = tickModel(promoted, only([]), policy, { ...timeUp, predictionTime: timeUp.predictionTime - 1 });
      expect(early.outcomes[0]!.decision).toMatchObject({ action: 'continue', reason: 'min_labels' });
      expect(awaitsAnswered(early.outcomes[0]!.plan, early.outcomes[0]!.decision)).toBe(false);
    });

    it('a watch with some pairs, fewer than min_labels, keeps production whatever was answered (a rollback needs evidence)', () => {
      const few = pairs(T0 + 2 * MIN, 10, 0.5, 0.5); // min_labels 30
      const r = tickModel(promoted, only(few), policy, timeUp, answered(false).of);
      expect(r.outcomes[0]).toMatchObject({ pairs: 10, decision: { action: 'keep', reason: 'too_few_labels' } });
      expect(awaitsAnswered(r.outcomes[0]!.plan, r.outcomes[0]!.decision)).toBe(false);
      expect(r.transition).toMatchObject({ version: 'v1', to_stage: 'retired', previous_version: 'v2' });
      expect(JSON.parse(r.transition!.evidence)).toMatchObject({ n: 10 });
      expect(JSON.parse(r.transition!.evidence).production_answered).toBeUndefined();
      // Enough labels and no evidence either way: kept, and the replaced version retired, as before.
      const enough = pairs(T0 + 2 * MIN, 30, 0.5, 0.5);
      const kept = tickModel(promoted, only(enough), policy, timeUp);
      expect(kept.outcomes[0]!.decision.action).toBe('keep');
      expect(kept.transition).toMatchObject({ version: 'v1', to_stage: 'retired' });
    });

    it('a shadow or canary with no pair is rejected on too_few_labels, whatever production answered', () => {
      const shadowUp = { predictionTime: T0 + day, labelTime: T0 + day + 5_000 };
      for (const value of [true, false]) {
        const r = tickModel(shadowOfV2, only([]), policy, shadowUp, answered(value).of);
        expect(awaitsAnswered(r.outcomes[0]!.plan, r.outcomes[0]!.decision)).toBe(false);
        expect(r.transition).toMatchObject({ version: 'v2', to_stage: 'rejected', reason: 'too_few_labels' });
        expect(JSON.parse(r.transition!.evidence).production_answered).toBeUndefined();
      }
      const canary = [...shadowOfV2, fact('v2', 'shadow', 'canary', T0 + MIN, 'v1')];
      const canaryUp = { predictionTime: T0 + MIN + day, labelTime: T0 + MIN + day + 5_000 };
      const r = tickModel(canary, only([]), policy, canaryUp, answered(false).of);
      expect(r.transition).toMatchObject({
        version: 'v2',
        from_stage: 'canary',
        to_stage: 'rolled_back',
        reason: 'too_few_labels',
      });
      expect(viewOf(apply(canary, r.transition)).production).toBe('v1');
    });
  });

  it('a shadow whose production changes starts again against the new one, with max_time from when it took over (found by a review)', () => {
    const day = 86_400_000;
    const hour = 60 * MIN;
    const history = [
      ...shadowOfV2,
      fact('v2', 'shadow', 'canary', T0 + hour, 'v1'),
      fact('v3', null, 'candidate', T0),
      fact('v3', 'candidate', 'shadow', T0, 'v1'),
    ];
    const v3Pairs = (from: number, n: number) => (p: ComparisonPlan) =>
      p.subject === 'v3' ? pairs(from, n, 0.2, 0.8, 11) : [];
    // v3 beats v1 early, and waits for the canary slot.
    const early = tickModel(history, v3Pairs(T0, 400), policy, {
      labelTime: T0 + 2 * hour,
      predictionTime: T0 + 2 * hour,
    });
    expect(early.waiting).toEqual(['v3: promotion to canary waits for the canary in progress']);
    // v2 is promoted to production at 0.9 day: v3's comparison starts again, against v2 (v2's answers).
    const promotedAt = T0 + 0.9 * day;
    const promoted = [...history, fact('v2', 'canary', 'production', promotedAt, 'v1')];
    const clock = { labelTime: T0 + day + hour, predictionTime: T0 + day + hour };
    const restarted = tickModel(promoted, v3Pairs(promotedAt + 1_000, 10), policy, clock);
    const v3 = restarted.outcomes.find((o) => o.plan.subject === 'v3')!;
    // Before: rejected too_few_labels, max_time counted from v3's shadow `since` (a day and an hour
    // before), 10 of 30 labels, 3.4 h after v2 took over.
    expect(v3.decision).toMatchObject({ action: 'continue', reason: 'min_labels' });
    expect(v3.plan).toMatchObject({ incumbent: 'v2', incumbentFrom: { since: promotedAt } });
    expect(restarted.transition).toBeUndefined();
    // Its own evidence against v2 decides it.
    const decided = tickModel(promoted, v3Pairs(promotedAt + 1_000, 400), policy, clock).transition;
    expect(decided).toMatchObject({ version: 'v3', to_stage: 'canary', reason: 'evidence', previous_version: 'v2' });
    // With no pair against v2, max_time still ends it: a day after v2 took over, not before.
    const none = (at: number) =>
      tickModel(promoted, () => [], policy, { labelTime: at, predictionTime: at }).outcomes.find(
        (o) => o.plan.subject === 'v3',
      )!.decision;
    expect(none(promotedAt + day - 1)).toMatchObject({ action: 'continue' });
    expect(none(promotedAt + day)).toMatchObject({ action: 'reject', reason: 'too_few_labels' });
  });

  it('holds a second canary while one runs, and a promotion to production during a rollback watch', () => {
    const twoShadows = [
      ...shadowOfV2,
      fact('v3', null, 'candidate', T0),
      fact('v3', 'candidate', 'shadow', T0, 'v1'),
      fact('v2', 'shadow', 'canary', T0 + MIN, 'v1'),
    ];
    const hold = tickModel(
      twoShadows,
      (p) => (p.challenger === 'v3' ? pairs(T0, 400, 0.2, 0.8) : pairs(T0, 5, 0.5, 0.5)),
      policy,
    );
    expect(hold.transition).toBeUndefined();
    expect(hold.waiting).toEqual(['v3: promotion to canary waits for the canary in progress']);
    // v2 rejected from canary at T0 + 10 min: v3 goes to canary just after, not at its (earlier)
    // decision time (every transition is strictly after the last one recorded).
    const freed = [...twoShadows, fact('v2', 'canary', 'rolled_back', T0 + 10 * MIN, 'v1')];
    expect(tickModel(freed, () => pairs(T0, 400, 0.2, 0.8), policy).transition).toMatchObject({
      version: 'v3',
      to_stage: 'canary',
      at: T0 + 10 * MIN + 1,
    });
    const watch = [
      ...shadowOfV2,
      fact('v2', 'shadow', 'canary', T0 + MIN, 'v1'),
      fact('v2', 'canary', 'production', T0 + 2 * MIN, 'v1'),
      fact('v3', null, 'candidate', T0 + 3 * MIN),
      fact('v3', 'candidate', 'shadow', T0 + 3 * MIN, 'v2'),
      fact('v3', 'shadow', 'canary', T0 + 4 * MIN, 'v2'),
    ];
    const w = tickModel(
      watch,
      (p) => (p.kind === 'rollback' ? pairs(p.since, 5, 0.5, 0.5) : pairs(p.since, 400, 0.2, 0.8)),
      policy,
    );
    expect(w.transition).toBeUndefined();
    expect(w.waiting).toEqual(['v3: promotion to production waits for the rollback watch of v2']);
    // The watch rolls v2 back at T0 + 6 min; v3 then goes to production strictly after it, so the
    // history replays to v3 serving and watched against v1 (at the same time, the rollback row
    // replayed after v3's took production back to v1, and v3 was never watched).
    const rolledBack = [...watch, fact('v2', 'production', 'rolled_back', T0 + 6 * MIN, 'v1')];
    const next = tickModel(rolledBack, (p) => pairs(p.since, 400, 0.2, 0.8), policy).transition;
    expect(next).toMatchObject({ version: 'v3', to_stage: 'production', previous_version: 'v1' });
    expect(next!.at).toBeGreaterThan(T0 + 6 * MIN);
    const after = viewOf([...rolledBack, { ...next!, from_stage: 'canary' }]);
    expect(after.production).toBe('v3');
    expect(after.watch).toMatchObject({ production: 'v3', previous: 'v1' });
  });

  it('feeds the positive_rate guard from the pairs: the newer version predicting positive far more often is rejected', () => {
    const guarded = rolloutPolicyFor(
      parseRolloutPolicy({
        defaults: {
          promotion: {
            min_labels: 10_000,
            guards: [{ name: 'positive_rate', max_increase: 0.05, min_observations: 30 }],
          },
        },
      }),
      'fraud',
    ) as RolloutPolicy;
    // Production says negative (0.3); the candidate says positive (0.7) on every instance.
    const data = Array.from({ length: 200 }, (_, i) => ({
      predictionTime: T0 + i * 1000,
      labelTime: T0 + (i + 1) * 1000,
      label: i % 2,
      incumbent: 0.3,
      challenger: 0.7,
    }));
    const r = tickModel(shadowOfV2, () => data, guarded);
    expect(r.transition).toMatchObject({ to_stage: 'rejected', reason: 'guard' });
    expect(r.transition!.detail).toMatch(/^guard positive_rate: lower bound/);
    // Without the guard nothing decides (equal Brier scores, min_labels far away).
    expect(
      tickModel(shadowOfV2, () => data, { ...guarded, promotion: { ...guarded.promotion, guards: [] } }).transition,
    ).toBeUndefined();
  });

  it('a guard left at its default min_observations (100) with min_labels 30 is not skipped: the promotion waits for it (found by a review)', () => {
    const guarded = rolloutPolicyFor(
      parseRolloutPolicy({
        defaults: { promotion: { min_labels: 30, guards: [{ name: 'positive_rate', max_increase: 0.05 }] } },
      }),
      'fraud',
    ) as RolloutPolicy;
    // 90% positives; production says 0.45 (never positive), the candidate 0.75 (always): better Brier,
    // its positive rate +1.
    const data = Array.from({ length: 150 }, (_, i) => ({
      predictionTime: T0 + 1000 * (i + 1),
      labelTime: T0 + 1000 * (i + 1) + 500,
      label: i % 10 < 9 ? 1 : 0,
      incumbent: 0.45,
      challenger: 0.75,
    }));
    // Before: promoted to canary on evidence after 67 labels, the guard at 66 of its 100.
    const early = tickModel(shadowOfV2, () => data.slice(0, 99), guarded);
    expect(early.transition).toBeUndefined();
    expect(early.outcomes[0]!.decision).toMatchObject({ action: 'continue', reason: 'guards_pending' });
    expect(tickModel(shadowOfV2, () => data, guarded).transition).toMatchObject({
      to_stage: 'rejected',
      reason: 'guard',
    });
  });

  it('a guard whose min_observations equals max_labels (the default when max_labels ≤ 100) lets a clearly better candidate through (found by a review)', () => {
    const guarded = rolloutPolicyFor(
      parseRolloutPolicy({
        defaults: {
          promotion: { min_labels: 30, max_labels: 60, guards: [{ name: 'positive_rate', max_increase: 0.05 }] },
        },
      }),
      'fraud',
    ) as RolloutPolicy;
    expect(guarded.promotion.guards[0]!.minObservations).toBe(60);
    // Half positives; production a coin (0.5), the candidate near-perfect: both positive as often.
    const data = Array.from({ length: 200 }, (_, i) => ({
      predictionTime: T0 + 1000 * (i + 1),
      labelTime: T0 + 1000 * (i + 1) + 10,
      label: i % 2,
      incumbent: 0.5,
      challenger: i % 2 === 1 ? 0.95 : 0.05,
    }));
    const r = tickModel(shadowOfV2, () => data, guarded);
    // Before: rejected too_few_labels, "guard positive_rate has 59/60 observations after 60 labels"
    // (the guard was fed after its pair, and the 60th pair ended the test): no promotion ever.
    expect(r.outcomes[0]!.decision).toMatchObject({ action: 'promote', reason: 'evidence', evidence: { n: 60 } });
    expect(r.transition).toMatchObject({ to_stage: 'canary', reason: 'evidence' });
  });

  it("a watch's guard at min_observations = max_labels rolls back production breaching it (before: kept at max_labels, one observation short)", () => {
    const guarded = rolloutPolicyFor(
      parseRolloutPolicy({
        defaults: {
          rollback: { min_labels: 30, max_labels: 60, guards: [{ name: 'positive_rate', max_increase: 0.05 }] },
        },
      }),
      'fraud',
    ) as RolloutPolicy;
    const promoted = [
      ...shadowOfV2,
      fact('v2', 'shadow', 'canary', T0 + MIN, 'v1'),
      fact('v2', 'canary', 'production', T0 + 2 * MIN, 'v1'),
    ];
    // 90% positives: production (0.75, always positive) beats v1 (0.45, never) on Brier, but its
    // positive rate is +1.
    const data = Array.from({ length: 100 }, (_, i) => ({
      predictionTime: T0 + 3 * MIN + 1000 * i,
      labelTime: T0 + 3 * MIN + 1000 * i + 10,
      label: i % 10 < 9 ? 1 : 0,
      incumbent: 0.75,
      challenger: 0.45,
    }));
    const r = tickModel(promoted, (p) => (p.kind === 'rollback' ? data : []), guarded);
    const watch = r.outcomes.find((o) => o.plan.kind === 'rollback')!;
    expect(watch.decision).toMatchObject({ action: 'rollback', reason: 'guard', evidence: { n: 60 } });
    expect(r.transition).toMatchObject({ version: 'v2', to_stage: 'rolled_back', previous_version: 'v1' });
  });

  describe('max_time starts at the first pair in arrival order, not the earliest predicted (found by a review)', () => {
    const day = 86_400_000;
    const hour = 60 * MIN;

    it('a pair arriving later, predicted before the first, neither ends the stage nor re-decides a tick already passed', () => {
      const slow = rolloutPolicyFor(
        parseRolloutPolicy({ defaults: { promotion: { min_labels: 500, max_time: '1d' } } }),
        'fraud',
      ) as RolloutPolicy;
      const mk = (predicted: number, delay: number, label: number): PairInput => ({
        predictionTime: predicted,
        labelTime: predicted + delay,
        label,
        incumbent: 0.5,
        challenger: label === 1 ? 0.6 : 0.4,
      });
      // Predicted T0 + 10 h .. T0 + 30 h, one every 10 min, labelled a minute later.
      const first = Array.from({ length: 121 }, (_, i) => mk(T0 + 10 * hour + i * 10 * MIN, MIN, i % 2));
      const tick1 = tickModel(shadowOfV2, () => first, slow, {
        labelTime: T0 + 30 * hour + MIN,
        predictionTime: T0 + 30 * hour,
      });
      expect(tick1.outcomes[0]!.decision).toMatchObject({ action: 'continue', reason: 'min_labels' });
      // Next tick: one more pair, predicted at T0 + 1 h, labelled 30 h later.
      const late = mk(T0 + hour, 30 * hour, 1);
      const tick2 = tickModel(shadowOfV2, () => [...first, late], slow, {
        labelTime: T0 + 31 * hour,
        predictionTime: T0 + 30 * hour,
      });
      // Before: rejected too_few_labels, dated T0 + 25 h (max_time from T0 + 1 h), before the
      // clock at which tick 1 had said continue.
      expect(tick2.outcomes[0]!.decision).toMatchObject({
        action: 'continue',
        reason: 'min_labels',
        evidence: { n: 122 },
      });
      expect(tick2.transition).toBeUndefined();
    });

    it("a degrading production's watch is not ended by one pair predicted a year back, nor is a shadow", () => {
      const E = T0 - 30 * day; // event time, a month behind the records
      const clock = { labelTime: E + hour, predictionTime: E + hour, allowedFutureMs: hour };
      // v2 gated on the event clock; taken to production by records dated by a wall clock a month ahead.
      const history = [
        fact('v2', null, 'candidate', E),
        fact('v2', 'candidate', 'shadow', E, 'v1'),
        fact('v2', 'shadow', 'canary', T0, 'v1'),
        fact('v2', 'canary', 'production', T0 + 1, 'v1'),
      ];
      // Production v2 far worse than v1.
      const mk = (t: number, label: number): PairInput => ({
        predictionTime: t,
        labelTime: t + 1000,
        label,
        incumbent: label === 1 ? 0.1 : 0.9,
        challenger: label === 1 ? 0.9 : 0.1,
      });
      const bad = (n: number) => Array.from({ length: n }, (_, i) => mk(E + MIN * (i + 1), i % 2));
      const decide = (rows: PairInput[]) =>
        tickModel(history, () => rows, policy, clock).outcomes.find((o) => o.plan.kind === 'rollback')!.decision;
      expect(decide(bad(20))).toMatchObject({ action: 'continue', reason: 'min_labels' });
      const straggler = mk(E - 365 * day, 1);
      // Before: kept too_few_labels (max_time from a year back): the replaced version retired, the rollback gone.
      expect(decide([...bad(20).slice(0, 3), straggler, ...bad(20).slice(3)])).toMatchObject({
        action: 'continue',
        reason: 'min_labels',
      });
      expect(decide(bad(45))).toMatchObject({ action: 'rollback', reason: 'evidence' });
      // A shadow registered by a wall clock a month ahead, with the same straggler among its pairs.
      const shadow = [fact('v3', null, 'candidate', T0 + 2), fact('v3', 'candidate', 'shadow', T0 + 2, 'v1')];
      const scored = Array.from({ length: 10 }, (_, i) => ({ ...mk(E + i * MIN, i % 2), incumbent: 0.5 }));
      const shadowDecision = tickModel(
        shadow,
        () => [...scored.slice(0, 5), { ...straggler, incumbent: 0.5 }, ...scored.slice(5)],
        policy,
        clock,
      ).outcomes[0]!.decision;
      // Before: rejected too_few_labels, 1/30 labels, a year elapsed.
      expect(shadowDecision).toMatchObject({ action: 'continue', reason: 'min_labels', evidence: { n: 11 } });
    });
  });

  describe('records dated ahead of event time by a wall clock (found by a review)', () => {
    const day = 86_400_000;
    const E = T0 - 30 * day; // event time, a month behind the records
    const clock = { labelTime: E + day, predictionTime: E + day, allowedFutureMs: 3_600_000 };

    it("a shadow dated ahead reads its pairs from production's start (0 when only the gate names it) and counts max_time from its first pair", () => {
      const [plan] = comparisonsOf(viewOf(shadowOfV2), clock);
      expect(plan).toMatchObject({ since: T0, from: 0 });
      // Without the clock (no labelled row yet) nothing says it is ahead: read from `since`.
      expect(comparisonsOf(viewOf(shadowOfV2))[0]).toMatchObject({ from: T0 });
      const better = pairs(E + 1_000, 400, 0.2, 0.8);
      const r = tickModel(shadowOfV2, () => better, policy, clock);
      // Dated after its record (order holds); its serving_from is the event clock, not its `at`.
      expect(r.transition).toMatchObject({ to_stage: 'canary', reason: 'evidence', at: T0 + 1 });
      expect(JSON.parse(r.transition!.evidence).serving_from).toBe(clock.labelTime);
      // No pair yet: no time passes (max_time from `since` would never end on this clock).
      expect(tickModel(shadowOfV2, () => [], policy, clock).outcomes[0]!.decision).toMatchObject({
        action: 'continue',
        evidence: { elapsed_ms: 0 },
      });
      // A shadow of a recorded production reads from when production took its role.
      const promoted = [
        ...shadowOfV2,
        { ...fact('v2', 'shadow', 'canary', T0 + 1, 'v1'), evidence: JSON.stringify({ serving_from: E + 5_000 }) },
        { ...fact('v2', 'canary', 'production', T0 + 2, 'v1'), evidence: JSON.stringify({ serving_from: E + 9_000 }) },
        fact('v3', null, 'candidate', T0 + 3),
        fact('v3', 'candidate', 'shadow', T0 + 3, 'v2'),
      ];
      const plans = comparisonsOf(viewOf(promoted), clock);
      expect(plans.map((p) => [p.kind, p.subject, p.from])).toEqual([
        ['promotion', 'v3', E + 9_000],
        ['rollback', 'v2', E + 9_000],
      ]);
    });

    it('a canary dated after such a record reads and times from its stored serving_from: a canary that never serves ends max_time after it', () => {
      const canary = [
        ...shadowOfV2,
        { ...fact('v2', 'shadow', 'canary', T0 + 1, 'v1'), evidence: JSON.stringify({ serving_from: E + day }) },
      ];
      const at = (t: number) => ({ labelTime: t, predictionTime: t, allowedFutureMs: 3_600_000 });
      expect(comparisonsOf(viewOf(canary), at(E + day))[0]).toMatchObject({ from: E + day, servingFrom: E + day });
      const decide = (t: number) => tickModel(canary, () => [], policy, at(t)).outcomes[0]!.decision;
      expect(decide(E + 2 * day - 1)).toMatchObject({ action: 'continue' });
      expect(decide(E + 2 * day)).toMatchObject({ action: 'reject', reason: 'too_few_labels' });
    });

    it('production restored by a rollback: a shadow compared against it counts max_time from the rollback', () => {
      const hour = 60 * MIN;
      const history = [
        ...shadowOfV2,
        fact('v2', 'shadow', 'canary', T0 + hour, 'v1'),
        fact('v2', 'canary', 'production', T0 + 2 * hour, 'v1'),
        fact('v3', null, 'candidate', T0 + 3 * hour),
        fact('v3', 'candidate', 'shadow', T0 + 3 * hour, 'v2'),
        fact('v2', 'production', 'rolled_back', T0 + 20 * hour, 'v1'),
      ];
      const decide = (t: number) =>
        tickModel(history, () => [], policy, { labelTime: t, predictionTime: t }).outcomes[0]!.decision;
      // Before: rejected at T0 + 27 h, a day after v3's shadow began, 7 h after v1 was restored.
      expect(decide(T0 + 44 * hour - 1)).toMatchObject({ action: 'continue' });
      expect(decide(T0 + 44 * hour)).toMatchObject({ action: 'reject', reason: 'too_few_labels' });
      const [plan] = comparisonsOf(viewOf(history));
      expect(plan).toMatchObject({ subject: 'v3', incumbent: 'v1', incumbentFrom: { since: T0 + 20 * hour } });
    });
  });

  it('maps stages to models.v1 kinds', () => {
    expect(
      ['candidate', 'shadow', 'canary', 'production', 'rejected', 'rolled_back', 'retired'].map((s) =>
        eventKindOf(s as never),
      ),
    ).toEqual(['TRAINED', 'SHADOW', 'CANARY', 'PROMOTED', 'REJECTED', 'ROLLED_BACK', 'RETIRED']);
  });
});

describe('operatorTransitions (driftline model stage)', () => {
  const promoted = [
    ...shadowOfV2,
    fact('v2', 'shadow', 'canary', T0 + MIN, 'v1'),
    fact('v2', 'canary', 'production', T0 + 2 * MIN, 'v1'),
  ];
  const ask = (history: TransitionFact[], version: string, to: TransitionFact['to_stage'], at = T0 + 10 * MIN) =>
    operatorTransitions(history, 'fraud', { version, to, at, operator: 'alice', reason: 'hotfix', canaryShare: 0.3 });

  it("moves along the stage graph with the controller's previous_version rules", () => {
    expect(ask(shadowOfV2, 'v2', 'canary')).toEqual([
      {
        version: 'v2',
        from_stage: 'shadow',
        to_stage: 'canary',
        at: T0 + 10 * MIN,
        decided_by: 'operator:alice',
        reason: 'hotfix',
        detail: '',
        evidence: '',
        canary_share: 0.3,
        previous_version: 'v1',
      },
    ]);
    expect(ask(promoted, 'v2', 'rolled_back')[0]).toMatchObject({ from_stage: 'production', previous_version: 'v1' });
    // The watched version, known only from the gate, can be retired by hand.
    expect(ask(promoted, 'v1', 'retired')[0]).toMatchObject({ from_stage: 'production', to_stage: 'retired' });
    // A version with no record is registered as a candidate first.
    expect(ask(shadowOfV2, 'v9', 'shadow').map((r) => `${r.from_stage}>${r.to_stage}`)).toEqual([
      'null>candidate',
      'candidate>shadow',
    ]);
    // Never dated at or before the model's last recorded transition (here: v2's promotion).
    expect(ask(promoted, 'v2', 'rolled_back', T0)[0]!.at).toBe(T0 + 2 * MIN + 1);
  });

  it("dates its rows after the model's last transition, whatever the operator's clock, so the servers apply them (found by a review)", () => {
    // v1 promoted at T0 - 1 h (its own `since`), watched from v2's promotion at T0 + 2 min; the
    // operator ends the watch with a clock 1 min slow.
    const history = [fact('v1', 'canary', 'production', T0 - 60 * MIN), ...promoted];
    const rows = ask(history, 'v1', 'retired', T0 + MIN);
    expect(rows.map((r) => [r.from_stage, r.to_stage, r.at])).toEqual([['production', 'retired', T0 + 2 * MIN + 1]]);
    // What a server makes of the events the controller publishes: v1 is no longer scored. Dated
    // T0 + 1 min, before v1 became the watched version, the RETIRED was stale and ignored.
    let stages = EMPTY_STAGES;
    for (const t of [...history, ...rows]) {
      if (t.to_stage !== 'production' && t.to_stage !== 'retired') continue;
      const e = {
        kind: eventKindOf(t.to_stage),
        version: t.version,
        event_time: t.at,
        previous_version: t.previous_version,
      };
      const step = applyStageEvent(stages, e);
      expect(step.outcome, `${e.kind} ${e.version}`).toBe('applied');
      stages = step.stages;
    }
    expect(stages).toMatchObject({ production: 'v2', watched: [] });
    // A candidate registered by hand takes the same time for both of its rows.
    expect(ask(history, 'v9', 'shadow', T0).map((r) => r.at)).toEqual([T0 + 2 * MIN + 1, T0 + 2 * MIN + 1]);
    // A clock ahead keeps its own time.
    expect(ask(history, 'v1', 'retired', T0 + 10 * MIN)[0]!.at).toBe(T0 + 10 * MIN);
  });

  it("stores the model's label clock as serving_from when its clock is on the model's, as the controller does; off it, none (found by reviews)", () => {
    const day = 86_400_000;
    const hour = 60 * MIN;
    const E = T0 - 30 * day; // event time, a month behind the operator's wall clock
    const clock = { labelTime: E + hour, predictionTime: E + hour, allowedFutureMs: hour };
    const stage = (history: TransitionFact[], version: string, to: TransitionFact['to_stage'], at: number, c = clock) =>
      operatorTransitions(history, 'fraud', { version, to, at, operator: 'alice', reason: 'r', clock: c });
    const gated = [fact('v2', null, 'candidate', E), fact('v2', 'candidate', 'shadow', E, 'v1')];
    const servingFrom = (rows: ReturnType<typeof stage>) => {
      const evidence = rows.at(-1)!.evidence;
      return evidence === '' ? undefined : (JSON.parse(evidence) as { serving_from: number }).serving_from;
    };
    // On the clock: the later of `at` and the label time.
    expect(servingFrom(stage(gated, 'v2', 'canary', E + 30 * MIN))).toBe(E + hour);
    expect(servingFrom(stage(gated, 'v2', 'canary', E + 90 * MIN))).toBe(E + 90 * MIN);
    // Off it (a wall clock a month ahead of the labels): none. From here, labels lagging (a
    // label-joiner outage) look like a replay, and a stale label time stored ran max_time out before
    // the canary's first pair: rolled back untested (a review). It reads from 0 and counts max_time
    // from its first own pair instead.
    expect(servingFrom(stage(gated, 'v2', 'canary', T0))).toBeUndefined();
    const canary = stage(gated, 'v2', 'canary', E + 90 * MIN);
    const promoted = [...gated, ...canary];
    const production = stage(promoted, 'v2', 'production', E + 100 * MIN);
    expect(servingFrom(production)).toBe(E + 100 * MIN);
    const watched = [...promoted, ...production];
    expect(servingFrom(stage(watched, 'v2', 'rolled_back', E + 110 * MIN))).toBe(E + 110 * MIN);
    // Not a stage that serves; or no labelled prediction yet: none.
    expect(servingFrom(stage(watched, 'v1', 'retired', E + 110 * MIN))).toBeUndefined();
    expect(
      servingFrom(
        operatorTransitions(gated, 'fraud', { version: 'v2', to: 'canary', at: T0, operator: 'a', reason: 'r' }),
      ),
    ).toBeUndefined();
    // The watch reads from it (not 0) and counts max_time from it: one pair predicted a year back,
    // the very first to arrive, neither is read nor ends the watch.
    const watch = comparisonsOf(viewOf(watched), clock).find((p) => p.kind === 'rollback')!;
    expect(watch).toMatchObject({ from: E + 100 * MIN, servingFrom: E + 100 * MIN });
    const worse = (t: number, label: number): PairInput => ({
      predictionTime: t,
      labelTime: t + 1000,
      label,
      incumbent: label === 1 ? 0.1 : 0.9,
      challenger: label === 1 ? 0.9 : 0.1,
    });
    const rows = [
      worse(E - 365 * day, 1),
      ...Array.from({ length: 20 }, (_, i) => worse(E + 100 * MIN + MIN * (i + 1), i % 2)),
    ];
    const later = { ...clock, labelTime: E + 3 * hour, predictionTime: E + 3 * hour };
    const decided = tickModel(watched, () => rows, policy, later).outcomes.find((o) => o.plan.kind === 'rollback')!;
    expect(decided.decision).toMatchObject({ action: 'continue', reason: 'min_labels' });
  });

  it('an operator canary staged while labels lag two days is not rolled back before its first pair (found by a review)', () => {
    const day = 86_400_000;
    const W = T0; // the operator's wall clock; labels stopped two days before it
    const stale = { labelTime: W - 2 * day, predictionTime: W - 2 * day, allowedFutureMs: 60 * MIN };
    const gated = [fact('v2', null, 'candidate', W - 3 * day), fact('v2', 'candidate', 'shadow', W - 3 * day, 'v1')];
    const canary = operatorTransitions(gated, 'fraud', {
      version: 'v2',
      to: 'canary',
      at: W,
      operator: 'alice',
      reason: 'r',
      clock: stale,
    });
    // The backlog drains: the label clock passes the stale time + max_time, no pair of v2 yet.
    const caughtUp = { ...stale, labelTime: W - 20 * 60 * MIN, predictionTime: W - 20 * 60 * MIN };
    const decided = tickModel([...gated, ...canary], () => [], policy, caughtUp).outcomes;
    expect(decided.map((o) => o.decision.action)).not.toContain('reject');
    expect(decided.map((o) => o.decision.action)).not.toContain('rollback');
  });

  it('refuses an edge the graph does not have, and a rollback with nothing to restore', () => {
    expect(() => ask(shadowOfV2, 'v2', 'production')).toThrow(
      /no transition shadow → production \(allowed: canary, rejected\)/,
    );
    const kept = [...promoted, fact('v1', 'production', 'retired', T0 + 3 * MIN, 'v2')];
    expect(() => ask(kept, 'v2', 'rolled_back')).toThrow(/no previous production version to roll back to/);
    expect(() =>
      operatorTransitions(shadowOfV2, 'fraud', {
        version: 'v2',
        to: 'canary',
        at: T0,
        operator: 'a',
        reason: 'r',
        canaryShare: 0,
      }),
    ).toThrow(/canary share/);
  });
});

describe('rollout policy file: silent mistakes are errors', () => {
  it('an empty file, a file of null and `models: {}` are refused, naming the file or the field', () => {
    expect(() => parseRolloutPolicyText('', 'rollout.yaml')).toThrow(/^rollout.yaml: is empty/);
    expect(() => parseRolloutPolicyText('null\n', 'rollout.yaml')).toThrow(/^rollout.yaml: is empty/);
    expect(() => parseRolloutPolicyText('models: {}\n', 'rollout.yaml')).toThrow(
      /^rollout.yaml.models: names no model/,
    );
  });
});
