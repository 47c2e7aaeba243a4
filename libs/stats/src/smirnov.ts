/**
 * One-sided Kolmogorov–Smirnov (Smirnov) survival function P(D+_n >= x), the same quantity as
 * scipy.special.smirnov. scipy's asymptotic two-sample p-value uses 2·smirnov(n, x) in the
 * upper tail, so matching it matters for small p-values.
 *
 * Birnbaum–Tingey sum: P = x · Σ_{v=0}^{⌊n(1−x)⌋} C(n,v) (x + v/n)^(v−1) (1 − x − v/n)^(n−v).
 * Every term is positive, so evaluating each in log space (log C accumulated incrementally with
 * compensation, n·x split into integer and fraction so 1 − x − v/n keeps its relative precision)
 * gives ~1e-10 relative accuracy at n = 10^6 without the double-double arithmetic scipy uses.
 */

/** log(2^-1075): exp() of anything below underflows (cephes MINLOG). */
const MINLOG = -745.1332191019412;
/** Above this n scipy switches to a closed-form approximation. */
const SMIRNOV_MAX_COMPUTE_N = 1_000_000;
/** Above this n the sum is restricted to the window of terms that matter (see below). */
const WINDOWED_MIN_N = 10_000;
/** Smallest lattice stride worth switching to the trapezoidal sum for. */
const MIN_STRIDE = 4;
const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

/**
 * log(k!) − [(k + ½)·log k − k + ½·log 2π], the error of Stirling's formula: by its series for
 * k >= 15, directly (an exact-enough short sum of logs) below.
 */
function stirlingError(k: number): number {
  if (k >= 15) {
    const k2 = k * k;
    return (1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - 1 / 1188 / k2) / k2) / k2) / k2) / k;
  }
  let logFactorial = 0;
  for (let j = 2; j <= k; j++) logFactorial += Math.log(j);
  return logFactorial - (k + 0.5) * Math.log(k) + k - HALF_LOG_2PI;
}

/**
 * log C(n, k) for 1 <= k <= n−1 in the saddle-point form (Loader 2000), which keeps absolute
 * error near 1e-10 at n = 10^6 where differences of log-gammas would lose ~1e-9.
 */
function logBinomial(n: number, k: number): number {
  if (k === 0 || k === n) return 0;
  const m = n - k;
  return (
    k * Math.log(n / k) -
    m * Math.log1p(-k / n) +
    0.5 * Math.log(n / (2 * Math.PI * k * m)) +
    stirlingError(n) -
    stirlingError(k) -
    stirlingError(m)
  );
}

/** First v in [lo, hi) with pred(v) true, for a predicate that is false then true. */
function searchFirst(lo: number, hi: number, pred: (v: number) => boolean): number {
  let a = lo;
  let b = hi;
  while (a < b) {
    const mid = Math.floor((a + b) / 2);
    if (pred(mid)) b = mid;
    else a = mid + 1;
  }
  return a;
}

export function smirnovSf(n: number, x: number): number {
  if (!(n > 0 && x >= 0 && x <= 1)) return Number.NaN;
  if (n === 1) return 1 - x;
  if (x === 0) return 1;
  if (x === 1) return 0;

  const nx = n * x;
  let nxfl = Math.floor(nx);
  let alpha = nx - nxfl;
  if (alpha === 1) {
    nxfl += 1;
    alpha = 0;
  }
  // x <= 1/n: closed form.
  if (nxfl === 0 || (nxfl === 1 && alpha === 0)) {
    const t = (1 + x) ** (n - 1);
    return 1 - x * t;
  }
  if (-2 * n * x * x < MINLOG) return 0;
  if (nxfl >= n - 1) return (1 - x) ** n;
  if (n > SMIRNOV_MAX_COMPUTE_N) {
    const logp = -((6.0 * n * x + 1) ** 2) / 18.0 / n;
    if (logp < -Math.LN2) return Math.exp(logp);
    return 1 - -Math.expm1(logp);
  }

  // Terms v = 0..lastV have 1 − x − v/n > 0.
  let lastV = n - nxfl - (alpha === 0 ? 0 : 1);
  if (alpha === 0) lastV -= 1;
  // 1 − x − v/n = (n − ⌊nx⌋ − v − frac(nx))/n and x + v/n = (⌊nx⌋ + v + frac(nx))/n.
  const logTermWithout = (v: number) =>
    (v - 1) * Math.log((nxfl + v + alpha) / n) + (n - v) * Math.log((n - nxfl - v - alpha) / n);

  // For large n only a window of terms matters. The terms are log-concave in v, so the window
  // around the peak where log A_v >= peak − 60 is an interval; everything outside adds less than
  // n·e^-60 of the sum. Below the cut-off the full sum is cheap enough.
  let first = 0;
  let last = lastV;
  if (n > WINDOWED_MIN_N) {
    const approx = (v: number) => logBinomial(n, v) + logTermWithout(v);
    let lo = 0;
    let hi = lastV;
    while (hi - lo > 2) {
      const m1 = lo + Math.floor((hi - lo) / 3);
      const m2 = hi - Math.floor((hi - lo) / 3);
      if (approx(m1) < approx(m2)) lo = m1 + 1;
      else hi = m2 - 1;
    }
    let peak = lo;
    for (let v = lo + 1; v <= hi; v++) if (approx(v) > approx(peak)) peak = v;
    const top = approx(peak);
    const floor = top - 60;
    first = searchFirst(0, peak, (v) => approx(v) >= floor);
    last = searchFirst(peak, lastV + 1, (v) => approx(v) < floor) - 1;

    // A smooth, log-concave sequence this wide is summed to ~1e-12 by the trapezoidal rule on a
    // coarser lattice (Poisson summation: the error is ~exp(−2π²σ²/h²) for width σ, stride h),
    // turning 10^5–10^6 terms into a few hundred. The stride comes from the largest curvature
    // of log A_v over the region that matters.
    const inner = [
      peak,
      searchFirst(0, peak, (v) => approx(v) >= top - 20),
      searchFirst(peak, lastV + 1, (v) => approx(v) < top - 20) - 1,
    ];
    let curvature = 0;
    for (const v of inner) {
      if (v - 1 < 0 || v + 1 > lastV) continue;
      curvature = Math.max(curvature, -(approx(v + 1) - 2 * approx(v) + approx(v - 1)));
    }
    const stride = curvature > 0 ? Math.floor(1 / (8 * Math.sqrt(curvature))) : 0;
    // Only when the sequence has died out at both ends of the window (no truncation error).
    if (stride >= MIN_STRIDE && first > 0 && last < lastV) {
      let coarse = 0;
      for (let v = peak; v <= last; v += stride) coarse += Math.exp(approx(v));
      for (let v = peak - stride; v >= first; v -= stride) coarse += Math.exp(approx(v));
      return Math.min(Math.max(x * stride * coarse, 0), 1);
    }
  }

  // log C(n, v) reaches ~n·log 2 while terms need it to ~1e-12 absolute: a plain running sum
  // would lose ~1e-8 over 10^5 steps, so it is accumulated with Neumaier compensation from an
  // anchor (exactly 0 at v = 0).
  let logBinom = first === 0 ? 0 : logBinomial(n, first);
  let logBinomComp = 0;
  let sum = 0;
  const vmid = Math.floor(n / 2);
  for (let v = first; v <= last; v++) {
    const term = Math.exp(logBinom + logBinomComp + logTermWithout(v));
    sum += term;
    // scipy's stopping rule: the rest cannot matter at double precision.
    if (term !== 0) {
      if (4 * (last + 1 - v) * term < Number.EPSILON * sum && v !== last && v > first) break;
    } else if (v > vmid) {
      break;
    }
    const step = Math.log((n - v) / (v + 1));
    const t = logBinom + step;
    logBinomComp += Math.abs(logBinom) >= Math.abs(step) ? logBinom - t + step : step - t + logBinom;
    logBinom = t;
  }
  const p = x * sum;
  return Math.min(Math.max(p, 0), 1);
}
