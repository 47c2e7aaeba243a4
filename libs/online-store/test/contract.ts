// The OnlineStore contract: one suite, run against every adapter (memory-store.test.ts runs it on
// the in-memory spec, redis-store.int.test.ts on a real Redis). An adapter passes when it answers
// exactly like the spec and like the offline reference of libs/features (offlineRow).
import { DriftlineError } from '@driftline/core';
import {
  compareEventCopies,
  type FeatureViews,
  MAX_ENTITY_LENGTH,
  offlineRow,
  parseFeatureViews,
  planWrites,
  type ValidatedEvent,
  validateFeatureEvent,
} from '@driftline/features';
import type { FeatureEvent } from '@driftline/schemas';
import { SeededRandom } from '@driftline/test-support/random';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_READ_BATCH, type OnlineStore } from '../src/index.js';

// A TTL below the longest window: an entity quiet for a TTL keeps its window history.
const quietDefinition = {
  name: 'quiet',
  entity: 'user_id',
  ttl: '1s',
  features: { x: 'double' },
  aggregates: [
    { feature: 'x', function: 'sum', window: '1h' },
    { feature: 'x', function: 'count', window: '1h' },
    { feature: 'x', function: 'sum', window: '1s' },
  ],
};

export const contractViews: FeatureViews = parseFeatureViews({
  views: [
    {
      name: 'profile',
      entity: 'user_id',
      ttl: '1d',
      features: { age: 'double', country: 'string', premium: 'boolean', score: 'double' },
    },
    {
      name: 'spend',
      entity: 'user_id',
      ttl: '2d',
      features: { amount: 'double', fee: 'double' },
      aggregates: [
        { feature: 'amount', function: 'count', window: '10m' },
        { feature: 'amount', function: 'sum', window: '10m' },
        { feature: 'amount', function: 'mean', window: '1h' },
        { feature: 'fee', function: 'min', window: '1h' },
        { feature: 'fee', function: 'max', window: '1d' },
      ],
    },
    { name: 'short', entity: 'user_id', ttl: '4s', features: { x: 'double' } },
    {
      // A hot entity's window set is bounded: the newest 5 events count, whatever arrives.
      name: 'hot',
      entity: 'user_id',
      ttl: '1d',
      max_events: 5,
      features: { v: 'double' },
      aggregates: [
        { feature: 'v', function: 'count', window: '1d' },
        { feature: 'v', function: 'sum', window: '1d' },
        { feature: 'v', function: 'min', window: '10m' },
      ],
    },
    quietDefinition,
  ],
});

const profile = contractViews.get('profile')!;
const spend = contractViews.get('spend')!;
const short = contractViews.get('short')!;
const hot = contractViews.get('hot')!;
const quiet = contractViews.get('quiet')!;

/** A fresh, empty store (its own key space) and how to release it. */
export interface ContractSubject {
  readonly store: OnlineStore;
  /**
   * A store over the same data, as a restarted process opens it (with views reconfigured since);
   * closed by the suite. Default: `store` itself.
   */
  reopen?(): Promise<OnlineStore>;
  cleanup?(): Promise<void>;
}

const event = (view: string, entity: string, id: string, t: number, features: FeatureEvent['features']) =>
  validateFeatureEvent(contractViews, { event_id: id, view, entity_id: entity, event_time: t, features });

/**
 * An event log over a few entities of both views, spread over 2 hours of event time (windows
 * slide), with tied event times, nulls, absent features and non-dyadic decimals (float sums
 * depend on order).
 */
function eventLog(count: number, entities: number, seed: number, base: number): FeatureEvent[] {
  const random = new SeededRandom(seed);
  const countries = ['fr', 'de', 'it', 'es', 'pl'];
  return Array.from({ length: count }, (_, i) => {
    const view = random.uniform() < 0.5 ? 'profile' : 'spend';
    const maybe = <T>(v: T): T | null => (random.uniform() < 0.1 ? null : v);
    const features: FeatureEvent['features'] =
      view === 'profile'
        ? {
            age: maybe(random.int(90)),
            country: maybe(countries[random.int(countries.length)]!),
            premium: maybe(random.uniform() < 0.5),
            score: maybe(random.int(1e6) / 1e3),
          }
        : { amount: maybe(random.int(100_000) / 100), fee: maybe(random.int(1_000) / 100) };
    if (random.uniform() < 0.05) delete features[view === 'profile' ? 'score' : 'fee'];
    return {
      event_id: `ev-${seed}-${i}`,
      view,
      entity_id: `user:${random.int(entities)}{x}`,
      event_time: base + random.int(480) * 15_000, // 2 h on a 15 s grid: many ties
      features,
    };
  });
}

function shuffledWithDuplicates<T>(log: readonly T[], seed: number): T[] {
  const random = new SeededRandom(seed);
  const out = [...log, ...log.filter(() => random.uniform() < 0.3)];
  for (let i = out.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Registers the contract cases for one adapter; `create` is called once per case. */
export function onlineStoreContract(name: string, create: () => Promise<ContractSubject> | ContractSubject): void {
  describe(`OnlineStore contract: ${name}`, () => {
    const subjects: ContractSubject[] = [];
    const reopened: OnlineStore[] = [];
    const open = async (): Promise<OnlineStore> => (await openSubject()).store;
    const openSubject = async (): Promise<ContractSubject> => {
      const subject = await create();
      subjects.push(subject);
      return subject;
    };
    const reopen = async (subject: ContractSubject): Promise<OnlineStore> => {
      if (subject.reopen === undefined) return subject.store;
      const store = await subject.reopen();
      reopened.push(store);
      return store;
    };
    afterEach(async () => {
      for (const store of reopened.splice(0)) await store.close();
      for (const s of subjects.splice(0)) {
        await s.cleanup?.();
        await s.store.close();
      }
    });

    it('keeps the greatest (event_time, event_id): newer wins, older and equal-time smaller ids are ignored', async () => {
      const store = await open();
      const t = Date.now();
      const first = await store.write(planWrites([event('profile', 'u', 'b', t, { age: 30, country: 'fr' })]));
      expect(first).toEqual({ entities: 1, rowsApplied: 1, aggregatesUpdated: 0, rowsRepaired: 0, rowsExpired: 0 });
      expect((await store.write(planWrites([event('profile', 'u', 'z', t - 1, { age: 1 })]))).rowsApplied).toBe(0);
      expect((await store.write(planWrites([event('profile', 'u', 'a', t, { age: 2 })]))).rowsApplied).toBe(0);
      expect(await store.read(profile, 'u')).toEqual({
        eventTime: t,
        eventId: 'b',
        features: { age: 30, country: 'fr', premium: null, score: null },
      });
      // Equal time, greater id (compared as UTF-8 bytes): the row is replaced as a whole.
      expect((await store.write(planWrites([event('profile', 'u', 'c', t, { premium: true })]))).rowsApplied).toBe(1);
      expect(await store.read(profile, 'u')).toEqual({
        eventTime: t,
        eventId: 'c',
        features: { age: null, country: null, premium: true, score: null },
      });
      expect((await store.write(planWrites([event('profile', 'u', 'd', t + 1, { age: 5.5 })]))).rowsApplied).toBe(1);
      expect((await store.read(profile, 'u'))?.features.age).toBe(5.5);
    });

    it('a replay of everything changes nothing', async () => {
      const store = await open();
      const t = Date.now();
      const events = [
        event('spend', 'e', 'b', t, { amount: 1, fee: 1 }),
        event('spend', 'e', 'a', t, { amount: 2, fee: 0.5 }),
        event('spend', 'e', 'z', t - 60_000, { amount: 3, fee: 2 }),
      ];
      await store.write(planWrites(events));
      const before = await store.read(spend, 'e');
      for (const e of events) {
        expect(await store.write(planWrites([e]))).toEqual({
          entities: 1,
          rowsApplied: 0,
          aggregatesUpdated: 0,
          rowsRepaired: 0,
          rowsExpired: 0,
        });
      }
      expect(await store.write(planWrites(events))).toEqual({
        entities: 1,
        rowsApplied: 0,
        aggregatesUpdated: 0,
        rowsRepaired: 0,
        rowsExpired: 0,
      });
      expect(await store.read(spend, 'e')).toEqual(before);
      expect(before).toEqual({
        eventTime: t,
        eventId: 'b',
        features: {
          amount: 1,
          fee: 1,
          amount_count_10m: 3,
          amount_sum_10m: 6,
          amount_mean_1h: 2,
          fee_min_1h: 0.5,
          fee_max_1d: 2,
        },
      });
    });

    it('window aggregates: anchored at the latest event time, late events inside the window count', async () => {
      const store = await open();
      const t = Date.now();
      await store.write(planWrites([event('spend', 'e', 'a', t, { amount: 10, fee: 1 })]));
      // Older than the row: the row stays, but the event is inside the 10 min window and counts.
      const late = await store.write(planWrites([event('spend', 'e', 'b', t - 5 * 60_000, { amount: 5 })]));
      expect(late).toEqual({ entities: 1, rowsApplied: 0, aggregatesUpdated: 1, rowsRepaired: 0, rowsExpired: 0 });
      // Outside 10 min, inside 1 h: only the 1 h mean sees it.
      await store.write(planWrites([event('spend', 'e', 'c', t - 30 * 60_000, { amount: 30, fee: 3 })]));
      expect((await store.read(spend, 'e'))?.features).toEqual({
        amount: 10,
        fee: 1,
        amount_count_10m: 2,
        amount_sum_10m: 15,
        amount_mean_1h: 15,
        fee_min_1h: 1,
        fee_max_1d: 3,
      });
      // The anchor moves 2 h ahead: the old events leave every window but the day; empty windows
      // are count 0, sum 0 and null for mean/min/max.
      await store.write(planWrites([event('spend', 'e', 'd', t + 2 * 3_600_000, { fee: 0.25 })]));
      expect((await store.read(spend, 'e'))?.features).toEqual({
        amount: null,
        fee: 0.25,
        amount_count_10m: 0,
        amount_sum_10m: 0,
        amount_mean_1h: null,
        fee_min_1h: 0.25,
        fee_max_1d: 3,
      });
      // Late but inside the day of the anchor: only the 1 d max sees it.
      const late2 = await store.write(planWrites([event('spend', 'e', 'x', t - 3_600_000, { amount: 1, fee: 9 })]));
      expect(late2).toEqual({ entities: 1, rowsApplied: 0, aggregatesUpdated: 1, rowsRepaired: 0, rowsExpired: 0 });
      expect((await store.read(spend, 'e'))?.features).toMatchObject({ amount_count_10m: 0, fee_max_1d: 9 });
      // At or beyond the longest window of the anchor: never counted again, nothing recomputed.
      const floor = t + 2 * 3_600_000 - 86_400_000;
      const gone = await store.write(planWrites([event('spend', 'e', 'y', floor, { amount: 1, fee: 99 })]));
      expect(gone).toEqual({ entities: 1, rowsApplied: 0, aggregatesUpdated: 0, rowsRepaired: 0, rowsExpired: 0 });
      expect((await store.read(spend, 'e'))?.features.fee_max_1d).toBe(9);
    });

    it('an event id counts once in a window, as its greatest copy, in one batch or across batches, in any order (found by a review)', async () => {
      const t = Date.now();
      const x1 = event('spend', 'e', 'x', t, { amount: 1 });
      const x2 = event('spend', 'e', 'x', t, { amount: 2 }); // a resend that recomputed its value
      const y = event('spend', 'e', 'y', t + 1, { amount: 10 });
      const expected = offlineRow(spend, [x1, x2, y])?.features;
      const kept = compareEventCopies(x1, x2) > 0 ? 1 : 2;
      expect(expected).toMatchObject({ amount_count_10m: 2, amount_sum_10m: 10 + kept });
      for (const batches of [
        [[x1, x2, y]],
        [[x2, x1, y]],
        [[x1], [x2], [y]],
        [[x2], [x1], [y]],
        [[x1], [y, x2]],
        [[x2], [y, x1]],
      ]) {
        const store = await open();
        for (const batch of batches) await store.write(planWrites(batch));
        expect((await store.read(spend, 'e'))?.features).toEqual(expected);
      }
    });

    it('a re-send with a later time and another value: the row and the windows keep it, in any order (found by a review)', async () => {
      const t = Date.now();
      const original = event('spend', 'e', 'e1', t - 60_000, { amount: 1 });
      const corrected = event('spend', 'e', 'e1', t - 30_000, { amount: 5 });
      // Same time, other values (no other event): the row's copy and the window's copy are one.
      const a = event('spend', 'f', 'f1', t, { amount: 2 });
      const b = event('spend', 'f', 'f1', t, { amount: 7 });
      for (const [first, second] of [
        [original, corrected],
        [corrected, original],
        [a, b],
        [b, a],
      ] as const) {
        for (const batches of [[[first, second]], [[first], [second]]]) {
          const store = await open();
          for (const batch of batches) await store.write(planWrites(batch));
          const row = await store.read(spend, first.entity);
          expect(row?.features).toEqual(offlineRow(spend, [first, second])?.features);
          expect(row?.features.amount_sum_10m).toBe(row?.features.amount);
          expect(row?.features.amount_count_10m).toBe(1);
        }
      }
    });

    it('any shuffled, duplicated, randomly batched delivery ends in the offline state', async () => {
      const log = eventLog(1_500, 30, 1, Date.now() - 3 * 3_600_000);
      const groups = new Map<string, ValidatedEvent[]>();
      for (const e of log) {
        const v = validateFeatureEvent(contractViews, e);
        const key = `${v.view.name}/${v.entity}`;
        groups.set(key, [...(groups.get(key) ?? []), v]);
      }
      for (const seed of [2, 3]) {
        const store = await open();
        const random = new SeededRandom(seed);
        const events = shuffledWithDuplicates(log, seed).map((e) => validateFeatureEvent(contractViews, e));
        for (let i = 0; i < events.length; ) {
          const size = 1 + random.int(200);
          await store.write(planWrites(events.slice(i, i + size)));
          i += size;
        }
        const keys = [...groups.keys()];
        const rows = await store.readBatch(
          keys.map((k) => {
            const events = groups.get(k)!;
            return { view: events[0]!.view, entities: [events[0]!.entity] };
          }),
        );
        const mismatches = keys.filter((k, i) => {
          const events = groups.get(k)!;
          return JSON.stringify(rows[i]![0]) !== JSON.stringify(offlineRow(events[0]!.view, events));
        });
        expect(mismatches).toEqual([]);
      }
    });

    it('keeps the newest max_events events of a hot entity, whatever the delivery order, like the offline reference', async () => {
      const t = Date.now() - 3_600_000;
      // 300 events of one entity (values 0..299 at increasing times, ties on a 1 s grid), delivered
      // shuffled, duplicated and in random batches.
      const log: FeatureEvent[] = Array.from({ length: 300 }, (_, i) => ({
        event_id: `h${String(i).padStart(3, '0')}`,
        view: 'hot',
        entity_id: 'hot-entity',
        event_time: t + Math.floor(i / 2) * 1_000,
        features: { v: i },
      }));
      const store = await open();
      const random = new SeededRandom(11);
      const events = shuffledWithDuplicates(log, 11).map((e) => validateFeatureEvent(contractViews, e));
      for (let i = 0; i < events.length; ) {
        const size = 1 + random.int(40);
        await store.write(planWrites(events.slice(i, i + size)));
        i += size;
      }
      const row = await store.read(hot, 'hot-entity');
      expect(row?.features).toEqual({ v: 299, v_count_1d: 5, v_sum_1d: 295 + 296 + 297 + 298 + 299, v_min_10m: 295 });
      const offline = offlineRow(
        hot,
        log.map((e) => validateFeatureEvent(contractViews, e)),
      );
      expect(JSON.stringify(row)).toBe(JSON.stringify(offline));
    });

    it('reads single and batch rows, projected, with missing entities as undefined', async () => {
      const store = await open();
      const t = Date.now();
      await store.write(
        planWrites([
          event('profile', 'a:b{c} é', 'e1', t, { age: 41.5, premium: false }),
          event('profile', 'two', 'e2', t, { country: 'de' }),
          event('spend', 'two', 'e3', t, { amount: 2 }),
        ]),
      );
      expect(await store.read(profile, 'a:b{c} é', ['premium', 'age'])).toEqual({
        eventTime: t,
        eventId: 'e1',
        features: { premium: false, age: 41.5 },
      });
      expect(await store.read(profile, 'nobody')).toBeUndefined();
      const batch = await store.readBatch([
        { view: profile, entities: ['two', 'nobody', 'a:b{c} é'], features: ['country'] },
        { view: spend, entities: ['nobody', 'two'], features: ['amount_count_10m'] },
        { view: spend, entities: [] },
      ]);
      expect(batch).toEqual([
        [
          { eventTime: t, eventId: 'e2', features: { country: 'de' } },
          undefined,
          { eventTime: t, eventId: 'e1', features: { country: null } },
        ],
        [undefined, { eventTime: t, eventId: 'e3', features: { amount_count_10m: 1 } }],
        [],
      ]);
    });

    // A batch's rows are refused before any is read when they hold more than `maxRowBytes` as
    // stored (the feature API's answer bound): 1,000 rows of 512 KB were read whole first (a review).
    it('refuses a batch whose distinct rows hold more than maxRowBytes, before reading; within it, reads as without', async () => {
      const store = await open();
      const t = Date.now();
      const long = 'x'.repeat(10_000);
      await store.write(
        planWrites([
          event('profile', 'a', 'e1', t, { country: long }),
          event('profile', 'b', 'e2', t, { country: long }),
          event('spend', 'a', 'e3', t, { amount: 2 }),
        ]),
      );
      const requests = [
        { view: profile, entities: ['a', 'b', 'a', 'nobody'], features: ['age'] },
        { view: spend, entities: ['a'], features: ['amount'] },
      ];
      const error = await store.readBatch(requests, { maxRowBytes: 15_000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(DriftlineError);
      expect((error as DriftlineError).code).toBe('BAD_REQUEST');
      // Each distinct row counted once, whole (not only the feature asked for): two of ~10 KB.
      expect((error as DriftlineError).message).toMatch(
        /^the rows asked for hold 2\d{4} bytes in the online store, more than the 15000 a batch may read: ask for fewer entities per request$/,
      );
      const rows = await store.readBatch(requests, { maxRowBytes: 30_000 });
      expect(rows).toEqual(await store.readBatch(requests));
      expect(rows[0]![1]).toEqual({ eventTime: t, eventId: 'e2', features: { age: null } });
    });

    it('expires a row its view TTL after its newest event time; an old event after that is not served', async () => {
      const store = await open();
      // TTL 4 s, seconds of margin each side (300 ms failed under a loaded suite: the writes took longer).
      const ttl = 4_000;
      const t = Date.now();
      await store.write(planWrites([event('short', 'k', 'a', t, { x: 1 })]));
      await store.write(planWrites([event('profile', 'k', 'a', t, { age: 1 })]));
      expect((await store.read(short, 'k'))?.features).toEqual({ x: 1 });
      // A newer event moves the expiry to its time + TTL (t + 6 s); a stale write does not.
      await store.write(planWrites([event('short', 'k', 'b', t + 2_000, { x: 2 })]));
      await store.write(planWrites([event('short', 'k', 'a', t, { x: 1 })]));
      await sleep(Math.max(0, t + ttl + 500 - Date.now())); // past a's expiry, 1.5 s before b's
      expect((await store.read(short, 'k'))?.features).toEqual({ x: 2 });
      await sleep(Math.max(0, t + 2_000 + ttl + 200 - Date.now()));
      expect(await store.read(short, 'k')).toBeUndefined();
      // An event older than the TTL arriving after that (a replay, a late producer) was written and
      // served for a whole TTL more, counted from the write (found by a review).
      await store.write(planWrites([event('short', 'k', 'c', t + 1_000, { x: 3 })]));
      expect(await store.read(short, 'k')).toBeUndefined();
      expect(await store.read(profile, 'k')).toBeDefined(); // ttl 1d
    });

    it('an event within the TTL after the row expired still counts the window history, like offlineRow (found by a review)', async () => {
      const store = await open();
      const t0 = Date.now();
      const early = [event('quiet', 'a', 'a1', t0, { x: 5 }), event('quiet', 'b', 'b1', t0, { x: 5 })];
      await store.write(planWrites(early));
      // Both rows expire at t0 + 1 s; their window sets must outlive them.
      await sleep(Math.max(0, t0 + 1_200 - Date.now()));
      expect(await store.read(quiet, 'a')).toBeUndefined();
      // a: a fresh event; b: a late one, older than now but within the TTL, b1 inside its 1 s window.
      const later = [event('quiet', 'a', 'a2', Date.now(), { x: 7 }), event('quiet', 'b', 'b2', t0 + 600, { x: 7 })];
      await store.write(planWrites(later));
      for (const entity of ['a', 'b']) {
        const expected = offlineRow(
          quiet,
          [...early, ...later].filter((e) => e.entity === entity),
        );
        expect(expected?.features).toMatchObject({ x_sum_1h: 12, x_count_1h: 2 });
        expect(await store.read(quiet, entity)).toEqual(expected);
      }
      expect((await store.read(quiet, 'b'))?.features.x_sum_1s).toBe(12);
    });

    it('an old event replayed while the row has expired does not cut its window history short (found by a review)', async () => {
      const store = await open();
      const t0 = Date.now();
      const e1 = event('quiet', 'a', 'a1', t0, { x: 5 });
      await store.write(planWrites([e1]));
      await sleep(Math.max(0, t0 + 1_200 - Date.now()));
      // Inside e1's hour, older than the TTL: kept in the window, its row deleted as it arrives. It
      // anchored the set at its own time, which then expired at t0 − 1 h + 0.5 s + 1 s + 1 h.
      const e0 = event('quiet', 'a', 'a0', t0 - 3_600_000 + 500, { x: 1 });
      expect(await store.write(planWrites([e0]))).toEqual({
        entities: 1,
        rowsApplied: 0,
        aggregatesUpdated: 0, // never served
        rowsRepaired: 0,
        rowsExpired: 1,
      });
      await sleep(Math.max(0, t0 + 1_700 - Date.now()));
      const e2 = event('quiet', 'a', 'a2', Date.now(), { x: 7 });
      await store.write(planWrites([e2]));
      const expected = offlineRow(quiet, [e0, e1, e2]);
      expect(expected?.features).toMatchObject({ x_sum_1h: 12, x_count_1h: 2 });
      expect(await store.read(quiet, 'a')).toEqual(expected);
    });

    it('a TTL raised after a row expired: a late event anchors the window at the newest event kept, as offlineRow (found by a review)', async () => {
      const subject = await openSubject();
      const t0 = Date.now();
      const kept = event('quiet', 'a', 'a1', t0, { x: 5 });
      await subject.store.write(planWrites([kept]));
      await sleep(Math.max(0, t0 + 1_200 - Date.now()));
      // Restarted with the view's TTL raised to an hour: the row written under 1 s is gone, its window is not.
      const store = await reopen(subject);
      const raised = parseFeatureViews({
        views: [{ ...quietDefinition, ttl: '1h' }],
      });
      const late = validateFeatureEvent(raised, {
        event_id: 'a0',
        view: 'quiet',
        entity_id: 'a',
        event_time: t0 - 1_100,
        features: { x: 1 },
      });
      await store.write(planWrites([late]));
      const view = raised.get('quiet')!;
      // The row is the late event's (the newer row was lost with its TTL); the windows end at t0, not
      // at the late event's time (whose 1 s window would count a1, an event after it).
      const reference = offlineRow(view, [kept, late]);
      expect(reference?.features).toMatchObject({ x_sum_1h: 6, x_count_1h: 2, x_sum_1s: 5 });
      expect(await store.read(view, 'a')).toEqual({
        eventTime: late.eventTime,
        eventId: 'a0',
        features: { ...reference?.features, x: 1 },
      });
    });

    it('an event already past the TTL is expired, not applied; its window member still counts for a later event (found by a review)', async () => {
      const store = await open();
      const old = event('quiet', 'n', 'n1', Date.now() - 1_500, { x: 5 });
      expect(await store.write(planWrites([old]))).toEqual({
        entities: 1,
        rowsApplied: 0,
        aggregatesUpdated: 0, // its aggregates are never served
        rowsRepaired: 0,
        rowsExpired: 1,
      });
      expect(await store.read(quiet, 'n')).toBeUndefined();
      const fresh = event('quiet', 'n', 'n2', Date.now(), { x: 7 });
      expect((await store.write(planWrites([fresh]))).rowsApplied).toBe(1);
      expect(await store.read(quiet, 'n')).toEqual(offlineRow(quiet, [old, fresh]));
    });

    it("serves no row older than now − the view's current TTL: a TTL shortened after the write applies at once", async () => {
      const store = await open();
      const t = Date.now() - 3 * 3_600_000;
      await store.write(
        planWrites([event('profile', 'k', 'a', t, { age: 1 }), event('profile', 'j', 'b', t, { age: 2 })]),
      );
      // The same view with its ttl changed to 1h (rows were written under 1d): read 3 h old.
      const shortened = { ...profile, ttlMs: 3_600_000 };
      expect(await store.read(shortened, 'k')).toBeUndefined();
      expect(await store.readBatch([{ view: shortened, entities: ['k', 'j'] }])).toEqual([[undefined, undefined]]);
      const lengthened = { ...profile, ttlMs: 4 * 3_600_000 };
      expect((await store.read(lengthened, 'k'))?.features.age).toBe(1);
      expect((await store.readBatch([{ view: profile, entities: ['j'] }]))[0]?.[0]?.features.age).toBe(2);
    });

    it('refuses bad entity ids, unknown fields and oversized batches with BAD_REQUEST', async () => {
      const store = await open();
      const badRequest = async (promise: Promise<unknown>) => {
        const error = await promise.then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(DriftlineError);
        expect((error as DriftlineError).code).toBe('BAD_REQUEST');
        expect((error as DriftlineError).retriable).toBe(false);
      };
      await badRequest(store.read(profile, ''));
      await badRequest(store.read(profile, 'x'.repeat(MAX_ENTITY_LENGTH + 1)));
      await badRequest(store.read(profile, '\uD800'));
      await badRequest(store.read(profile, 'x', ['nope']));
      await badRequest(store.readBatch([{ view: profile, entities: ['ok', ''] }]));
      await badRequest(
        store.readBatch([{ view: profile, entities: Array.from({ length: MAX_READ_BATCH + 1 }, (_, i) => `e${i}`) }]),
      );
      // The longest valid id is fine.
      expect(await store.read(profile, 'x'.repeat(MAX_ENTITY_LENGTH))).toBeUndefined();
    });
  });
}
