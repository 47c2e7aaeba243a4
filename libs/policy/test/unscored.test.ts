// Versions that could not score an instance (the model server's `unscored`: a value the version
// cannot take, a score that is not finite, its scorer failing). Such instances used to be no pair
// at all, so a canary failing on the hard cases — production answering them — was compared on
// the easy ones only (found by a review of the canary path). A canary's comparison now charges
// them; a shadow's or a watch's cannot (there the answering version's failures leave no row).
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import {
  chargesUnscored,
  comparisonsOf,
  type PairInput,
  policyOf,
  type RolloutPolicy,
  runPlan,
  type TransitionFact,
  tickModel,
  viewOf,
  worstAnswer,
} from '../src/index.js';
import { canarying, rollout, shadowing, T0, watching } from './histories.js';

const H = 3_600_000;
const ALPHA = 0.05;

/**
 * `n` requests a minute apart, labelled an hour later, 20 % positive. The incumbent v1 scores a
 * positive ~0.6 and a negative ~0.2; the challenger v2 ~0.6 + `gain` and ~0.2 − `gain`. Each version
 * cannot score a request with probability `fails[0]` (v1) / `fails[1]` (v2), independently.
 * `answering`: which version answers; its failure leaves no row (the request failed, no label),
 * the other's is a null score. A canary's rows are its own answers and those of its share
 * production answered for it (the canary failed): both sides' failures are rows then.
 */
function world(
  seed: number,
  n: number,
  gain: number,
  fails: readonly [number, number],
  answering: 'incumbent' | 'challenger' | 'canary',
): PairInput[] {
  const r = new SeededRandom(seed);
  const clip = (x: number) => Math.min(1, Math.max(0, x));
  const out: PairInput[] = [];
  for (let i = 0; i < n; i++) {
    const y = r.uniform() < 0.2 ? 1 : 0;
    const v1 = clip((y ? 0.6 : 0.2) + (r.uniform() - 0.5) * 0.2);
    const v2 = clip((y ? 0.6 + gain : 0.2 - gain) + (r.uniform() - 0.5) * 0.2);
    const v1Fails = r.uniform() < fails[0];
    const v2Fails = r.uniform() < fails[1];
    // A request neither can answer, or one its answering version cannot: a 5xx, no row.
    if (v1Fails && v2Fails) continue;
    if (answering === 'incumbent' && v1Fails) continue;
    if (answering === 'challenger' && v2Fails) continue;
    const t = T0 + 10 + i * 60_000;
    out.push({
      predictionId: `p${String(i).padStart(6, '0')}`,
      predictionTime: t,
      labelTime: t + H,
      label: y,
      incumbent: v1Fails ? null : v1,
      challenger: v2Fails ? null : v2,
    });
  }
  return out;
}

/** The transition the history's open comparison makes on these pairs: its to_stage, or 'none'. */
function decide(history: readonly TransitionFact[], policy: RolloutPolicy, pairs: readonly PairInput[]): string {
  const last = pairs.at(-1) as PairInput;
  const clock = { labelTime: last.labelTime, predictionTime: last.predictionTime };
  return tickModel(history, () => pairs, policy, clock).transition?.to_stage ?? 'none';
}

/** Outcomes over `runs` seeds. */
function outcomes(runs: number, run: (seed: number) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let seed = 1; seed <= runs; seed++) {
    const o = run(seed);
    counts[o] = (counts[o] ?? 0) + 1;
  }
  return counts;
}

const promotion = rollout({ defaults: { promotion: { min_labels: 200, max_labels: 3000, alpha: ALPHA } } });

describe('a version that could not score an instance', () => {
  it('is charged its worst answer in a canary comparison only: the score furthest from the label, loss 1', () => {
    expect(worstAnswer(1)).toBe(0);
    expect(worstAnswer(0)).toBe(1);
    const [shadowPlan] = comparisonsOf(viewOf(shadowing));
    const [canaryPlan] = comparisonsOf(viewOf(canarying));
    const [watchPlan] = comparisonsOf(viewOf(watching));
    expect([shadowPlan, canaryPlan, watchPlan].map((p) => chargesUnscored(p!))).toEqual([false, true, false]);
  });

  it('a canary better where it answers, unable to answer half the positives: rolled back; its own answers alone promoted it', () => {
    // v2 fails only on the hard cases: half the positives (rows production answered for it).
    const hardCases = (seed: number) =>
      world(seed, 3000, 0.15, [0, 0], 'canary').map((p, i) =>
        p.label === 1 && i % 2 === 0 ? { ...p, challenger: null } : p,
      );
    const charged = outcomes(30, (seed) => decide(canarying, promotion, hardCases(seed)));
    const ownOnly = outcomes(30, (seed) =>
      decide(
        canarying,
        promotion,
        hardCases(seed).filter((p) => p.challenger !== null),
      ),
    );
    console.log(
      `[unscored] canary failing on half the positives, 30 runs: charged ${JSON.stringify(charged)}, own answers only ${JSON.stringify(ownOnly)}`,
    );
    expect(ownOnly).toEqual({ production: 30 });
    expect(charged).toEqual({ rolled_back: 30 });
  }, 60_000);

  it('equal failure rates do not tilt a shadow or a watch: those pairs are skipped, not charged (found by a review)', () => {
    // Charged, the answering version's failures (no row) went unseen and the other's counted: at
    // 2% each a better shadow was promoted 0/40 and a worse production rolled back 1/40.
    const shadow = outcomes(30, (seed) =>
      decide(shadowing, promotion, world(seed, 3000, 0.05, [0.02, 0.02], 'incumbent')),
    );
    const rollback = rollout({ defaults: { rollback: { min_labels: 200, max_labels: 3000, alpha: ALPHA } } });
    // The watch: production (answering) scores as the world's incumbent, the replaced version it is
    // compared with as the better challenger: production is the worse one.
    const watch = outcomes(30, (seed) =>
      decide(watching, rollback, world(seed, 3000, 0.05, [0.02, 0.02], 'incumbent')),
    );
    console.log(
      `[unscored] 2% failures each, 30 runs: better shadow ${JSON.stringify(shadow)}, worse production watched ${JSON.stringify(watch)}`,
    );
    expect(shadow.canary ?? 0).toBeGreaterThanOrEqual(28);
    expect(watch.rolled_back ?? 0).toBeGreaterThanOrEqual(28);
  }, 60_000);

  it("counts charged pairs in a canary's evidence and detail; skips them in a shadow's", () => {
    const policy = rollout({ defaults: { promotion: { min_labels: 10, max_time: '7d' } } });
    const pairs: PairInput[] = [
      { predictionTime: T0 + 10, labelTime: T0 + 20, label: 1, incumbent: 0.9, challenger: null },
      { predictionTime: T0 + 11, labelTime: T0 + 21, label: 0, incumbent: null, challenger: null },
      { predictionTime: T0 + 12, labelTime: T0 + 22, label: 0, incumbent: 0.2, challenger: 1.5 },
      { predictionTime: T0 + 13, labelTime: T0 + 23, label: 0, incumbent: 0.2, challenger: 0.1 },
    ];
    const canary = comparisonsOf(viewOf(canarying))[0]!;
    const charged = runPlan(canary, policyOf(policy, canary), pairs);
    expect(charged.skipped).toBe(1);
    expect(charged.decision.evidence.n).toBe(3);
    // d = loss(incumbent) − loss(challenger): (0.1² − 1), (1 − 1), (0.2² − 0.1²): their mean.
    expect(charged.decision.evidence.estimate).toBeCloseTo((0.01 - 1 + 0 + 0.03) / 3, 12);
    expect(charged.decision.evidence.unscored).toEqual({ incumbent: 1, challenger: 2 });
    expect(charged.decision.detail).toMatch(/could not score, charged the worst answer: v2 on 2, v1 on 1$/);
    const shadow = comparisonsOf(viewOf(shadowing))[0]!;
    const skipped = runPlan(shadow, policyOf(policy, shadow), pairs);
    expect(skipped.skipped).toBe(3);
    expect(skipped.decision.evidence.n).toBe(1);
    expect(skipped.decision.evidence.unscored).toBeUndefined();
  });
});
