import { SeededRandom } from '@driftline/test-support/random';

/**
 * Deterministic dataset generator shared with scripts/make_fixtures.py, which mirrors it line by
 * line. Only operations that IEEE 754 rounds correctly (+ − × ÷, floor) and exact 32-bit integer
 * arithmetic are used, so JavaScript and Python produce bit-identical samples and the fixtures
 * need no raw data:
 * - the shared mulberry32 generator (`@driftline/test-support/random`), every step exact uint32;
 * - uniforms u32 / 2^32 (exact), normals by Irwin–Hall (Σ 12 uniforms − 6, exact in float64);
 * - heavy tails as a ratio of normals, bimodal by mixing, ties by flooring, categories by index.
 */

export type NumericSpec =
  | { readonly dist: 'normal'; readonly n: number; readonly seed: number; readonly mean: number; readonly sd: number }
  | { readonly dist: 'ratio'; readonly n: number; readonly seed: number; readonly loc: number; readonly scale: number }
  | {
      readonly dist: 'bimodal';
      readonly n: number;
      readonly seed: number;
      readonly mean1: number;
      readonly sd1: number;
      readonly mean2: number;
      readonly sd2: number;
      readonly weight1: number;
    }
  | {
      readonly dist: 'discrete';
      readonly n: number;
      readonly seed: number;
      readonly k: number;
      readonly offset: number;
    }
  | {
      readonly dist: 'rounded';
      readonly n: number;
      readonly seed: number;
      readonly mean: number;
      readonly sd: number;
      readonly scale: number;
    };

export interface CategoricalSpec {
  readonly dist: 'categorical';
  readonly n: number;
  readonly seed: number;
  readonly categories: readonly string[];
  /** Integer weights, so the category draw is exact integer arithmetic. */
  readonly weights: readonly number[];
}

export function generateNumeric(spec: NumericSpec): Float64Array {
  const rng = new SeededRandom(spec.seed);
  const out = new Float64Array(spec.n);
  for (let i = 0; i < spec.n; i++) {
    switch (spec.dist) {
      case 'normal':
        out[i] = spec.mean + spec.sd * rng.normal();
        break;
      case 'ratio': {
        const z1 = rng.normal();
        let z2 = rng.normal();
        while (z2 === 0) z2 = rng.normal();
        out[i] = spec.loc + spec.scale * (z1 / z2);
        break;
      }
      case 'bimodal': {
        const u = rng.uniform();
        const z = rng.normal();
        out[i] = u < spec.weight1 ? spec.mean1 + spec.sd1 * z : spec.mean2 + spec.sd2 * z;
        break;
      }
      case 'discrete':
        out[i] = Math.floor(rng.uniform() * spec.k) + spec.offset;
        break;
      case 'rounded':
        out[i] = Math.floor((spec.mean + spec.sd * rng.normal()) * spec.scale) / spec.scale;
        break;
    }
  }
  return out;
}

export function generateCategorical(spec: CategoricalSpec): string[] {
  const rng = new SeededRandom(spec.seed);
  let total = 0;
  for (const w of spec.weights) total += w;
  const out = new Array<string>(spec.n);
  for (let i = 0; i < spec.n; i++) {
    const pick = Math.floor(rng.uniform() * total);
    let acc = 0;
    let k = 0;
    while (k < spec.weights.length - 1 && pick >= acc + spec.weights[k]!) {
      acc += spec.weights[k]!;
      k++;
    }
    out[i] = spec.categories[k]!;
  }
  return out;
}

/** Left-to-right float sum: the same operations in Python, so the checksum matches bit for bit. */
export function sequentialSum(values: Float64Array): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i]!;
  return s;
}
