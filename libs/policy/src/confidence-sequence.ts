/**
 * An always-valid confidence sequence for the running mean of bounded observations: the predictable
 * plug-in empirical-Bernstein (PrPl-EB) confidence sequence of Waudby-Smith & Ramdas, "Estimating means
 * of bounded random variables by betting", JRSS-B 86(1), 2024, Theorem 2 (arXiv:2010.09686, §3.2); the
 * reference implementation is `predmix_empbern_lower_cs` / `lambda_predmix_eb` in Howard & Waudby-Smith's
 * `confseq` (src/confseq/predmix.py, betting_strategies.py): the same bets and bounds; v_i uses the
 * paper's regularized mean μ̂_{i−1} where confseq uses the plain one (both are predictable, both valid).
 *
 * For x_i ∈ [0, 1] with E[x_i | past] = μ_i, and any predictable λ_i ∈ [0, 1):
 *
 *   M_t = Π_{i≤t} exp( λ_i (x_i − μ_i) − v_i ψ_E(λ_i) ),  v_i = (x_i − μ̂_{i−1})²,  ψ_E(λ) = −log(1 − λ) − λ
 *
 * is a nonnegative supermartingale (Fan et al. 2015's inequality), so by Ville's inequality, with
 * probability ≥ 1 − α, for EVERY t at once:
 *
 *   Σλ_i μ_i / Σλ_i  ≥  Σλ_i x_i / Σλ_i − ( log(1/α) + Σ v_i ψ_E(λ_i) ) / Σλ_i.
 *
 * That is a lower bound valid at any stopping time, under continuous monitoring. With a constant mean
 * (i.i.d. pairs, or martingale differences around μ) the left side is μ; when the conditional mean
 * moves, it is the λ-weighted average of the conditional means so far — so "every μ_i ≤ θ" still
 * implies the bound stays ≤ θ except with probability α. The upper bound is the same construction
 * on 1 − x. The bets λ_t = min(1/2, sqrt(2 log(1/α) / (σ̂²_{t−1} t log(1 + t)))) use the regularized
 * running mean and variance (one fake observation of mean 1/2 and variance 1/4), as in the paper.
 *
 * Why this one: the paired difference of two good models is mostly near zero, so a variance-adaptive
 * bound (width ≈ σ·sqrt(2 log(1/α) log t / t)) reaches a decision with far fewer labels than a
 * Hoeffding/sub-Gaussian bound, which pays for the full range [−1, 1] whatever the variance; it is
 * closed form, O(1) per observation and its state is eleven numbers.
 */

/**
 * The state of a confidence sequence over values in [lo, hi]: plain JSON, flat (one object per
 * observation on the hot path). Create with {@link emptySequence}, extend with {@link observeValue},
 * read with {@link sequenceBounds}. Per side (the upper side runs on 1 − x): Σλ_i, Σλ_i x_i and
 * Σ v_i ψ_E(λ_i).
 */
export interface SequenceState {
  readonly lo: number;
  readonly hi: number;
  readonly n: number;
  /** Σ x_i, x scaled to [0, 1]. */
  readonly sum: number;
  /** Σ (x_i − μ̂_i)², μ̂_i the regularized mean including x_i (the paper's σ̂² numerator). */
  readonly devSq: number;
  readonly lowerLambda: number;
  readonly lowerLambdaX: number;
  readonly lowerPenalty: number;
  readonly upperLambda: number;
  readonly upperLambdaX: number;
  readonly upperPenalty: number;
}

export interface SequenceBounds {
  readonly n: number;
  /** The plain running mean (the point estimate; NaN-free: the range's midpoint when n = 0). */
  readonly estimate: number;
  /** Lower confidence bound at level 1 − alphaLower, valid simultaneously over all n. */
  readonly lower: number;
  /** Upper confidence bound at level 1 − alphaUpper, valid simultaneously over all n. */
  readonly upper: number;
}

/** The bet cap: λ ≤ 1/2 keeps ψ_E(λ) small and is the paper's and confseq's default truncation. */
const TRUNCATION = 0.5;
const PRIOR_MEAN = 0.5;
const PRIOR_VARIANCE = 0.25;

export function emptySequence(lo: number, hi: number): SequenceState {
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && hi > lo)) {
    throw new RangeError(`a confidence sequence needs a finite range lo < hi, got [${lo}, ${hi}]`);
  }
  return {
    lo,
    hi,
    n: 0,
    sum: 0,
    devSq: 0,
    lowerLambda: 0,
    lowerLambdaX: 0,
    lowerPenalty: 0,
    upperLambda: 0,
    upperLambdaX: 0,
    upperPenalty: 0,
  };
}

function psiE(lambda: number): number {
  // −log(1 − λ) − λ, computed without cancellation for small λ.
  return -Math.log1p(-lambda) - lambda;
}

function bet(state: SequenceState, alpha: number): number {
  const t = state.n + 1;
  // σ̂²_{t−1}: regularized by one fake observation of variance 1/4, so never 0 (zero-variance streams
  // get the capped bet, not a division by zero).
  const sigma2 = (PRIOR_VARIANCE + state.devSq) / t;
  const lambda = Math.sqrt((2 * Math.log(1 / alpha)) / (sigma2 * t * Math.log1p(t)));
  return Number.isFinite(lambda) ? Math.min(TRUNCATION, lambda) : TRUNCATION;
}

/**
 * Adds one observation `value` ∈ [lo, hi] (values outside are a RangeError: the guarantee needs the
 * bound). `alphaLower`/`alphaUpper` tune the bets of each side; they should be the levels later read
 * with {@link sequenceBounds} (any predictable bets are valid; matching ones are tightest).
 */
export function observeValue(
  state: SequenceState,
  value: number,
  alphaLower: number,
  alphaUpper: number,
): SequenceState {
  if (!Number.isFinite(value) || value < state.lo || value > state.hi) {
    throw new RangeError(`value ${value} outside the sequence's range [${state.lo}, ${state.hi}]`);
  }
  const x = (value - state.lo) / (state.hi - state.lo);
  const t = state.n + 1;
  // μ̂_{t−1}, regularized by the fake observation of mean 1/2: predictable, as v_t requires.
  const muPrev = (PRIOR_MEAN + state.sum) / t;
  const v = (x - muPrev) ** 2;
  const lamLower = bet(state, alphaLower);
  const lamUpper = bet(state, alphaUpper);
  const sum = state.sum + x;
  const mu = (PRIOR_MEAN + sum) / (t + 1);
  return {
    lo: state.lo,
    hi: state.hi,
    n: t,
    sum,
    devSq: state.devSq + (x - mu) ** 2,
    lowerLambda: state.lowerLambda + lamLower,
    lowerLambdaX: state.lowerLambdaX + lamLower * x,
    lowerPenalty: state.lowerPenalty + v * psiE(lamLower),
    upperLambda: state.upperLambda + lamUpper,
    upperLambdaX: state.upperLambdaX + lamUpper * (1 - x),
    upperPenalty: state.upperPenalty + v * psiE(lamUpper),
  };
}

function lowerOf(lambda: number, lambdaX: number, penalty: number, alpha: number): number {
  if (lambda <= 0) return 0;
  return Math.max(0, (lambdaX - Math.log(1 / alpha) - penalty) / lambda);
}

/** The running mean and the confidence bounds, in the sequence's own units. */
export function sequenceBounds(state: SequenceState, alphaLower: number, alphaUpper: number): SequenceBounds {
  const width = state.hi - state.lo;
  const lower01 = lowerOf(state.lowerLambda, state.lowerLambdaX, state.lowerPenalty, alphaLower);
  const upper01 = 1 - lowerOf(state.upperLambda, state.upperLambdaX, state.upperPenalty, alphaUpper);
  const mean01 = state.n === 0 ? 0.5 : state.sum / state.n;
  return {
    n: state.n,
    estimate: state.lo + width * mean01,
    lower: state.lo + width * Math.min(lower01, mean01),
    upper: state.lo + width * Math.max(upper01, mean01),
  };
}
