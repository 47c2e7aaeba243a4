import { PoisonRecordError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import {
  buildCategoricalProfile,
  buildNumericProfile,
  createSummary,
  type NumericSummary,
  type SummaryJson,
  summaryFromJSON,
} from '../src/index.js';

/**
 * A summary read back from the partials topic must hold what a summary can hold: counters that are
 * non-negative integers adding up to its count. Found by fuzzing the drift merge stage: a partial
 * whose count was NaN made every statistic of the feature NaN (the rows were dropped: the feature
 * silently left the monitoring), a negative slot count made KS 25.2 and a count of -5 wrote
 * current_size -5.
 */

const numeric = buildNumericProfile(
  Array.from({ length: 500 }, (_, i) => (i * 7919) % 1000),
  { bins: 10, fineBins: 50 },
);
const categorical = buildCategoricalProfile(['fr', 'fr', 'de', 'us']);
const numericJson = createSummary(numeric).addAll([1, 5, 500, 999, null, Number.POSITIVE_INFINITY]).toJSON();
const categoricalJson = createSummary(categorical).addAll(['fr', 'it', null]).toJSON();

/** `json` re-encoded as f64 with the 8-byte scalar `slot` (or the count `countIndex`) set to `value`. */
function withDouble(json: SummaryJson, scalars: number, at: { scalar: number } | { count: number }, value: number) {
  const bytes = Buffer.from(json.data, 'base64');
  const counts = json.encoding === 'u32' ? (bytes.length - scalars * 8) / 4 : (bytes.length - scalars * 8) / 8;
  const out = Buffer.alloc(scalars * 8 + counts * 8);
  bytes.copy(out, 0, 0, scalars * 8);
  for (let i = 0; i < counts; i++) {
    const c =
      json.encoding === 'u32' ? bytes.readUInt32LE(scalars * 8 + i * 4) : bytes.readDoubleLE(scalars * 8 + i * 8);
    out.writeDoubleLE(c, scalars * 8 + i * 8);
  }
  const offset = 'scalar' in at ? at.scalar * 8 : scalars * 8 + at.count * 8;
  out.writeDoubleLE(value, offset);
  return { ...json, encoding: 'f64' as const, data: out.toString('base64') };
}

const NUMERIC_SCALARS = 7 + 68;

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PoisonRecordError);
    expect(error).toMatchObject({ code: 'DECODE_FAILED' });
    return (error as Error).message;
  }
  throw new Error('a corrupt summary was accepted');
}

describe('summaryFromJSON refuses counters no summary can hold', () => {
  it('still reads what toJSON wrote, u32 and f64', () => {
    expect(summaryFromJSON(numericJson, numeric).toJSON()).toEqual(numericJson);
    expect(summaryFromJSON(categoricalJson, categorical).toJSON()).toEqual(categoricalJson);
    const f64 = withDouble(numericJson, NUMERIC_SCALARS, { scalar: 6 }, 999);
    expect((summaryFromJSON(f64, numeric) as NumericSummary).max).toBe(999);
  });

  it('numeric: NaN, negative or fractional scalars and counts, counts that do not add up, a NaN min', () => {
    const cases: Array<[{ scalar: number } | { count: number }, number, RegExp]> = [
      [{ scalar: 0 }, Number.NaN, /count must be a non-negative integer/],
      [{ scalar: 0 }, -5, /count must be a non-negative integer/],
      [{ scalar: 1 }, 0.5, /missing must be a non-negative integer/],
      [{ scalar: 3 }, Number.POSITIVE_INFINITY, /belowMin must be a non-negative integer/],
      [{ scalar: 5 }, Number.NaN, /min and max must be numbers/],
      [{ scalar: 7 + 3 }, Number.NaN, /sum limbs must be integers/],
      [{ count: 10 }, Number.NaN, /counts must be non-negative integers/],
      [{ count: 10 }, -100, /counts must be non-negative integers/],
      [{ count: 10 }, 1e308, /counts must be non-negative integers/],
      [{ count: 10 }, 7, /counts add up to 11, not the count 4/],
    ];
    for (const [at, value, message] of cases) {
      expect(refusal(() => summaryFromJSON(withDouble(numericJson, NUMERIC_SCALARS, at, value), numeric))).toMatch(
        message,
      );
    }
  });

  it('categorical: a NaN count, a negative counter, counters that do not add up', () => {
    expect(
      refusal(() => summaryFromJSON(withDouble(categoricalJson, 2, { scalar: 0 }, Number.NaN), categorical)),
    ).toMatch(/count must be a non-negative integer/);
    expect(refusal(() => summaryFromJSON(withDouble(categoricalJson, 2, { count: 0 }, -1), categorical))).toMatch(
      /counts must be non-negative integers/,
    );
    expect(refusal(() => summaryFromJSON(withDouble(categoricalJson, 2, { count: 1 }, 5), categorical))).toMatch(
      /counts add up to 7, not the count 2/,
    );
  });
});
