import { ConfigError } from '@driftline/core';
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import {
  atFloatWidth,
  buildNumericProfile,
  createSummary,
  f16round,
  GridIndex,
  ksFromSummary,
  type NarrowFloatBits,
  type NumericReferenceProfile,
  parseReferenceProfile,
  profileGrid,
  psiFromSummary,
} from '../src/index.js';

const round = (x: number, bits: NarrowFloatBits) => (bits === 32 ? Math.fround(x) : f16round(x));

/** Reference values of a width, at its shortest digits (what `driftline reference` profiles). */
function referenceAt(bits: NarrowFloatBits, values: readonly number[]): number[] {
  return values.map((x) => atFloatWidth(round(x, bits), bits));
}

/** The slot a value narrowed first lands in: the definition ProfileGrid must agree with. */
function narrowedSlot(profile: NumericReferenceProfile, bits: NarrowFloatBits, x: number): number {
  return new GridIndex(Float64Array.from(profile.cuts)).slot(atFloatWidth(x, bits));
}

describe('ProfileGrid: live values read at the reference’s float width', () => {
  for (const bits of [32, 16] as const) {
    for (const shape of ['discrete', 'continuous'] as const) {
      it(`slots every spelling of a value as its narrowed value would (float${bits}, ${shape})`, () => {
        const rng = new SeededRandom(bits * 7 + (shape === 'discrete' ? 1 : 2));
        const raw = Array.from({ length: 4_000 }, () =>
          shape === 'discrete' ? rng.int(40) / 10 - 1 : rng.normal() * (bits === 16 ? 30 : 1e3),
        );
        const profile = buildNumericProfile(referenceAt(bits, raw), { floatBits: bits, fineBins: 200 });
        const grid = profileGrid(profile);
        // The cuts themselves and their neighbours, the reference values in every spelling, random
        // doubles, beyond the width's range, zeros of both signs, infinities.
        const probes: number[] = [0, -0, 1e39, -1e39, 65_520, -70_000, Number.MAX_VALUE, Number.POSITIVE_INFINITY];
        for (const c of profile.cuts) probes.push(c, round(c, bits), c * (1 + 1e-9), c * (1 - 1e-9));
        for (let i = 0; i < 2_000; i++) {
          const x = raw[rng.int(raw.length)]!;
          probes.push(x, round(x, bits), atFloatWidth(x, bits), x + rng.normal() * 1e-3);
        }
        const wrong = probes
          .map((x) => ({ x, got: grid.slot(x), want: narrowedSlot(profile, bits, x) }))
          .filter((p) => p.got !== p.want);
        expect(wrong).toEqual([]);
      });
    }
  }

  it('a widened float32 (numpy’s tolist()) is no drift against its float32 reference; without the width it was', () => {
    const rng = new SeededRandom(5);
    // A discrete float32 feature (a rating 0.1 … 0.9): every value is a cut.
    const float32Data = Array.from({ length: 5_000 }, () => Math.fround((1 + rng.int(9)) / 10));
    const reference = referenceAt(32, float32Data);
    const widened = float32Data; // what a float32 array's tolist() sends: the exact float32 values
    expect(widened.some((x, i) => x !== reference[i])).toBe(true);
    const marked = buildNumericProfile(reference, { floatBits: 32 });
    const unmarked = buildNumericProfile(reference);
    const live = createSummary(marked).addAll(widened);
    expect(psiFromSummary(marked, live).value).toBe(0);
    expect(ksFromSummary(marked, live).statistic).toBe(0);
    expect(live.min).toBe(Math.min(...reference));
    expect(live.max).toBe(Math.max(...reference));
    expect(live.belowMin + live.aboveMax).toBe(0);
    // The same reference read without its width: the widened values fall beside every cut.
    const before = createSummary(unmarked).addAll(widened);
    const ks = ksFromSummary(unmarked, before);
    expect(ks.statistic).toBeGreaterThan(0.1);
    expect(ks.pValue).toBeLessThan(1e-9);
    // The shortest digits and the widened values are one number: the same counts and sum.
    const digits = createSummary(marked).addAll(reference);
    expect(Array.from(digits.counts)).toEqual(Array.from(live.counts));
    expect(digits.mean()).toBe(live.mean());
  });

  it('leaves a profile without a width as it was: values as they are', () => {
    const profile = buildNumericProfile([...Array(10).fill(0.1), ...Array(10).fill(0.2)]);
    expect(profile.floatBits).toBeUndefined();
    const grid = profileGrid(profile);
    expect(profile.cuts[0]).toBe(0.1);
    expect(grid.slot(0.1)).toBe(1);
    expect(grid.slot(Math.fround(0.1))).toBe(2);
  });
});

describe('floatBits in a stored profile', () => {
  it('round-trips, keeps the id a profile without it has, and refuses another width naming the field', () => {
    const values = referenceAt(32, [0.1, 0.2, 0.3, 0.7, 1.9]);
    const marked = buildNumericProfile(values, { floatBits: 32 });
    const plain = buildNumericProfile(values);
    expect(marked.id).toBe(plain.id);
    const stored = JSON.parse(JSON.stringify(marked)) as Record<string, unknown>;
    expect(parseReferenceProfile(stored)).toEqual(marked);
    // A reader before floatBits read the same JSON: the parse without it is the plain profile.
    const { floatBits: _, ...older } = stored;
    expect(parseReferenceProfile(older)).toEqual(plain);
    expect(() => parseReferenceProfile({ ...stored, floatBits: 64 })).toThrow(ConfigError);
    expect(() => parseReferenceProfile({ ...stored, floatBits: 64 })).toThrow(/profile\.floatBits/);
  });
});
