import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, DriftlineError, PoisonRecordError } from '@driftline/core';
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import {
  buildCategoricalProfile,
  buildNumericProfile,
  buildReferenceProfile,
  type CategoricalSummary,
  chiSquareCategorical,
  chiSquareFromSummary,
  createSummary,
  ExactSum,
  jensenShannonCategorical,
  jensenShannonFromCategoricalSummary,
  jensenShannonFromSummary,
  ks2samp,
  ksAsymptoticPValue,
  ksFromSummary,
  mergeAll,
  mergeSummaries,
  missingRate,
  missingRateFromSummary,
  type NumericReferenceProfile,
  type NumericSummary,
  nextDown,
  outOfRangeShare,
  outOfRangeShareFromSummary,
  PROFILE_FORMAT,
  parseReferenceProfile,
  psiCategorical,
  psiFromCategoricalSummary,
  psiFromSummary,
  psiNumeric,
  quantileFromSummary,
  summaryFromJSON,
  TAIL_SKETCH_MAX_BITS,
  tailSketchHas,
} from '../src/index.js';
import { generateNumeric } from './generate.js';

const ref = generateNumeric({ dist: 'normal', n: 20000, seed: 7, mean: 0, sd: 1 });
const profile = buildNumericProfile(ref);

function messy(seed: number, n: number): (number | null)[] {
  const rng = new SeededRandom(seed);
  const out: (number | null)[] = [];
  for (let i = 0; i < n; i++) {
    const u = rng.uniform();
    if (u < 0.02) out.push(null);
    else if (u < 0.04) out.push(Number.NaN);
    else if (u < 0.05) out.push(u < 0.045 ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY);
    else if (u < 0.1) out.push(profile.cuts[Math.floor(rng.uniform() * profile.cuts.length)]!);
    else out.push(0.3 + 1.4 * rng.normal());
  }
  return out;
}

const serialise = (s: NumericSummary | CategoricalSummary) => JSON.stringify(s.toJSON());

describe('numeric summaries', () => {
  const parts = [messy(1, 3000), messy(2, 5000), messy(3, 1000)];
  const [a, b, c] = parts.map((p) => createSummary(profile).addAll(p)) as [
    NumericSummary,
    NumericSummary,
    NumericSummary,
  ];

  it('merge is commutative and associative, bit for bit', () => {
    const left = mergeSummaries(mergeSummaries(a, b, profile), c, profile);
    const right = mergeSummaries(a, mergeSummaries(b, c, profile), profile);
    const shuffled = mergeSummaries(mergeSummaries(c, a, profile), b, profile);
    expect(serialise(left)).toBe(serialise(right));
    expect(serialise(left)).toBe(serialise(shuffled));
    expect(serialise(mergeSummaries(a, b, profile))).toBe(serialise(mergeSummaries(b, a, profile)));
    // And equal to one summary over all the data.
    expect(serialise(left)).toBe(serialise(createSummary(profile).addAll(parts.flat())));
  });

  it('round-trips through plain JSON', () => {
    const merged = mergeAll([a, b, c], profile)!;
    const json = JSON.parse(JSON.stringify(merged.toJSON())) as unknown;
    const back = summaryFromJSON(json, profile) as NumericSummary;
    expect(serialise(back)).toBe(serialise(merged));
    expect(back.mean()).toBe(merged.mean());
    expect(ksFromSummary(profile, back)).toEqual(ksFromSummary(profile, merged));
  });

  it('has a size independent of the number of events', () => {
    const small = createSummary(profile).addAll(generateNumeric({ dist: 'normal', n: 1000, seed: 9, mean: 0, sd: 1 }));
    const large = createSummary(profile).addAll(
      generateNumeric({ dist: 'normal', n: 100000, seed: 9, mean: 0, sd: 1 }),
    );
    expect(serialise(small).length).toBe(serialise(large).length);
    expect(serialise(createSummary(profile)).length).toBe(serialise(large).length);
  });

  it('switches to float64 counts past 2^32 − 1 and still round-trips', () => {
    const s = createSummary(profile);
    s.counts[3] = 2 ** 33;
    s.count = 2 ** 33;
    const json = s.toJSON();
    expect(json.encoding).toBe('f64');
    expect((summaryFromJSON(json, profile) as NumericSummary).counts[3]).toBe(2 ** 33);
  });

  it('keeps exact counts of missing, infinite and out-of-range values', () => {
    const raw = parts.flat();
    const merged = mergeAll([a, b, c], profile)!;
    expect(missingRateFromSummary(merged)).toBeCloseTo(missingRate(raw), 15);
    expect(outOfRangeShareFromSummary(merged)).toBeCloseTo(outOfRangeShare(raw, profile.min, profile.max), 15);
    const finite = raw.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    expect(merged.count).toBe(finite.length);
    expect(merged.min).toBe(Math.min(...finite));
    expect(merged.max).toBe(Math.max(...finite));
  });

  it('gives PSI equal to the raw-data PSI and KS within its stated bound', () => {
    const raw = parts.flat();
    const merged = mergeAll([a, b, c], profile)!;
    expect(psiFromSummary(profile, merged).value).toBeCloseTo(psiNumeric(ref, raw).value, 12);
    const exact = ks2samp(ref, raw, 'asymp').statistic;
    const ks = ksFromSummary(profile, merged, { pValueRange: true });
    expect(ks.statistic).toBeLessThanOrEqual(exact);
    expect(exact).toBeLessThanOrEqual(ks.upperBound);
    expect(ks.errorBound).toBeLessThanOrEqual(profile.ksBound);
    expect(profile.ksBound).toBeLessThanOrEqual(0.002);
    expect(ks.pValueRange?.[0]).toBeLessThanOrEqual(ks.pValue);
    expect(ks.pValueRange?.[1]).toBe(ks.pValue);
  });

  it('doubles as a quantile sketch with provable bounds', () => {
    const raw = parts.flat();
    const finite = Float64Array.from(
      raw.filter((v): v is number => typeof v === 'number' && Number.isFinite(v)),
    ).sort();
    const merged = mergeAll([a, b, c], profile)!;
    for (const q of [0, 0.001, 0.05, 0.25, 0.5, 0.9, 0.999, 1]) {
      const est = quantileFromSummary(profile, merged, q);
      const exact = finite[Math.max(1, Math.ceil(q * finite.length)) - 1]!;
      expect(est.lower).toBeLessThanOrEqual(exact);
      expect(exact).toBeLessThanOrEqual(est.upper);
      expect(est.value).toBeGreaterThanOrEqual(est.lower);
      expect(est.value).toBeLessThanOrEqual(est.upper);
    }
    expect(quantileFromSummary(profile, createSummary(profile), 0.5).value).toBeNaN();
  });

  it('is exact for discrete data whose values are all cut points', () => {
    const dref = generateNumeric({ dist: 'discrete', n: 5000, seed: 11, k: 12, offset: 0 });
    const dcur = generateNumeric({ dist: 'discrete', n: 3000, seed: 12, k: 10, offset: 1 });
    const p = buildNumericProfile(dref);
    const ks = ksFromSummary(p, createSummary(p).addAll(dcur));
    expect(ks.errorBound).toBe(0);
    expect(quantileFromSummary(p, createSummary(p).addAll(dcur), 0.5)).toEqual({ value: 5, lower: 5, upper: 5 });
    expect(ks.statistic).toBe(ks2samp(dref, dcur, 'asymp').statistic);
  });

  it('handles an empty current window', () => {
    const empty = createSummary(profile);
    const ks = ksFromSummary(profile, empty);
    expect(ks.statistic).toBeNaN();
    expect(ks.pValue).toBeNaN();
    expect(psiFromSummary(profile, empty).value).toBeNaN();
    expect(missingRateFromSummary(empty)).toBeNaN();
    expect(outOfRangeShareFromSummary(empty)).toBeNaN();
    expect(empty.mean()).toBeNaN();
    const onlyMissing = createSummary(profile).addAll([null, Number.NaN]);
    expect(missingRateFromSummary(onlyMissing)).toBe(1);
    expect(ksFromSummary(profile, onlyMissing).statistic).toBeNaN();
  });

  it('handles an all-equal reference', () => {
    const p = buildNumericProfile([2, 2, 2, 2]);
    expect(p.cuts).toEqual([nextDown(2), 2]);
    expect(p.coarseEdges).toEqual([nextDown(2), 2]);
    const same = createSummary(p).addAll([2, 2]);
    expect(ksFromSummary(p, same).statistic).toBe(0);
    expect(ksFromSummary(p, same).errorBound).toBe(0);
    const other = createSummary(p).addAll([3, 3]);
    expect(ksFromSummary(p, other).statistic).toBe(1);
    expect(outOfRangeShareFromSummary(other)).toBe(1);
  });

  it('refuses to merge summaries of different profiles, and rejects foreign JSON as poison', () => {
    const otherProfile = buildNumericProfile(generateNumeric({ dist: 'normal', n: 500, seed: 3, mean: 1, sd: 1 }));
    const foreign = createSummary(otherProfile).addAll([1, 2]);
    expect(() => mergeSummaries(a, foreign, profile)).toThrow(DriftlineError);
    expect(() => summaryFromJSON(foreign.toJSON(), profile)).toThrow(PoisonRecordError);
    expect(() => summaryFromJSON({ ...a.toJSON(), data: 'AAAA' }, profile)).toThrow(/wrong length/);
    expect(() => summaryFromJSON('nope', profile)).toThrow(PoisonRecordError);
  });
});

describe('exact sum', () => {
  it('is exact where float addition is not', () => {
    const s = new ExactSum();
    for (const x of [1e308, 1, 1e308, -1e308, -1e308, 1e-300, -1]) s.add(x);
    expect(s.value()).toBe(1e-300);
    const t = new ExactSum();
    for (let i = 0; i < 10; i++) t.add(0.1);
    // Float addition gives 0.9999999999999999; the exact sum of ten 0.1 doubles rounds to 1.
    expect(t.value()).toBe(1);
  });

  it('handles negative totals, subnormals and merge order', () => {
    const a = new ExactSum();
    const b = new ExactSum();
    a.add(-2.5);
    a.add(5e-324);
    b.add(-1e-310);
    b.add(0.75);
    const ab = a.clone();
    ab.addSum(b);
    const ba = b.clone();
    ba.addSum(a);
    expect(Array.from(ab.limbs)).toEqual(Array.from(ba.limbs));
    expect(ab.value()).toBe(-1.75);
  });
});

describe('categorical summaries', () => {
  const cref = ['a', 'b', 'b', 'c', 'c', 'c', null];
  const cp = buildCategoricalProfile(cref);
  const cur = ['a', 'c', 'z', null, 'b', 'y', 'c'];

  it('orders categories by frequency and matches the raw statistics', () => {
    expect(cp.categories).toEqual(['c', 'b', 'a']);
    const s = mergeSummaries(createSummary(cp).addAll(cur.slice(0, 3)), createSummary(cp).addAll(cur.slice(3)), cp);
    expect(Array.from(s.counts)).toEqual([2, 1, 1, 2]);
    expect(missingRateFromSummary(s)).toBeCloseTo(1 / 7, 15);
    expect(psiFromCategoricalSummary(cp, s).value).toBeCloseTo(psiCategorical(cref, cur).value, 14);
    expect(chiSquareFromSummary(cp, s).statistic).toBeCloseTo(chiSquareCategorical(cref, cur).statistic, 12);
    expect(jensenShannonFromCategoricalSummary(cp, s)).toBeCloseTo(jensenShannonCategorical(cref, cur), 14);
    const back = summaryFromJSON(JSON.parse(JSON.stringify(s.toJSON())) as unknown, cp);
    expect(serialise(back)).toBe(serialise(s));
  });

  it('caps the number of reference categories, folding the rest into other', () => {
    const p = buildCategoricalProfile(['a', 'a', 'b', 'c'], { maxCategories: 1 });
    expect(p.categories).toEqual(['a']);
    expect(p.counts).toEqual([2, 2]);
  });
});

describe('reference profiles', () => {
  it('dispatches on the column type', () => {
    expect(buildReferenceProfile([null, 1, 2]).kind).toBe('numeric');
    expect(buildReferenceProfile([undefined, 'x']).kind).toBe('categorical');
    expect(() => buildReferenceProfile([null, Number.NaN])).toThrow(DriftlineError);
  });

  it('puts every coarse edge on the fine grid', () => {
    for (const bins of [7, 10, 30]) {
      const p = buildNumericProfile(ref, { bins });
      for (const [j, k] of p.coarseCutIndex.entries()) expect(p.cuts[k]).toBe(p.coarseEdges[j]);
      expect(p.coarseEdges).toEqual(psiNumeric(ref, ref, { bins }).edges);
    }
  });

  it('survives JSON and rejects malformed stored profiles naming the field', () => {
    const parsed = parseReferenceProfile(JSON.parse(JSON.stringify(profile)) as unknown);
    expect(parsed).toEqual(profile);
    const broken = { ...profile, cuts: [...profile.cuts].reverse() };
    expect(() => parseReferenceProfile(broken)).toThrow(ConfigError);
    expect(() => parseReferenceProfile(broken)).toThrow(/profile\.cuts/);
    expect(() => parseReferenceProfile({ ...profile, slotCounts: [1] })).toThrow(/profile\.slotCounts/);
    expect(() => parseReferenceProfile({ ...profile, kind: 'other' })).toThrow(/profile\.kind/);
    const tampered = {
      ...profile,
      slotCounts: [profile.slotCounts[0]! + 1, ...profile.slotCounts.slice(1)],
      n: profile.n + 1,
    };
    expect(() => parseReferenceProfile(tampered)).toThrow(/profile\.id/);
    expect(() => parseReferenceProfile(null)).toThrow(/profile/);
    const cat = buildCategoricalProfile(['x', 'y']);
    expect(parseReferenceProfile(JSON.parse(JSON.stringify(cat)) as unknown)).toEqual(cat);
  });
});

describe('streaming KS p-value on small samples (found by a review)', () => {
  // scipy's ks_2samp(method='auto') on grids rebuilt from the parameters (scripts/make_ks_small.py).
  const fixture = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'ks-small.json'), 'utf8')) as {
    cases: {
      n1: number;
      n2: number;
      scale: number;
      statistic: number;
      auto_p: number;
      asymp_p: number;
      straddles_0_05: boolean;
    }[];
  };
  it('has a case where the asymptotic p is below 0.05 and the exact one is not', () => {
    expect(fixture.cases.some((c) => c.straddles_0_05 && c.asymp_p < 0.05 && c.auto_p >= 0.05)).toBe(true);
  });
  for (const c of fixture.cases) {
    it(`${c.n1} vs ${c.n2} (scale ${c.scale}): the p-value scipy's method='auto' gives`, () => {
      const ref = Array.from({ length: c.n1 }, (_, i) => (i + 0.5) / c.n1);
      const cur = Array.from({ length: c.n2 }, (_, j) => ((j + 0.5) / c.n2) * c.scale);
      // n1 − 1 fine bins put a cut on every reference value, so the grid statistic is the exact D.
      const profile = buildNumericProfile(ref, { fineBins: c.n1 - 1 });
      const ks = ksFromSummary(profile, createSummary(profile).addAll(cur));
      expect(ks.statistic).toBeCloseTo(c.statistic, 12);
      expect(ks.method).toBe('exact');
      expect(Math.abs(ks.pValue - c.auto_p) / c.auto_p).toBeLessThan(1e-6);
      if (c.straddles_0_05) expect(ks.pValue).toBeGreaterThanOrEqual(0.05);
    });
  }
  it('takes the asymptotic p-value above 10,000 rows, as scipy does', () => {
    const ref = Array.from({ length: 20_000 }, (_, i) => (i + 0.5) / 20_000);
    const profile = buildNumericProfile(ref);
    const ks = ksFromSummary(profile, createSummary(profile).addAll([0.1, 0.2, 0.3]));
    expect(ks.method).toBe('asymp');
    expect(ks.pValue).toBe(ksAsymptoticPValue(ks.statistic, 20_000, 3));
  });
});

describe('a constant reference (found by a review)', () => {
  // Evidently's psi_stat_test on the same samples (scripts/make_constant_reference.py).
  const fixture = JSON.parse(
    readFileSync(join(import.meta.dirname, 'fixtures', 'constant-reference.json'), 'utf8'),
  ) as {
    threshold: number;
    cases: {
      constant: number;
      n_ref: number;
      window: string;
      start: number;
      step: number;
      n_cur: number;
      evidently_psi: number;
      evidently_drifted: boolean;
    }[];
  };
  for (const c of fixture.cases) {
    it(`${c.n_ref} × ${c.constant}, window ${c.window}: drifts as Evidently's PSI says, batch and streaming alike`, () => {
      const ref = new Array<number>(c.n_ref).fill(c.constant);
      const cur = Array.from({ length: c.n_cur }, (_, i) => c.constant + c.start + c.step * i);
      const batch = psiNumeric(ref, cur).value;
      const profile = buildNumericProfile(ref);
      const stream = psiFromSummary(profile, createSummary(profile).addAll(cur)).value;
      expect(stream).toBe(batch);
      expect(stream >= fixture.threshold).toBe(c.evidently_drifted);
      // One distinct current value: Evidently's per-value bins are our below / at / above bins.
      if (c.step === 0) expect(Math.abs(stream - c.evidently_psi)).toBeLessThan(1e-9);
    });
  }
  it('sees a shift below the constant as it sees one above', () => {
    const ref = new Array<number>(1000).fill(0);
    const profile = buildNumericProfile(ref);
    const below = Array.from({ length: 500 }, (_, i) => -1000 - i);
    const psi = (xs: number[]) => psiFromSummary(profile, createSummary(profile).addAll(xs)).value;
    expect(psi(below)).toBeGreaterThan(1);
    expect(psi(below)).toBe(psi(below.map((x) => -x)));
  });

  it('a profile stored before the fix (one edge c) loads with its id and sees a shift below c (found by a regression review)', () => {
    // What the builder stored for 1,000 × 5 before da5dfd1: one cut, one coarse edge; its id is
    // the fingerprint of (cuts, slotCounts, coarseCutIndex), as profile.ts computes it.
    const grid = { cuts: [5], slotCounts: [0, 1000, 0], coarseCutIndex: [0] };
    const id = createHash('sha256')
      .update(JSON.stringify(['numeric', grid.cuts, grid.slotCounts, grid.coarseCutIndex]))
      .digest('hex')
      .slice(0, 16);
    const stored = {
      ...{ format: PROFILE_FORMAT, kind: 'numeric', id, n: 1000, missing: 0, infinite: 0 },
      ...{ min: 5, max: 5, fineBins: 1000, bins: 10, ...grid, coarseEdges: [5], referenceShares: [1], ksBound: 0 },
    };
    const old = parseReferenceProfile(stored);
    if (old.kind !== 'numeric') throw new Error('numeric expected');
    expect(old.id).toBe(id);
    expect(old.cuts).toEqual([5]); // same grid: summaries keep their length
    expect(old.coarseEdges).toEqual([nextDown(5), 5]);
    const fresh = buildNumericProfile(new Array<number>(1000).fill(5));
    expect(old.referenceShares).toEqual(fresh.referenceShares);
    const cur = Array.from({ length: 500 }, (_, i) => (i < 250 ? 4 : 5));
    const psi = (p: NumericReferenceProfile) => psiFromSummary(p, createSummary(p).addAll(cur)).value;
    expect(psi(old)).toBeGreaterThan(1);
    expect(psi(old)).toBeCloseTo(psi(fresh), 12);
    expect(jensenShannonFromSummary(old, createSummary(old).addAll(cur))).toBeCloseTo(
      jensenShannonFromSummary(fresh, createSummary(fresh).addAll(cur)),
      12,
    );
  });
});

describe('categories beyond the cap (found by a review)', () => {
  // 500 frequent categories and 50,000 rare ones: the rare half lands beyond the 1,000-category cap.
  const ref: string[] = [];
  for (let i = 0; i < 100_000; i++) ref.push(i % 2 ? `top${i % 500}` : `zip-${i}`);
  const profile = buildCategoricalProfile(ref);
  const kept = new Set(profile.categories);
  const tail = [...new Set(ref)].filter((c) => !kept.has(c));
  const window = (rare: (i: number) => string) => {
    const cur: string[] = [];
    for (let i = 0; i < 20_000; i++) cur.push(i % 2 ? `top${i % 500}` : rare(i));
    return createSummary(profile).addAll(cur);
  };

  it('keeps a bounded sketch of the tail and finds every tail category in it', () => {
    expect(profile.categories.length).toBe(1000);
    expect(tail.length).toBeGreaterThan(40_000);
    expect(profile.tail?.size).toBe(tail.length);
    expect(Buffer.from(profile.tail!.bits, 'base64').length * 8).toBeLessThanOrEqual(TAIL_SKETCH_MAX_BITS);
    for (const c of tail) expect(tailSketchHas(profile.tail!, c)).toBe(true);
    expect(parseReferenceProfile(JSON.parse(JSON.stringify(profile)))).toEqual(profile);
  });

  it('counts categories the reference never had apart, so they drift', () => {
    const fresh = window((i) => `NEW-${i}`);
    const tailBin = fresh.counts.length - 2;
    const newBin = fresh.counts.length - 1;
    // New values taken for tail ones are the sketch's false positives: within 3 sigma of its rate.
    const expectedFalse = 10_000 * profile.tail!.falsePositiveRate;
    expect(fresh.counts[tailBin]).toBeLessThanOrEqual(expectedFalse + 3 * Math.sqrt(expectedFalse) + 1);
    expect(fresh.counts[newBin]).toBe(10_000 - fresh.counts[tailBin]!);
    expect(psiFromCategoricalSummary(profile, fresh).value).toBeGreaterThan(0.2);
    expect(psiFromCategoricalSummary(profile, fresh).labels?.slice(-2)).toEqual(['__other__', '__new__']);
    expect(chiSquareFromSummary(profile, fresh).pValue).toBeLessThan(1e-6);
    // A summary survives its JSON form with the extra bin.
    expect(summaryFromJSON(fresh.toJSON(), profile)).toEqual(fresh);
  });

  it('does not call drift when the rare values still come from the reference tail', () => {
    const same = window((i) => tail[(i * 7) % tail.length]!);
    expect(same.counts[same.counts.length - 1]).toBe(0);
    expect(psiFromCategoricalSummary(profile, same).value).toBeLessThan(0.2);
  });

  it('keeps the one "other" bin (and the fingerprint) when nothing is beyond the cap', () => {
    const small = buildCategoricalProfile(['a', 'b', 'a']);
    expect(small.tail).toBeUndefined();
    expect(createSummary(small).addAll(['c']).counts).toEqual(Float64Array.from([0, 0, 1]));
  });
});
