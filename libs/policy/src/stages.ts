import { DriftlineError } from '@driftline/core';
import type { ComparisonDecision, Evidence } from './comparison.js';

/**
 * A model version's stage. candidate → shadow → canary → production → retired is the happy path;
 * rejected (never served: failed the offline gate, shadow or canary evidence) and rolled_back
 * (served and withdrawn: from canary or production) end it early. Terminal stages have no exit.
 */
export type Stage = 'candidate' | 'shadow' | 'canary' | 'production' | 'retired' | 'rolled_back' | 'rejected';

/** Whether a stored or received name is one of the stages (a row written by hand may hold any). */
export const isStage = (name: unknown): name is Stage =>
  typeof name === 'string' && Object.hasOwn(STAGE_TRANSITIONS, name);

export const STAGE_TRANSITIONS: Readonly<Record<Stage, readonly Stage[]>> = {
  candidate: ['shadow', 'rejected'],
  shadow: ['canary', 'rejected'],
  canary: ['production', 'rolled_back', 'rejected'],
  production: ['retired', 'rolled_back'],
  retired: [],
  rolled_back: [],
  rejected: [],
};

/** Who or what decided a transition: the promotion policy, the trainer's offline gate, an operator. */
export interface Decider {
  readonly kind: 'policy' | 'trainer' | 'operator';
  /** e.g. `promotion`, `rollback`, `offline_gate`, or the operator's name. */
  readonly name: string;
}

/**
 * One transition, as the warehouse and `models.v1` store it: plain JSON, snake_case like the
 * other records. `evidence` is present when a policy decided; `reason` is the decision's reason
 * (`evidence`, `guard`, `max_labels`, `max_time`) or free text from a trainer or operator.
 */
export interface StageTransition {
  readonly model: string;
  readonly version: string;
  readonly from: Stage | null;
  readonly to: Stage;
  readonly at_ms: number;
  readonly decided_by: Decider;
  readonly reason: string;
  readonly detail: string;
  readonly evidence?: Evidence;
}

/** A version's lifecycle: its stage and every transition so far (at most 5: the graph has no cycles). */
export interface VersionLifecycle {
  readonly model: string;
  readonly version: string;
  readonly stage: Stage;
  readonly since_ms: number;
  readonly history: readonly StageTransition[];
}

export interface TransitionInput {
  readonly at_ms: number;
  readonly decided_by: Decider;
  readonly reason: string;
  readonly detail?: string;
  readonly evidence?: Evidence;
}

export interface TransitionResult {
  readonly lifecycle: VersionLifecycle;
  readonly record: StageTransition;
}

/** A new version at `candidate`, with its registration as the first record (from: null). */
export function registerVersion(model: string, version: string, input: TransitionInput): TransitionResult {
  const record = toRecord(model, version, null, 'candidate', input);
  return { lifecycle: { model, version, stage: 'candidate', since_ms: input.at_ms, history: [record] }, record };
}

function toRecord(
  model: string,
  version: string,
  from: Stage | null,
  to: Stage,
  input: TransitionInput,
): StageTransition {
  return {
    model,
    version,
    from,
    to,
    at_ms: input.at_ms,
    decided_by: input.decided_by,
    reason: input.reason,
    detail: input.detail ?? '',
    ...(input.evidence === undefined ? {} : { evidence: input.evidence }),
  };
}

/** Whether `from → to` is an edge of the stage graph. */
export function canTransition(from: Stage, to: Stage): boolean {
  return STAGE_TRANSITIONS[from].includes(to);
}

/**
 * Moves a version to `to`. An edge not in {@link STAGE_TRANSITIONS} (or a transition dated before
 * the current stage began) is a DriftlineError BAD_REQUEST naming both stages: nothing changes.
 */
export function transition(lifecycle: VersionLifecycle, to: Stage, input: TransitionInput): TransitionResult {
  if (!canTransition(lifecycle.stage, to)) {
    const allowed = STAGE_TRANSITIONS[lifecycle.stage];
    throw new DriftlineError(
      'BAD_REQUEST',
      `${lifecycle.model} ${lifecycle.version}: no transition ${lifecycle.stage} → ${to} (allowed: ${allowed.length === 0 ? 'none, terminal' : allowed.join(', ')})`,
      { details: { from: lifecycle.stage, to } },
    );
  }
  if (!Number.isSafeInteger(input.at_ms) || input.at_ms < lifecycle.since_ms) {
    throw new DriftlineError(
      'BAD_REQUEST',
      `${lifecycle.model} ${lifecycle.version}: transition at_ms ${input.at_ms} is before the current stage began (${lifecycle.since_ms})`,
    );
  }
  const record = toRecord(lifecycle.model, lifecycle.version, lifecycle.stage, to, input);
  return {
    lifecycle: { ...lifecycle, stage: to, since_ms: input.at_ms, history: [...lifecycle.history, record] },
    record,
  };
}

/**
 * The stage a comparison decision moves a version to, or undefined when it moves nothing:
 * promotion in shadow → canary / rejected; promotion in canary → production / rolled_back (it
 * served traffic); rollback of production → rolled_back (`keep` leaves it in production).
 */
export function stageAfter(stage: Stage, decision: ComparisonDecision): Stage | undefined {
  switch (decision.action) {
    case 'promote':
      return stage === 'shadow' ? 'canary' : stage === 'canary' ? 'production' : undefined;
    case 'reject':
      return stage === 'shadow' ? 'rejected' : stage === 'canary' ? 'rolled_back' : undefined;
    case 'rollback':
      return stage === 'production' || stage === 'canary' ? 'rolled_back' : undefined;
    default:
      return undefined;
  }
}

/**
 * Applies a policy decision to a version: the transition it implies with the decision's evidence,
 * or `record: undefined` (lifecycle unchanged) when it implies none.
 */
export function applyDecision(
  lifecycle: VersionLifecycle,
  decision: ComparisonDecision,
  at_ms: number,
  decided_by: Decider,
): { readonly lifecycle: VersionLifecycle; readonly record?: StageTransition } {
  const to = stageAfter(lifecycle.stage, decision);
  if (to === undefined) return { lifecycle };
  return transition(lifecycle, to, {
    at_ms,
    decided_by,
    reason: decision.reason,
    detail: decision.detail,
    evidence: decision.evidence,
  });
}

/** The fields of a recorded transition that say what moved: {@link sameTransitions} compares them. */
export interface RecordedMove {
  readonly version: string;
  readonly from_stage: Stage | null;
  readonly to_stage: Stage;
  readonly at: number;
  readonly previous_version: string | null;
}

/**
 * Whether two reads of a model's transitions hold the same moves (order aside). A decision taken on
 * the first read is recorded only when a read just before the write is the same: an operator's
 * move (or a trainer's record) that landed in between could otherwise be undone by it — a canary
 * rolled back by hand, then promoted by the model-controller's tick that had read it in canary,
 * stayed in production (found by a review).
 */
export function sameTransitions(a: readonly RecordedMove[], b: readonly RecordedMove[]): boolean {
  if (a.length !== b.length) return false;
  const key = (t: RecordedMove) =>
    [t.version, t.from_stage ?? '', t.to_stage, t.at, t.previous_version ?? ''].join('\u0000');
  const seen = new Set(a.map(key));
  return b.every((t) => seen.has(key(t)));
}
