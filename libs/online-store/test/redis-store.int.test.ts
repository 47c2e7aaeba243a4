import { createServer, type Server } from 'node:net';
import { SinkUnavailableError } from '@driftline/core';
import {
  copyDigest,
  type FeatureViews,
  parseFeatureViews,
  planWrites,
  validateFeatureEvent,
} from '@driftline/features';
import { uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ROW_EVENT_ID, ROW_TIME, rowKey, v1RowKey, windowKey } from '../src/index.js';
import {
  classifyRedisError,
  corruptRowReporter,
  createRedisClient,
  createRedisOnlineStore,
  RedisOnlineStore,
  waitReady,
} from '../src/redis/index.js';
import { contractViews, onlineStoreContract } from './contract.js';
import { recordingLogger } from './support.js';

const stack = inject('stack');
const config = { url: stack.redisUrl, tls: false };
const tooling = createRedisClient(config, 'tooling', { name: 'online-store-test' });
afterAll(() => tooling.disconnect());

async function dropPrefix(prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await tooling.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1_000);
    cursor = next;
    if (keys.length > 0) await tooling.unlink(...keys);
  } while (cursor !== '0');
}

// Writes on an online-write client, like the materializer; entitiesPerCall 7 so batches span
// several script calls.
onlineStoreContract('Redis', async () => {
  const keyPrefix = uniqueName('os');
  const open = async () => {
    const store = createRedisOnlineStore(config, { use: 'online-write', keyPrefix, entitiesPerCall: 7 });
    await waitReady(store.client);
    return store;
  };
  return { store: await open(), reopen: open, cleanup: () => dropPrefix(keyPrefix) };
});

// The same contract with a refold budget of 3: a call of a windowed view stops after an entity or
// two (the first always goes) and the store sends the rest in the next call, so every batch of
// several windowed entities is written in cut calls.
onlineStoreContract('Redis, windowed calls cut by a refold budget of 3', async () => {
  const keyPrefix = uniqueName('os');
  const open = async () => {
    const store = createRedisOnlineStore(config, { use: 'online-write', keyPrefix, refoldBudget: 3 });
    await waitReady(store.client);
    return store;
  };
  return { store: await open(), reopen: open, cleanup: () => dropPrefix(keyPrefix) };
});

const spendEvent = (id: string, t: number, amount: number) =>
  validateFeatureEvent(contractViews, {
    event_id: id,
    view: 'spend',
    entity_id: 'e',
    event_time: t,
    features: { amount, fee: 1 },
  });

describe('Redis adapter specifics', () => {
  it("bounds a hot entity's window set at the view's max_events (5 here)", async () => {
    const keyPrefix = uniqueName('os');
    const store = new RedisOnlineStore(tooling, { keyPrefix });
    try {
      const t = Date.now() - 60_000;
      for (let b = 0; b < 20; b++) {
        const batch = Array.from({ length: 10 }, (_, i) =>
          validateFeatureEvent(contractViews, {
            event_id: `e${b * 10 + i}`,
            view: 'hot',
            entity_id: 'e',
            event_time: t + (b * 10 + i) * 10,
            features: { v: b * 10 + i },
          }),
        );
        await store.write(planWrites(batch));
      }
      expect(await tooling.zcard(windowKey(rowKey(keyPrefix, 'hot', 'e')))).toBe(5);
    } finally {
      await dropPrefix(keyPrefix);
    }
  });

  it('refolds the set Redis holds when a member it adds was already there (two copies of one id: a set it never writes)', async () => {
    // The script reads the set once and folds it with the added members merged in; a ZADD that
    // finds its member already there (its model of the set is wrong) has it read the set again.
    const keyPrefix = uniqueName('os');
    const store = new RedisOnlineStore(tooling, { keyPrefix });
    try {
      const t = Date.now();
      const latest = spendEvent('x', t, 2);
      const key = rowKey(keyPrefix, 'spend', 'e');
      const member = (id: string, copy: string, values: string) => `${id}\u0000${copy}\u0000${values}`;
      await tooling.zadd(
        windowKey(key),
        t - 20_000,
        member('x', copyDigest(latest), '2,1'),
        t - 10_000,
        member('x', 'ffffffffffffffff', '3,1'),
        t - 15_000,
        member('y', '0', '5,1'),
      );
      await tooling.set(
        key,
        JSON.stringify({ [ROW_TIME]: String(t - 10_000), [ROW_EVENT_ID]: 'x', _c: 'ffffffffffffffff' }),
      );
      await store.write(planWrites([latest]));
      expect(await tooling.zrange(windowKey(key), 0, -1)).toEqual([
        member('y', '0', '5,1'),
        member('x', copyDigest(latest), '2,1'),
      ]);
      expect((await store.read(contractViews.get('spend')!, 'e'))?.features).toMatchObject({
        amount_count_10m: 2,
        amount_sum_10m: 7,
      });
    } finally {
      await dropPrefix(keyPrefix);
    }
  });

  it('writes key layout v2: the row as one JSON object with named meta fields with the view TTL, a window set a horizon longer', async () => {
    const keyPrefix = uniqueName('os');
    const store = new RedisOnlineStore(tooling, { keyPrefix });
    try {
      const at = Date.now();
      await store.write(planWrites([spendEvent('b', at, 1), spendEvent('a', at - 1_000, 2)]));
      const key = rowKey(keyPrefix, 'spend', 'e');
      expect(key).toBe(`${keyPrefix}:v2:{spend:e}`);
      expect(await tooling.type(key)).toBe('string');
      expect(JSON.parse((await tooling.get(key))!)).toMatchObject({
        [ROW_TIME]: String(at),
        [ROW_EVENT_ID]: 'b',
        amount: '1',
        amount_count_10m: '2',
      });
      expect(await tooling.zcard(windowKey(key))).toBe(2);
      // ttl 2d after the newest event time; the window set 1d (the longest window) after that.
      expect(await tooling.call('PEXPIRETIME', windowKey(key))).toBe(at + 2 * 86_400_000 + 86_400_000);
      expect(await tooling.call('PEXPIRETIME', key)).toBe(at + 2 * 86_400_000);
    } finally {
      await dropPrefix(keyPrefix);
    }
  });

  it('keeps strings exact through the JSON row: every digit, quotes, control characters, non-ASCII', async () => {
    const keyPrefix = uniqueName('os');
    const store = new RedisOnlineStore(tooling, { keyPrefix });
    const profile = contractViews.get('profile')!;
    try {
      const country = 'a "q" \\ / \u0001\n 日本 😀 </script>';
      const age = 0.1 + 0.2; // 0.30000000000000004: 17 significant digits
      await store.write(
        planWrites([
          validateFeatureEvent(contractViews, {
            event_id: 'x',
            view: 'profile',
            entity_id: 'p',
            event_time: Date.now(),
            features: { age, country, premium: false, score: -1e-300 },
          }),
        ]),
      );
      const expected = { age, country, premium: false, score: -1e-300 };
      expect((await store.read(profile, 'p'))?.features).toEqual(expected);
      expect((await store.readBatch([{ view: profile, entities: ['p'] }]))[0]![0]?.features).toEqual(expected);
    } finally {
      await dropPrefix(keyPrefix);
    }
  });

  it('serves a layout-v1 row until a write migrates it, keeping its window history and TTL', async () => {
    const keyPrefix = uniqueName('os');
    const store = new RedisOnlineStore(tooling, { keyPrefix });
    const spendView = contractViews.get('spend')!;
    try {
      const at = Date.now() - 1_000;
      const key = rowKey(keyPrefix, 'spend', 'e');
      const old = v1RowKey(key);
      // What the previous version left: a hash row and its window set, with a TTL.
      await tooling.hset(
        old,
        ROW_TIME,
        String(at),
        ROW_EVENT_ID,
        'm',
        'amount',
        '4',
        'fee',
        '1',
        'amount_count_10m',
        '1',
      );
      await tooling.zadd(windowKey(old), at, 'm\u00004,1');
      await tooling.pexpire(old, 600_000);
      await tooling.pexpire(windowKey(old), 600_000);
      const v1Row = { eventTime: at, eventId: 'm', features: { amount: 4, fee: 1 } };
      expect(await store.read(spendView, 'e', ['amount', 'fee'])).toEqual(v1Row);
      // The cluster form (one entity per call: GETs, per-key HMGETs) reads the same.
      const perKey = new RedisOnlineStore(tooling, { keyPrefix, entitiesPerCall: 1 });
      // And bounded (readBytesPerCall), each hash alone or in one call.
      const bounded = [10, 1 << 20].flatMap((readBytesPerCall) =>
        [100, 1].map(
          (entitiesPerCall) => new RedisOnlineStore(tooling, { keyPrefix, entitiesPerCall, readBytesPerCall }),
        ),
      );
      for (const reader of [store, perKey, ...bounded]) {
        const batch = await reader.readBatch([
          { view: spendView, entities: ['absent', 'e'], features: ['amount', 'fee'] },
          { view: spendView, entities: ['e'], features: ['fee'] },
        ]);
        expect(batch).toEqual([[undefined, v1Row], [{ ...v1Row, features: { fee: 1 } }]]);
      }
      // With the fallback off (once no v1 rows remain), a v1 row is not looked up: absent.
      const v2Only = new RedisOnlineStore(tooling, { keyPrefix, readV1: false });
      expect(await v2Only.read(spendView, 'e', ['amount', 'fee'])).toBeUndefined();
      expect(await v2Only.readBatch([{ view: spendView, entities: ['absent', 'e'] }])).toEqual([
        [undefined, undefined],
      ]);

      // An event older than every window changes nothing, but moves the row: v1 keys gone, the same
      // row in v2, its TTL kept (a write that changes nothing restarts no TTL).
      const stale = await store.write(planWrites([spendEvent('stale', at - 2 * 86_400_000, 9)]));
      expect(stale).toMatchObject({ rowsApplied: 0, aggregatesUpdated: 0 });
      expect(await tooling.exists(old, windowKey(old))).toBe(0);
      expect(await store.read(spendView, 'e', ['amount', 'fee'])).toEqual(v1Row);
      const batch = [{ view: spendView, entities: ['e', 'absent'], features: ['amount', 'fee'] }];
      expect(await perKey.readBatch(batch)).toEqual([[v1Row, undefined]]);
      const ttl = await tooling.pttl(key);
      expect(ttl).toBeGreaterThan(500_000);
      expect(ttl).toBeLessThanOrEqual(600_000);
      expect(await tooling.zcard(windowKey(key))).toBe(1);

      // The window history moved with it: an older event inside the window and a newer one count with the v1 member.
      await store.write(planWrites([spendEvent('older', at - 10, 9)]));
      expect(await store.write(planWrites([spendEvent('newer', at + 10, 5)]))).toMatchObject({ rowsApplied: 1 });
      expect((await store.read(spendView, 'e'))?.features).toMatchObject({
        amount: 5,
        amount_count_10m: 3,
        amount_sum_10m: 18,
      });
    } finally {
      await dropPrefix(keyPrefix);
    }
  });

  it('finds a row that a write migrates between the read of the rows and the fallback read of v1', async () => {
    const keyPrefix = uniqueName('os');
    const writer = new RedisOnlineStore(tooling, { keyPrefix });
    const spendView = contractViews.get('spend')!;
    const at = Date.now() - 1_000;
    const old = v1RowKey(rowKey(keyPrefix, 'spend', 'e'));
    const plantV1 = () =>
      tooling.hset(old, ROW_TIME, String(at), ROW_EVENT_ID, 'm', 'amount', '4', 'fee', '1', 'amount_count_10m', '1');
    const reader = createRedisClient(config, 'tooling', { name: 'online-store-race' });
    await waitReady(reader);
    try {
      // The pipeline a write (a newer event) migrating the entity runs before: read's v1 fallback
      // (its first); a batch's v1 sizing (the rows read again after it) or v1 read (the rows again
      // after the hashes): the 1st and 2nd pipelines (the batch's own read of a view not yet sized
      // is a script call), or the 3rd and 4th with entitiesPerCall 1 (STRLEN, then GETs, first).
      const cases: Array<{ entitiesPerCall: number; kind: 'read' | 'batch'; at: number; readBytesPerCall?: number }> = [
        { entitiesPerCall: 100, kind: 'read' as const, at: 1 },
        { entitiesPerCall: 1, kind: 'read' as const, at: 1 },
        { entitiesPerCall: 100, kind: 'batch' as const, at: 1 },
        { entitiesPerCall: 100, kind: 'batch' as const, at: 2 },
        { entitiesPerCall: 1, kind: 'batch' as const, at: 3 },
        { entitiesPerCall: 1, kind: 'batch' as const, at: 4 },
        { entitiesPerCall: 100, kind: 'batch' as const, at: 2, readBytesPerCall: 1 << 20 },
      ];
      for (const { entitiesPerCall, kind, at: hookAt, readBytesPerCall } of cases) {
        await dropPrefix(keyPrefix);
        await plantV1();
        const store = new RedisOnlineStore(reader, {
          keyPrefix,
          entitiesPerCall,
          ...(readBytesPerCall === undefined ? {} : { readBytesPerCall }),
        });
        const pipeline = reader.pipeline.bind(reader);
        let pipelines = 0;
        reader.pipeline = ((...args: Parameters<typeof reader.pipeline>) => {
          const p = pipeline(...args);
          if (++pipelines === hookAt) {
            const exec = p.exec.bind(p);
            p.exec = (async () => {
              await writer.write(planWrites([spendEvent('newer', at + 10, 5)]));
              return exec();
            }) as typeof p.exec;
          }
          return p;
        }) as typeof reader.pipeline;
        try {
          const row =
            kind === 'read'
              ? await store.read(spendView, 'e', ['amount'])
              : (await store.readBatch([{ view: spendView, entities: ['e'], features: ['amount'] }]))[0]![0];
          expect(await tooling.exists(old)).toBe(0); // the write did migrate it meanwhile
          expect(row).toEqual({ eventTime: at + 10, eventId: 'newer', features: { amount: 5 } });
        } finally {
          reader.pipeline = pipeline;
        }
      }
    } finally {
      reader.disconnect();
      await dropPrefix(keyPrefix);
    }
  });

  it('repairs a row frozen by a µs event time written before the bounds: the next write wins', async () => {
    const keyPrefix = uniqueName('os');
    const store = new RedisOnlineStore(tooling, { keyPrefix });
    try {
      const at = Date.now();
      const key = rowKey(keyPrefix, 'spend', 'e');
      // What an unbounded writer left behind: event_time in µs (year ~58,000 read as ms), in the row and its window.
      const micros = at * 1000;
      await tooling.set(
        key,
        JSON.stringify({ [ROW_TIME]: String(micros), [ROW_EVENT_ID]: 'old', amount: '999', fee: '9' }),
      );
      await tooling.zadd(windowKey(key), micros, 'old\u00009999');
      const stats = await store.write(planWrites([spendEvent('new', at, 5)]));
      expect(stats).toEqual({ entities: 1, rowsApplied: 1, aggregatesUpdated: 1, rowsRepaired: 1, rowsExpired: 0 });
      expect(JSON.parse((await tooling.get(key))!)).toMatchObject({
        [ROW_TIME]: String(at),
        [ROW_EVENT_ID]: 'new',
        amount: '5',
        amount_count_10m: '1',
      });
      expect(await tooling.zcard(windowKey(key))).toBe(1);
      // A repaired row is an ordinary row again: an older event does not win, a newer one does.
      expect((await store.write(planWrites([spendEvent('older', at - 1, 6)]))).rowsApplied).toBe(0);
      expect(await store.write(planWrites([spendEvent('newer', at + 1, 7)]))).toMatchObject({
        rowsApplied: 1,
        rowsRepaired: 0,
      });
    } finally {
      await dropPrefix(keyPrefix);
    }
  });

  it('repairs a window member above the ceiling whose row was lost: it anchored the set and emptied it for good (found by a review)', async () => {
    const keyPrefix = uniqueName('os');
    const store = new RedisOnlineStore(tooling, { keyPrefix });
    try {
      const at = Date.now();
      const key = rowKey(keyPrefix, 'spend', 'e');
      // A µs member of the era before bounds, its row gone (evicted, or deleted by hand).
      await tooling.zadd(windowKey(key), at * 1000, 'old\u00009999,9');
      expect(await store.write(planWrites([spendEvent('b', at - 1, 7)]))).toMatchObject({
        rowsApplied: 1,
        rowsRepaired: 1,
      });
      await store.write(planWrites([spendEvent('c', at, 11)]));
      expect(JSON.parse((await tooling.get(key))!)).toMatchObject({ amount_count_10m: '2', amount_sum_10m: '18' });
      expect(await tooling.zcard(windowKey(key))).toBe(2);
    } finally {
      await dropPrefix(keyPrefix);
    }
  });

  it('reads members written when the view aggregated more features after one is removed: the first value is the kept one (found by a review)', async () => {
    const keyPrefix = uniqueName('os');
    const views = (aggregates: object[]) =>
      parseFeatureViews({
        views: [{ name: 'pair', entity: 'user_id', ttl: '1d', features: { x: 'double', y: 'double' }, aggregates }],
      });
    const before = views([
      { feature: 'x', function: 'sum', window: '1h', name: 'sx' },
      { feature: 'y', function: 'sum', window: '1h', name: 'sy' },
    ]);
    const after = views([{ feature: 'x', function: 'sum', window: '1h', name: 'sx' }]);
    const event = (v: FeatureViews, id: string, t: number, x: number) =>
      validateFeatureEvent(v, { event_id: id, view: 'pair', entity_id: 'e', event_time: t, features: { x, y: 1000 } });
    // A store caches each view's write plan: a restart with the new view file is a new store.
    const first = new RedisOnlineStore(tooling, { keyPrefix });
    const second = new RedisOnlineStore(tooling, { keyPrefix });
    try {
      const at = Date.now() - 60_000;
      await first.write(planWrites([event(before, 'a', at, 1), event(before, 'b', at + 1, 2)]));
      await second.write(planWrites([event(after, 'c', at + 2, 4)]));
      expect(JSON.parse((await tooling.get(rowKey(keyPrefix, 'pair', 'e')))!)).toMatchObject({ sx: '7' });
    } finally {
      await dropPrefix(keyPrefix);
    }
  });

  it('reports a corrupt row at most once a minute, with how many reads met one since', () => {
    const lines: Array<Record<string, unknown>> = [];
    let now = 0;
    const logger = { warn: (fields: Record<string, unknown>) => lines.push(fields) } as unknown as Parameters<
      typeof corruptRowReporter
    >[0];
    const report = corruptRowReporter(logger, 60_000, () => now);
    for (let i = 0; i < 1_000; i++) report('k');
    now = 60_000;
    report('k2');
    expect(lines).toEqual([
      { key: 'k', reads: 1 },
      { key: 'k2', reads: 1_000 },
    ]);
  });

  it('a value that is not a row at its name (a foreign string or a key of another type): a write fails for good, a read answers it absent and reports it', async () => {
    const keyPrefix = uniqueName('os');
    const corrupt: string[] = [];
    const store = new RedisOnlineStore(tooling, { keyPrefix, onCorruptRow: (k) => corrupt.push(k) });
    const spendView = contractViews.get('spend')!;
    try {
      const key = rowKey(keyPrefix, 'spend', 'e');
      await store.write(planWrites([spendEvent('ok', Date.now(), 1)].map((e) => ({ ...e, entity: 'good' }))));
      // Something not ours at a key driftline writes: a keyspace it cannot use (CONFIG_INVALID: held
      // by the consumer loop when every record fails, as a shared key would make them;
      // dead-lettered alone when its batch mates pass).
      for (const [plant, code] of [
        [() => tooling.set(key, 'not a row'), 'CONFIG_INVALID'],
        [() => tooling.hset(key, 'a', '1'), 'CONFIG_INVALID'],
      ] as const) {
        await tooling.del(key);
        await plant();
        const error = await store.write(planWrites([spendEvent('a', Date.now(), 1)])).catch((e: unknown) => e);
        expect(error).toMatchObject({ code, retriable: false });
        // Read: that entity is absent; the others of a batch are answered (it was a 500 for all).
        expect(await store.read(spendView, 'e')).toBeUndefined();
        const [rows] = await store.readBatch([{ view: spendView, entities: ['good', 'e'] }]);
        expect(rows?.[0]?.features.amount).toBe(1);
        expect(rows?.[1]).toBeUndefined();
      }
      await tooling.set(key, '[1]');
      expect(await store.readBatch([{ view: spendView, entities: ['e'] }])).toEqual([[undefined]]);
      // Without onCorruptRow (the model server) the read fails as a server fault, as it did before.
      const strict = new RedisOnlineStore(tooling, { keyPrefix });
      await expect(strict.read(spendView, 'e')).rejects.toMatchObject({ code: 'CONFIG_INVALID', retriable: false });
      await expect(strict.readBatch([{ view: spendView, entities: ['good', 'e'] }])).rejects.toThrow(/WRONGTYPE/);
      expect(corrupt.length).toBeGreaterThanOrEqual(3);
      expect(new Set(corrupt)).toEqual(new Set([key]));
    } finally {
      await dropPrefix(keyPrefix);
    }
  });

  it('a value that is not a row at an old-layout (v1) key, or a row whose event time is not a number, reads absent like any damaged row, the rest of the batch answered', async () => {
    const keyPrefix = uniqueName('os');
    const warnings: Array<{ obj: object; msg?: string }> = [];
    const onCorruptRow = corruptRowReporter(recordingLogger('warn', warnings));
    const profile = contractViews.get('profile')!;
    const v1Key = (entity: string) => v1RowKey(rowKey(keyPrefix, 'profile', entity));
    try {
      const good = validateFeatureEvent(contractViews, {
        event_id: 'g',
        view: 'profile',
        entity_id: 'good',
        event_time: Date.now(),
        features: { age: 3 },
      });
      await new RedisOnlineStore(tooling, { keyPrefix }).write(planWrites([good]));
      await tooling.set(v1Key('foreign1'), 'hello');
      await tooling.rpush(v1Key('foreign2'), 'x');
      await tooling.hset(v1Key('badtime1'), ROW_TIME, 'abc', ROW_EVENT_ID, 'e', 'age', '1');
      await tooling.set(rowKey(keyPrefix, 'profile', 'badtime2'), JSON.stringify({ [ROW_TIME]: 'abc', age: '1' }));
      const entities = ['good', 'foreign2', 'foreign1', 'badtime1', 'badtime2', 'absent'];
      // Bounded reads too (readBytesPerCall: 10 bytes, so every row and v1 hash is read alone).
      for (const { entitiesPerCall, readBytesPerCall } of [
        { entitiesPerCall: 100 },
        { entitiesPerCall: 1 },
        { entitiesPerCall: 100, readBytesPerCall: 10 },
        { entitiesPerCall: 1, readBytesPerCall: 10 },
      ]) {
        const store = new RedisOnlineStore(tooling, {
          keyPrefix,
          entitiesPerCall,
          onCorruptRow,
          ...(readBytesPerCall === undefined ? {} : { readBytesPerCall }),
        });
        // Each answered 500 (WRONGTYPE … @user_script:3), the batch's good entity included.
        for (const entity of entities.slice(1)) expect(await store.read(profile, entity)).toBeUndefined();
        const [rows] = await store.readBatch([{ view: profile, entities }]);
        expect(rows?.map((r) => r?.features.age)).toEqual([3, undefined, undefined, undefined, undefined, undefined]);
      }
      // One warning (once a minute) naming the first damaged key, however many reads met one.
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!.obj).toMatchObject({ key: v1Key('foreign2'), reads: 1 });
      // Without onCorruptRow (the model server): a server fault, as at a v2 key.
      const strict = new RedisOnlineStore(tooling, { keyPrefix });
      for (const entity of ['foreign1', 'badtime1', 'badtime2']) {
        await expect(strict.read(profile, entity)).rejects.toMatchObject({ code: 'CONFIG_INVALID', retriable: false });
      }
      await expect(strict.readBatch([{ view: profile, entities: ['good', 'foreign1'] }])).rejects.toThrow(/WRONGTYPE/);
    } finally {
      await dropPrefix(keyPrefix);
    }
  });

  it("applies the view's current TTL to layout-v1 rows too", async () => {
    const keyPrefix = uniqueName('os');
    const store = new RedisOnlineStore(tooling, { keyPrefix });
    const profile = contractViews.get('profile')!;
    try {
      const at = Date.now() - 3 * 3_600_000;
      await tooling.hset(
        v1RowKey(rowKey(keyPrefix, 'profile', 'old')),
        ROW_TIME,
        String(at),
        ROW_EVENT_ID,
        'm',
        'age',
        '4',
      );
      expect((await store.read(profile, 'old'))?.features.age).toBe(4);
      const shortened = { ...profile, ttlMs: 3_600_000 };
      expect(await store.read(shortened, 'old')).toBeUndefined();
      expect(await store.readBatch([{ view: shortened, entities: ['old'] }])).toEqual([[undefined]]);
    } finally {
      await dropPrefix(keyPrefix);
    }
  });

  it('fails fast and retriably while Redis is unreachable (no offline queue)', async () => {
    const store = createRedisOnlineStore(
      { url: 'redis://127.0.0.1:1', tls: false },
      { use: 'online-read', keyPrefix: 'x' },
    );
    try {
      const started = performance.now();
      const error = await store.read(contractViews.get('profile')!, 'e').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SinkUnavailableError);
      expect((error as SinkUnavailableError).retriable).toBe(true);
      // Refused at once, not queued for the read policy's 2 s command timeout; slack for a loaded run.
      expect(performance.now() - started).toBeLessThan(1_500);
      expect(store.ready()).toBe(false);
    } finally {
      await store.close();
    }
  });

  it('bounds every command: a server that accepts but never answers times out as a retriable error', async () => {
    // A TCP server that completes the handshake and then says nothing (a hung Redis).
    const sockets: Array<{ destroy(): void }> = [];
    const server: Server = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const client = createRedisClient({ url: `redis://127.0.0.1:${port}`, tls: false }, 'tooling', {
      policy: { commandTimeoutMs: 200, connectTimeoutMs: 200 },
    });
    client.on('error', () => {});
    try {
      const started = performance.now();
      const error = await client.get('k').catch((e: unknown) => classifyRedisError(e, 'read'));
      expect(error).toBeInstanceOf(SinkUnavailableError);
      expect(performance.now() - started).toBeLessThan(5_000); // the 200 ms timeout, slack for a loaded run
    } finally {
      client.disconnect();
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  it('classifies a script error as non-retriable and connection errors as retriable', async () => {
    const error = await tooling.eval('return redis.call("NOSUCHCOMMAND")', 0).catch((e: unknown) => e);
    const classified = classifyRedisError(error, 'write');
    expect(classified.retriable).toBe(false);
    expect(classified.code).toBe('INTERNAL');
    expect(classifyRedisError(new Error('Connection is closed.'), 'write').retriable).toBe(true);
    expect(classifyRedisError(new Error('Command timed out'), 'write').retriable).toBe(true);
  });
});
