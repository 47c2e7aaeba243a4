import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import { emptySequence, observeValue, type SequenceState, sequenceBounds } from '../src/index.js';

function feed(values: Iterable<number>, lo = 0, hi = 1, alpha = 0.05): SequenceState {
  let s = emptySequence(lo, hi);
  for (const v of values) s = observeValue(s, v, alpha, alpha);
  return s;
}

describe('PrPl-EB confidence sequence', () => {
  it('knows nothing before the first observation: the whole range', () => {
    const b = sequenceBounds(emptySequence(-1, 1), 0.05, 0.05);
    expect(b).toEqual({ n: 0, estimate: 0, lower: -1, upper: 1 });
  });

  it('n = 1: finite, ordered, inside the range, and still wide', () => {
    for (const v of [-1, -0.3, 0, 1]) {
      const b = sequenceBounds(feed([v], -1, 1), 0.05, 0.05);
      expect(b.n).toBe(1);
      expect(b.estimate).toBeCloseTo(v, 12);
      expect(b.lower).toBeGreaterThanOrEqual(-1);
      expect(b.upper).toBeLessThanOrEqual(1);
      expect(b.lower).toBeLessThanOrEqual(b.estimate);
      expect(b.upper).toBeGreaterThanOrEqual(b.estimate);
      expect(b.upper - b.lower).toBeGreaterThan(1); // one observation proves little at 95%
    }
  });

  it('zero variance: the interval closes in on the constant without NaN, shrinking monotonically', () => {
    let s = emptySequence(0, 1);
    let width = Number.POSITIVE_INFINITY;
    for (let i = 1; i <= 20_000; i++) {
      s = observeValue(s, 0.3, 0.05, 0.05);
      if (i % 1000 === 0) {
        const b = sequenceBounds(s, 0.05, 0.05);
        expect(Number.isFinite(b.lower) && Number.isFinite(b.upper)).toBe(true);
        expect(b.lower).toBeLessThanOrEqual(0.3);
        expect(b.upper).toBeGreaterThanOrEqual(0.3);
        expect(b.upper - b.lower).toBeLessThan(width);
        width = b.upper - b.lower;
      }
    }
    // Capped bets: width ≈ 4 log(1/α) / n for a constant stream.
    expect(width).toBeLessThan(0.005);
  });

  it('all observations at an end of the range: the bound there is the end itself', () => {
    const top = sequenceBounds(feed(Array(500).fill(1)), 0.05, 0.05);
    expect(top.upper).toBe(1);
    expect(top.lower).toBeGreaterThan(0.95);
    const bottom = sequenceBounds(feed(Array(500).fill(0)), 0.05, 0.05);
    expect(bottom.lower).toBe(0);
    expect(bottom.upper).toBeLessThan(0.05);
  });

  it('adapts to the variance: far narrower than a fixed-n Hoeffding interval on a low-variance stream', () => {
    const rng = new SeededRandom(7);
    const n = 2000;
    const s = feed(
      Array.from({ length: n }, () => (rng.uniform() < 0.5 ? -0.02 : 0.02)),
      -1,
      1,
    );
    const b = sequenceBounds(s, 0.05, 0.05);
    // Hoeffding for range 2 at ONE fixed n (not even time-uniform): sqrt(2² log(1/α) / (2n)).
    const hoeffding = Math.sqrt((4 * Math.log(1 / 0.05)) / (2 * n));
    expect(b.upper - b.estimate).toBeLessThan(hoeffding / 5);
  });

  it('covers the mean at every time at once: runs whose sequence EVER excludes it are ≤ α', () => {
    // Bernoulli(0.3), α = 0.1 per side: count runs where, at any of 2,000 looks, a bound excludes 0.3.
    const runs = 300;
    let lowerMisses = 0;
    let upperMisses = 0;
    for (let run = 0; run < runs; run++) {
      const rng = new SeededRandom(1_000 + run);
      let s = emptySequence(0, 1);
      let lowMiss = false;
      let upMiss = false;
      for (let i = 0; i < 2000; i++) {
        s = observeValue(s, rng.uniform() < 0.3 ? 1 : 0, 0.1, 0.1);
        const b = sequenceBounds(s, 0.1, 0.1);
        if (b.lower > 0.3) lowMiss = true;
        if (b.upper < 0.3) upMiss = true;
      }
      if (lowMiss) lowerMisses++;
      if (upMiss) upperMisses++;
    }
    expect(lowerMisses / runs).toBeLessThanOrEqual(0.1);
    expect(upperMisses / runs).toBeLessThanOrEqual(0.1);
  });

  it('matches a numpy transcription of confseq (lambda_predmix_eb + predmix_lower_cs) on a fixed stream', () => {
    // Reference: confseq's formulas in numpy (truncation 1/2, α = 0.05 per side, upper = 1 − lower(1 − x)),
    // with v_i = (x_i − μ̂_{i−1})² on the paper's regularized mean (confseq's plain mean moves the 4th decimal).
    const reference: [number, number, number][] = [
      [500, 0.4855360281, 0.5153492347],
      [1000, 0.4906524519, 0.5091107075],
      [1500, 0.4927234934, 0.5072947299],
      [2000, 0.4936412028, 0.5061106025],
    ];
    let s = emptySequence(0, 1);
    for (let i = 1; i <= 2000; i++) {
      s = observeValue(s, (((i * 7919) % 1000) / 1000) * 0.3 + 0.35, 0.05, 0.05);
      const ref = reference.find(([n]) => n === i);
      if (ref === undefined) continue;
      const b = sequenceBounds(s, 0.05, 0.05);
      expect(b.lower).toBeCloseTo(ref[1], 9);
      expect(b.upper).toBeCloseTo(ref[2], 9);
    }
  });

  it('refuses values outside the range and bad ranges (the guarantee needs the bound)', () => {
    const s = emptySequence(-1, 1);
    expect(() => observeValue(s, 1.0000001, 0.05, 0.05)).toThrow(RangeError);
    expect(() => observeValue(s, Number.NaN, 0.05, 0.05)).toThrow(/outside/);
    expect(() => emptySequence(1, 1)).toThrow(RangeError);
    expect(() => emptySequence(0, Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });

  it('state is plain JSON: a round trip continues identically', () => {
    const rng = new SeededRandom(3);
    const values = Array.from({ length: 300 }, () => rng.uniform() * 2 - 1);
    let a = feed(values.slice(0, 150), -1, 1);
    let b = JSON.parse(JSON.stringify(a)) as SequenceState;
    for (const v of values.slice(150)) {
      a = observeValue(a, v, 0.05, 0.05);
      b = observeValue(b, v, 0.05, 0.05);
    }
    expect(sequenceBounds(b, 0.05, 0.05)).toEqual(sequenceBounds(a, 0.05, 0.05));
  });
});
