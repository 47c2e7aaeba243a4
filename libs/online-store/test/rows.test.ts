import { DriftlineError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import {
  checkedProjection,
  DAMAGED_ROW,
  type DecodedRow,
  decodeProjectedRow,
  decodeStoredRow,
  parseStoredRow,
  ROW_EVENT_ID,
  ROW_TIME,
  rowProjection,
  withinTtl,
} from '../src/index.js';
import { contractViews } from './contract.js';

const profile = contractViews.get('profile')!;
const spend = contractViews.get('spend')!;

/** The features of a decoded row (undefined when absent or damaged). */
const featuresOf = (row: DecodedRow) => (row === DAMAGED_ROW ? undefined : row?.features);

describe('row decoding', () => {
  it('decodes a stored row (layout v2) with the view types, nulls for missing fields, undefined when absent', () => {
    const all = rowProjection(profile);
    expect(decodeStoredRow(all, {})).toBeUndefined();
    const stored = JSON.stringify({ [ROW_TIME]: '5', [ROW_EVENT_ID]: 'e', age: '1.25', premium: 'true' });
    expect(decodeStoredRow(all, parseStoredRow(stored)!)).toEqual({
      eventTime: 5,
      eventId: 'e',
      features: { age: 1.25, country: null, premium: true, score: null },
    });
    const only = checkedProjection(spend, ['amount_count_10m']);
    expect(featuresOf(decodeStoredRow(only, { _t: '5', _id: 'e', amount_count_10m: '3' }))).toEqual({
      amount_count_10m: 3,
    });
  });

  it("reads only the row's own string values, and refuses what is not a JSON object", () => {
    const only = checkedProjection(spend, ['amount', 'fee']);
    // A number where a string belongs reads as absent, never as a value; so does an inherited name.
    expect(featuresOf(decodeStoredRow(only, { _t: '1', amount: 3 }))).toEqual({ amount: null, fee: null });
    const inherited = { fields: ['_t', '_id', 'constructor'], names: ['constructor'], types: ['string' as const] };
    expect(featuresOf(decodeStoredRow(inherited, parseStoredRow('{"_t":"1"}')!))).toEqual({ constructor: null });
    for (const text of ['not json', '"a string"', '[1,2]', 'null', '5', ''])
      expect(parseStoredRow(text)).toBeUndefined();
    expect(parseStoredRow('{"_t":"1"}')).toEqual({ _t: '1' });
  });

  it('projects meta fields first, then the selection (a v1 HMGET), and refuses unknown fields', () => {
    const projection = checkedProjection(spend, ['fee', 'amount_sum_10m']);
    expect(projection.fields).toEqual([ROW_TIME, ROW_EVENT_ID, 'fee', 'amount_sum_10m']);
    expect(decodeProjectedRow(projection, ['7', 'x', null, '2.5'])).toEqual({
      eventTime: 7,
      eventId: 'x',
      features: { fee: null, amount_sum_10m: 2.5 },
    });
    expect(decodeProjectedRow(projection, [null, null, null, null])).toBeUndefined();
    expect(() => checkedProjection(spend, ['nope'])).toThrow(DriftlineError);
  });

  it('reads a row whose event time is not a number as damaged, in both layouts (it was found with a null event time)', () => {
    const all = rowProjection(profile);
    for (const t of ['abc', '', ' ', 'NaN', 'Infinity', '1e400']) {
      expect(decodeStoredRow(all, { _t: t, _id: 'e', age: '1' })).toBe(DAMAGED_ROW);
      expect(decodeProjectedRow(all, [t, 'e', '1', null, null, null])).toBe(DAMAGED_ROW);
    }
    // A JSON number where the write script stores a string.
    expect(decodeStoredRow(all, { _t: 5, _id: 'e' })).toBe(DAMAGED_ROW);
    expect(decodeStoredRow(all, { _t: '-5', _id: 'e' })).toMatchObject({ eventTime: -5 });
  });

  it("answers a row older than now − the view's TTL absent (a TTL shortened after the write), to the millisecond", () => {
    const row = { eventTime: 1_000, eventId: 'e', features: {} };
    const day = profile.ttlMs;
    expect(withinTtl(profile, row, 1_000 + day - 1)).toBe(row);
    expect(withinTtl(profile, row, 1_000 + day)).toBeUndefined();
    expect(withinTtl({ ...profile, ttlMs: 0 }, row, Number.MAX_SAFE_INTEGER)).toBe(row);
    expect(withinTtl(profile, undefined, 0)).toBeUndefined();
  });
});
