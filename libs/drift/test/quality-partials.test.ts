import { PoisonRecordError } from '@driftline/core';
import type { ExpectationResult } from '@driftline/quality';
import { describe, expect, it } from 'vitest';
import { type AlertContext, dataQualityAlert, decodePartials, PARTIALS_FORMAT } from '../src/index.js';

const partial = (quality: unknown) =>
  Buffer.from(
    JSON.stringify({
      type: 'partial',
      format: PARTIALS_FORMAT,
      source: { topic: 't', partition: 0, partitions: 1 },
      model: 'm',
      version: 'v1',
      referenceId: 'r',
      windowStart: 0,
      windowEnd: 1000,
      events: 1,
      late: 0,
      summaries: {},
      ...(quality === undefined ? {} : { quality }),
    }),
  );

describe('the quality section of a partial', () => {
  it('is optional and kept as sent', () => {
    const decoded = decodePartials(partial(undefined));
    expect(decoded.type === 'partial' && decoded.quality).toBe(undefined);
    const section = { id: 'abc', features: { x: { events: 1 } } };
    const withQuality = decodePartials(partial(section));
    expect(withQuality.type === 'partial' && withQuality.quality).toEqual(section);
  });

  it('is poison when malformed, naming the field', () => {
    for (const [bad, field] of [
      [[], 'quality must be an object'],
      [{ id: 1, features: {} }, 'quality.id must be a string'],
      [{ id: 'a', features: [] }, 'quality.features must be an object'],
      [{ id: 'a', features: { x: 3 } }, 'quality.features.x must be an object'],
    ] as const) {
      expect(() => decodePartials(partial(bad))).toThrow(PoisonRecordError);
      expect(() => decodePartials(partial(bad))).toThrow(field);
    }
  });
});

describe('DATA_QUALITY alerts', () => {
  const ctx: AlertContext = {
    model: 'm',
    version: 'v1',
    referenceId: 'r',
    windowStart: 60_000,
    windowEnd: 120_000,
    events: 10,
    lateEvents: 0,
  };
  const result = (feature: string, expectation: ExpectationResult['expectation'], observed: number, bound: number) => ({
    feature,
    expectation,
    observed,
    bound,
    passed: observed <= bound,
    count: 10,
    detail: '{}',
  });

  const opts = { minEvents: 10 };

  it('one per window with a failure, deterministic, none when everything passed', () => {
    expect(dataQualityAlert(ctx, [result('x', 'null_rate', 0, 0.1)], opts)).toBeUndefined();
    const rows = [result('x', 'null_rate', 0.5, 0.1), result('x', 'range', 0.2, 0), result('y', 'type', 0, 0)];
    const a = dataQualityAlert(ctx, rows, opts)!;
    expect(a).toMatchObject({
      kind: 'DATA_QUALITY',
      feature: 'x',
      method: 'null_rate',
      statistic: 0.5,
      threshold: 0.1,
      event_time: 120_000,
    });
    expect(JSON.parse(a.evidence)).toMatchObject({ expectations: 3, failed_count: 2 });
    expect(dataQualityAlert(ctx, rows, opts)).toEqual(a);
    expect(dataQualityAlert({ ...ctx, windowStart: 0 }, rows, opts)!.alert_id).not.toBe(a.alert_id);
    expect(dataQualityAlert(ctx, [...rows, result('y', 'range', 1, 0)], opts)!.feature).toBeNull();
  });

  it('declared expectations alert only in a window of at least minEvents events (found by a review)', () => {
    // One event with a null against max_null_rate 0.05 had raised a DATA_QUALITY alert (events: 1),
    // which also holds retraining.
    const one = { ...ctx, events: 1 };
    const nulls = [{ ...result('age', 'null_rate', 1, 0.05), count: 1 }];
    expect(dataQualityAlert(one, nulls, { minEvents: 30 })).toBeUndefined();
    expect(dataQualityAlert({ ...ctx, events: 29 }, nulls, { minEvents: 30 })).toBeUndefined();
    expect(dataQualityAlert({ ...ctx, events: 30 }, nulls, { minEvents: 30 })).toMatchObject({
      kind: 'DATA_QUALITY',
      feature: 'age',
      method: 'null_rate',
    });
  });
});
