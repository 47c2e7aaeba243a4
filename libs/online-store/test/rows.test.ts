import { DriftlineError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { checkedProjection, decodeProjectedRow, decodeRow, ROW_EVENT_ID, ROW_TIME } from '../src/index.js';
import { contractViews } from './contract.js';

const profile = contractViews.get('profile')!;
const spend = contractViews.get('spend')!;

describe('row decoding (layout v1)', () => {
  it('decodes a stored hash with the view types, nulls for missing fields, undefined when absent', () => {
    expect(decodeRow(profile, {})).toBeUndefined();
    expect(decodeRow(profile, { [ROW_TIME]: '5', [ROW_EVENT_ID]: 'e', age: '1.25', premium: 'true' })).toEqual({
      eventTime: 5,
      eventId: 'e',
      features: { age: 1.25, country: null, premium: true, score: null },
    });
    expect(decodeRow(spend, { _t: '5', _id: 'e', amount_count_10m: '3' }, ['amount_count_10m'])?.features).toEqual({
      amount_count_10m: 3,
    });
  });

  it('projects meta fields first, then the selection, and refuses unknown fields', () => {
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
});
