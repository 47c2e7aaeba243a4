// Versions that could not score an instance (the model server's `unscored`: a value the version
// cannot take, a score that is not finite, its scorer failing). Such instances used to be no pair
// at all, so a candidate failing on the hard cases — production answering them — was compared on
// the easy ones only (found by a review of the canary path).
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import {
  comparisonsOf,
  type PairInput,
  policyOf,
  type RolloutPolicy,
  runPlan,
  tickModel,
  viewOf,
  worstAnswer,
} from '../src/index.js';
import { rollout, shadowing, T0 } from './histories.js';

const H = 3_600_000;
const ALPHA = 0.05;

/**
 * `n` pairs a minute apart, labelled an hour later, 20 % positive. Production v1 scores a positive
 * ~0.6 and a negative ~0.2; the candidate v2 ~0.75 and ~0.1 — better on every instance it scores —
 * but cannot score the `failing` share of instances (null), chosen at random.
 */
function world(seed: number, n: number, failing: number): PairInput[] {
  const r = new SeededRandom(seed);
  const clip = (x: number) => Math.min(1, Math.max(0, x));
  return Array.from({ length: n }, (_, i) => {
    const y = r.uniform() < 0.2 ? 1 : 0;
    const v1 = clip((y ? 0.6 : 0.2) + (r.uniform() - 0.5) * 0.2);
    const v2 = clip((y ? 0.75 : 0.1) + (r.uniform() - 0.5) * 0.2);
    const t = T0 + 10 + i * 60_000;
    return {
      predictionId: `p${String(i).padStart(6, '0')}`,
      predictionTime: t,
      labelTime: t + H,
      label: y,
      incumbent: v1,
      challenger: r.uniform() < failing ? null : v2,
    };
  });
}

/** The shadow comparison's outcome on these pairs: the transition's to_stage, or 'none'. */
function decide(policy: RolloutPolicy, pairs: readonly PairInput[]): string {
  const last = pairs.at(-1) as PairInput;
  const clock = { labelTime: last.labelTime, predictionTime: last.predictionTime };
  return tickModel(shadowing, () => pairs, policy, clock).transition?.to_stage ?? 'none';
}

describe('a version that could not score an instance is charged its worst answer', () => {
  it('the worst answer is the score furthest from the label: loss 1 under Brier and error rate', () => {
    expect(worstAnswer(1)).toBe(0);
    expect(worstAnswer(0)).toBe(1);
  });

  it('a candidate better where it scores, unable to score a fifth of instances: rejected; its scored pairs alone promoted it', () => {
    const policy = rollout({ defaults: { promotion: { min_labels: 200, max_labels: 3000, alpha: ALPHA } } });
    const runs = 30;
    const outcomes = { charged: { canary: 0, rejected: 0 }, scoredOnly: { canary: 0, rejected: 0 } };
    for (let seed = 1; seed <= runs; seed++) {
      const pairs = world(seed, 3000, 0.2);
      const charged = decide(policy, pairs);
      if (charged === 'canary' || charged === 'rejected') outcomes.charged[charged]++;
      // What the controller saw before: rows without the candidate's score were no pair.
      const scoredOnly = decide(
        policy,
        pairs.filter((p) => p.challenger !== null),
      );
      if (scoredOnly === 'canary' || scoredOnly === 'rejected') outcomes.scoredOnly[scoredOnly]++;
    }
    console.log(`[unscored] candidate failing on 20% of instances, ${runs} runs: ${JSON.stringify(outcomes)}`);
    expect(outcomes.scoredOnly.canary).toBe(runs);
    expect(outcomes.charged.rejected).toBe(runs);
  }, 60_000);

  it('counts an unscored pair as used, never as unusable; a score outside [0, 1] still is', () => {
    const policy = rollout({ defaults: { promotion: { min_labels: 10, max_time: '7d' } } });
    const plan = comparisonsOf(viewOf(shadowing), undefined, 0)[0]!;
    const comparison = policyOf(policy, plan);
    const pairs: PairInput[] = [
      { predictionTime: T0 + 10, labelTime: T0 + 20, label: 1, incumbent: 0.9, challenger: null },
      { predictionTime: T0 + 11, labelTime: T0 + 21, label: 0, incumbent: null, challenger: null },
      { predictionTime: T0 + 12, labelTime: T0 + 22, label: 0, incumbent: 0.2, challenger: 1.5 },
    ];
    const outcome = runPlan(plan, comparison, pairs);
    expect(outcome.skipped).toBe(1);
    expect(outcome.decision.evidence.n).toBe(2);
    // d = loss(incumbent) − loss(challenger): (0.1² − 1) and (1 − 1), their mean.
    expect(outcome.decision.evidence.estimate).toBeCloseTo((0.01 - 1) / 2, 12);
  });
});
