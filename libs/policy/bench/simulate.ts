// Seeded simulation of the promotion/rollback policy: many runs of paired, labelled predictions
// through stepComparison, counting decisions. Shared by the unit test (a small run) and `make bench`
// (a larger one, keys policy.*).
import { SeededRandom } from '@driftline/test-support/random';
import { type ComparisonAction, startComparison, stepComparison } from '../src/comparison.js';
import type { ComparisonPolicy } from '../src/comparison-config.js';

/**
 * A world of binary labels (base rate `baseRate`) and two scorers: each sees the same latent
 * evidence for the label plus its own logistic noise of scale `noise`. Equal noise makes the two
 * versions exchangeable — the paired loss difference has mean exactly 0 — which is the boundary of
 * the superiority null, where a false promotion is most likely. Less noise is a better model.
 */
export interface Scenario {
  readonly runs: number;
  readonly seed: number;
  readonly policy: ComparisonPolicy;
  readonly incumbentNoise: number;
  readonly challengerNoise: number;
  readonly baseRate?: number;
  /** Labels arrive this often (event time). */
  readonly labelEveryMs?: number;
}

export interface SimulationResult {
  readonly runs: number;
  readonly actions: Readonly<Record<ComparisonAction, number>>;
  /** Share of runs that ended in promote (or rollback). */
  readonly actRate: number;
  /** 95% Wilson interval of actRate. */
  readonly actRateCi: readonly [number, number];
  /** Median labels at the run's decision (any decision, including max_labels). */
  readonly medianLabels: number;
  /** Mean true paired loss difference (incumbent − challenger) measured on all simulated pairs. */
  readonly meanDifference: number;
}

const SLOPE = 1.5;

function logistic(u: number): number {
  return Math.log(u / (1 - u));
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** The next labelled pair: probabilities of both versions and the label. */
function draw(rng: SeededRandom, baseRate: number, incNoise: number, chaNoise: number) {
  const label = rng.uniform() < baseRate ? 1 : 0;
  const evidence = (label === 1 ? 1 : -1) + logistic(rng.uniform() * 0.999998 + 0.000001);
  const bias = Math.log(baseRate / (1 - baseRate));
  const inc = sigmoid(bias + SLOPE * (evidence + incNoise * logistic(rng.uniform() * 0.999998 + 0.000001)));
  const cha = sigmoid(bias + SLOPE * (evidence + chaNoise * logistic(rng.uniform() * 0.999998 + 0.000001)));
  return { label, inc, cha };
}

/** 95% Wilson score interval for k successes in n trials. */
export function wilson(k: number, n: number): [number, number] {
  if (n === 0) return [0, 1];
  const z = 1.959963984540054;
  const p = k / n;
  const denom = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / denom;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Runs the scenario; every run uses its own seed (scenario seed + run index). */
export function simulate(scenario: Scenario): SimulationResult {
  const { policy } = scenario;
  const baseRate = scenario.baseRate ?? 0.3;
  const every = scenario.labelEveryMs ?? 1_000;
  const actions: Record<ComparisonAction, number> = { promote: 0, reject: 0, rollback: 0, keep: 0, continue: 0 };
  const labels: number[] = [];
  let diffSum = 0;
  let diffN = 0;
  for (let run = 0; run < scenario.runs; run++) {
    const rng = new SeededRandom(scenario.seed + run);
    let state = startComparison(policy, 0);
    let action: ComparisonAction = 'continue';
    let n = 0;
    // maxLabels always ends a run (reject/keep at the latest), so the loop is bounded.
    while (action === 'continue') {
      const { label, inc, cha } = draw(rng, baseRate, scenario.incumbentNoise, scenario.challengerNoise);
      n++;
      diffSum += (inc - label) ** 2 - (cha - label) ** 2;
      diffN++;
      const step = stepComparison(policy, state, {
        kind: 'pair',
        time_ms: n * every,
        label,
        incumbent: inc,
        challenger: cha,
      });
      state = step.state;
      action = step.decision.action;
    }
    actions[action]++;
    labels.push(n);
  }
  const acted = actions.promote + actions.rollback;
  return {
    runs: scenario.runs,
    actions,
    actRate: acted / scenario.runs,
    actRateCi: wilson(acted, scenario.runs),
    medianLabels: median(labels),
    meanDifference: diffSum / diffN,
  };
}

/**
 * The control: the same world judged by a fixed-sample one-sided z-test (z > 1.645, "5%") that is
 * looked at after every label from `minLabels` to `maxLabels` — the classic peeking mistake. Its
 * false-promotion rate under equal versions shows the simulation can detect an invalid procedure.
 */
export function simulateNaivePeeking(
  scenario: Omit<Scenario, 'policy'> & { readonly minLabels: number; readonly maxLabels: number },
): number {
  const baseRate = scenario.baseRate ?? 0.3;
  let promoted = 0;
  for (let run = 0; run < scenario.runs; run++) {
    const rng = new SeededRandom(scenario.seed + run);
    let sum = 0;
    let sumSq = 0;
    for (let n = 1; n <= scenario.maxLabels; n++) {
      const { label, inc, cha } = draw(rng, baseRate, scenario.incumbentNoise, scenario.challengerNoise);
      const d = (inc - label) ** 2 - (cha - label) ** 2;
      sum += d;
      sumSq += d * d;
      if (n >= scenario.minLabels) {
        const mean = sum / n;
        const variance = (sumSq - n * mean * mean) / (n - 1);
        if (variance > 0 && mean / Math.sqrt(variance / n) > 1.6448536269514722) {
          promoted++;
          break;
        }
      }
    }
  }
  return promoted / scenario.runs;
}
