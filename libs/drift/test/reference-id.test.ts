import { atFloatWidth, buildNumericProfile, buildReferenceProfile } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import { referenceSet } from '../src/index.js';

describe('referenceSet id and float widths', () => {
  const values = [0.1, 0.2, 0.3, 0.7, 0.9].map((x) => atFloatWidth(Math.fround(x), 32));
  const color = buildReferenceProfile(['red', 'blue', 'red']);

  it('a set saved again with a float width is a new reference (the monitors reload on a new id only)', () => {
    const plain = referenceSet(
      'm',
      'v1',
      new Map([
        ['x', buildNumericProfile(values)],
        ['color', color],
      ]),
    );
    const f32 = referenceSet(
      'm',
      'v1',
      new Map([
        ['x', buildNumericProfile(values, { floatBits: 32 })],
        ['color', color],
      ]),
    );
    const f16 = referenceSet(
      'm',
      'v1',
      new Map([
        ['x', buildNumericProfile(values, { floatBits: 16 })],
        ['color', color],
      ]),
    );
    // The profiles' own ids are the same (older readers check them against the content)...
    expect(f32.profiles.map((p) => p.id)).toEqual(plain.profiles.map((p) => p.id));
    // ...the sets' are not.
    expect(new Set([plain.referenceId, f32.referenceId, f16.referenceId]).size).toBe(3);
  });

  it('keeps the id of a set without widths: the same content, the same id', () => {
    const a = referenceSet(
      'm',
      'v1',
      new Map([
        ['x', buildNumericProfile(values)],
        ['color', color],
      ]),
    );
    const b = referenceSet(
      'm',
      'v1',
      new Map([
        ['color', color],
        ['x', buildNumericProfile([...values].reverse())],
      ]),
    );
    expect(b.referenceId).toBe(a.referenceId);
  });
});
