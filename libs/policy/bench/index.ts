// `make bench` entry `policy`: the promotion/rollback policy's error rates and decision speed by a
// larger seeded simulation than the unit test's (keys policy.*). No stack needed.
import { parsePromotionPolicy, parseRollbackPolicy } from '../src/index.js';
import { simulate, simulateNaivePeeking } from './simulate.js';

const RUNS_NULL = 2000;
const RUNS_ALT = 500;
const LIMITS = { min_labels: 100, max_labels: 2000, alpha: 0.05 } as const;

export async function benchPolicy(): Promise<Record<string, number>> {
  const promotion = parsePromotionPolicy(LIMITS);
  const rollback = parseRollbackPolicy(LIMITS);
  const started = performance.now();
  const nullRun = simulate({ runs: RUNS_NULL, seed: 1, policy: promotion, incumbentNoise: 1, challengerNoise: 1 });
  const nullMs = performance.now() - started;
  // Labels processed by the null runs: each ran to max_labels unless it (falsely) promoted earlier.
  const nullLabels = nullRun.actions.reject * LIMITS.max_labels + nullRun.actions.promote * LIMITS.min_labels;
  const better = simulate({
    runs: RUNS_ALT,
    seed: 100_000,
    policy: promotion,
    incumbentNoise: 1,
    challengerNoise: 0.5,
  });
  const rbNull = simulate({ runs: RUNS_NULL, seed: 200_000, policy: rollback, incumbentNoise: 1, challengerNoise: 1 });
  const rbWorse = simulate({ runs: RUNS_ALT, seed: 300_000, policy: rollback, incumbentNoise: 2, challengerNoise: 1 });
  const naive = simulateNaivePeeking({
    runs: RUNS_NULL,
    seed: 1,
    incumbentNoise: 1,
    challengerNoise: 1,
    minLabels: LIMITS.min_labels,
    maxLabels: LIMITS.max_labels,
  });
  return {
    'policy.alpha': LIMITS.alpha,
    'policy.false_promotion_rate': nullRun.actRate,
    'policy.false_promotion_rate_ci95_high': nullRun.actRateCi[1],
    'policy.naive_peeking_false_promotion_rate': naive,
    'policy.power': better.actRate,
    'policy.median_labels_to_decision': better.medianLabels,
    'policy.brier_advantage': better.meanDifference,
    'policy.false_rollback_rate': rbNull.actRate,
    'policy.false_rollback_rate_ci95_high': rbNull.actRateCi[1],
    'policy.rollback_power': rbWorse.actRate,
    'policy.rollback_median_labels': rbWorse.medianLabels,
    'policy.brier_degradation': rbWorse.meanDifference,
    // Upper bound on the cost per label (the count of null-run labels is a lower bound).
    'policy.us_per_label': (nullMs * 1000) / Math.max(1, nullLabels),
  };
}
