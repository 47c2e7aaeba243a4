import { ConfigError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { expectationsOf, freshnessSpecs, parseFeatureViewsText } from '../src/index.js';

const yaml = `
views:
  - name: user_profile
    entity: user_id
    freshness: { max_lag: 15m }
    features:
      age:
        type: double
        expect: { max_null_rate: 0.05, range: { min: 0, max: 130, max_share_outside: 0.01 } }
      country:
        type: string
        expect: { categories: { allowed: [US, DE, FR] }, max_cardinality: 300 }
      premium: boolean
`;

function problem(text: string): string {
  try {
    parseFeatureViewsText(text);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('expectations beside the feature views', () => {
  it('parses expect blocks and freshness, with defaults', () => {
    const views = parseFeatureViewsText(yaml);
    const set = expectationsOf(views);
    expect(set.features.map((f) => f.feature)).toEqual(['age', 'country']);
    expect(set.features[0]).toEqual({
      feature: 'age',
      type: 'double',
      maxTypeMismatch: 0,
      maxNullRate: 0.05,
      range: { min: 0, max: 130, maxShareOutside: 0.01 },
    });
    expect(set.features[1]).toMatchObject({
      categories: { allowed: ['DE', 'FR', 'US'], maxShareUnseen: 0 },
      maxCardinality: 300,
    });
    expect(freshnessSpecs(views)).toEqual([{ view: 'user_profile', maxLagMs: 15 * 60_000 }]);
  });

  it('names the field of every problem', () => {
    expect(problem(yaml.replace('max_null_rate: 0.05', 'max_null_rate: 5'))).toBe(
      'views[0].features.age.expect.max_null_rate: must be a share from 0 to 1',
    );
    expect(problem(yaml.replace('max_null_rate: 0.05', 'max_nulls: 0.05'))).toMatch(
      /^views\[0\]\.features\.age\.expect: Unrecognized key: "max_nulls"/,
    );
    expect(problem(yaml.replace('premium: boolean', 'premium: { type: boolean, expect: { range: { min: 0 } } }'))).toBe(
      'views[0].features.premium.expect.range: only double features have a range; this one is boolean',
    );
    expect(problem(yaml.replace('max_lag: 15m', 'max_lag: soon'))).toMatch(/^views\[0\]\.freshness\.max_lag: /);
    expect(problem(yaml.replace('max_lag: 15m', 'max_lag: 100d'))).toBe(
      'views[0].freshness.max_lag: must be between 1ms and 90d',
    );
  });

  it('refuses two views declaring different expectations for one feature name', () => {
    const two = `${yaml}
  - name: other
    entity: user_id
    features:
      age: { type: double, expect: { max_null_rate: 0.5 } }
`;
    expect(() => expectationsOf(parseFeatureViewsText(two))).toThrow(
      'views[1].features.age.expect: another view declares different expectations for this feature',
    );
  });
});
