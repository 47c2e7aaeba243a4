/**
 * log Γ and the regularized upper incomplete gamma function Q(a, x) = Γ(a, x)/Γ(a), enough for
 * chi-square p-values: chi2.sf(x, k) = Q(k/2, x/2).
 */

// B_2j / (2j(2j−1)) for j = 1..8: the Stirling series for log Γ.
const STIRLING = [1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156, -3617 / 122400];
const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

/** log Γ(x) for x > 0: Stirling's series at x >= 15, shifted up by the recurrence below that. */
export function logGamma(x: number): number {
  if (Number.isNaN(x) || x <= 0) return Number.NaN;
  let shift = 0;
  let z = x;
  // log Γ(x) = log Γ(x + k) − log(x (x+1) … (x+k−1)); the product stays well inside range.
  let prod = 1;
  while (z < 15) {
    prod *= z;
    z += 1;
  }
  if (prod !== 1) shift = Math.log(prod);
  const inv = 1 / z;
  const inv2 = inv * inv;
  let series = 0;
  for (let j = STIRLING.length - 1; j >= 0; j--) series = series * inv2 + STIRLING[j]!;
  return (z - 0.5) * Math.log(z) - z + HALF_LOG_2PI + series * inv - shift;
}

const MAX_ITER = 100000;
const EPS = 1e-16;
const TINY = 1e-300;

/** Regularized upper incomplete gamma Q(a, x), a > 0. */
export function regularizedGammaQ(a: number, x: number): number {
  if (Number.isNaN(a) || Number.isNaN(x) || a <= 0) return Number.NaN;
  if (x <= 0) return 1;
  if (x === Number.POSITIVE_INFINITY) return 0;
  // log of x^a e^-x / Γ(a), the common prefactor of both expansions.
  const logPrefix = a * Math.log(x) - x - logGamma(a);
  if (x < a + 1) {
    // Power series for P(a, x); Q = 1 − P has no cancellation trouble in this region (P < ~0.7).
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < MAX_ITER; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * EPS) break;
    }
    return Math.min(1, Math.max(0, 1 - sum * Math.exp(logPrefix)));
  }
  // Continued fraction for Q(a, x) (modified Lentz), accurate in the upper tail.
  let b = x + 1 - a;
  let c = 1 / TINY;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < MAX_ITER; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < TINY) d = TINY;
    c = b + an / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < EPS) break;
  }
  return Math.min(1, Math.max(0, Math.exp(logPrefix) * h));
}

/** Chi-square survival function P(X >= x) with k degrees of freedom. */
export function chi2Sf(x: number, k: number): number {
  if (Number.isNaN(x) || !(k > 0)) return Number.NaN;
  return regularizedGammaQ(k / 2, x / 2);
}
