import { PoisonRecordError } from '@driftline/core';
import type { FeatureEvent } from '@driftline/schemas';
import { seededUniform } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import {
  aggregate,
  compareCodePoints,
  compareEventCopies,
  computeAggregates,
  copyDigest,
  decodeValue,
  encodeValue,
  lastWriteWins,
  offlineRow,
  parseFeatureViews,
  planWrites,
  type ValidatedEvent,
  validateFeatureEvent,
} from '../src/index.js';

const views = parseFeatureViews({
  views: [
    { name: 'profile', entity: 'user_id', features: { age: 'double', country: 'string', premium: 'boolean' } },
    {
      name: 'spend',
      entity: 'user_id',
      features: { amount: 'double', fee: 'double' },
      aggregates: [
        { feature: 'amount', function: 'count', window: '10m' },
        { feature: 'amount', function: 'sum', window: '10m' },
        { feature: 'amount', function: 'mean', window: '1h' },
        { feature: 'fee', function: 'min', window: '1h' },
        { feature: 'fee', function: 'max', window: '1h' },
      ],
    },
  ],
});
const spend = views.get('spend')!;

function event(over: Partial<FeatureEvent> = {}): FeatureEvent {
  return {
    event_id: 'e1',
    view: 'profile',
    entity_id: 'u1',
    event_time: 1_000,
    features: { age: 42, country: 'fr', premium: true },
    ...over,
  };
}

function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PoisonRecordError);
    expect((error as PoisonRecordError).code).toBe('VALIDATION_FAILED');
    return (error as Error).message;
  }
  throw new Error('expected a PoisonRecordError');
}

describe('stored values', () => {
  it('round-trip what the materializer writes; a double another writer left malformed is missing', () => {
    for (const x of [0, 1.5, -2e-308, 1e308, 123456789.125]) {
      expect(decodeValue('double', encodeValue('double', x))).toBe(x);
    }
    for (const bad of ['', ' ', 'abc', '1e999', '-Infinity', 'NaN']) expect(decodeValue('double', bad)).toBeNull();
    expect(decodeValue('double', null)).toBeNull();
    expect(decodeValue('boolean', encodeValue('boolean', true))).toBe(true);
    expect(decodeValue('string', '')).toBe('');
  });

  it('a boolean is only what encodeValue writes: a value left under the name by another type is missing, not false (found by a review)', () => {
    expect(decodeValue('boolean', encodeValue('boolean', false))).toBe(false);
    // A feature whose declared type changed to boolean: rows still hold the old type's values.
    for (const foreign of ['1.5', '0', 'fr', '', 'TRUE', 'False']) expect(decodeValue('boolean', foreign)).toBeNull();
  });
});

describe('event validation', () => {
  it('encodes a valid event per declared feature, nulls and absent features as undefined', () => {
    const v = validateFeatureEvent(views, event({ features: { age: 1.5, country: null, premium: false } }));
    expect(v.values).toEqual(['1.5', undefined, 'false']);
    expect(v.view.name).toBe('profile');
  });

  it('ignores values of features the view does not declare and writes the declared ones (found by a review)', () => {
    // A feature removed from the view while producers still send it, or added by a producer before
    // every materializer has the new view file: dead-lettering the event froze the entity's row.
    const v = validateFeatureEvent(views, event({ features: { age: 5, old: 2, premium: null, gone: 'x' } }));
    expect(v.values).toEqual(['5', undefined, undefined]);
    expect(v.ignored).toEqual(['old', 'gone']);
    // Ignored values are no part of the event's copy: a re-send differing only there is the same copy.
    const same = validateFeatureEvent(views, event({ features: { age: 5, premium: null } }));
    expect(same.ignored).toBeUndefined();
    expect(copyDigest(v)).toBe(copyDigest(same));
    // Declared names only, each null, or none at all: still a row of absent values, as before.
    expect(validateFeatureEvent(views, event({ features: { age: null, premium: null } })).values).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
    expect(validateFeatureEvent(views, event({ features: {} })).values).toEqual([undefined, undefined, undefined]);
    const proto = validateFeatureEvent(views, event({ features: JSON.parse('{"__proto__": 1.5, "age": 2}') }));
    expect(proto.ignored).toEqual(['__proto__']);
    expect(proto.values[0]).toBe('2');
  });

  it('an event with undeclared names and no declared value is poison, a declared null beside them included (found by a review)', () => {
    // Written, `{age: null, agee: 5}` (a misspelt name beside a null) blanked the row `{age: 3, …}`.
    expect(reason(() => validateFeatureEvent(views, event({ features: { age: null, agee: 5 } })))).toBe(
      'no value of a feature of view "profile" in the event: "agee" not declared',
    );
    expect(
      reason(() => validateFeatureEvent(views, event({ features: { age: null, country: null, premium: null, x: 1 } }))),
    ).toBe('no value of a feature of view "profile" in the event: "x" not declared');
  });

  it('how many names are undeclared does not make an event poison: a view that lost most of its features goes on (decided)', () => {
    // `{age, a, b}` shrunk to `{age}` while producers still send a and b, or a producer two features
    // ahead of the view file: the declared value is written, the others ignored, the row moves on.
    const shrunk = validateFeatureEvent(views, event({ features: { age: 7, a: 1, b: 2 } }));
    expect(shrunk.values).toEqual(['7', undefined, undefined]);
    expect(shrunk.ignored).toEqual(['a', 'b']);
    // The price: another view's event with one shared name is written too (its other declared
    // features absent in the row until the entity's next event); its undeclared names are counted
    // and alerted (DriftlineFeatureValuesIgnored), as a misspelt one.
    const foreign = validateFeatureEvent(
      views,
      event({ features: { country: 'fr', clicks: 5, dwell_ms: 300, session: 'x' } }),
    );
    expect(foreign.values).toEqual([undefined, 'fr', undefined]);
    expect(foreign.ignored).toEqual(['clicks', 'dwell_ms', 'session']);
  });

  describe('a feature the view removed (removed_features; found by a review)', () => {
    // View {x, old} shrunk to {x}, `old` listed as removed: producers not yet moved off it still
    // send it. As an undeclared name it made `{x: null, old: 4}` poison (the row kept a stale x
    // until its TTL, the DLQ filled) and every `{x: 3, old: 4}` an ignored value (the alert fired).
    const shrunk = parseFeatureViews({
      views: [{ name: 'p', entity: 'id', features: { x: 'double', y: 'string' }, removed_features: ['old', 'gone'] }],
    });
    const check = (features: FeatureEvent['features']) => validateFeatureEvent(shrunk, event({ view: 'p', features }));

    it('a declared null beside a removed name is written: the producer set x to missing', () => {
      const v = check({ x: null, old: 4 });
      expect(v.values).toEqual([undefined, undefined]);
      expect(v.removed).toEqual(['old']);
      expect(v.ignored).toBeUndefined();
    });

    it('a declared value beside removed names is written, the removed ones listed apart, not ignored', () => {
      const v = check({ old: 4, x: 3, gone: null });
      expect(v.values).toEqual(['3', undefined]);
      expect(v.removed).toEqual(['old', 'gone']);
      expect(v.ignored).toBeUndefined();
      // Removed values are no part of the event's copy, whatever their type.
      expect(copyDigest(check({ x: 3, old: 'anything' }))).toBe(copyDigest(check({ x: 3 })));
      expect(check({ x: 3 }).removed).toBeUndefined();
    });

    it('only removed names: a row of absent values, as an event without features (decided)', () => {
      // Features left out are null: a producer on the old view that leaves out a missing x sends
      // just `{old: 4}`, which blanked x before `old` was removed too; dead-lettered, the row froze.
      const v = check({ old: 4 });
      expect(v.values).toEqual([undefined, undefined]);
      expect(v.removed).toEqual(['old']);
    });

    it('an undeclared name still needs a non-null declared value: a removed name does not vouch for it', () => {
      expect(reason(() => check({ x: null, old: 4, olld: 5 }))).toBe(
        'no value of a feature of view "p" in the event: "olld" not declared',
      );
      expect(reason(() => check({ old: 4, olld: 5 }))).toBe(
        'no value of a feature of view "p" in the event: "olld" not declared',
      );
      const v = check({ x: 1, old: 4, olld: 5 });
      expect(v.ignored).toEqual(['olld']);
      expect(v.removed).toEqual(['old']);
      // A declared value of the wrong type stays poison beside a removed name.
      expect(reason(() => check({ x: 'three', old: 4 }))).toMatch(/feature "x" of view "p" must be double, got string/);
    });
  });

  it('refuses unknown views, wrong types, missing entity and friends with a reason', () => {
    expect(reason(() => validateFeatureEvent(views, event({ view: 'nope' })))).toMatch(/unknown feature view "nope"/);
    expect(reason(() => validateFeatureEvent(views, event({ entity_id: '' })))).toMatch(
      /missing entity_id \(user_id\)/,
    );
    expect(reason(() => validateFeatureEvent(views, event({ features: { age: 'old' } })))).toMatch(
      /feature "age" of view "profile" must be double, got string/,
    );
    expect(reason(() => validateFeatureEvent(views, event({ features: { premium: 1 } })))).toMatch(/must be boolean/);
    expect(reason(() => validateFeatureEvent(views, event({ features: { age: Number.NaN } })))).toMatch(/got NaN/);
    // Only undeclared names: nothing to write (written, it would blank the row).
    expect(reason(() => validateFeatureEvent(views, event({ features: { height: 2 } })))).toBe(
      'no value of a feature of view "profile" in the event: "height" not declared',
    );
    // As the codec decodes it (an own key, see libs/codec's avsc patch): like any undeclared name.
    expect(reason(() => validateFeatureEvent(views, event({ features: JSON.parse('{"__proto__": 1.5}') })))).toMatch(
      /no value of a feature of view "profile" in the event: "__proto__" not declared/,
    );
    // Names from the event: a few, each cut, so the reason stays one short line.
    const many = Object.fromEntries(['a', 'b', 'c', 'd', 'e', 'x'.repeat(500)].map((n) => [n, 1]));
    expect(reason(() => validateFeatureEvent(views, event({ features: many })))).toBe(
      'no value of a feature of view "profile" in the event: "a", "b", "c" and 3 more not declared',
    );
    expect(reason(() => validateFeatureEvent(views, event({ features: { ['y'.repeat(500)]: 1 } })))).toBe(
      `no value of a feature of view "profile" in the event: "${'y'.repeat(64)}…" not declared`,
    );
    // A wrong type of a declared feature stays poison beside an undeclared one.
    expect(reason(() => validateFeatureEvent(views, event({ features: { height: 2, age: 'old' } })))).toMatch(
      /feature "age" of view "profile" must be double, got string/,
    );
    expect(reason(() => validateFeatureEvent(views, event({ event_time: -5 })))).toMatch(/event_time/);
    expect(reason(() => validateFeatureEvent(views, event({ event_id: '' })))).toMatch(/event_id/);
    expect(reason(() => validateFeatureEvent(views, event({ entity_id: 'a\uDC00' })))).toMatch(/well-formed/);
    expect(reason(() => validateFeatureEvent(views, event(), 'other.v1'))).toMatch(/fed by topic features.v1/);
  });
});

describe('last-write-wins order', () => {
  it('compares ids by UTF-8 bytes, like Redis', () => {
    const random = seededUniform(7);
    const alphabet = ['a', 'b', 'Z', '0', 'é', '\uFFFD', '\uE000', '😀', '𝄞', '\u0000'];
    for (let i = 0; i < 2_000; i++) {
      const pick = () =>
        Array.from({ length: Math.floor(random() * 4) }, () => alphabet[Math.floor(random() * alphabet.length)]).join(
          '',
        );
      const a = pick();
      const b = pick();
      expect(Math.sign(compareCodePoints(a, b))).toBe(Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))));
    }
  });

  it('plans one write per (view, entity) whose winner is the LWW of its events, windows deduplicated', () => {
    const random = seededUniform(3);
    const events: ValidatedEvent[] = [];
    for (let i = 0; i < 300; i++) {
      const view = random() < 0.5 ? 'profile' : 'spend';
      const features: FeatureEvent['features'] = view === 'profile' ? { age: i } : { amount: i, fee: i / 2 };
      const e = validateFeatureEvent(
        views,
        event({
          view,
          event_id: `e${i % 120}`,
          entity_id: `u${i % 7}`,
          event_time: Math.floor(random() * 5),
          features,
        }),
      );
      events.push(e, e);
    }
    const writes = planWrites(events);
    const keys = new Set(events.map((e) => `${e.view.name}/${e.entity}`));
    expect(writes).toHaveLength(keys.size);
    for (const w of writes) {
      const mine = events.filter((e) => e.view === w.view && e.entity === w.entity);
      expect(w.winner).toBe(lastWriteWins(mine));
      if (w.view.name === 'spend') expect(w.windowEvents).toHaveLength(new Set(mine.map((e) => e.eventId)).size);
      else expect(w.windowEvents).toHaveLength(0);
    }
  });
});

describe('window aggregates', () => {
  it('folds count, sum, mean, min and max; empty windows give 0, 0 and nulls', () => {
    expect(aggregate('count', [1, 2, 3])).toBe(3);
    expect(aggregate('sum', [1, 2, 3.5])).toBe(6.5);
    expect(aggregate('mean', [1, 2, 3])).toBe(2);
    expect(aggregate('min', [3, -1, 2])).toBe(-1);
    expect(aggregate('max', [3, -1, 2])).toBe(3);
    expect([aggregate('count', []), aggregate('sum', []), aggregate('mean', []), aggregate('min', [])]).toEqual([
      0,
      0,
      null,
      null,
    ]);
  });

  it('covers (T − W, T] anchored at the latest event time, each event id once, nulls skipped', () => {
    const min = 60_000;
    const T = 100 * min;
    const mk = (id: string, t: number, amount: number | null, fee: number | null) =>
      validateFeatureEvent(views, event({ view: 'spend', event_id: id, event_time: t, features: { amount, fee } }));
    const events = [
      mk('a', T, 10, 1),
      mk('b', T - 10 * min, 5, 9), // exactly W before T: outside the 10m window, inside 1h
      mk('c', T - 10 * min + 1, 7, null),
      mk('c', T - 10 * min + 1, 7, null), // duplicate delivery
      mk('d', T - 60 * min, 100, 0), // outside every window
      mk('e', T - 30 * min, null, 4),
    ];
    expect(computeAggregates(spend, T, events)).toEqual({
      amount_count_10m: 2,
      amount_sum_10m: 17,
      amount_mean_1h: (10 + 5 + 7) / 3,
      fee_min_1h: 1,
      fee_max_1h: 9,
    });
    const row = offlineRow(spend, events)!;
    expect(row.eventId).toBe('a');
    expect(row.features).toMatchObject({ amount: 10, fee: 1, amount_count_10m: 2 });
  });

  it('the offline row does not depend on delivery order or duplicates', () => {
    const random = seededUniform(11);
    const events = Array.from({ length: 200 }, (_, i) =>
      validateFeatureEvent(
        views,
        event({
          view: 'spend',
          event_id: `id-${i}`,
          event_time: 1_000_000 + Math.floor(random() * 4_000_000),
          features: { amount: Math.round(random() * 1000) / 10, fee: random() < 0.2 ? null : random() },
        }),
      ),
    );
    const reference = offlineRow(spend, events);
    for (let round = 0; round < 5; round++) {
      const shuffled = [...events, ...events.slice(0, 50)].sort(() => random() - 0.5);
      expect(offlineRow(spend, shuffled)).toEqual(reference);
    }
  });

  it('a re-sent event id with another time or other values: the greatest copy counts, in the row and the windows, in any order (found by a review)', () => {
    const T = 10_000_000;
    const mk = (t: number, amount: number, fee = 1) =>
      validateFeatureEvent(views, event({ view: 'spend', event_id: 'e1', event_time: t, features: { amount, fee } }));
    // The review's case: the original at T − 60 s, a correction of it at T − 30 s.
    const original = mk(T - 60_000, 1);
    const corrected = mk(T - 30_000, 5);
    for (const order of [
      [original, corrected],
      [corrected, original],
    ]) {
      const row = offlineRow(spend, order)!;
      expect(row.eventTime).toBe(T - 30_000);
      expect(row.features).toMatchObject({ amount: 5, amount_sum_10m: 5, amount_count_10m: 1 });
      const [write] = planWrites(order);
      expect(write?.winner).toBe(corrected);
      expect(write?.windowEvents).toEqual([corrected]);
    }
    // Same time, other values: the greater copy digest wins both, whichever came first.
    const a = mk(T, 2, 3);
    const b = mk(T, 7, 3);
    const greater = compareEventCopies(a, b) > 0 ? a : b;
    expect(compareEventCopies(a, b)).toBe(-compareEventCopies(b, a));
    expect(copyDigest(a)).not.toBe(copyDigest(b));
    expect(copyDigest(a)).toBe(copyDigest(mk(T, 2, 3)));
    for (const order of [
      [a, b],
      [b, a],
      [b, a, b],
    ]) {
      const row = offlineRow(spend, order)!;
      const amount = Number(greater.values[0]);
      expect(row.features).toMatchObject({ amount, amount_sum_10m: amount, amount_count_10m: 1 });
      expect(lastWriteWins(order)).toBe(greater);
    }
  });

  it('copy digests are stable: rows and window members written before hold them', () => {
    // The digest is stored (the row's copy, each window member's): one that changed would make a
    // replayed copy of an event compare as another one. Values from the first implementation.
    const digests = [
      [],
      [undefined],
      [''],
      ['1.5', undefined, 'true'],
      ['héllo', '😀', '0'],
      ['-0.000123', '1e+21', 'x'.repeat(100)],
    ].map((values) => copyDigest({ values }));
    expect(digests).toEqual([
      '488bdcb81aee8d83',
      '11ffab2a5c77282c',
      '92ba16fb6206c90f',
      'a707ec1dbb384979',
      'e18bfbbe38e143c1',
      'b106f4de88c14ee5',
    ]);
  });
});
