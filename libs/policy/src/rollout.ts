import {
  ConfigError,
  checkConfigDocument,
  DEFAULT_EVENT_TIME_BOUNDS,
  DriftlineError,
  DURATION_HINT,
  formatDuration,
  ownValue,
  parseConfigText,
  parseDurationMs,
} from '@driftline/core';
import type { ModelEvent, ModelEventKind } from '@driftline/schemas';
import { z } from 'zod';
import {
  type ComparisonDecision,
  type ComparisonEvent,
  type ComparisonState,
  decideComparison,
  startComparison,
  stepComparisonTogether,
} from './comparison.js';
import {
  type ComparisonPolicy,
  checkComparisonFields,
  type PromotionPolicy,
  parsePromotionPolicy,
  parseRollbackPolicy,
  type RollbackPolicy,
} from './comparison-config.js';
import { canTransition, isStage, type Stage, transition } from './stages.js';

/**
 * The rollout of model versions, decided from recorded transitions and labelled pairs alone:
 * which comparisons are open, and what transition (if any) the pairs imply. Pure and replayable:
 * the model-controller keeps no state between ticks, it reads the transitions back and steps the
 * policy over every pair since the stage began, so a restart (or a second controller) reaches the
 * same decision at the same event time.
 */

// ---------------------------------------------------------------------------------------------
// Policy file

/** The guard the controller can feed from pairs: 1 when the newer version predicts positive. */
export const POSITIVE_RATE_GUARD = 'positive_rate';

export interface RolloutPolicy {
  readonly promotion: PromotionPolicy;
  readonly rollback: RollbackPolicy;
  /** Share of entities a canary answers, in (0, 1]. */
  readonly canaryShare: number;
  /**
   * `label_maturity` (ms): the longest delay after its prediction at which a prediction's label
   * is final (and in the warehouse). 0 (the default): the pairs are stepped in the order they
   * arrived, which is valid only when WHEN a label arrives does not depend on the label. Above 0:
   * a comparison uses only the pairs predicted at or before the model's label clock − this, in
   * prediction-time order (see {@link runPlan}), so the order no longer depends on the labels.
   */
  readonly labelMaturityMs: number;
  /**
   * `arrival_bucket` (ms), used without `label_maturity`: the pairs are read by closed arrival
   * bucket (`joined_at` cut into buckets of this length from the epoch), in each bucket by a hash of
   * the prediction id, and only from buckets that closed ({@link closedArrivalBound}): so the order
   * within a bucket depends on no label, and a label delivery sorted by outcome that arrives within
   * one bucket reaches the test shuffled. 0: every pair as it arrived (`joined_at`, prediction id),
   * as before the setting. Default {@link DEFAULT_ARRIVAL_BUCKET_MS}.
   */
  readonly arrivalBucketMs: number;
}

/**
 * Per model, with `*` for every model not listed: the `*` of the file merged over `defaults`, or
 * the `defaults` alone when the file has no `*`. `null`: manual (`manual: true`), the controller
 * compares none of the model's versions.
 */
export interface RolloutPolicies {
  readonly models: Readonly<Record<string, RolloutPolicy | null>>;
  /**
   * Where each entry of `models` is written, for errors found later (e.g. `rollout.yaml.models.fraud`,
   * or `rollout.yaml.defaults` for the `*` the file does not have).
   */
  readonly fields?: Readonly<Record<string, string>>;
}

export const DEFAULT_CANARY_SHARE = 0.1;

/** The default `arrival_bucket`: an hour (a daily label file arrives within one, but for one that straddles its end). */
export const DEFAULT_ARRIVAL_BUCKET_MS = 3_600_000;
/** The longest `arrival_bucket`: a day (each tick's decisions wait up to one bucket for it to close). */
export const MAX_ARRIVAL_BUCKET_MS = 86_400_000;
/**
 * How long after its end (on this host's wall clock) an arrival bucket is closed: the label-joiner
 * stamps `joined_at` when it starts a batch, and the rows are readable a few seconds later (its
 * insert); a joiner host's clock behind this one's by more than this puts rows in a bucket already
 * read (see the model-controller's README, "Statistical guarantee").
 */
export const ARRIVAL_GRACE_MS = 30_000;

/**
 * The `joined_at` (epoch ms, exclusive) before which every arrival bucket of `bucketMs` is closed
 * at wall-clock time `now`: the start of the bucket that held `now` − {@link ARRIVAL_GRACE_MS}.
 * Buckets are cut from the epoch, so every controller cuts them alike; the bound only moves on with
 * the wall clock, so the pairs read (bucket, then hash order) grow at their end — but for a row
 * readable only after its bucket closed (an insert retried through an outage, a joiner clock behind
 * this host's), which lands inside its bucket (the model-controller counts those) — and a restart
 * or another controller steps the same path to the same first crossing. The wall clock, not the
 * model's label clock: `joined_at` is the label-joiner's wall clock, which event time may run far
 * ahead of (the demo, a producer's clock) or behind (a replay): closed by the label clock, buckets
 * still filling would be read (ahead) or none ever would (behind).
 */
export function closedArrivalBound(now: number, bucketMs: number): number {
  return Math.floor((now - ARRIVAL_GRACE_MS) / bucketMs) * bucketMs;
}

/**
 * The longest `label_maturity`: the label-joiner joins no label more than its
 * DRIFTLINE_JOINER_MAX_LABEL_DELAY (at most 365d) after its prediction.
 */
export const MAX_LABEL_MATURITY_MS = 365 * 86_400_000;

/**
 * How much of the labelled rows' retention a model with `label_maturity` keeps free: its
 * `label_maturity` + `max_time` (of promotion and of rollback) must be at most the retention less
 * this. A comparison re-reads its pairs from its first at every tick, and decides once `max_time`
 * of predictions are mature: its first labels are then `label_maturity` + `max_time` old (at least:
 * a decision that waits for a canary or a watch, a controller outage, a label clock behind the wall
 * clock add to it). Rows expire by when they were written, not by event time; an expired early
 * label drops out of the middle of the path and the test runs on the survivors — the slow class
 * only, with a maturity at or past the retention (a review: `label_maturity: 365d` against the
 * 180-day retention promoted a worse candidate 20 times in 20).
 */
export const LABEL_RETENTION_MARGIN_MS = 30 * 86_400_000;

/** Bounds a rollout policy is checked against that live outside this library. */
export interface RolloutLimits {
  /**
   * How long the labelled rows a comparison reads are kept from when written (the warehouse's
   * `labeled_predictions` retention, in ms). Given: a `label_maturity` above 0 must satisfy
   * `label_maturity` + max(`max_time`) ≤ it − {@link LABEL_RETENTION_MARGIN_MS}.
   */
  readonly labelRetentionMs?: number;
}

/** A duration (core's grammar, or a number of ms), 0 to `max` (written `maxText`). */
const durationUpTo = (max: number, maxText: string) =>
  z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
    const ms = typeof v === 'number' ? v : parseDurationMs(v);
    if (ms === undefined || ms > max) {
      ctx.addIssue({ code: 'custom', message: `must be ${DURATION_HINT}, from 0 to ${maxText}` });
      return z.NEVER;
    }
    return ms;
  });
const maturity = durationUpTo(MAX_LABEL_MATURITY_MS, '365d');
const arrivalBucket = durationUpTo(MAX_ARRIVAL_BUCKET_MS, '1d');

const section = z.record(z.string(), z.unknown());
const defaultsShape = z.strictObject({
  promotion: section.optional(),
  rollback: section.optional(),
  canary_share: z.number().gt(0).max(1).optional(),
  label_maturity: maturity.optional(),
  arrival_bucket: arrivalBucket.optional(),
});
/** A model's section; `manual: true` opts it out of the controller's comparisons (and takes nothing else). */
const modelShape = defaultsShape.extend({ manual: z.boolean().optional() });
const documentShape = z.strictObject({
  version: z.literal(1).optional(),
  defaults: defaultsShape.optional(),
  models: z.record(z.string().min(1), modelShape).optional(),
});

function checkGuards(policy: ComparisonPolicy, source: string): void {
  policy.guards.forEach((g, i) => {
    if (g.name !== POSITIVE_RATE_GUARD) {
      throw new ConfigError(
        `${source}.guards.${i}.name`,
        `the model-controller feeds only the ${POSITIVE_RATE_GUARD} guard (from the paired scores)`,
      );
    }
  });
}

/**
 * Validates a rollout policy document:
 * `{ version?: 1, defaults?: { promotion, rollback, canary_share }, models?: { <model>|'*': {...} } }`;
 * `promotion` / `rollback` are the documents of parsePromotionPolicy / parseRollbackPolicy, merged
 * key by key over `defaults`. Every model not listed gets `*`, and without a `*` the `defaults`
 * (a model left out of the file was never compared, and nothing said so). `manual: true` (alone
 * in its section) is the explicit opt-out: the controller compares none of that model's versions
 * (of every model not listed, on `*`). Errors name the field, e.g.
 * `policy.yaml.models.fraud.promotion.min_labels`.
 */
export function parseRolloutPolicy(document: unknown, source = 'rollout', limits: RolloutLimits = {}): RolloutPolicies {
  const doc = checkConfigDocument(documentShape, document ?? {}, source);
  const d = doc.defaults ?? {};
  // The defaults' own fields first, named where they are written: merged into a model's section,
  // a bad `alpha` of theirs was named under the first model listed (`models.fraud.promotion.alpha`).
  // How fields combine (min_labels ≤ max_labels, ...) is checked per model, as merged.
  if (d.promotion !== undefined) checkComparisonFields('promotion', d.promotion, `${source}.defaults.promotion`);
  if (d.rollback !== undefined) checkComparisonFields('rollback', d.rollback, `${source}.defaults.rollback`);
  const listed = doc.models ?? {};
  const entries: Array<[string, z.infer<typeof modelShape>, string]> = Object.entries(listed).map(([name, m]) => [
    name,
    m,
    `${source}.models.${name}`,
  ]);
  // `models: {}` is most likely a file cut short; leaving `models` out says "the defaults for all".
  if (doc.models !== undefined && entries.length === 0)
    throw new ConfigError(`${source}.models`, 'names no model: list one, or leave `models` out for the defaults');
  // The `*` the file does not have is the defaults alone: its errors name `defaults`.
  if (!Object.hasOwn(listed, '*')) entries.push(['*', {}, `${source}.defaults`]);
  const models = Object.create(null) as Record<string, RolloutPolicy | null>;
  const fields = Object.create(null) as Record<string, string>;
  for (const [name, m, at] of entries) {
    fields[name] = at;
    if (m.manual === true) {
      const extra = (['promotion', 'rollback', 'canary_share', 'label_maturity', 'arrival_bucket'] as const).find(
        (k) => m[k] !== undefined,
      );
      if (extra !== undefined) throw new ConfigError(`${at}.${extra}`, 'a manual model takes no policy (manual: true)');
      models[name] = null;
      continue;
    }
    // Merged key by key: `guards` left out of the model's section are the defaults' (errors name those).
    const guardsAt = (kind: 'promotion' | 'rollback') =>
      m[kind]?.guards === undefined && d[kind]?.guards !== undefined ? `${source}.defaults.${kind}` : `${at}.${kind}`;
    const promotion = parsePromotionPolicy(
      { ...d.promotion, ...m.promotion },
      `${at}.promotion`,
      guardsAt('promotion'),
    );
    const rollback = parseRollbackPolicy({ ...d.rollback, ...m.rollback }, `${at}.rollback`, guardsAt('rollback'));
    checkGuards(promotion, guardsAt('promotion'));
    checkGuards(rollback, guardsAt('rollback'));
    const labelMaturityMs = m.label_maturity ?? d.label_maturity ?? 0;
    const maturityAt = m.label_maturity !== undefined ? `${at}.label_maturity` : `${source}.defaults.label_maturity`;
    checkLabelRetention(labelMaturityMs, maturityAt, at, promotion, rollback, limits.labelRetentionMs);
    checkArrivalBucket(
      labelMaturityMs,
      maturityAt,
      { bucketMs: m.arrival_bucket, at },
      { bucketMs: d.arrival_bucket, maturityMs: d.label_maturity, at: `${source}.defaults` },
    );
    models[name] = {
      promotion,
      rollback,
      canaryShare: m.canary_share ?? d.canary_share ?? DEFAULT_CANARY_SHARE,
      labelMaturityMs,
      arrivalBucketMs: m.arrival_bucket ?? d.arrival_bucket ?? DEFAULT_ARRIVAL_BUCKET_MS,
    };
  }
  return { models, fields };
}

/**
 * Refuses a `label_maturity` whose comparisons outlive the labelled rows they read: `maturityMs` +
 * the longer `max_time` must be at most `retentionMs` − {@link LABEL_RETENTION_MARGIN_MS} (see
 * there). One line naming the field where the maturity is written, the sum and the bound.
 */
function checkLabelRetention(
  maturityMs: number,
  maturityAt: string,
  modelAt: string,
  promotion: ComparisonPolicy,
  rollback: ComparisonPolicy,
  retentionMs: number | undefined,
): void {
  if (retentionMs === undefined || maturityMs <= 0) return;
  const bound = retentionMs - LABEL_RETENTION_MARGIN_MS;
  const [kind, maxTimeMs] =
    rollback.maxTimeMs > promotion.maxTimeMs ? ['rollback', rollback.maxTimeMs] : ['promotion', promotion.maxTimeMs];
  if (maturityMs + maxTimeMs <= bound) return;
  // In days when whole (formatDuration writes 140d as 20w).
  const fmt = (ms: number) => (ms % 86_400_000 === 0 ? `${ms / 86_400_000}d` : formatDuration(ms));
  const model = maturityAt.startsWith(modelAt) ? '' : ` (for ${modelAt})`;
  throw new ConfigError(
    maturityAt,
    `${fmt(maturityMs)} + ${kind} max_time ${fmt(maxTimeMs)} must be at most ${fmt(Math.max(0, bound))}${model}: labelled rows are kept ${fmt(retentionMs)} from when written, and a comparison reads its first labels until label_maturity + max_time after them (${fmt(LABEL_RETENTION_MARGIN_MS)} kept free)`,
  );
}

/**
 * Refuses an `arrival_bucket` above 0 that a `label_maturity` makes void: such a model's pairs are
 * read in prediction order up to its label clock − the maturity, and the bucket was ignored in
 * silence (found by a review). Refused where the bucket is written: a model's section whose model
 * has a `label_maturity` (its own or the defaults'), or `defaults` holding both. A bucket of the
 * defaults with a model's own `label_maturity` is not: the model's setting overrides the defaults'
 * order for it, as any field of its section does, and the bucket stays for the other models.
 */
function checkArrivalBucket(
  maturityMs: number,
  maturityAt: string,
  own: { readonly bucketMs: number | undefined; readonly at: string },
  defaults: { readonly bucketMs: number | undefined; readonly maturityMs: number | undefined; readonly at: string },
): void {
  const [bucketMs, bucketAt, withMaturity] =
    own.bucketMs !== undefined
      ? [own.bucketMs, `${own.at}.arrival_bucket`, maturityMs > 0 ? maturityAt : undefined]
      : [
          defaults.bucketMs,
          `${defaults.at}.arrival_bucket`,
          (defaults.maturityMs ?? 0) > 0 ? `${defaults.at}.label_maturity` : undefined,
        ];
  if (bucketMs === undefined || bucketMs <= 0 || withMaturity === undefined) return;
  throw new ConfigError(
    bucketAt,
    `is not used with label_maturity (${withMaturity}): the pairs are then read in prediction order up to the label clock − label_maturity; remove arrival_bucket`,
  );
}

/** Parses rollout policy text (YAML or JSON) and validates it. */
export function parseRolloutPolicyText(text: string, source = 'rollout', limits: RolloutLimits = {}): RolloutPolicies {
  const document = parseConfigText(text, source);
  // A file given and empty is a mistake more likely than a wish for the defaults (unset gives those).
  if (document === null || document === undefined) {
    throw new ConfigError(source, 'is empty: write a policy, or unset the variable for the defaults');
  }
  return parseRolloutPolicy(document, source, limits);
}

/**
 * The rollout policy of a model (exact name first, then `*`), or undefined when it is manual
 * (`manual: true`; a file without `*` gives unlisted models the `defaults`). Own keys only: a model
 * named `constructor` or `toString` is a name like any other, not a property of every object.
 */
export function rolloutPolicyFor(policies: RolloutPolicies, model: string): RolloutPolicy | undefined {
  const own = ownValue(policies.models, model);
  return (own === undefined ? ownValue(policies.models, '*') : own) ?? undefined;
}

// ---------------------------------------------------------------------------------------------
// What the recorded transitions say

/** A recorded transition as the rollout reads it (a subset of the warehouse's TransitionRow). */
export interface TransitionFact {
  readonly version: string;
  readonly from_stage: Stage | null;
  readonly to_stage: Stage;
  readonly at: number;
  readonly previous_version: string | null;
  /** JSON text of the decision's evidence ('' or absent: none); its `serving_from` is read (see {@link SERVING_FROM}). */
  readonly evidence?: string;
}

/**
 * The evidence key of a transition to canary or production (and of a rollback that restores the
 * previous production): the event time from which the servers can answer in the new stage — the
 * model's label clock (its newest label time, quorum-robust) at the tick that decided it (or when
 * an operator's command ran: {@link OperatorRequest.clock}); the later
 * of it and `at`, unless `at` lies beyond the clock + the allowed future (dated after a record of
 * another clock, see {@link tickModel}): then the clock alone, the stage's one event-time position.
 * The stage's `max_time` counts from it, or from its first own answer when later (see
 * {@link ComparisonPlan.servingFrom}). Stored with the transition so a replay decides the same;
 * rows without it (recorded before) count from `since`.
 */
export const SERVING_FROM = 'serving_from';

/**
 * A stage transition as it is recorded (model_transitions) and published (models.v1), without
 * the model and the recording time: snake_case like the table.
 */
export interface TransitionFields {
  readonly version: string;
  /** `null` for the first record of a version (its registration as a candidate). */
  readonly from_stage: Stage | null;
  readonly to_stage: Stage;
  /** Event time of the decision. */
  readonly at: number;
  /** kind:name, e.g. policy:promotion, trainer:offline_gate, operator:alice. */
  readonly decided_by: string;
  readonly reason: string;
  readonly detail: string;
  /** JSON text of the decision's evidence, or '' when none. */
  readonly evidence: string;
  readonly canary_share: number | null;
  readonly previous_version: string | null;
}

/** A transition the rollout decided, ready to record (the service adds model and recorded_at). */
export interface PlannedTransition extends TransitionFields {
  readonly from_stage: Stage;
}

/** When a stage began (event time), and, for a canary or production, from when it can serve (its {@link SERVING_FROM}). */
interface StageStart {
  readonly since: number;
  readonly servingFrom?: number;
}

export interface ModelView {
  /** Every version's current stage and when it began. */
  readonly versions: ReadonlyMap<string, StageStart & { readonly stage: Stage }>;
  /** The version production traffic goes to, when known. */
  readonly production?: string;
  /**
   * When `production` took its role, when recorded: its promotion, or the rollback that restored
   * it (absent for the version known only from the gate).
   */
  readonly productionFrom?: StageStart;
  /** After a promotion: the replaced version, shadow-scored, compared with the new production. */
  readonly watch?: StageStart & { readonly production: string; readonly previous: string };
}

const RANK: Readonly<Record<Stage, number>> = {
  candidate: 0,
  shadow: 1,
  canary: 2,
  production: 3,
  retired: 4,
  rolled_back: 4,
  rejected: 4,
};

const TERMINAL: ReadonlySet<Stage> = new Set(['retired', 'rolled_back', 'rejected']);

/**
 * Replays a model's transitions (any order; sorted by (at, stage order, version)) into its view.
 * Production is the last version promoted to it, the version a rollback restored, or — before
 * any promotion was recorded (e.g. one made by the trainer's `direct` rollout) — the version the
 * newest shadow was gated against (its `previous_version`).
 */
/**
 * Whether `version` serves production traffic by the recorded transitions: yes with no transition
 * recorded (direct rollout) or for a version never recorded (registered outside the controller:
 * a direct rollout's promotion, but also an operator's shadow, `DRIFTLINE_MODEL_SERVER_SHADOW`,
 * which transitions cannot tell apart); otherwise only the view's production (the implicit
 * production too: the version a shadow was gated against), and while a rollback watch runs the
 * production it replaced: the model-server scores that one as a shadow, but answers with it when
 * the promoted version does not load, and counting only the promoted one then held every alert of
 * the model `not_serving` for the watch's max_time (found by a regression review). So during a
 * watch the replaced version's DATA_QUALITY alerts can veto the new production's retrains.
 */
export function servesProduction(transitions: readonly TransitionFact[], version: string): boolean {
  const history = usableTransitions(transitions);
  if (history.length === 0) return true;
  const view = viewOf(history);
  if (view.versions.get(version) === undefined) return true;
  return view.production === version || view.watch?.previous === version;
}

/**
 * The recorded transitions a view can use: a row whose time is not epoch ms or whose stage is none
 * of ours (written by hand, or by a bug) is left out. The model-controller said so and went on; the
 * retrain-trigger, reading the same rows, took a hand-written `Production` as a stage and held every
 * alert of the model as not serving.
 */
export function usableTransitions<T extends TransitionFact>(recorded: readonly T[]): T[] {
  return recorded.filter(
    (t) =>
      Number.isSafeInteger(t.at) &&
      t.at >= 0 &&
      isStage(t.to_stage) &&
      (t.from_stage === null || isStage(t.from_stage)),
  );
}

/**
 * A transition's {@link SERVING_FROM} (epoch ms), when its evidence has one. It may lie before `at`
 * (a decision dated after a record of another clock); a stage counts its `max_time` from it only
 * together with its `since` while that is on the clock (see {@link runPlan}), so a hand-written
 * one far back does not end a stage early.
 */
function servingFromOf(t: TransitionFact): number | undefined {
  if (t.evidence === undefined || !t.evidence.includes(SERVING_FROM)) return undefined;
  let value: unknown;
  try {
    value = (JSON.parse(t.evidence) as Record<string, unknown> | null)?.[SERVING_FROM];
  } catch {
    return undefined; // evidence written by hand: the stage counts from `since`, as before
  }
  return isEpochMs(value) ? value : undefined;
}

export function viewOf(history: readonly TransitionFact[]): ModelView {
  const sorted = [...history].sort(
    (a, b) => a.at - b.at || RANK[a.to_stage] - RANK[b.to_stage] || a.version.localeCompare(b.version),
  );
  const versions = new Map<string, StageStart & { stage: Stage }>();
  let production: string | undefined;
  let productionFrom: StageStart | undefined;
  let gatedAgainst: string | undefined;
  let watch: (StageStart & { production: string; previous: string }) | undefined;
  for (const t of sorted) {
    const before = versions.get(t.version)?.stage;
    // Stored on canary, production and a rollback's restore (transitionOf); read there only.
    const servingFrom =
      t.to_stage === 'canary' || t.to_stage === 'production' || t.to_stage === 'rolled_back'
        ? servingFromOf(t)
        : undefined;
    const start = { since: t.at, ...(servingFrom === undefined ? {} : { servingFrom }) };
    versions.set(t.version, { stage: t.to_stage, ...start });
    if (t.to_stage === 'shadow' && t.previous_version !== null) gatedAgainst = t.previous_version;
    if (t.to_stage === 'production') {
      const replaced = t.previous_version ?? production;
      production = t.version;
      productionFrom = start;
      watch =
        replaced !== undefined && replaced !== t.version
          ? { production: t.version, previous: replaced, ...start }
          : undefined;
    } else if (t.to_stage === 'rolled_back' && (t.version === production || before === 'production')) {
      production = t.previous_version ?? watch?.previous;
      productionFrom = production === undefined ? undefined : start;
      watch = undefined;
    } else if (TERMINAL.has(t.to_stage) && watch?.previous === t.version) {
      watch = undefined;
    }
  }
  if (production === undefined && gatedAgainst !== undefined && versions.get(gatedAgainst) === undefined) {
    production = gatedAgainst;
  }
  return {
    versions,
    ...(production === undefined ? {} : { production }),
    ...(production === undefined || productionFrom === undefined ? {} : { productionFrom }),
    ...(watch === undefined ? {} : { watch }),
  };
}

// ---------------------------------------------------------------------------------------------
// Comparisons

/** The role a version answered a request in (predictions.v1 `role`; a shadow never answers). */
export type AnsweringRole = 'production' | 'canary';

/**
 * Which answered requests a comparison's pairs come from: the version that answered (the row's
 * `model_version`) and the role it answered in (`role`). A labelled row carries the scores of
 * every version scored on the request, so without this the same rows fed every test: a shadow
 * test's production-answered rows decided the canary stage and the rollback watch too (found by
 * a review), when those exist for what only the new version's own answers show.
 */
export interface PairSource {
  readonly version: string;
  readonly role: AnsweringRole;
}

/** One open comparison of a model: which pairs to read (answered by `answeredBy`, scored by both versions, since `since`). */
export interface ComparisonPlan {
  readonly kind: 'promotion' | 'rollback';
  /** The version a decision moves: the challenger when promoting, production when rolling back. */
  readonly subject: string;
  readonly stage: Stage;
  readonly incumbent: string;
  readonly challenger: string;
  /** When the subject's stage (or the watch) began: its transition's `at`. */
  readonly since: number;
  /**
   * Prediction time (inclusive) its pairs are read from: `since`; or, for a stage whose
   * transition stored a {@link servingFrom} before `since` (dated after a record of another clock),
   * that; or, for a `since` beyond the model's clock + the allowed future with no such position (a
   * record dated by a wall clock ahead of event time: a replay, a backfill, a host clock ahead),
   * the event time production took its role (a shadow, when recorded and on the clock) or 0 (a
   * canary's or a watch's rows are its own version's). See {@link comparisonsOf}.
   */
  readonly from: number;
  /**
   * A canary's or a watch's (a stage compared on its subject's own answers), when its transition
   * stored one: the event time from which the servers could answer in it ({@link SERVING_FROM}).
   * `max_time` counts from it, or from the first own answer when later (see {@link runPlan}).
   */
  readonly servingFrom?: number;
  /**
   * A promotion's, when production took its role at or after `since` (a promotion or a rollback
   * while this stage ran): when it did (its transition's `at` and {@link SERVING_FROM}). The
   * comparison starts again against it, and `max_time` counts from then.
   */
  readonly incumbentFrom?: StageStart;
  /** The answered requests its pairs come from (see {@link pairSourceOf}). */
  readonly answeredBy: PairSource;
  /**
   * The model's `label_maturity` (ms), when above 0: the pairs are then those predicted at or
   * before {@link matureUntil}, stepped in prediction-time order (see {@link runPlan}).
   */
  readonly labelMaturityMs?: number;
  /**
   * With {@link labelMaturityMs}: the newest prediction time whose label is final at this tick —
   * the model's label clock − the maturity (−Infinity without a clock: no pair is mature yet). The
   * read's upper bound (inclusive); it moves on with the clock, so it is not part of {@link planKey}.
   */
  readonly matureUntil?: number;
}

/**
 * The answered requests a comparison reads, one kind per stage, so that no row is evidence for two
 * stages of a version: a shadow is scored on the requests production answers (as production); a
 * canary is compared on the requests it answered itself (as canary), which production also scores;
 * a rollback watch, on the requests the new production answered (as production), which the
 * replaced version still scores.
 */
function pairSourceOf(kind: ComparisonPlan['kind'], stage: Stage, incumbent: string, challenger: string): PairSource {
  if (kind === 'promotion' && stage === 'canary') return { version: challenger, role: 'canary' };
  return { version: incumbent, role: 'production' };
}

/** A stable key of a plan, for the pairs read for it. */
export function planKey(plan: ComparisonPlan): string {
  const { version, role } = plan.answeredBy;
  return `${plan.kind}\u0000${plan.incumbent}\u0000${plan.challenger}\u0000${plan.since}\u0000${plan.from}\u0000${version}\u0000${role}`;
}

/**
 * Whether a recorded time is on the model's event clock: at most the allowed future past its
 * label time (always, without a clock). A later one was dated by another clock — a wall clock
 * ahead of event time (a replay or backfill behind the wall clock, a host clock ahead), or a
 * decision dated after such a record (`at` is after the model's last transition) — and event
 * time may not reach it for as long as it is ahead: the stage's `since` then neither bounds its
 * pairs nor starts its `max_time` (found by a review: a shadow a month ahead never got a pair, and a
 * degrading production's rollback watch never decided).
 */
function onClock(t: number, clock: ModelClock | undefined): boolean {
  if (clock === undefined) return true;
  return t <= clock.labelTime + (clock.allowedFutureMs ?? DEFAULT_EVENT_TIME_BOUNDS.maxFutureMs);
}

/**
 * Prediction time a stage's pairs are read from (see {@link ComparisonPlan.from}). A stored
 * serving_from before `since` is used whatever the clock, so the read of a controller's own
 * decision never changes between ticks; the others only while `since` is off the clock (once the
 * clock reaches it, the pairs before it drop out: the test starts again there).
 */
function readFrom(
  stage: Stage,
  start: StageStart,
  productionFrom: StageStart | undefined,
  clock: ModelClock | undefined,
): number {
  if (start.servingFrom !== undefined && start.servingFrom < start.since) return start.servingFrom;
  if (onClock(start.since, clock)) return start.since;
  if (stage === 'shadow' && productionFrom !== undefined) {
    // A shadow's rows are production's answers: none before production took its role.
    const took = Math.min(productionFrom.since, productionFrom.servingFrom ?? productionFrom.since);
    if (onClock(took, clock) && took < start.since) return took;
  }
  // A canary's or a watch's rows are its own version's answers (the read is by version): 0 costs
  // only that version's rows. A shadow of production known only from the gate has no other bound.
  return 0;
}

/**
 * The comparisons open in a view: every shadow and canary version against production, and the
 * rollback watch (production against the version it replaced), each with the answered requests its
 * pairs come from and the prediction time it reads them from ({@link ComparisonPlan.from}: the
 * model's `clock` decides whether a recorded `since` is on event time). None without a known
 * production.
 */
export function comparisonsOf(view: ModelView, clock?: ModelClock, labelMaturityMs = 0): ComparisonPlan[] {
  const production = view.production;
  if (production === undefined) return [];
  const productionFrom = view.productionFrom;
  // Only the pairs whose label is final (predicted label_maturity before the label clock).
  const maturity =
    labelMaturityMs > 0
      ? {
          labelMaturityMs,
          matureUntil: clock === undefined ? Number.NEGATIVE_INFINITY : clock.labelTime - labelMaturityMs,
        }
      : {};
  const plans: ComparisonPlan[] = [];
  for (const [version, start] of view.versions) {
    const { stage, since, servingFrom } = start;
    if ((stage === 'shadow' || stage === 'canary') && version !== production) {
      const own = stage === 'canary' ? start : { since };
      plans.push({
        kind: 'promotion',
        subject: version,
        stage,
        incumbent: production,
        challenger: version,
        since,
        from: readFrom(stage, own, productionFrom, clock),
        ...(stage === 'canary' && servingFrom !== undefined ? { servingFrom } : {}),
        // Production changed while this stage ran (its comparison starts again against it).
        ...(productionFrom !== undefined && productionFrom.since >= since ? { incumbentFrom: productionFrom } : {}),
        answeredBy: pairSourceOf('promotion', stage, production, version),
        ...maturity,
      });
    }
  }
  const w = view.watch;
  if (
    w !== undefined &&
    w.production === production &&
    !TERMINAL.has(view.versions.get(w.previous)?.stage ?? 'production')
  ) {
    plans.push({
      kind: 'rollback',
      subject: production,
      stage: 'production',
      incumbent: production,
      challenger: w.previous,
      since: w.since,
      from: readFrom('production', w, undefined, clock),
      ...(w.servingFrom === undefined ? {} : { servingFrom: w.servingFrom }),
      answeredBy: pairSourceOf('rollback', 'production', production, w.previous),
      ...maturity,
    });
  }
  return plans;
}

/**
 * A labelled prediction scored by both versions (the warehouse's PairedOutcome has these fields).
 * A plan's pairs come in the order they ARRIVED (the warehouse's `joined_at`, then prediction id),
 * so each tick's path extends the last one's (see {@link runPlan}).
 */
export interface PairInput {
  /** Breaks ties of prediction time in prediction-time order (a plan with `label_maturity`). */
  readonly predictionId?: string;
  /**
   * When the row arrived (the warehouse's `joined_at`). With `label_maturity` the pairs come in
   * prediction order, and the stage's first pair by arrival (this, then `predictionId`) is where
   * `max_time` may start (see {@link runPlan}); absent: the first pair as given.
   */
  readonly joinedAt?: number;
  readonly predictionTime: number;
  readonly labelTime: number;
  readonly label: number;
  /**
   * Each version's score of the instance; null when the version was to score it and could not (a
   * value it cannot take, a score that is not finite, its scorer failing: the model server's
   * `unscored`). Such a version is charged its worst answer (see {@link worstAnswer}).
   */
  readonly incumbent: number | null;
  readonly challenger: number | null;
}

/**
 * The score a version that could not score an instance is charged with: the one furthest from the
 * label, whose loss is 1 under both metrics (Brier, and error rate at any threshold in (0, 1)).
 * Left out, such instances were invisible to the test: a canary that failed on the hard cases,
 * production answering them, was compared on the easy ones only and looked better than it was.
 * Charged the worst answer, a version that cannot serve an instance never gains from it; the
 * instances production answers for it cost users nothing now, but would fail once it is promoted.
 */
export function worstAnswer(label: number): number {
  return 1 - label;
}

/**
 * A model's event clock, from its labelled predictions (paired or not): a label time, and a
 * prediction time that has a label — the warehouse gives the quorum-th newest of each, so one row
 * dated ahead cannot move it. `max_time` is measured on the second; a decision's time is on the
 * first (when the deciding label arrived). No pair moves time past it.
 */
export interface ModelClock {
  readonly labelTime: number;
  readonly predictionTime: number;
  /**
   * How far past `labelTime` a recorded transition's time may lie and still be event time: the
   * allowed future (the controller's DRIFTLINE_EVENT_TIME_MAX_FUTURE; default
   * DEFAULT_EVENT_TIME_BOUNDS.maxFutureMs). Not part of the warehouse's read.
   */
  readonly allowedFutureMs?: number;
}

/**
 * The model's clock as the controller, the trainer and the stage command use it: the warehouse's
 * read (`labelClock`) when both its times are plausible event times (safe integers in [0,
 * `notAfter`], `notAfter` the wall clock plus the allowed future), else undefined (no clock: a
 * time from 2099 or a corrupt row would pass every stage's max_time at once).
 */
export function usableClock(
  read: { readonly labelTime: number; readonly predictionTime: number } | undefined,
  notAfter: number,
  allowedFutureMs?: number,
): ModelClock | undefined {
  const plausible = (t: number) => Number.isSafeInteger(t) && t >= 0 && t <= notAfter;
  if (read === undefined || !plausible(read.labelTime) || !plausible(read.predictionTime)) return undefined;
  return {
    labelTime: read.labelTime,
    predictionTime: read.predictionTime,
    ...(allowedFutureMs === undefined ? {} : { allowedFutureMs }),
  };
}

export interface PlanOutcome {
  readonly plan: ComparisonPlan;
  readonly decision: ComparisonDecision;
  /**
   * Event time of the decision: the newest label time among the pairs used up to the one that
   * decided (pairs come in arrival order, not label order), or the clock's for the tick.
   */
  readonly decidedAt: number;
  readonly pairs: number;
  /** Pairs left out: a label other than 0/1, a score outside [0, 1] or a time not epoch ms (they would be poison). */
  readonly skipped: number;
}

const isUnit = (x: number) => Number.isFinite(x) && x >= 0 && x <= 1;
const isEpochMs = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;

/**
 * Event time from which a plan's `max_time` counts: the latest of `since` (while on the model's
 * clock), the stored {@link ComparisonPlan.servingFrom} of a canary or a watch, when production
 * took its role ({@link ComparisonPlan.incumbentFrom}), and the stage's first own pair in arrival
 * order (its pairs are its own: a shadow is scored, a canary or a new production answers, only
 * once the servers have loaded it). Undefined when none is known (a `since` off the clock, no
 * stored position, no pair yet): no time passes.
 *
 * Why each: `since` is the deciding label's time, and after a backlog longer than `max_time` (a
 * controller or label-joiner outage) it lies that far back; the stage began with `max_time`
 * spent, and the next tick rolled a canary back `too_few_labels`, or a new production
 * `not_scored`, before the servers had switched (found by a review). Counting from the
 * transition's `recorded_at` instead (wall clock, d955225) never ended a stage with no own answer
 * where event time runs behind the wall clock. `servingFrom` is an event time, so a version that
 * never serves ends `max_time` after it, whichever way event time runs; one that serves gets
 * `max_time` from its first own (labelled) answer, whatever the lag of its switch or the label
 * delay — provided labels arrive by their label time (`servingFrom` is a label clock: labels
 * delivered `max_time` after their label time still end a serving stage with none of its own; see
 * the model-controller's "Time semantics"). A shadow counted from `since` alone: dated by a wall
 * clock behind event time (a trainer's, with event time 40× faster), it was rejected
 * `too_few_labels` at its first pairs. A comparison whose production changed counted from the
 * stage's `since`: a shadow that had won against v1, waiting for the canary slot, was rejected
 * against the new production v2 with 100 of 500 labels, 13 h after v2 took over (found by a review).
 */
function evidenceStart(
  plan: ComparisonPlan,
  pairs: readonly PairInput[],
  end: number,
  maxTimeMs: number,
  clock: ModelClock | undefined,
  given: readonly PairInput[],
): number | undefined {
  const labelCap = clock?.labelTime ?? Number.POSITIVE_INFINITY;
  // A controller writes the clock of the deciding tick, and the clock only moves on (but for a
  // host whose wall clock is behind the last one's): a serving_from more than max_time past the
  // current clock was written by hand. Kept, a year ahead held the stage, and every later
  // promotion, for a year (found by a review); ignored, the stage counts from its other times.
  const stored = (t: number | undefined) => t !== undefined && t - maxTimeMs <= labelCap;
  let start = Number.NEGATIVE_INFINITY;
  if (onClock(plan.since, clock)) start = plan.since;
  if (stored(plan.servingFrom)) start = Math.max(start, plan.servingFrom as number);
  const incumbent = plan.incumbentFrom;
  if (incumbent !== undefined) {
    if (onClock(incumbent.since, clock)) start = Math.max(start, incumbent.since);
    if (stored(incumbent.servingFrom)) start = Math.max(start, incumbent.servingFrom as number);
  }
  // The first own pair IN ARRIVAL ORDER among the pairs this tick uses (before `end`: a pair that
  // waits for the clock moved the start, so a decision depended on a label that came after it).
  // Not the earliest predicted: one pair dated far back (a backfill row, a late client) started
  // max_time there and ended the stage at once — a degrading production kept `too_few_labels`
  // with 20 bad pairs, its rollback gone — and one arriving later re-dated the start, re-deciding
  // steps a tick had already passed (both found by a review). The first arrival never changes.
  // With label_maturity the pairs come in prediction order, and the first given is the earliest
  // predicted: one old straggler row ended a watch at once (a year back: `too_few_labels`, 2 of
  // 500 labels, its rollback gone; found by a regression review). The first by arrival there too.
  const first =
    plan.matureUntil === undefined
      ? firstUsable(pairs, end)
      : firstArrived(given, plan.matureUntil, end < pairs.length ? pairs[end] : undefined);
  if (first !== undefined) start = Math.max(start, first.predictionTime);
  return start === Number.NEGATIVE_INFINITY ? undefined : start;
}

/** The first usable pair among `pairs[0, end)` as given (in arrival order: the first to arrive). */
function firstUsable(pairs: readonly PairInput[], end: number): PairInput | undefined {
  for (let i = 0; i < end; i++) {
    const p = pairs[i] as PairInput;
    if (usablePair(p)) return p;
  }
  return undefined;
}

/**
 * Of the pairs a plan with `label_maturity` uses this tick (usable, predicted at or before
 * `matureUntil`, and before the pair `held` for the clock in prediction order), the one that
 * arrived first: smallest `joinedAt`, then `predictionId` by code unit (as the warehouse orders
 * arrival); pairs without a `joinedAt` come after those with one, in the order `given` (then
 * taken as arrival order). The set of mature pairs grows only by pairs predicted after every one
 * already used (the maturity's assumption): the first arrival so changes only to a pair predicted
 * later — the start moves later, never back — and a straggler, a row predicted long ago that
 * arrives among the stage's own, does not become it.
 */
function firstArrived(
  given: readonly PairInput[],
  matureUntil: number,
  held: PairInput | undefined,
): PairInput | undefined {
  let best: PairInput | undefined;
  for (const p of given) {
    if (!usablePair(p) || !isMature(p, matureUntil)) continue;
    if (held !== undefined && predictionOrder(p, held) >= 0) continue;
    if (best === undefined || arrivedBefore(p, best)) best = p;
  }
  return best;
}

function arrivedBefore(a: PairInput, b: PairInput): boolean {
  const ja = a.joinedAt;
  const jb = b.joinedAt;
  if (ja === undefined || !Number.isFinite(ja)) return false;
  if (jb === undefined || !Number.isFinite(jb)) return true;
  if (ja !== jb) return ja < jb;
  return (a.predictionId ?? '') < (b.predictionId ?? '');
}

/**
 * A pair the comparison can use: a 0/1 label, each score in [0, 1] or null (unscored), epoch-ms
 * times (others are skipped and counted).
 */
const usablePair = (p: PairInput): boolean =>
  (p.label === 0 || p.label === 1) &&
  (p.incumbent === null || isUnit(p.incumbent)) &&
  (p.challenger === null || isUnit(p.challenger)) &&
  isEpochMs(p.labelTime) &&
  isEpochMs(p.predictionTime);

/**
 * How many of the pairs (in arrival order) a tick may use: up to the first usable one labelled
 * after the model's clock. That one waits for the clock (used at once, it was dated at the clock,
 * before its own label, where event time runs ahead of the wall clock), and so does every pair
 * that arrived after it: skipped alone, it came back later into the middle of a path the test had
 * already looked at.
 */
function usableEnd(pairs: readonly PairInput[], labelCap: number): number {
  for (let i = 0; i < pairs.length; i++) {
    const p = pairs[i] as PairInput;
    if (usablePair(p) && p.labelTime > labelCap) return i;
  }
  return pairs.length;
}

/**
 * Steps the plan's policy over its pairs IN THE ORDER THEY ARRIVED (as the warehouse reads them:
 * by closed arrival bucket, then a hash of the prediction id — {@link RolloutPolicy.arrivalBucketMs}
 * — or `joined_at`, then prediction id), then a `tick` at the newest labelled prediction time — of the
 * pairs, or of `clock` (the model's, paired or not) when later — so `max_time` decides on event
 * time, never wall clock, and a comparison that gets no pairs (a version nobody scores any more)
 * still reaches `max_time`.
 *
 * `max_time` is measured on PREDICTION time: how long a stretch of predictions since the stage
 * began has labels. On label time, labels of predictions made before the stage began moved the
 * clock too, so with a label delay D a comparison got `max_time − D` of evidence, and none when
 * D ≥ `max_time` (every shadow rejected with no pairs).
 *
 * Why arrival order: the controller keeps no state, so every tick replays the sequence from the
 * first pair, and the test's guarantee (false promotion ≤ α at any stopping time) holds for ONE
 * sequence looked at after every pair. Ordered by label time, a label that arrived after labels
 * dated later was slotted into the middle, and each tick tested another ordering: with labels
 * delayed 0–10 days over a day of predictions, α = 0.2 promoted an equal candidate in 28.3% of
 * runs (one path: 7.5%). In arrival order each tick only appends to the path the last one
 * tested (pairs that wait for the clock included: {@link usableEnd}; while one waits, the closing
 * `tick` is at no later a prediction time than its, so `max_time` does not end a comparison whose
 * evidence waits). The decision is dated at
 * the newest label time among the pairs used up to the deciding one, so a transition is never
 * dated before a label it needed.
 * The positive_rate guard, when configured, gets the NEWER version's positive prediction (the
 * challenger when promoting, production when watching) with the other's as baseline, stepped
 * together with its pair (one decision after both).
 * `answered`: whether production (the incumbent) answered any prediction since the plan's `from`,
 * for a rollback watch whose time is up with no pair ({@link awaitsAnswered}): true keeps
 * production (the replaced version is retired), false rolls it back (`not_scored`); without it
 * such a watch stays undecided (`continue`), never a default.
 * `waitingFrom`: the earliest prediction time among the plan's pairs that arrived but wait for
 * their arrival bucket to close (read by closed arrival bucket: `arrival_bucket`); the closing
 * tick stops there, as at a pair that waits for the clock.
 */
export function runPlan(
  plan: ComparisonPlan,
  policy: ComparisonPolicy,
  given: readonly PairInput[],
  clock?: ModelClock,
  answered?: boolean,
  waitingFrom?: number,
): PlanOutcome {
  // With label_maturity: only the pairs whose label is final, in prediction-time order (the
  // order then depends on no label: see maturePairs).
  const pairs = plan.matureUntil === undefined ? given : maturePairs(given, plan.matureUntil);
  const maturityMs = plan.labelMaturityMs ?? 0;
  const guard = policy.guards.find((g) => g.name === POSITIVE_RATE_GUARD);
  // No pair moves time past the model's clock (its quorum-th newest times, see ModelClock): one
  // row dated ahead, the newest of the comparison, ended it on max_time (found by a review).
  const predictionCap = clock?.predictionTime ?? Number.POSITIVE_INFINITY;
  const labelCap = clock?.labelTime ?? Number.POSITIVE_INFINITY;
  const end = usableEnd(pairs, labelCap);
  // No known start (a `since` off the clock, no stored position, no pair yet): no time passes.
  const start =
    evidenceStart(plan, pairs, end, policy.maxTimeMs, clock, given) ?? Math.max(0, clock?.predictionTime ?? plan.since);
  let state: ComparisonState = startComparison(policy, start);
  let decision: ComparisonDecision = decideComparison(policy, state);
  let decided = false;
  let decidedAt = plan.since;
  let newestPrediction = start;
  let newestLabel = plan.since;
  let used = 0;
  let skipped = 0;
  // Only a canary's comparison charges an unscored version (see chargesUnscored).
  const charges = chargesUnscored(plan);
  const charged = { incumbent: 0, challenger: 0 };
  const step = (events: readonly ComparisonEvent[], labelTime: number) => {
    const r = stepComparisonTogether(policy, state, events);
    state = r.state;
    if (r.decision.action !== 'continue' && !decided) {
      decided = true;
      decidedAt = Math.max(plan.since, labelTime);
    }
    decision = r.decision;
  };
  for (let i = 0; i < end; i++) {
    if (state.decision !== undefined) break;
    const p = pairs[i] as PairInput;
    if (!usablePair(p) || (!charges && (p.incumbent === null || p.challenger === null))) {
      skipped++;
      continue;
    }
    used++;
    if (p.incumbent === null) charged.incumbent++;
    if (p.challenger === null) charged.challenger++;
    // A pair predicted before the stage began (the reader's bound is inclusive of `since`) adds no time.
    const time = Math.max(start, Math.min(p.predictionTime, predictionCap));
    newestPrediction = Math.max(newestPrediction, time);
    // In arrival order a later pair may be labelled earlier: a decision is dated at the newest label so far
    // (with label_maturity, no earlier than when this pair's label became final: a replay dates it the same).
    newestLabel = Math.max(newestLabel, p.labelTime, maturityMs > 0 ? p.predictionTime + maturityMs : 0);
    const labelTime = newestLabel;
    const worst = worstAnswer(p.label);
    const events: ComparisonEvent[] = [
      {
        kind: 'pair',
        time_ms: time,
        label: p.label,
        incumbent: p.incumbent ?? worst,
        challenger: p.challenger ?? worst,
      },
    ];
    if (guard !== undefined) {
      // The positive-rate guard: a version that could not score takes the other's answer (what was
      // answered instead), so the observation is neutral; both unscored, neither is positive.
      const incumbent = p.incumbent ?? p.challenger ?? 0;
      const challenger = p.challenger ?? incumbent;
      const newer = plan.kind === 'promotion' ? challenger : incumbent;
      const older = plan.kind === 'promotion' ? incumbent : challenger;
      const positive = (x: number) => (x >= policy.threshold ? 1 : 0);
      events.push({
        kind: 'guard',
        time_ms: time,
        name: guard.name,
        value: positive(newer),
        baseline: positive(older),
      });
    }
    // The pair and its guard observation are one request: decided once, after both. The pair
    // first, alone, ended the test with the guard one short: at min_observations = max_labels
    // every promotion was rejected, and a watch's guard could never roll production back.
    step(events, labelTime);
  }
  if (state.decision === undefined) {
    // While a pair waits for the clock, the closing tick stops at its prediction time: at the
    // clock's, max_time ended comparisons whose evidence was waiting (a label source 50 min ahead:
    // 50 of 100 better candidates rejected on max_time, 16 before arrival order; found by a review).
    // The wait ends when the clock passes the held label: the controller keeps only pairs labelled
    // within the future bound of their arrival, and the clock reaches any label at or before the
    // wall clock.
    const held = end < pairs.length ? (pairs[end] as PairInput) : undefined;
    // With label_maturity, max_time counts mature predictions only: the stage gets max_time of
    // evidence whose labels are final, not max_time less the maturity (none when it is longer).
    const closingCap =
      clock === undefined
        ? undefined
        : Math.min(
            clock.predictionTime,
            held?.predictionTime ?? Number.POSITIVE_INFINITY,
            plan.matureUntil ?? Number.POSITIVE_INFINITY,
            // Pairs arrived in a bucket not closed yet wait as a held pair does.
            waitingFrom ?? Number.POSITIVE_INFINITY,
          );
    const prediction = closingCap !== undefined && closingCap > newestPrediction ? closingCap : newestPrediction;
    const label = clock !== undefined && clock.labelTime > newestLabel ? clock.labelTime : newestLabel;
    step([{ kind: 'tick', time_ms: prediction }], label);
    if (answered !== undefined && awaitsAnswered(plan, decision)) {
      decision = answeredDecision(plan, decision, answered);
      decidedAt = Math.max(plan.since, label);
    }
  }
  if (charged.incumbent + charged.challenger > 0) {
    // Said in the decision: a version judged worse for requests it could not answer, not only for its scores.
    const who = [
      charged.challenger > 0 ? `${plan.challenger} on ${charged.challenger}` : '',
      charged.incumbent > 0 ? `${plan.incumbent} on ${charged.incumbent}` : '',
    ].filter((x) => x !== '');
    decision = {
      ...decision,
      detail: `${decision.detail}; could not score, charged the worst answer: ${who.join(', ')}`,
      evidence: { ...decision.evidence, unscored: { ...charged } },
    };
  }
  return { plan, decision, decidedAt, pairs: used, skipped };
}

/**
 * Whether a plan's comparison charges a version that could not score a request its worst answer:
 * a canary's only. There both versions' failures are rows — the canary's (production answered
 * for it) and production's beside it —, and a request neither could answer is a 5xx, no row. In
 * a shadow's or a watch's, the version that answers fails the request (no prediction id, no
 * label: never a row) while the other's failures are rows: charged, the test was one-sided (equal
 * failure rates of 2% turned a better shadow's promotion from 40/40 to 0/40, and a worse
 * production's rollback from 40/40 to 1/40; a review). Those pairs are skipped and counted there;
 * every promotion passes a canary, where they count.
 */
export function chargesUnscored(plan: Pick<ComparisonPlan, 'kind' | 'stage'>): boolean {
  return plan.kind === 'promotion' && plan.stage === 'canary';
}

/**
 * The pairs of a plan with `label_maturity` that it may use: those predicted at or before
 * `matureUntil` (their labels are final), in prediction-time order, ties by prediction id (the
 * warehouse reads them so; sorted here only when not). The order and the set then depend on
 * prediction times alone, never on when (or whether yet) a label arrived: in arrival order, with
 * positives labelled days after the prediction and negatives after 30, the first pairs of every
 * path were the positives, and a worse, more aggressive candidate was promoted in 100 of 100 runs
 * at α = 0.05 (found by a review). Each tick's path extends the last one's as the clock moves on,
 * provided every label is in the warehouse once the label clock passes its prediction time + the
 * maturity (the assumption; a label later than that lands in the middle of the path).
 */
function maturePairs(pairs: readonly PairInput[], matureUntil: number): readonly PairInput[] {
  const mature = pairs.filter((p) => isMature(p, matureUntil));
  const before = predictionOrder;
  for (let i = 1; i < mature.length; i++) {
    if (before(mature[i - 1] as PairInput, mature[i] as PairInput) > 0) return mature.sort(before);
  }
  return mature;
}

const isMature = (p: PairInput, matureUntil: number) => !(p.predictionTime > matureUntil);

/** Prediction-time order (non-finite first), ties by prediction id by code unit, as ClickHouse orders the ASCII ids producers send. */
function predictionOrder(a: PairInput, b: PairInput): number {
  const key = (p: PairInput) => (Number.isFinite(p.predictionTime) ? p.predictionTime : Number.NEGATIVE_INFINITY);
  const ia = a.predictionId ?? '';
  const ib = b.predictionId ?? '';
  return key(a) - key(b) || (ia < ib ? -1 : ia > ib ? 1 : 0);
}

/**
 * Whether a plan's decision waits for {@link runPlan}'s `answered`: a rollback watch whose
 * max_time is up with no pair (the comparison cannot tell whether production serves).
 */
export function awaitsAnswered(plan: ComparisonPlan, decision: ComparisonDecision): boolean {
  return plan.kind === 'rollback' && decision.action === 'continue' && decision.reason === 'too_few_labels';
}

/**
 * A rollback watch whose time is up with no pair, decided by whether production answered since it
 * began (rows of its model_version, whatever their `scores`). Answered: production serves, and the
 * replaced version is only not shadow-scored (a server that no longer scores it, a margin-score
 * model whose rows are no pairs, a producer without `scores`): kept, the replaced one retired.
 * Answered nothing: it never served (the model servers gave it up and serve the replaced
 * version): rolled back.
 */
function answeredDecision(plan: ComparisonPlan, decision: ComparisonDecision, answered: boolean): ComparisonDecision {
  const evidence = { ...decision.evidence, production_answered: answered };
  const since = `since ${plan.from}`;
  if (answered) {
    return {
      action: 'keep',
      reason: 'too_few_labels',
      detail: `${decision.detail}; ${plan.incumbent} (production) answered predictions ${since}: it serves, ${plan.challenger} is retired`,
      evidence,
    };
  }
  return {
    action: 'rollback',
    reason: 'not_scored',
    detail: `${decision.detail}; ${plan.incumbent} (production) answered no prediction ${since}: it does not serve, ${plan.challenger} is restored`,
    evidence,
  };
}

/**
 * The {@link SERVING_FROM} of a transition dated `at` on the model's `clock`: the later of the
 * clock's label time and `at`, or the label time alone when `at` is off the clock (dated after a
 * record of another clock, or by an operator's wall clock ahead of event time).
 */
function servingFromAt(at: number, clock: ModelClock): number {
  return onClock(at, clock) ? Math.max(at, clock.labelTime) : clock.labelTime;
}

/**
 * The transition a decided plan implies, or undefined (continue / nothing to move). `clock`: the
 * model's at this tick; a transition to canary or production, and a watch's rollback (production
 * restored), store its {@link SERVING_FROM}: the later of its label time and `at`, or its label
 * time alone when `at` is off the clock (dated after a record of another clock).
 */
export function transitionOf(
  outcome: PlanOutcome,
  rollout: RolloutPolicy,
  notBefore: number,
  clock?: ModelClock,
): PlannedTransition | undefined {
  const { plan, decision } = outcome;
  const at = Math.max(outcome.decidedAt, notBefore);
  const servingFrom = clock === undefined ? at : servingFromAt(at, clock);
  const evidence = (to: Stage) =>
    JSON.stringify(
      to === 'canary' || to === 'production' || (plan.kind === 'rollback' && to === 'rolled_back')
        ? { ...decision.evidence, [SERVING_FROM]: servingFrom }
        : decision.evidence,
    );
  const base = {
    at,
    decided_by: `policy:${plan.kind}`,
    reason: decision.reason,
    detail: decision.detail,
  };
  let move: { version: string; from: Stage; to: Stage; share: number | null; previous: string | null } | undefined;
  if (plan.kind === 'promotion') {
    if (decision.action === 'promote') {
      move =
        plan.stage === 'shadow'
          ? {
              version: plan.subject,
              from: 'shadow',
              to: 'canary',
              share: rollout.canaryShare,
              previous: plan.incumbent,
            }
          : { version: plan.subject, from: 'canary', to: 'production', share: null, previous: plan.incumbent };
    } else if (decision.action === 'reject') {
      move = {
        version: plan.subject,
        from: plan.stage,
        to: plan.stage === 'shadow' ? 'rejected' : 'rolled_back',
        share: null,
        previous: plan.incumbent,
      };
    }
  } else if (decision.action === 'rollback') {
    move = { version: plan.incumbent, from: 'production', to: 'rolled_back', share: null, previous: plan.challenger };
  } else if (decision.action === 'keep') {
    // The watch ends (on evidence, on too few labels with pairs that show no degradation — a bound
    // past the bar rolls back instead, see decideComparison —, or with no pair while production
    // answered): the replaced version is retired.
    move = { version: plan.challenger, from: 'production', to: 'retired', share: null, previous: plan.incumbent };
  }
  if (move === undefined || !canTransition(move.from, move.to)) return undefined;
  return {
    ...base,
    evidence: evidence(move.to),
    version: move.version,
    from_stage: move.from,
    to_stage: move.to,
    canary_share: move.share,
    previous_version: move.previous,
  };
}

export interface TickResult {
  readonly outcomes: readonly PlanOutcome[];
  /** At most one per tick: the earliest decided that may happen now (see tickModel). */
  readonly transition?: PlannedTransition;
  /** Decided comparisons that wait: a second canary, or a promotion during a rollback watch. */
  readonly waiting: readonly string[];
}

/**
 * One tick of one model: runs every open comparison on its pairs (`pairsOf(plan)`, the pairs read
 * for it) and returns at most ONE transition — the decided one with the earliest decision time.
 * One per tick keeps the view simple (the next tick sees the new stage) and costs one tick
 * interval per extra transition. Waits, with the transition's `at` no earlier than what it waited
 * for (so replay gives the same times): shadow → canary while another version is in canary;
 * canary → production while a rollback watch is open. `clock`: the model's event clock
 * (see {@link runPlan}; it also decides which recorded times are on event time, see
 * {@link comparisonsOf}); `answeredOf(plan)`: whether production answered since a watch's `from`,
 * for a watch whose outcome {@link awaitsAnswered} (undefined: it stays undecided this tick).
 * Every transition is dated after the model's last one, so a record dated ahead of event time (a
 * wall clock ahead of it) dates every later one ahead too: those store the clock in
 * {@link SERVING_FROM}, and their stages are read and timed from it (see {@link ComparisonPlan.from}).
 */
export function tickModel(
  history: readonly TransitionFact[],
  pairsOf: (plan: ComparisonPlan) => readonly PairInput[],
  rollout: RolloutPolicy,
  clock?: ModelClock,
  answeredOf?: (plan: ComparisonPlan) => boolean | undefined,
): TickResult {
  const view = viewOf(history);
  const outcomes = comparisonsOf(view, clock, rollout.labelMaturityMs).map((plan) =>
    runPlan(plan, policyOf(rollout, plan), pairsOf(plan), clock, answeredOf?.(plan)),
  );
  return decideTick(history, outcomes, rollout, clock);
}

/** The comparison policy of a plan: the model's promotion or rollback policy. */
export function policyOf(rollout: RolloutPolicy, plan: ComparisonPlan): ComparisonPolicy {
  return plan.kind === 'promotion' ? rollout.promotion : rollout.rollback;
}

/**
 * {@link tickModel} from the outcomes of the model's plans (`comparisonsOf(viewOf(history),
 * clock, rollout.labelMaturityMs)`, each run by {@link runPlan}): at most one transition, the
 * waits. For a caller that runs each plan as it reads its pairs, and drops them before the next
 * read (the model-controller: holding every plan's pairs until the last was read took ~23 MiB per
 * open comparison at 100k pairs, and 48 shadows ran out of a 1 GiB heap; found by a review).
 */
export function decideTick(
  history: readonly TransitionFact[],
  outcomes: readonly PlanOutcome[],
  rollout: RolloutPolicy,
  clock?: ModelClock,
): TickResult {
  const view = viewOf(history);
  const canaryBusy = [...view.versions.values()].some((v) => v.stage === 'canary');
  const lastAt = history.reduce((m, t) => Math.max(m, t.at), 0);
  const watching = outcomes.some((o) => o.plan.kind === 'rollback');
  const waiting: string[] = [];
  let best: PlannedTransition | undefined;
  for (const outcome of outcomes) {
    if (outcome.decision.action === 'continue') continue;
    const p = outcome.plan;
    const promotes = outcome.decision.action === 'promote';
    if (promotes && p.stage === 'shadow' && canaryBusy) {
      waiting.push(`${p.subject}: promotion to canary waits for the canary in progress`);
      continue;
    }
    if (promotes && p.stage === 'canary' && watching) {
      waiting.push(`${p.subject}: promotion to production waits for the rollback watch of ${p.incumbent}`);
      continue;
    }
    // Strictly after every recorded transition (what it waited for included: a canary freed, a
    // watch closed), so the history replays in the order it was recorded. A decision's own time
    // is its deciding label's, which can lie far back (labels in bursts, after an outage): a
    // canary recorded before the rollback that preceded it compared pairs predicted before it
    // served; and at the same time as a watch's rollback, a replay ordered the promotion before
    // the rollback (stage rank), which then took production back from it.
    const notBefore = Math.max(p.since, lastAt + 1);
    const t = transitionOf(outcome, rollout, notBefore, clock);
    if (t !== undefined && (best === undefined || t.at < best.at || (t.at === best.at && t.version < best.version)))
      best = t;
  }
  return { outcomes, ...(best === undefined ? {} : { transition: best }), waiting };
}

/** The models.v1 event kind of a stage. */
export function eventKindOf(stage: Stage): ModelEventKind {
  switch (stage) {
    case 'candidate':
      return 'TRAINED';
    case 'shadow':
      return 'SHADOW';
    case 'canary':
      return 'CANARY';
    case 'production':
      return 'PROMOTED';
    case 'rejected':
      return 'REJECTED';
    case 'rolled_back':
      return 'ROLLED_BACK';
    case 'retired':
      return 'RETIRED';
  }
}

/** A recorded transition of a model, as models.v1 publishes it (the warehouse's TransitionRow is one). */
export type TransitionRecord = Omit<TransitionFields, 'from_stage'> & { readonly model: string };

/** What a model event carries of the trained version (its model_versions row), when it is known. */
export interface EventArtifacts {
  readonly request_id: string | null;
  readonly artifact_uri: string;
  readonly reference_uri: string | null;
  readonly metrics: Readonly<Record<string, number>>;
}

/**
 * The models.v1 event of a recorded transition. `event_time` is the transition's `at`, so a
 * re-published event is identical to the first one (consumers treat it as a no-op).
 * `previous_version` is sent only where the schema gives it a meaning (PROMOTED: the version
 * replaced; ROLLED_BACK: the version serving instead), `canary_share` only on CANARY.
 */
export function transitionEvent(t: TransitionRecord, artifacts: EventArtifacts | undefined): ModelEvent {
  const kind = eventKindOf(t.to_stage);
  return {
    model: t.model,
    version: t.version,
    kind,
    event_time: t.at,
    request_id: artifacts?.request_id ?? null,
    metrics: { ...(artifacts?.metrics ?? {}) },
    artifact_uri: artifacts?.artifact_uri ?? '',
    reference_uri: artifacts?.reference_uri ?? null,
    canary_share: kind === 'CANARY' ? t.canary_share : null,
    previous_version: kind === 'PROMOTED' || kind === 'ROLLED_BACK' ? t.previous_version : null,
    decided_by: t.decided_by,
    reason: t.detail === '' ? t.reason : `${t.reason}: ${t.detail}`,
    evidence: t.evidence === '' ? null : t.evidence,
  };
}

export interface OperatorRequest {
  readonly version: string;
  readonly to: Stage;
  /**
   * Wall-clock time of the command (an operator's decision has no event time); the rows are dated
   * no earlier than the current stage began and after the model's last recorded transition.
   */
  readonly at: number;
  /** The operator's name: decided_by is `operator:<name>`. */
  readonly operator: string;
  readonly reason: string;
  /** For `canary`: the share of entities, in (0, 1] (default DEFAULT_CANARY_SHARE). */
  readonly canaryShare?: number;
  /**
   * The model's event clock when the command runs (the warehouse's `labelClock`, read as the
   * model-controller reads it), undefined when the model has no labelled prediction. A move to
   * canary or production, and a rollback of production, store its {@link SERVING_FROM} as the
   * controller's do; without one, such a stage recorded by a wall clock ahead of event time read
   * its pairs from 0 and timed `max_time` from its first pair alone (found by a review).
   */
  readonly clock?: ModelClock;
}

/**
 * An operator's move of a version (`driftline model stage`), checked against the stage graph and
 * the recorded transitions: the rows to record. A version with no record is a candidate (it gets
 * its `candidate` row first), except the production version known only from the gate. The
 * previous_version follows the controller's rules (production: the replaced version; rolled back
 * from production: the version it replaced, which must be known). The rows are dated after the
 * model's last recorded transition whatever the operator's clock, as the controller's are: the
 * servers take an end dated before the version's role as stale. Errors are BAD_REQUEST naming
 * the stages.
 */
export function operatorTransitions(
  history: readonly TransitionFact[],
  model: string,
  r: OperatorRequest,
): TransitionFields[] {
  const view = viewOf(history);
  const known = view.versions.get(r.version);
  // Unrecorded: the production (or watched) version known only from the gate, else a candidate.
  const implicit = view.production === r.version || view.watch?.previous === r.version;
  const current: Stage = known?.stage ?? (implicit ? 'production' : 'candidate');
  const since = known?.since ?? 0;
  // After every recorded transition of the model, as the controller dates its own (tickModel): an
  // operator's slow clock dated the end of the watched version at or after its own `since` (its
  // promotion) but before the promotion that made it watched, and the servers ignored it as stale.
  const lastAt = usableTransitions(history).reduce((m, t) => Math.max(m, t.at), -1);
  const at = Math.max(r.at, since, lastAt + 1);
  const decided_by = `operator:${r.operator}`;
  const base = { decided_by, reason: r.reason, detail: '', evidence: '' };
  // The graph check and its one-line error are the stage machine's own.
  transition({ model, version: r.version, stage: current, since_ms: since, history: [] }, r.to, {
    at_ms: at,
    decided_by: { kind: 'operator', name: r.operator },
    reason: r.reason,
  });
  let previous: string | null = view.production === r.version ? null : (view.production ?? null);
  if (r.to === 'rolled_back' && current === 'production') {
    previous = view.watch?.production === r.version ? view.watch.previous : null;
    if (previous === null) {
      throw new DriftlineError('BAD_REQUEST', `${model} ${r.version}: no previous production version to roll back to`);
    }
  }
  const share = r.to === 'canary' ? (r.canaryShare ?? DEFAULT_CANARY_SHARE) : null;
  if (share !== null && !(share > 0 && share <= 1)) {
    throw new DriftlineError('BAD_REQUEST', `canary share must be in (0, 1], got ${share}`);
  }
  // Where the servers can start answering in the new stage, on event time (as transitionOf) — only
  // when the operator's wall clock is on the model's clock. Off it, the label time alone is no
  // position of the servers: labels lagging (a label-joiner outage) look like a replay from here,
  // and a stale serving_from ran max_time out before the stage's first pair (a canary rolled back
  // untested; found by a review). The stage then reads from 0, max_time from its first own pair.
  const serves = r.to === 'canary' || r.to === 'production' || (r.to === 'rolled_back' && current === 'production');
  const evidence =
    serves && r.clock !== undefined && onClock(at, r.clock)
      ? JSON.stringify({ [SERVING_FROM]: servingFromAt(at, r.clock) })
      : '';
  const rows: TransitionFields[] = [];
  if (known === undefined && current === 'candidate') {
    rows.push({
      ...base,
      version: r.version,
      from_stage: null,
      to_stage: 'candidate',
      at,
      canary_share: null,
      previous_version: null,
    });
  }
  rows.push({
    ...base,
    version: r.version,
    from_stage: current,
    to_stage: r.to,
    at,
    canary_share: share,
    previous_version: previous,
    evidence,
  });
  return rows;
}
