import { readFileSync } from 'node:fs';
import { parseFeatureViewsText } from '@driftline/features';
import { seededUniform } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import {
  awaitsRelease,
  breaches,
  DEFAULT_TOLERANCE,
  emptyCounts,
  FUTURE_SLACK_MS,
  featureSources,
  foldPredictions,
  groupId,
  indexRows,
  isSampled,
  mergeInto,
  observe,
  planReads,
  RELEASE_OVERLAP_MS,
  releaseCatchUpMs,
  releaseMarginMs,
  releaseRange,
  resendKey,
  type SampledPrediction,
  type SkewCounts,
  STALENESS_BOUNDS_MS,
  STALENESS_BUCKETS,
  type StoredRow,
  sameValue,
  samplingKey,
  skewAlert,
  skewAlertId,
  skewAlertTime,
  stalenessBucket,
  stalenessQuantile,
  summarize,
} from '../src/index.js';

const views = parseFeatureViewsText(`
views:
  - name: profile
    entity: user_id
    features: { age: double, country: string, premium: boolean }
  - name: spend
    entity: user_id
    features: { amount: double }
    aggregates:
      - { feature: amount, function: sum, window: 1h }
  - name: other
    entity: user_id
    features: { premium: boolean, tenure: double }
`);

describe('staleness histogram', () => {
  it('puts a value in the first bucket whose bound is at least it, overflow above the last', () => {
    expect(stalenessBucket(0)).toBe(0);
    expect(stalenessBucket(10)).toBe(0);
    expect(stalenessBucket(11)).toBe(1);
    expect(stalenessBucket(1000)).toBe(STALENESS_BOUNDS_MS.indexOf(1000));
    expect(stalenessBucket(1001)).toBe(STALENESS_BOUNDS_MS.indexOf(2000));
    expect(stalenessBucket(1e12)).toBe(STALENESS_BUCKETS - 1);
    // Against a linear scan (the binary search is the thing under test).
    const r = seededUniform(3);
    for (let i = 0; i < 2000; i++) {
      const v = Math.floor(10 ** (r() * 11));
      const linear = STALENESS_BOUNDS_MS.findIndex((b) => b >= v);
      expect(stalenessBucket(v)).toBe(linear === -1 ? STALENESS_BUCKETS - 1 : linear);
    }
  });

  it('reads a quantile as the upper bound of the bucket holding the exact quantile', () => {
    const r = seededUniform(7);
    const values = Array.from({ length: 5000 }, () => Math.floor(10 ** (r() * 8)));
    const hist = new Array<number>(STALENESS_BUCKETS).fill(0);
    for (const v of values) hist[stalenessBucket(v)]!++;
    const sorted = [...values].sort((a, b) => a - b);
    for (const q of [0.5, 0.9, 0.99]) {
      const exact = sorted[Math.ceil(q * sorted.length) - 1]!; // nearest-rank quantile
      expect(stalenessQuantile(hist, q)).toBe(STALENESS_BOUNDS_MS[stalenessBucket(exact)]);
      expect(stalenessQuantile(hist, q)!).toBeGreaterThanOrEqual(exact);
      expect(stalenessQuantile(hist, q)!).toBeLessThanOrEqual(exact * 2.5 + 10);
    }
    expect(stalenessQuantile(new Array<number>(STALENESS_BUCKETS).fill(0), 0.5)).toBeNull();
  });

  it('is documented as it is: bound count, bucket count and last bound (found by a review)', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const source = readFileSync(new URL('../src/counts.ts', import.meta.url), 'utf8');
    const last = STALENESS_BOUNDS_MS[STALENESS_BOUNDS_MS.length - 1]!;
    expect(STALENESS_BUCKETS).toBe(STALENESS_BOUNDS_MS.length + 1);
    for (const text of [readme, source]) {
      const stated = [...text.matchAll(/STALENESS_BUCKETS`? = (\d+)/g)].map((m) => Number(m[1]));
      expect(stated.length).toBeGreaterThan(0);
      for (const n of stated) expect(n).toBe(STALENESS_BUCKETS);
      expect(text).toContain(`${STALENESS_BOUNDS_MS.length} bounds`);
      expect(text).toContain(`10^${Math.log10(last)} ms (~${Math.round(last / 86_400_000)} days)`);
    }
  });
});

describe('comparison of one value', () => {
  const at = (eventTime: number, value: number | string | boolean | null) => ({ eventTime, value });

  it('counts every outcome apart', () => {
    const c = emptyCounts();
    observe(c, 1.5, at(900, 1.5), 1000, DEFAULT_TOLERANCE); // equal
    observe(c, 150, at(900, 1.5), 1000, DEFAULT_TOLERANCE); // unit change
    observe(c, 'fr', at(900, 'de'), 1000, DEFAULT_TOLERANCE); // string differs
    observe(c, true, at(900, true), 1000, DEFAULT_TOLERANCE); // bool equal
    observe(c, null, at(900, 2), 1000, DEFAULT_TOLERANCE); // missing in prediction
    observe(c, 3, at(900, null), 1000, DEFAULT_TOLERANCE); // missing in the row
    observe(c, null, at(900, null), 1000, DEFAULT_TOLERANCE); // both missing: agree
    observe(c, 4, undefined, 1000, DEFAULT_TOLERANCE); // no row at all
    observe(c, 4, at(1001, 5), 1000, DEFAULT_TOLERANCE); // row newer than the prediction
    expect(c).toMatchObject({
      sampled: 9,
      compared: 7,
      mismatched: 4,
      numericCompared: 2,
      absDiffSum: 148.5,
      missingInStore: 2,
      missingInPrediction: 1,
      newerRow: 1,
    });
    expect(c.stalenessHist[stalenessBucket(100)]).toBe(7);
    expect(summarize(c)).toMatchObject({ shareMismatched: 4 / 7, meanAbsDiff: 148.5 / 2, stalenessP50Ms: 100 });
  });

  it('saturates the sum of differences at the largest double: huge sums never make it Infinity (found by a review)', () => {
    const c = emptyCounts();
    observe(c, 3.4e38, at(900, -3.4e38), 1000, DEFAULT_TOLERANCE); // the largest difference of float32 values
    expect(c.absDiffSum).toBe(6.8e38);
    c.absDiffSum = 1.7e308; // as merged with sums read back from skew_windows
    expect(mergeInto(c, c).absDiffSum).toBe(Number.MAX_VALUE);
    expect(JSON.stringify(summarize(c).meanAbsDiff)).not.toBe('null');
  });

  it('reads NaN as missing on either side, and ±Infinity as a value equal only to itself (found by a review)', () => {
    const nan = emptyCounts();
    observe(nan, Number.NaN, at(900, 2), 1000, DEFAULT_TOLERANCE); // served NaN, row has a value
    observe(nan, Number.NaN, at(900, null), 1000, DEFAULT_TOLERANCE); // both missing: agree
    observe(nan, 3, at(900, Number.NaN), 1000, DEFAULT_TOLERANCE); // a NaN row from another writer
    const asNull = emptyCounts();
    observe(asNull, null, at(900, 2), 1000, DEFAULT_TOLERANCE);
    observe(asNull, null, at(900, null), 1000, DEFAULT_TOLERANCE);
    observe(asNull, 3, at(900, null), 1000, DEFAULT_TOLERANCE);
    expect(nan).toEqual(asNull);
    expect(nan).toMatchObject({ compared: 3, mismatched: 2, missingInPrediction: 1, missingInStore: 1, absDiffSum: 0 });

    const inf = emptyCounts();
    observe(inf, Number.POSITIVE_INFINITY, at(900, 5), 1000, DEFAULT_TOLERANCE); // relative · ∞ called this equal
    observe(inf, Number.NEGATIVE_INFINITY, at(900, null), 1000, DEFAULT_TOLERANCE);
    expect(inf).toMatchObject({ compared: 2, mismatched: 2, missingInStore: 1, numericCompared: 0, absDiffSum: 0 });
    expect(sameValue(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY, DEFAULT_TOLERANCE)).toEqual({ equal: true });
    expect(sameValue(Number.POSITIVE_INFINITY, 1e308, DEFAULT_TOLERANCE)).toEqual({ equal: false });
    expect(Number.isFinite(summarize(inf).stalenessP50Ms)).toBe(true);
  });

  it('reads a finite number float32 rounds to ±Infinity as missing on either side, as the scorer, the trainer and the model-server log do (found by a review)', () => {
    // The model-server logs a stored -1e300 as null; the row still holds -1e300: they agree.
    const c = emptyCounts();
    observe(c, null, { eventTime: 1, value: -1e300 }, 1000, DEFAULT_TOLERANCE);
    expect(c).toMatchObject({ compared: 1, mismatched: 0, missingInPrediction: 0, missingInStore: 0 });
    // Numbers float32 holds are values: 3.4e38 (and float32's largest) compared as before.
    const inRange = emptyCounts();
    observe(inRange, 3.4e38, at(900, 3.4e38), 1000, DEFAULT_TOLERANCE);
    observe(inRange, -3.4028235677973362e38, at(900, -3.4028235677973362e38), 1000, DEFAULT_TOLERANCE);
    observe(inRange, 3.4e38, at(900, 3.3e38), 1000, DEFAULT_TOLERANCE);
    expect(inRange).toMatchObject({ compared: 3, mismatched: 1, numericCompared: 3, missingInPrediction: 0 });
    // From halfway between float32's largest and 2^128: missing, as null is.
    const beyond = emptyCounts();
    observe(beyond, 3.4028235677973366e38, at(900, 1e300), 1000, DEFAULT_TOLERANCE); // both missing: agree
    observe(beyond, -1e308, at(900, -1e308), 1000, DEFAULT_TOLERANCE); // a categorical number, logged as sent: agree
    observe(beyond, 1e300, at(900, 5), 1000, DEFAULT_TOLERANCE); // the model saw missing
    observe(beyond, 5, at(900, -1e300), 1000, DEFAULT_TOLERANCE); // the row says missing
    expect(beyond).toMatchObject({
      compared: 4,
      mismatched: 2,
      missingInPrediction: 1,
      missingInStore: 1,
      numericCompared: 0,
      absDiffSum: 0,
    });
    expect(Number.isFinite(summarize(beyond).stalenessP50Ms)).toBe(true);
  });

  it('applies the tolerance as math.isclose does', () => {
    const tol = { relative: 1e-6, absolute: 1e-3 };
    expect(sameValue(1_000_000, 1_000_000.5, tol).equal).toBe(true); // relative
    expect(sameValue(0, 0.0009, tol).equal).toBe(true); // absolute
    expect(sameValue(0, 0.0011, tol).equal).toBe(false);
    expect(sameValue(1, 1 + 1e-12, DEFAULT_TOLERANCE).equal).toBe(true);
    expect(sameValue(0.1 + 0.2, 0.3, { relative: 0, absolute: 0 }).equal).toBe(false);
    expect(sameValue(1, '1', DEFAULT_TOLERANCE).equal).toBe(false); // a type change is a mismatch
  });
});

describe('sampling', () => {
  it('is a function of the id, close to the rate, and monotone in the rate', () => {
    const ids = Array.from({ length: 50_000 }, (_, i) => `pred-${i}`);
    const at10 = ids.filter((id) => isSampled(id, 0.1));
    expect(at10.length / ids.length).toBeGreaterThan(0.095);
    expect(at10.length / ids.length).toBeLessThan(0.105);
    expect(ids.filter((id) => isSampled(id, 0.1))).toEqual(at10);
    for (const id of at10) expect(isSampled(id, 0.3)).toBe(true);
    expect(ids.every((id) => isSampled(id, 1))).toBe(true);
    expect(ids.some((id) => isSampled(id, 0))).toBe(false);
  });

  it('samples predictions without an id by model, entity and event time, not all or none (found by a review)', () => {
    const keys = Array.from({ length: 20_000 }, (_, i) =>
      samplingKey('', 'fraud', `u${i % 100}`, 1_700_000_000_000 + i),
    );
    const share = keys.filter((k) => isSampled(k, 0.05)).length / keys.length;
    expect(share).toBeGreaterThan(0.045);
    expect(share).toBeLessThan(0.055);
    expect(samplingKey('', 'fraud', 'u1', 1)).toBe(samplingKey('', 'fraud', 'u1', 1));
    expect(samplingKey('', 'fraud', 'u1', 1)).not.toBe(samplingKey('', 'fraud', 'u1', 2));
  });

  it('samples predictions sharing one non-empty id (a producer bug) at the rate too, not all or none', () => {
    for (const id of ['x', 'request', '0']) {
      const keys = Array.from({ length: 20_000 }, (_, i) =>
        samplingKey(id, 'fraud', `u${i % 97}`, 1_700_000_000_000 + i),
      );
      const share = keys.filter((k) => isSampled(k, 0.05)).length / keys.length;
      expect(share).toBeGreaterThan(0.045);
      expect(share).toBeLessThan(0.055);
    }
    // Distinct ids of the same entity and time are sampled apart.
    expect(samplingKey('a', 'fraud', 'u1', 1)).not.toBe(samplingKey('b', 'fraud', 'u1', 1));
  });

  it('knows a re-send by its id, entity and features: predictions merely sharing an id are apart (found by a review)', () => {
    const g = groupId({ model: 'fraud', version: 'v1', windowStart: 0 });
    const key = (id: string, entity: string, features: Record<string, string | number | boolean | null>) =>
      resendKey(g, id, entity, features);
    expect(key('0', 'u1', { a: 1, b: 'x' })).toBe(key('0', 'u1', { a: 1, b: 'x' }));
    const apart = [
      key('0', 'u1', { a: 1, b: 'x' }),
      key('0', 'u2', { a: 1, b: 'x' }),
      key('0', 'u1', { a: 2, b: 'x' }),
      key('0', 'u1', { a: '1', b: 'x' }), // types apart
      key('0', 'u1', { a: null, b: 'x' }),
      key('0', 'u1', { a: Number.NaN, b: 'x' }), // NaN is not null here (JSON would write both null)
      key('0', 'u1', { a: 1 }),
      key('1', 'u1', { a: 1, b: 'x' }),
      key('0u', '1', { a: 1, b: 'x' }), // id and entity cannot run together
      resendKey(groupId({ model: 'fraud', version: 'v2', windowStart: 0 }), '0', 'u1', { a: 1, b: 'x' }),
    ];
    expect(new Set(apart).size).toBe(apart.length);
  });
});

describe('a batch', () => {
  const sources = featureSources(views);

  it('maps features and aggregates to their one view, leaving ambiguous names out', () => {
    expect(sources.get('age')?.name).toBe('profile');
    expect(sources.get('amount_sum_1h')?.name).toBe('spend');
    expect(sources.get('premium')).toBeUndefined();
    expect([...sources.ambiguous]).toEqual(['premium']);
    expect(sources.get('request_only')).toBeUndefined();
  });

  it('plans one read per view, projected to the carried features, each entity once', () => {
    const preds: SampledPrediction[] = [
      { model: 'm', version: 'v', entity: 'u1', eventTime: 1, features: { age: 1, amount: 2, x: 3 } },
      { model: 'm', version: 'v', entity: 'u1', eventTime: 2, features: { age: 1 } },
      { model: 'm', version: 'v', entity: 'u2', eventTime: 3, features: { country: 'fr', premium: true } },
    ];
    const reads = planReads(preds, sources);
    expect(reads.map((r) => [r.view.name, r.entities, r.features])).toEqual([
      ['profile', ['u1', 'u2'], ['age', 'country']],
      ['spend', ['u1'], ['amount']],
    ]);
  });

  it("returns, per view, the values whose row is dated after both the prediction and the read's end (a producer's clock ahead; found by a review)", () => {
    // The read ran from 1,000 to 1,200.
    const rows = new Map<string, StoredRow>([
      ['profile/u1', { eventTime: 3_500, features: { age: 30, country: 'fr' } }], // 2,300 ms after the read
      ['profile/u2', { eventTime: 900, features: { age: 30, country: 'fr' } }], // after the prediction only
      // Written during the read, by an honest clock: counted ahead of the read's start before (a review).
      ['spend/u1', { eventTime: 1_150, features: { amount: 5 } }],
    ]);
    const preds: SampledPrediction[] = [
      { model: 'm', version: 'v', entity: 'u1', eventTime: 500, features: { age: 30, country: 'fr', amount: 5 } },
      { model: 'm', version: 'v', entity: 'u2', eventTime: 500, features: { age: 30 } },
    ];
    const reads = planReads(preds, sources);
    const rowOf = indexRows(
      reads,
      reads.map((r) => r.entities.map((e) => rows.get(`${r.view.name}/${e}`))),
    );
    const counts = new Map<string, SkewCounts>();
    const countsOf = (_k: unknown, f: string) => {
      const c = counts.get(f) ?? emptyCounts();
      counts.set(f, c);
      return c;
    };
    const future = foldPredictions(preds, sources, rowOf, 60_000, DEFAULT_TOLERANCE, countsOf, 1_000, 1_200);
    expect([...future]).toEqual([['profile', { values: 2, aheadMs: 2_300 }]]);
    // Counted newer_row as any row dated after the prediction: not compared.
    expect(counts.get('age')).toMatchObject({ sampled: 2, newerRow: 2, compared: 0 });
    expect(counts.get('amount')).toMatchObject({ sampled: 1, newerRow: 1, compared: 0 });
    // Within FUTURE_SLACK_MS of the read's end (hosts' clocks differ a little): not ahead.
    expect(FUTURE_SLACK_MS).toBe(1_000);
    const nearEnd = foldPredictions(preds, sources, rowOf, 60_000, DEFAULT_TOLERANCE, countsOf, 1_000, 2_600);
    expect(nearEnd.size).toBe(0);
    // Without the read time, none is told apart.
    expect(foldPredictions(preds, sources, rowOf, 60_000, DEFAULT_TOLERANCE, countsOf).size).toBe(0);
  });

  /** The reference: every (prediction, feature) counted directly, without the library's fold. */
  function reference(preds: readonly SampledPrediction[], rows: Map<string, StoredRow>, windowMs: number) {
    const out = new Map<string, Record<string, number>>();
    for (const p of preds) {
      for (const [name, served] of Object.entries(p.features)) {
        const view = sources.get(name);
        if (view === undefined) continue;
        const key = `${groupId({ model: p.model, version: p.version, windowStart: Math.floor(p.eventTime / windowMs) * windowMs })}/${name}`;
        const c = out.get(key) ?? { sampled: 0, compared: 0, mismatched: 0, newer: 0, absent: 0, diff: 0 };
        out.set(key, c);
        c.sampled!++;
        const row = rows.get(`${view.name}/${p.entity}`);
        if (row === undefined) c.absent!++;
        else if (row.eventTime > p.eventTime) c.newer!++;
        else {
          c.compared!++;
          const stored = row.features[name] ?? null;
          if (served !== stored) c.mismatched!++;
          if (typeof served === 'number' && typeof stored === 'number') c.diff! += Math.abs(served - stored);
        }
      }
    }
    return out;
  }

  it('folds predictions into per-window counts that merge exactly across partitions', () => {
    const r = seededUniform(11);
    const rows = new Map<string, StoredRow>();
    for (let e = 0; e < 40; e++) {
      if (r() < 0.1) continue; // some entities have no row
      rows.set(`profile/u${e}`, {
        eventTime: Math.floor(r() * 20_000),
        features: { age: Math.floor(r() * 80), country: r() < 0.5 ? 'fr' : 'de' },
      });
      rows.set(`spend/u${e}`, {
        eventTime: Math.floor(r() * 20_000),
        features: { amount: Math.round(r() * 1e4) / 100 },
      });
    }
    const preds: SampledPrediction[] = Array.from({ length: 600 }, () => {
      const e = Math.floor(r() * 40);
      const profile = rows.get(`profile/u${e}`);
      const spend = rows.get(`spend/u${e}`);
      const amount = (spend?.features.amount as number | undefined) ?? 1;
      return {
        model: r() < 0.5 ? 'a' : 'b',
        version: 'v1',
        entity: `u${e}`,
        eventTime: Math.floor(r() * 30_000),
        features: {
          age: r() < 0.9 ? ((profile?.features.age as number | undefined) ?? 0) : 999,
          country: (profile?.features.country as string | undefined) ?? 'fr',
          amount: r() < 0.3 ? amount * 100 : amount, // a unit change on 30 %
          request_only: 1,
        },
      };
    });
    const windowMs = 10_000;
    const rowOf = (view: { name: string }, entity: string) => rows.get(`${view.name}/${entity}`);
    const fold = (part: readonly SampledPrediction[]) => {
      const out = new Map<string, SkewCounts>();
      foldPredictions(part, sources, rowOf, windowMs, { relative: 0, absolute: 0 }, (key, feature) => {
        const id = `${groupId(key)}/${feature}`;
        let c = out.get(id);
        if (c === undefined) {
          c = emptyCounts();
          out.set(id, c);
        }
        return c;
      });
      return out;
    };
    const all = fold(preds);
    const expected = reference(preds, rows, windowMs);
    expect([...all.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [id, c] of all) {
      const e = expected.get(id)!;
      expect([c.sampled, c.compared, c.mismatched, c.newerRow, c.absDiffSum]).toEqual([
        e.sampled,
        e.compared,
        e.mismatched,
        e.newer,
        e.diff,
      ]);
    }
    // Three "partitions" merged = everything at once.
    const parts = [0, 1, 2].map((k) => fold(preds.filter((_, i) => i % 3 === k)));
    const merged = new Map<string, SkewCounts>();
    for (const part of parts) {
      for (const [id, c] of part) merged.set(id, mergeInto(merged.get(id) ?? emptyCounts(), c));
    }
    for (const [id, c] of all) {
      const m = merged.get(id)!;
      expect({ ...m, absDiffSum: 0 }).toEqual({ ...c, absDiffSum: 0 });
      expect(m.absDiffSum).toBeCloseTo(c.absDiffSum, 6);
    }
  });

  it('indexes batch answers by view and entity', () => {
    const reads = planReads(
      [{ model: 'm', version: 'v', entity: 'u1', eventTime: 1, features: { age: 1 } }],
      featureSources(views),
    );
    const rowOf = indexRows(reads, [[{ eventTime: 0, features: { age: 2 } }]]);
    expect(rowOf(reads[0]!.view, 'u1')?.features.age).toBe(2);
    expect(rowOf(reads[0]!.view, 'u2')).toBeUndefined();
  });
});

describe('the alert', () => {
  const rule = { maxShareMismatched: 0.1, minCompared: 10 };
  const key = { model: 'fraud', version: 'v3', windowStart: 60_000 };
  const counts = (compared: number, mismatched: number): SkewCounts => ({
    ...emptyCounts(),
    sampled: compared,
    compared,
    mismatched,
  });

  it('fires strictly above the bound and only with enough comparisons', () => {
    expect(breaches(counts(100, 10), rule)).toBe(false);
    expect(breaches(counts(100, 11), rule)).toBe(true);
    expect(breaches(counts(9, 9), rule)).toBe(false);
    expect(breaches(counts(0, 0), rule)).toBe(false);
  });

  it('is deterministic per (model, version, feature, window) and carries the evidence', () => {
    const a = skewAlert(key, 'amount', 60_000, 120_000, counts(50, 40), rule, {
      sampleRate: 0.1,
      tolerance: DEFAULT_TOLERANCE,
    });
    expect(a).toMatchObject({
      alert_id: skewAlertId(key, 'amount'),
      kind: 'TRAINING_SERVING_SKEW',
      model: 'fraud',
      model_version: 'v3',
      feature: 'amount',
      window_start: 60_000,
      window_end: 120_000,
      event_time: 120_000,
      method: 'share_mismatched',
      statistic: 0.8,
      threshold: 0.1,
    });
    expect(JSON.parse(a.evidence)).toMatchObject({ compared: 50, mismatched: 40, sample_rate: 0.1 });
    expect(skewAlertId(key, 'amount')).not.toBe(skewAlertId(key, 'age'));
    expect(skewAlertId(key, 'amount')).not.toBe(skewAlertId({ ...key, windowStart: 0 }, 'amount'));
  });

  // The bound alert consumers (retrain-trigger's checkAlertTimes, alert-router) apply with
  // @driftline/core's eventTimeProblem/windowTimeProblem: event_time and window_end at most
  // maxFutureMs ahead of their clock, window_start before window_end.
  const HOUR = 3_600_000;
  const acceptable = (a: { event_time: number; window_start: number; window_end: number }, now: number) =>
    a.event_time <= now + HOUR && a.window_end <= now + HOUR && a.window_start < a.window_end;

  it('is raised only once its window end is within the event-time bound, at a time it allows (found by a review)', () => {
    const raise = (windowMs: number, windowStart: number, now: number) => {
      const k = { ...key, windowStart };
      const at = skewAlertTime(k, windowMs, now, HOUR);
      return at === undefined
        ? undefined
        : skewAlert(k, 'amount', windowMs, at, counts(50, 40), rule, { sampleRate: 1, tolerance: DEFAULT_TOLERANCE });
    };
    const start = Date.UTC(2026, 0, 1);
    // 30 min into a 2 h window: held (its window_end is 1.5 h ahead); 59 min before its end: raised.
    expect(raise(2 * HOUR, start, start + 30 * 60_000)).toBeUndefined();
    // Released a margin inside the bound (a consumer's clock may be a little behind).
    expect(releaseMarginMs(HOUR)).toBe(60_000);
    expect(raise(2 * HOUR, start, start + HOUR)).toBeUndefined();
    const due = start + HOUR + 60_000;
    const open = raise(2 * HOUR, start, due)!;
    expect(open).toMatchObject({ window_start: start, window_end: start + 2 * HOUR, event_time: due });
    expect(acceptable(open, due - 59_000)).toBe(true);
    // A 1 d window 30 min in: held for 22.5 h.
    expect(raise(24 * HOUR, start, start + 30 * 60_000)).toBeUndefined();
    expect(raise(24 * HOUR, start, start + 23 * HOUR + 60_000)?.event_time).toBe(start + 23 * HOUR + 60_000);
    // A 5 min window of predictions stamped 58 min ahead: its end is 63 min ahead, held; 3 min later
    // raised, with event_time its start (never before the window, never beyond the bound).
    const ahead = start + 58 * 60_000;
    expect(raise(5 * 60_000, ahead, start)).toBeUndefined();
    expect(raise(5 * 60_000, ahead, start + 3 * 60_000)).toBeUndefined();
    const early = raise(5 * 60_000, ahead, start + 4 * 60_000)!;
    expect(early.event_time).toBe(ahead);
    expect(acceptable(early, start + 4 * 60_000 - 59_000)).toBe(true);
    // A closed window: event_time is its end, the same on every replay.
    expect(raise(5 * 60_000, start, start + 7 * HOUR)?.event_time).toBe(start + 5 * 60_000);
    expect(raise(5 * 60_000, start, start + 9 * HOUR)?.event_time).toBe(start + 5 * 60_000);
    // Whenever one is raised, it is acceptable: every window length up to 1 d, any time around it.
    for (const windowMs of [1_000, 5 * 60_000, HOUR, 2 * HOUR, 24 * HOUR]) {
      const span = windowMs + 4 * HOUR;
      for (let i = 0; i <= 64; i++) {
        const now = start - 2 * HOUR + Math.round((i * span) / 64);
        const a = raise(windowMs, start, now);
        // Acceptable also to a consumer whose clock is up to the margin behind.
        if (a !== undefined) expect(acceptable(a, now - 59_000)).toBe(true);
        else expect(start + windowMs).toBeGreaterThan(now + HOUR - 60_000);
      }
    }
  });

  it('leaves to the release sweep exactly the windows their last batch could not raise, once they are due (found by a review)', () => {
    const start = Date.UTC(2026, 0, 1);
    const outcomes = new Map<boolean, number>();
    for (const windowMs of [1_000, 5 * 60_000, 2 * HOUR, 24 * HOUR]) {
      const k = { ...key, windowStart: start };
      for (let i = 0; i <= 32; i++) {
        const writtenAt = start - HOUR + Math.round((i * (windowMs + 2 * HOUR)) / 32);
        for (let j = 0; j <= 32; j++) {
          const now = writtenAt + Math.round((j * (windowMs + 2 * HOUR)) / 32);
          const w = { ...k, windowEnd: start + windowMs, lastWrittenAt: writtenAt };
          // The batch at writtenAt could not raise it (skewAlertTime had no time), a sweep at now can.
          const expected =
            skewAlertTime(k, windowMs, writtenAt, HOUR) === undefined &&
            skewAlertTime(k, windowMs, now, HOUR) !== undefined;
          expect(awaitsRelease(w, now, HOUR)).toBe(expected);
          outcomes.set(expected, (outcomes.get(expected) ?? 0) + 1);
        }
      }
    }
    expect(outcomes.get(true)).toBeGreaterThan(100); // the grid crosses the boundary both ways
    expect(outcomes.get(false)).toBeGreaterThan(100);
  });

  it('sweeps from where the last sweep got to (the overlap looked at again, an old position kept), and a bounded span back at start-up', () => {
    const now = Date.UTC(2026, 0, 1);
    const upTo = now + HOUR - releaseMarginMs(HOUR);
    expect(releaseRange(undefined, now, 5 * 60_000, HOUR)).toEqual({ after: upTo - 24 * HOUR, upTo });
    expect(releaseCatchUpMs(1_000)).toBe(1_440_000); // 1,440 windows of 1 s
    expect(releaseRange(undefined, now, 1_000, HOUR)).toEqual({ after: upTo - 1_440_000, upTo });
    // A position within the overlap: the sweep looks back the whole overlap (clock differences).
    expect(releaseRange(upTo - 15_000, now, 5 * 60_000, HOUR)).toEqual({ after: upTo - RELEASE_OVERLAP_MS, upTo });
    // A position behind it (sweeps failing through an outage) is kept, however old: nothing skipped.
    expect(releaseRange(upTo - 30 * 24 * HOUR, now, 5 * 60_000, HOUR).after).toBe(upTo - 30 * 24 * HOUR);
    // Every window end that becomes due between two sweeps is in the second one's range.
    const later = releaseRange(upTo, now + 15_000, 5 * 60_000, HOUR);
    expect(later.after).toBeLessThanOrEqual(upTo);
    expect(later.upTo).toBe(upTo + 15_000);
  });
});

describe('a monitor lagging past a view TTL', () => {
  it('counts an absent row expired once the prediction is at or before readAt − ttl, missing before (found by a review)', () => {
    const ttlViews = parseFeatureViewsText(`
views:
  - { name: short, entity: user_id, ttl: 3s, features: { x: double } }
  - { name: forever, entity: user_id, features: { y: double } }
`);
    const sources = featureSources(ttlViews);
    const p = { model: 'm', version: 'v1', entity: 'u1', eventTime: 10_000, features: { x: 1, y: 2 } };
    const fold = (readAt: number | undefined) => {
      const out = new Map<string, ReturnType<typeof emptyCounts>>();
      foldPredictions(
        [p],
        sources,
        () => undefined,
        60_000,
        { relative: 0, absolute: 0 },
        (_, feature) => {
          const c = out.get(feature) ?? emptyCounts();
          out.set(feature, c);
          return c;
        },
        readAt,
      );
      return { x: out.get('x')!, y: out.get('y')! };
    };
    expect(fold(12_999).x).toMatchObject({ sampled: 1, missingInStore: 1, expired: 0 });
    expect(fold(13_000).x).toMatchObject({ sampled: 1, missingInStore: 0, expired: 1 });
    expect(fold(undefined).x).toMatchObject({ missingInStore: 1, expired: 0 });
    expect(fold(1e12).y).toMatchObject({ missingInStore: 1, expired: 0 }); // ttl none: never expired
    const merged = mergeInto(fold(13_000).x, fold(13_000).x);
    expect(merged.expired).toBe(2);
  });
});
