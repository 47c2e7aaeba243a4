// What the demo's summary says about serving, as pure functions of what the pipeline stored:
// live ROC AUC per phase of the story, and the version timeline.
import { rocAuc } from '@driftline/performance';

export interface Outcome {
  readonly time: number;
  readonly score: number;
  readonly label: number;
}

export interface Transition {
  readonly version: string;
  readonly from: string;
  readonly to: string;
  readonly at: number;
  readonly decidedBy: string;
  readonly reason: string;
  /** The version it was compared with (a watch's restored or kept production), if any. */
  readonly previous?: string;
}

/** The phases of the story in event time: [start, driftAt), [driftAt, promotedAt), [promotedAt + settle, end). */
export interface Phases {
  readonly start: number;
  readonly driftAt: number;
  /** When the retrained version reached production (undefined: it never did). */
  readonly promotedAt: number | undefined;
  /** Time after the promotion left out of `after_promotion` (the canary's traffic mix settles). */
  readonly settleMs: number;
  readonly end: number;
}

export interface LiveAuc {
  readonly before_drift: number | null;
  readonly during_drift: number | null;
  readonly after_promotion: number | null;
}

const aucOf = (rows: readonly Outcome[]) =>
  rows.length < 20
    ? null
    : rocAuc(
        rows.map((r) => r.label),
        rows.map((r) => r.score),
      );

const round = (x: number | null) => (x === null ? null : Math.round(x * 10_000) / 10_000);

/**
 * ROC AUC of the answered predictions (what users got) per phase. null when a phase has fewer than
 * 20 labelled predictions or a single class — an AUC of a handful of rows says nothing.
 */
export function liveAucByPhase(outcomes: readonly Outcome[], p: Phases): LiveAuc {
  const within = (from: number, to: number) => outcomes.filter((o) => o.time >= from && o.time < to);
  const during = within(p.driftAt, p.promotedAt ?? p.end);
  return {
    before_drift: round(aucOf(within(p.start, p.driftAt))),
    during_drift: round(aucOf(during)),
    after_promotion: p.promotedAt === undefined ? null : round(aucOf(within(p.promotedAt + p.settleMs, p.end))),
  };
}

/** The first time a version other than `except` entered production, if one did. */
export function promotedAfter(transitions: readonly Transition[], except: string): Transition | undefined {
  return [...transitions].sort((a, b) => a.at - b.at).find((t) => t.to === 'production' && t.version !== except);
}

/** Transitions by event time (ties by version): the order the history replays in. */
export function inTimeOrder(transitions: readonly Transition[]): Transition[] {
  return [...transitions].sort((a, b) => a.at - b.at || a.version.localeCompare(b.version));
}

/**
 * One line of the demo's progress for a transition. A rollback watch that ends keeping the new
 * production retires the version it replaced, which `decided_by: policy:rollback` alone makes read
 * like a rollback: that line says what happened instead.
 */
export function stageLine(t: Transition): string {
  const move = `${t.version} ${t.from || 'new'} → ${t.to}`;
  if (t.to === 'retired' && t.decidedBy === 'policy:rollback' && t.previous) {
    return `${move} (the rollback watch kept ${t.previous} in production: ${t.reason})`;
  }
  return `${move} (${t.decidedBy}: ${t.reason})`;
}

/** The summary's `stages`: every transition in time order, as plain JSON. */
export function stageTimeline(transitions: readonly Transition[]): Array<{
  version: string;
  from: string;
  to: string;
  at: string;
  decided_by: string;
  reason: string;
}> {
  return inTimeOrder(transitions).map((t) => ({
    version: t.version,
    from: t.from,
    to: t.to,
    at: new Date(t.at).toISOString(),
    decided_by: t.decidedBy,
    reason: t.reason,
  }));
}

/**
 * An XGBoost JSON model whose every leaf is negated: it ranks every row the other way round (its
 * margin is base − the original trees' sum), so its ROC AUC is 1 − the original's. The demo's
 * deliberately bad candidate, which the promotion policy must reject on live labels.
 */
export function invertedModel(modelJson: string): string {
  const model = JSON.parse(modelJson) as {
    learner: { gradient_booster: { model: { trees: Array<{ left_children: number[]; split_conditions: number[] }> } } };
  };
  for (const tree of model.learner.gradient_booster.model.trees) {
    tree.split_conditions = tree.split_conditions.map((c, i) => (tree.left_children[i] === -1 ? -c : c));
  }
  return JSON.stringify(model);
}

/**
 * What the demo's story lacks, one line each (empty when it happened): a retrain requested, a
 * retrained version serving, and in the bad-candidate scenario the bad version refused. The demo
 * exits 1 on any: before, it exited 0 after 40 windows whatever happened (a policy that never
 * fired printed its summary and "report written").
 */
export function storyProblems(summary: {
  readonly scenario: string;
  readonly retrain_requests: number;
  readonly first_version: string;
  readonly serving_version: string;
  readonly rejected: readonly string[];
  readonly rollbacks: number;
}): string[] {
  const problems: string[] = [];
  if (summary.retrain_requests === 0) problems.push('no retrain was requested (the drift was not acted on)');
  if (summary.serving_version === summary.first_version)
    problems.push(`no retrained version reached production (${summary.first_version} still serves)`);
  if (summary.scenario === 'bad-candidate' && summary.rejected.length === 0 && summary.rollbacks === 0)
    problems.push('the bad candidate was neither rejected nor rolled back');
  return problems;
}
