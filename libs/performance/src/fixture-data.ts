import { Lcg32 } from './prng.js';

/**
 * Deterministic test data, generated identically by scripts/make_fixtures.py (same generator, same
 * arithmetic: only + - * / and floor on doubles), so the sklearn fixtures and the TypeScript tests
 * see bit-identical inputs.
 */
export interface ClassificationCase {
  readonly name: string;
  readonly seed: number;
  readonly n: number;
  readonly positiveRate: number;
  readonly separation: number;
  readonly lo: number;
  readonly hi: number;
  /** Scores quantised to `quantize` levels (ties); 0 = continuous. */
  readonly quantize: number;
  readonly threshold: number;
}

export interface RegressionCase {
  readonly name: string;
  readonly seed: number;
  readonly n: number;
  readonly offset: number;
  readonly scale: number;
  readonly noise: number;
}

export function classificationData(c: ClassificationCase): { labels: number[]; scores: number[] } {
  const rng = new Lcg32(c.seed);
  const labels: number[] = [];
  const scores: number[] = [];
  for (let i = 0; i < c.n; i++) {
    const y = rng.next() < c.positiveRate ? 1 : 0;
    const u = rng.next();
    let s = c.lo + (c.hi - c.lo) * (y * c.separation + u * (1 - c.separation));
    if (c.quantize > 0) s = (Math.floor(s * c.quantize) + 0.5) / c.quantize;
    labels.push(y);
    scores.push(s);
  }
  return { labels, scores };
}

export function regressionData(c: RegressionCase): { labels: number[]; predictions: number[] } {
  const rng = new Lcg32(c.seed);
  const labels: number[] = [];
  const predictions: number[] = [];
  for (let i = 0; i < c.n; i++) {
    const y = c.offset + c.scale * (rng.next() - 0.5);
    const p = y + c.noise * (rng.next() - 0.5);
    labels.push(y);
    predictions.push(p);
  }
  return { labels, predictions };
}
