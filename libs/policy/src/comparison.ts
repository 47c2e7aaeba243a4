import { DriftlineError, PoisonRecordError } from '@driftline/core';
import type { ComparisonPolicy, LossMetric } from './comparison-config.js';
import { emptySequence, observeValue, type SequenceState, sequenceBounds } from './confidence-sequence.js';

/**
 * A labelled pair: the same prediction scored by the incumbent (production) and the challenger
 * (for promotion the candidate; for rollback the version production replaced), with its label.
 * Scores are probabilities in [0, 1]; `label` is 0 or 1; `time_ms` is event time (no wall clock):
 * the rollout (runPlan) gives the prediction's time, so `max_time` counts predictions, not label delay.
 */
export interface PairEvent {
  readonly kind: 'pair';
  readonly time_ms: number;
  readonly label: number;
  readonly incumbent: number;
  readonly challenger: number;
}

/**
 * One observation of a guard metric, in [0, 1], for the NEWER version (the candidate when promoting,
 * production when watching for a rollback), with the older version's value on the same request
 * for `max_increase` guards. Guards need no label (e.g. positive prediction, over latency budget).
 */
export interface GuardEvent {
  readonly kind: 'guard';
  readonly time_ms: number;
  readonly name: string;
  readonly value: number;
  readonly baseline?: number;
}

/** Time passes without data: lets `max_time` decide when labels stop coming. */
export interface TickEvent {
  readonly kind: 'tick';
  readonly time_ms: number;
}

export type ComparisonEvent = PairEvent | GuardEvent | TickEvent;

/**
 * promote / rollback: switch to the challenger (promotion) or away from production (rollback).
 * reject / keep: stay with production. continue: no decision yet.
 */
export type ComparisonAction = 'promote' | 'reject' | 'rollback' | 'keep' | 'continue';

export type DecisionReason =
  /**
   * The confidence bound crossed the bar, with min_labels labels; or at max_time with fewer, the
   * bound against the newer version (a watch's rollback, a promotion's reject).
   */
  | 'evidence'
  /** A guard's lower bound is above its limit. */
  | 'guard'
  /** max_labels reached without evidence either way. */
  | 'max_labels'
  /** max_time reached with at least min_labels labels, the interval still containing the bar. */
  | 'max_time'
  /**
   * max_time reached with fewer than min_labels labels and no evidence against the newer version
   * (when its bound already crosses the bar, the decision is `evidence`: a watch rolls back, a
   * promotion is rejected). A promotion is rejected; a rollback watch with a few pairs keeps
   * production (no evidence that it degraded: a rollback is for evidence). A watch with no pair at
   * all is not decided here (`continue`): pairs cannot tell whether production serves; the
   * rollout decides it by whether production answered any prediction since the watch began (keep,
   * else `not_scored`). Also: max_time or max_labels
   * reached while the labels would let the newer version through but a guard is short of its
   * `min_observations` (see `guards_pending`): a promotion is rejected, a watch keeps production.
   */
  | 'too_few_labels'
  /**
   * The labels would let the newer version through (promote; a watch's keep on evidence), but a
   * guard has fewer than its `min_observations`: it waits for them (`continue`), so a guard is
   * never skipped (found by a review: `min_labels` 30 promoted after 67 labels a candidate
   * predicting positive on every request, its positive_rate guard short of its default 100).
   */
  | 'guards_pending'
  /**
   * Set by the rollout (runPlan), not here: a rollback watch's max_time came with no pair, and
   * production answered no prediction since the watch began (`Evidence.production_answered`
   * false): it never served, and is rolled back.
   */
  | 'not_scored'
  /** Fewer labels than min_labels: no decision allowed yet. */
  | 'min_labels'
  /** Enough labels, the interval still contains the bar. */
  | 'collecting';

export interface GuardEvidence {
  readonly name: string;
  readonly n: number;
  /** Observations before it may decide (a decision that lets the newer version through waits for them). */
  readonly min_observations: number;
  readonly estimate: number;
  readonly lower: number;
  readonly limit: number;
  readonly statistic: 'mean' | 'mean_increase';
  readonly alpha: number;
  readonly breached: boolean;
}

/**
 * What a decision rests on; stored with every transition. The statistic is the mean over labelled
 * pairs of d = loss(incumbent) − loss(challenger) (positive: the challenger is better), with an
 * always-valid interval [lower, upper]; `bar` is what lower must exceed to act and upper must stay
 * under to stay. `alpha` bounds the probability of acting wrongly (false promotion / false
 * rollback), `alpha_stay` the probability of staying on evidence wrongly.
 */
export interface Evidence {
  readonly test: 'prpl_eb_confidence_sequence';
  readonly metric: LossMetric;
  readonly statistic: 'mean_loss_incumbent_minus_challenger';
  readonly n: number;
  readonly estimate: number;
  readonly lower: number;
  readonly upper: number;
  readonly bar: number;
  readonly alpha: number;
  readonly alpha_stay: number;
  readonly elapsed_ms: number;
  readonly guards: readonly GuardEvidence[];
  /**
   * Only on a rollback watch whose max_time came with no pair (`n` 0): whether production answered
   * any prediction (rows whose model_version is it, labelled or expired) since the watch began, the
   * read that decided it (true: kept, the replaced version retired; false: `not_scored`).
   */
  readonly production_answered?: boolean;
  /**
   * Only on a canary's comparison where a version could not score some of its pairs (the model
   * server's `unscored`): how many, per side, each charged its worst answer (see runPlan).
   */
  readonly unscored?: { readonly incumbent: number; readonly challenger: number };
}

export interface ComparisonDecision {
  readonly action: ComparisonAction;
  readonly reason: DecisionReason;
  /** One line for humans, e.g. `lower bound 0.0123 > bar 0 after 812 labels (alpha 0.05)`. */
  readonly detail: string;
  readonly evidence: Evidence;
}

/**
 * The state of one comparison: plain JSON (about 30 numbers per guard plus 30), persisted as is.
 * Once decided, `decision` is set and further events return it unchanged.
 */
export interface ComparisonState {
  readonly kind: ComparisonPolicy['kind'];
  readonly started_ms: number;
  readonly last_ms: number;
  readonly difference: SequenceState;
  readonly guards: Readonly<Record<string, SequenceState>>;
  readonly decision?: ComparisonDecision;
}

export interface StepResult {
  readonly state: ComparisonState;
  readonly decision: ComparisonDecision;
}

/** The per-prediction loss in [0, 1] of a probability `score` for a 0/1 `label`. */
export function pairLoss(metric: LossMetric, threshold: number, score: number, label: number): number {
  if (metric === 'brier') return (score - label) ** 2;
  return (score >= threshold ? 1 : 0) === label ? 0 : 1;
}

/** Starts a comparison at event time `startedMs` (the moment the challenger began to be scored). */
export function startComparison(policy: ComparisonPolicy, startedMs: number): ComparisonState {
  checkTime(startedMs, 'started_ms');
  const guards: Record<string, SequenceState> = {};
  for (const g of policy.guards) guards[g.name] = emptySequence(g.maxIncrease === undefined ? 0 : -1, 1);
  return { kind: policy.kind, started_ms: startedMs, last_ms: startedMs, difference: emptySequence(-1, 1), guards };
}

function checkTime(value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new PoisonRecordError('VALIDATION_FAILED', `${field}: must be a non-negative integer of milliseconds`);
  }
}

function checkUnit(value: number | undefined, field: string): number {
  if (value === undefined || !Number.isFinite(value) || value < 0 || value > 1) {
    throw new PoisonRecordError('VALIDATION_FAILED', `${field}: must be a number in [0, 1], got ${value}`);
  }
  return value;
}

function bar(policy: ComparisonPolicy): number {
  return policy.kind === 'promotion' && policy.test === 'non_inferiority' ? -policy.margin : policy.margin;
}

function alphaStay(policy: ComparisonPolicy): number {
  return policy.kind === 'promotion' ? policy.alphaReject : policy.alphaKeep;
}

/** The evidence of a state under its policy, whether or not it decides anything. */
export function comparisonEvidence(policy: ComparisonPolicy, state: ComparisonState): Evidence {
  const b = sequenceBounds(state.difference, policy.alpha, alphaStay(policy));
  const guards: GuardEvidence[] = policy.guards.map((g) => {
    const seq = state.guards[g.name] ?? emptySequence(g.maxIncrease === undefined ? 0 : -1, 1);
    const gb = sequenceBounds(seq, g.alpha, g.alpha);
    const limit = g.maxIncrease ?? g.max ?? 1;
    return {
      name: g.name,
      n: gb.n,
      min_observations: g.minObservations,
      estimate: gb.estimate,
      lower: gb.lower,
      limit,
      statistic: g.maxIncrease === undefined ? 'mean' : 'mean_increase',
      alpha: g.alpha,
      breached: gb.n >= g.minObservations && gb.lower > limit,
    };
  });
  return {
    test: 'prpl_eb_confidence_sequence',
    metric: policy.metric,
    statistic: 'mean_loss_incumbent_minus_challenger',
    n: b.n,
    estimate: b.estimate,
    lower: b.lower,
    upper: b.upper,
    bar: bar(policy),
    alpha: policy.alpha,
    alpha_stay: alphaStay(policy),
    elapsed_ms: Math.max(0, state.last_ms - state.started_ms),
    guards,
  };
}

const fmt = (x: number) => String(Number(x.toPrecision(4)));

/**
 * Undefined when every guard has its `min_observations`; else the decision while the labels
 * would let the newer version through: `continue` (`guards_pending`), or, once max_time or
 * max_labels is reached, `stay` (`too_few_labels`: no evidence the guard holds).
 */
function guardsPending(
  policy: ComparisonPolicy,
  evidence: Evidence,
  stay: ComparisonAction,
  detail: string,
): ComparisonDecision | undefined {
  const short = evidence.guards.filter((g) => g.n < g.min_observations);
  if (short.length === 0) return undefined;
  const counts = short.map((g) => `guard ${g.name} has ${g.n}/${g.min_observations} observations`).join(', ');
  if (evidence.elapsed_ms >= policy.maxTimeMs || evidence.n >= policy.maxLabels) {
    const end = evidence.n >= policy.maxLabels ? `${evidence.n} labels` : `${evidence.elapsed_ms} ms elapsed`;
    return { action: stay, reason: 'too_few_labels', detail: `${detail}, but ${counts} after ${end}`, evidence };
  }
  return { action: 'continue', reason: 'guards_pending', detail: `${detail}; ${counts}`, evidence };
}

/** Decides from the current state (no new data). */
export function decideComparison(policy: ComparisonPolicy, state: ComparisonState): ComparisonDecision {
  if (state.decision !== undefined) return state.decision;
  const evidence = comparisonEvidence(policy, state);
  const act: ComparisonAction = policy.kind === 'promotion' ? 'promote' : 'rollback';
  const stay: ComparisonAction = policy.kind === 'promotion' ? 'reject' : 'keep';
  const n = evidence.n;
  const breached = evidence.guards.find((g) => g.breached);
  if (breached !== undefined) {
    // A guard breach condemns the newer version: a candidate is rejected, production rolled back.
    return {
      action: policy.kind === 'promotion' ? 'reject' : 'rollback',
      reason: 'guard',
      detail: `guard ${breached.name}: lower bound ${fmt(breached.lower)} of the ${breached.statistic} > limit ${fmt(breached.limit)} after ${breached.n} observations (alpha ${breached.alpha})`,
      evidence,
    };
  }
  if (n >= policy.minLabels) {
    if (evidence.lower > evidence.bar) {
      const detail = `lower bound ${fmt(evidence.lower)} > bar ${fmt(evidence.bar)} after ${n} labels (alpha ${policy.alpha})`;
      // A promotion lets the newer version through: every guard must have had its observations.
      if (policy.kind === 'promotion') {
        const waiting = guardsPending(policy, evidence, stay, detail);
        if (waiting !== undefined) return waiting;
      }
      return { action: act, reason: 'evidence', detail, evidence };
    }
    if (evidence.upper < evidence.bar) {
      const detail = `upper bound ${fmt(evidence.upper)} < bar ${fmt(evidence.bar)} after ${n} labels (alpha ${evidence.alpha_stay})`;
      // A watch's keep ends it: production's guards must have had their observations.
      if (policy.kind === 'rollback') {
        const waiting = guardsPending(policy, evidence, stay, detail);
        if (waiting !== undefined) return waiting;
      }
      return { action: stay, reason: 'evidence', detail, evidence };
    }
  }
  if (n < policy.minLabels && evidence.elapsed_ms < policy.maxTimeMs) {
    // The hot path of a running comparison: no number formatting.
    return { action: 'continue', reason: 'min_labels', detail: `${n}/${policy.minLabels} labels`, evidence };
  }
  if (n < policy.minLabels) {
    const elapsed = `${evidence.elapsed_ms} ms elapsed with ${n}/${policy.minLabels} labels`;
    // Time is up: the bound that condemns the newer version already crosses the bar. The bounds
    // hold at any stopping time (a confidence sequence), so acting on them here spends no more than
    // alpha: a watch rolls production back, a promotion rejects (its stay, whatever the evidence).
    // `min_labels` guards against switching on little evidence; it is no reason to keep a version
    // the evidence shows worse. (A watch kept production `too_few_labels` with 264/500 labels, its
    // lower bound 0.68 above the bar, and retired the version it replaced; found by a review.)
    if (policy.kind === 'rollback' && evidence.lower > evidence.bar) {
      const detail = `lower bound ${fmt(evidence.lower)} > bar ${fmt(evidence.bar)} after ${n} labels (alpha ${policy.alpha}), ${elapsed}`;
      return { action: 'rollback', reason: 'evidence', detail, evidence };
    }
    if (policy.kind === 'promotion' && evidence.upper < evidence.bar) {
      const detail = `upper bound ${fmt(evidence.upper)} < bar ${fmt(evidence.bar)} after ${n} labels (alpha ${evidence.alpha_stay}), ${elapsed}`;
      return { action: 'reject', reason: 'evidence', detail, evidence };
    }
    if (policy.kind === 'rollback' && n === 0) {
      // No pair says nothing about whether production serves (a version the model servers never
      // loaded scores nothing; nor does a margin-score model or a producer without `scores`):
      // neither keep (it retires the replaced version) nor rollback is a safe default. The rollout
      // decides by whether production answered (runPlan).
      return { action: 'continue', reason: 'too_few_labels', detail: `${elapsed}: no pair`, evidence };
    }
    // Time is up with no evidence against the newer version: a promotion stays where it is
    // (rejected); a watch with pairs keeps production (both versions score, nothing shows a
    // degradation, and a rollback needs evidence: a low-traffic model's manual promotion must not
    // be undone by the clock).
    return {
      action: stay,
      reason: 'too_few_labels',
      detail: `${elapsed}: no evidence either way`,
      evidence,
    };
  }
  const interval = () => `[${fmt(evidence.lower)}, ${fmt(evidence.upper)}] contains bar ${fmt(evidence.bar)}`;
  if (n >= policy.maxLabels) {
    return { action: stay, reason: 'max_labels', detail: `${n} labels, ${interval()}`, evidence };
  }
  if (evidence.elapsed_ms >= policy.maxTimeMs) {
    return {
      action: stay,
      reason: 'max_time',
      detail: `${evidence.elapsed_ms} ms elapsed after ${n} labels, ${interval()}`,
      evidence,
    };
  }
  return { action: 'continue', reason: 'collecting', detail: `${n} labels, the interval contains the bar`, evidence };
}

/**
 * Adds one event and decides. Pure: the same events give the same decisions. Events after a
 * decision change nothing (the decision is returned again). Events of a guard the policy does not
 * name are ignored. Bad input (non-finite or out-of-range values, a label other than 0/1) is a
 * PoisonRecordError naming the field: dead-letter it.
 */
export function stepComparison(policy: ComparisonPolicy, state: ComparisonState, event: ComparisonEvent): StepResult {
  return stepComparisonTogether(policy, state, [event]);
}

/**
 * Adds the events of one request together — its pair and its guard observations — and decides
 * once, after all of them (otherwise as {@link stepComparison}). Stepped one by one, the pair
 * decided before its own guard observation: a guard whose `min_observations` equals `max_labels`
 * had M − 1 at the M-th pair, and every promotion was rejected `too_few_labels` (found by a review).
 */
export function stepComparisonTogether(
  policy: ComparisonPolicy,
  state: ComparisonState,
  events: readonly ComparisonEvent[],
): StepResult {
  if (state.kind !== policy.kind) {
    throw new DriftlineError('BAD_REQUEST', `a ${state.kind} state stepped with a ${policy.kind} policy`);
  }
  if (state.decision !== undefined) return { state, decision: state.decision };
  let next = state;
  for (const event of events) next = observe(policy, next, event);
  const decision = decideComparison(policy, next);
  if (decision.action !== 'continue') return { state: { ...next, decision }, decision };
  return { state: next, decision };
}

/** The state with one more event, undecided (checks the event; see {@link stepComparison}). */
function observe(policy: ComparisonPolicy, state: ComparisonState, event: ComparisonEvent): ComparisonState {
  checkTime(event.time_ms, `${event.kind}.time_ms`);
  let difference = state.difference;
  let guards = state.guards;
  if (event.kind === 'pair') {
    if (event.label !== 0 && event.label !== 1) {
      throw new PoisonRecordError('VALIDATION_FAILED', `pair.label: must be 0 or 1, got ${event.label}`);
    }
    const inc = pairLoss(policy.metric, policy.threshold, checkUnit(event.incumbent, 'pair.incumbent'), event.label);
    const cha = pairLoss(policy.metric, policy.threshold, checkUnit(event.challenger, 'pair.challenger'), event.label);
    difference = observeValue(difference, inc - cha, policy.alpha, alphaStay(policy));
  } else if (event.kind === 'guard') {
    const rule = policy.guards.find((g) => g.name === event.name);
    // A guard added to the policy after the comparison started starts empty.
    const seq =
      rule === undefined
        ? undefined
        : (guards[event.name] ?? emptySequence(rule.maxIncrease === undefined ? 0 : -1, 1));
    if (rule !== undefined && seq !== undefined) {
      const value = checkUnit(event.value, `guard.${event.name}.value`);
      const x =
        rule.maxIncrease === undefined ? value : value - checkUnit(event.baseline, `guard.${event.name}.baseline`);
      guards = { ...guards, [event.name]: observeValue(seq, x, rule.alpha, rule.alpha) };
    }
  }
  // Built field by field (not spread): one object shape, and a hot path in the simulations.
  return {
    kind: state.kind,
    started_ms: state.started_ms,
    last_ms: Math.max(state.last_ms, event.time_ms),
    difference,
    guards,
  };
}
