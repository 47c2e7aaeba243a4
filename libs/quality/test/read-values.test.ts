import type { FeatureValue } from '@driftline/schemas';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectationSet, type FeatureExpectations, QualityWindows, type ReadValues } from '../src/index.js';

// drift-monitor's stage one hands quality the values its windows already read (ReadValues); the
// sections must be exactly those of reading the event itself.

const expectations: FeatureExpectations[] = [
  {
    feature: 'age',
    type: 'double',
    maxTypeMismatch: 0,
    maxNullRate: 0.1,
    range: { min: 0, max: 120, maxShareOutside: 0.05 },
    maxCardinality: 50,
  },
  { feature: 'country', type: 'string', maxTypeMismatch: 0, categories: { allowed: ['DE', 'FR'], maxShareUnseen: 0 } },
  // Not among the values read: still taken from the event.
  { feature: 'vip', type: 'boolean', maxTypeMismatch: 0, maxNullRate: 0 },
  // Named like a model output that the reader does not take from `features`.
  { feature: '__prediction__', type: 'double', maxTypeMismatch: 0 },
];
const SET = expectationSet(expectations);
/** The reader's order differs from the expectations' (sorted) order; undefined: a model output. */
const inputs = ['country', undefined, 'age', 'other'] as const;

const value = fc.oneof(
  fc.constant(null),
  fc.constant(undefined),
  fc.double({ noNaN: false }),
  fc.integer({ min: -10, max: 200 }),
  fc.constantFrom('DE', 'FR', 'XX'),
  fc.boolean(),
);
const event = fc.record({
  windowStart: fc.constantFrom(0, 1000, 2000),
  model: fc.constantFrom('m', 'n'),
  age: value,
  country: value,
  vip: value,
  prediction: value,
  other: value,
});
type Ev = typeof event extends fc.Arbitrary<infer T> ? T : never;

/** The reader's features (`inputs`): an event always carries them here, absent ones as null. */
const READ = new Set(['age', 'country', 'other']);

function features(e: Ev): Record<string, FeatureValue> {
  const f: Record<string, FeatureValue> = {};
  for (const k of ['age', 'country', 'vip', 'other', '__prediction__'] as const) {
    const v = k === '__prediction__' ? e.prediction : e[k];
    if (v !== undefined) f[k] = v;
    else if (READ.has(k)) f[k] = null;
  }
  return f;
}

function sections(events: readonly Ev[], shared: boolean) {
  const w = new QualityWindows(SET);
  const out: unknown[] = [];
  for (const [i, e] of events.entries()) {
    const f = features(e);
    // What a reader would have taken: the model output's slot holds something else entirely.
    const read: ReadValues = { inputs, values: [f.country, 0.5, f.age, f.other] };
    w.add(e.windowStart, e.model, 'v1', f, shared ? read : undefined);
    if (i % 7 === 6) out.push(w.take(e.windowStart, e.model, 'v1')); // takes between adds
  }
  for (const s of [0, 1000, 2000]) for (const m of ['m', 'n']) out.push(w.take(s, m, 'v1'));
  return out;
}

describe('QualityWindows with values already read', () => {
  it('counts exactly what reading the event counts', () => {
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 120 }), (events) => {
        expect(sections(events, true)).toEqual(sections(events, false));
      }),
      { numRuns: 200 },
    );
  });

  it('starts a new section for a window and model taken before', () => {
    const w = new QualityWindows(SET);
    const read: ReadValues = { inputs, values: ['DE', 0.5, 30, null] };
    w.add(0, 'm', 'v1', { age: 30, country: 'DE' }, read);
    expect(w.take(0, 'm', 'v1')?.features.age?.events).toBe(1);
    w.add(0, 'm', 'v1', { age: 30, country: 'DE' }, read);
    w.add(0, 'm', 'v1', { age: 30, country: 'DE' });
    expect(w.take(0, 'm', 'v1')?.features.age?.events).toBe(2);
  });

  it('counts a feature for a model only when its reference lists it or the event carries it (found by a review)', () => {
    const w = new QualityWindows(SET);
    // The reference of `fraud` lists age and country; `churn`'s lists neither.
    const fraud: ReadValues = { inputs, values: ['DE', 0.5, undefined, null] };
    const churn: ReadValues = { inputs: ['tenure'], values: [12] };
    w.add(0, 'fraud', 'v1', { country: 'DE' }, fraud); // age absent: a null of fraud's
    w.add(0, 'churn', 'v1', { tenure: 12 }, churn); // age, country, vip absent: not churn's features
    w.add(0, 'churn', 'v1', { tenure: 12, vip: null }, churn); // vip carried (null): counted
    const f = w.take(0, 'fraud', 'v1')!.features;
    expect([f.age?.events, f.age?.nulls, f.country?.events]).toEqual([1, 1, 1]);
    const c = w.take(0, 'churn', 'v1')!.features;
    expect([c.age?.events ?? 0, c.country?.events ?? 0, c.vip?.events, c.vip?.nulls]).toEqual([0, 0, 1, 1]);
  });
});
