// A join script that fails writes nothing (join-scripts.ts, "All or nothing"). Redis does not roll
// a script back: the scripts failed midway (a foreign value at a key of the 3rd record, at a count,
// a mark or a tally) and kept the writes of the records before it, without the batch's pending
// counts, dirty marks and tallies, so the retry found those records applied and the counts stayed
// wrong for good. Each case puts one key in such a state, runs the step and requires the error
// classified as before (WRONGTYPE → CONFIG_INVALID, a bad argument → INTERNAL) and the key space
// exactly as it was.
import type { DriftlineError } from '@driftline/core';
import type { LabelInput, PredictionInput } from '@driftline/join';
import { uniqueName } from '@driftline/test-support';
import { afterAll, afterEach, describe, expect, inject, it } from 'vitest';
import { createRedisClient, RedisJoinStore } from '../src/redis/index.js';
import { joinContractConfig } from './join-contract.js';

const stack = inject('stack');
const redis = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'join-atomic' });
afterAll(() => redis.disconnect());

const prefixes: string[] = [];
afterEach(async () => {
  for (const prefix of prefixes.splice(0)) {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.unlink(...keys);
  }
});

function open(): RedisJoinStore {
  const prefix = `${uniqueName('ja')}:`;
  prefixes.push(prefix);
  return new RedisJoinStore(redis, prefix, joinContractConfig);
}

/** Every key of the store with its type, value and whether it has a TTL: what "nothing written" compares. */
async function snapshot(store: RedisJoinStore): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const key of (await redis.keys(`${store.prefix}*`)).sort()) {
    const type = await redis.type(key);
    const value =
      type === 'string'
        ? await redis.get(key)
        : type === 'hash'
          ? await redis.hgetall(key)
          : type === 'zset'
            ? await redis.zrange(key, 0, -1, 'WITHSCORES')
            : type === 'set'
              ? (await redis.smembers(key)).sort()
              : type;
    out[key] = { type, value, ttl: (await redis.pttl(key)) > 0 };
  }
  return out;
}

/** Runs a step that must fail; returns its error after checking the key space did not change. */
async function failsWritingNothing(
  store: RedisJoinStore,
  step: () => Promise<unknown>,
  code: 'CONFIG_INVALID' | 'INTERNAL',
): Promise<DriftlineError> {
  const before = await snapshot(store);
  const error = (await step().then(
    () => undefined,
    (e: unknown) => e,
  )) as DriftlineError | undefined;
  expect(error, 'the step must fail').toBeDefined();
  expect(error?.code, error?.message).toBe(code);
  expect(error?.retriable).toBe(false);
  expect(await snapshot(store)).toEqual(before);
  return error as DriftlineError;
}

const W = '["m","v1",0]';
const now = 10_000;
const ids = ['a', 'b', 'c', 'd', 'e'];

function predictions(tally = false): PredictionInput<Buffer>[] {
  return ids.map((id, n) => ({
    model: 'm',
    id,
    eventTime: 100 + n,
    windowKey: W,
    payload: Buffer.from(`prediction ${id}`),
    ...(tally ? { tally: { group: 'g', slot: n % 2, value: 0.25 } } : {}),
  }));
}

function labels(): LabelInput<Buffer>[] {
  return ids.map((id, n) => ({ model: 'm', id, eventTime: 200 + n, payload: Buffer.from(`label ${id}`) }));
}

describe('RedisJoinStore: a prediction batch that fails writes nothing', () => {
  const cases: Array<[string, (s: RedisJoinStore) => Promise<unknown>, 'CONFIG_INVALID' | 'INTERNAL', RegExp]> = [
    [
      "a hash at the 3rd record's state key",
      (s) => redis.hset(s.keys.state({ model: 'm', id: 'c' }), 'x', '1'),
      'CONFIG_INVALID',
      /v2:s:\["m","c"\] holds a hash, not a join state/,
    ],
    [
      "a value driftline did not write at the 3rd record's state key (an L state without its label time)",
      (s) => redis.set(s.keys.state({ model: 'm', id: 'c' }), 'Lnot a label'),
      'CONFIG_INVALID',
      /the value at .*v2:s:\["m","c"\] is not a join state \(L\)/,
    ],
    [
      "a K state whose prediction length does not parse at the 3rd record's key",
      (s) => redis.set(s.keys.state({ model: 'm', id: 'c' }), 'K5\nw\nxx\nprediction'),
      'CONFIG_INVALID',
      /is not a join state \(K\)/,
    ],
    [
      'a string at the pending counts',
      (s) => redis.set(s.keys.pending, 'x'),
      'CONFIG_INVALID',
      /pending holds a string, not the pending counts/,
    ],
    [
      "a window's pending count that is not an integer",
      (s) => redis.hset(s.keys.pending, W, 'many'),
      'CONFIG_INVALID',
      /is not a pending count/,
    ],
    [
      'a hash at the schedule',
      (s) => redis.hset(s.keys.schedule, 'x', '1'),
      'CONFIG_INVALID',
      /schedule holds a hash, not the schedule/,
    ],
    [
      'a watermark that is not a number',
      (s) => redis.set(s.keys.watermark('predictions/0'), 'soon'),
      'CONFIG_INVALID',
      /wm:predictions\/0 is not a watermark/,
    ],
    [
      'a dirty mark sequence that is not a counter',
      (s) => redis.set(s.keys.dirtySeq, 'seven'),
      'CONFIG_INVALID',
      /dirty-seq is not the dirty mark sequence/,
    ],
    [
      'a set at the dirty windows',
      (s) => redis.sadd(s.keys.dirty, 'x'),
      'CONFIG_INVALID',
      /dirty holds a set, not the dirty windows/,
    ],
  ];
  for (const [name, foreign, code, message] of cases) {
    it(name, async () => {
      const store = open();
      await foreign(store);
      const error = await failsWritingNothing(
        store,
        () => store.applyPredictions(predictions(), now, 'predictions/0'),
        code,
      );
      expect(error.message).toMatch(message);
    });
  }

  it('an applied marker that is not from,through,time, or of another type (both scripts)', async () => {
    const store = open();
    const span = { first: 0, last: 4, maxAppendTime: 500 };
    const positioned = <T>(inputs: T[]) => inputs.map((x, n) => ({ ...x, offset: n, appendTime: 100 + n }));
    await redis.set(store.keys.applied('predictions/0'), '1,2');
    const error = await failsWritingNothing(
      store,
      () => store.applyPredictions(positioned(predictions()), now, 'predictions/0', span),
      'CONFIG_INVALID',
    );
    expect(error.message).toMatch(/applied:predictions\/0 is not an applied marker/);
    await redis.hset(store.keys.applied('labels/0'), 'x', '1');
    const labelError = await failsWritingNothing(
      store,
      () => store.applyLabels(positioned(labels()), now, 'labels/0', span),
      'CONFIG_INVALID',
    );
    expect(labelError.message).toMatch(/applied:labels\/0 holds a hash, not an applied marker/);
  });

  it("a string at a tally group's hash, or at the tally group set", async () => {
    const store = open();
    await redis.set(`${store.keys.tallyPrefix}g`, 'x');
    const error = await failsWritingNothing(
      store,
      () => store.applyPredictions(predictions(true), now, 'predictions/0'),
      'CONFIG_INVALID',
    );
    expect(error.message).toMatch(/tally:g holds a string, not a tally/);
    await redis.del(`${store.keys.tallyPrefix}g`);
    await redis.hset(`${store.keys.tallyPrefix}g`, 's1', 'lots');
    await failsWritingNothing(
      store,
      () => store.applyPredictions(predictions(true), now, 'predictions/0'),
      'CONFIG_INVALID',
    );
    await redis.del(`${store.keys.tallyPrefix}g`);
    await redis.set(store.keys.tallies, 'x');
    await failsWritingNothing(
      store,
      () => store.applyPredictions(predictions(true), now, 'predictions/0'),
      'CONFIG_INVALID',
    );
  });

  it('a bad argument of the 3rd record (a NaN deadline, a window key with a newline) is a script error', async () => {
    const store = open();
    const nan = predictions().map((p, n) => (n === 2 ? { ...p, eventTime: Number.NaN } : p));
    const error = await failsWritingNothing(store, () => store.applyPredictions(nan, now, 'predictions/0'), 'INTERNAL');
    expect(error.message).toMatch(/deadline "NaN" is not valid/);
    const newline = predictions().map((p, n) => (n === 2 ? { ...p, windowKey: 'w\nx' } : p));
    await failsWritingNothing(store, () => store.applyPredictions(newline, now, 'predictions/0'), 'INTERNAL');
  });

  it('once the foreign key is gone, the retried batch counts every record once', async () => {
    const store = open();
    const key = store.keys.state({ model: 'm', id: 'c' });
    await redis.hset(key, 'x', '1');
    await expect(store.applyPredictions(predictions(true), now, 'predictions/0')).rejects.toThrow(/WRONGTYPE/);
    await redis.del(key);
    const applied = await store.applyPredictions(predictions(true), now, 'predictions/0');
    expect(applied.map((a) => a.outcome)).toEqual(['pending', 'pending', 'pending', 'pending', 'pending']);
    expect(await store.pendingCount(W)).toBe(5);
    expect(await store.scheduledCount()).toBe(5);
    expect(await redis.hgetall(`${store.keys.tallyPrefix}g`)).toEqual({ c0: '3', s0: '0.75', c1: '2', s1: '0.5' });
  });
});

describe('RedisJoinStore: a label batch that fails writes nothing', () => {
  /** Five pending predictions (a..e), joinable by labels(). */
  async function pending(): Promise<RedisJoinStore> {
    const store = open();
    await store.applyPredictions(predictions(), now, 'predictions/0');
    expect(await store.pendingCount(W)).toBe(5);
    return store;
  }

  it("a hash at the 3rd record's state key: no join is written, the pending count stays; the retry then joins all", async () => {
    const store = await pending();
    const key = store.keys.state({ model: 'm', id: 'c' });
    await redis.del(key);
    await redis.hset(key, 'x', '1');
    const error = await failsWritingNothing(
      store,
      () => store.applyLabels(labels(), now, 'labels/0'),
      'CONFIG_INVALID',
    );
    expect(error.message).toMatch(/v2:s:\["m","c"\] holds a hash/);
    await redis.del(key);
    const applied = await store.applyLabels(labels(), now, 'labels/0');
    expect(applied.map((a) => a.outcome)).toEqual(['joined', 'joined', 'waiting', 'joined', 'joined']);
    expect(await store.pendingCount(W)).toBe(1);
  });

  it("a P state without its window at the 3rd record's key", async () => {
    const store = await pending();
    await redis.set(store.keys.state({ model: 'm', id: 'c' }), 'P1100');
    const error = await failsWritingNothing(
      store,
      () => store.applyLabels(labels(), now, 'labels/0'),
      'CONFIG_INVALID',
    );
    expect(error.message).toMatch(/is not a join state \(P\)/);
  });

  it('a hash at the watermark, a string at the pending counts', async () => {
    const store = await pending();
    await redis.hset(store.keys.watermark('labels/0'), 'x', '1');
    await failsWritingNothing(store, () => store.applyLabels(labels(), now, 'labels/0'), 'CONFIG_INVALID');
    await redis.del(store.keys.watermark('labels/0'));
    await redis.hset(store.keys.pending, W, '1.5');
    await failsWritingNothing(store, () => store.applyLabels(labels(), now, 'labels/0'), 'CONFIG_INVALID');
  });
});

describe('RedisJoinStore: expiry and acknowledgements that fail write nothing', () => {
  it('expiry with a hash at the outbox, or a pending count that is not an integer', async () => {
    const store = open();
    await store.applyPredictions(predictions(), now, 'predictions/0');
    await redis.hset(store.keys.outbox, 'x', '1');
    const error = await failsWritingNothing(store, () => store.expireDue(1_000_000, now, 100), 'CONFIG_INVALID');
    expect(error.message).toMatch(/outbox holds a hash/);
    await redis.del(store.keys.outbox);
    await redis.hset(store.keys.pending, W, 'five');
    await failsWritingNothing(store, () => store.expireDue(1_000_000, now, 100), 'CONFIG_INVALID');
    await redis.hset(store.keys.pending, W, '5');
    const summary = await store.expireDue(1_000_000, now, 100);
    expect(summary.counts.expiring).toBe(5);
    expect(await store.pendingCount(W)).toBe(0);
  });

  it('expiry drops the schedule entry of a state key holding no join state, and expires the others', async () => {
    const store = open();
    await store.applyPredictions(predictions(), now, 'predictions/0');
    const c = store.keys.state({ model: 'm', id: 'c' });
    await redis.del(c);
    await redis.hset(c, 'x', '1');
    const summary = await store.expireDue(1_000_000, now, 100);
    expect(summary.counts).toMatchObject({ expiring: 4, stale: 1 });
    expect(await redis.hgetall(c)).toEqual({ x: '1' }); // not ours: left as it is
    expect(await store.scheduledCount()).toBe(0);
    expect(await store.pendingCount(W)).toBe(1); // c's count: its window is no longer known
    expect((await store.unackedExpired(10)).map((r) => r.id)).toEqual(['a', 'b', 'd', 'e']);
  });

  it("ackJoined with a hash at the 3rd record's state key, or a dirty mark sequence that is not a counter", async () => {
    const store = open();
    await store.applyPredictions(predictions(), now, 'predictions/0');
    await store.applyLabels(labels(), now, 'labels/0');
    await redis.del(store.keys.dirty);
    const c = store.keys.state({ model: 'm', id: 'c' });
    const joined = await redis.getBuffer(c);
    await redis.del(c);
    await redis.hset(c, 'x', '1');
    await failsWritingNothing(store, () => store.ackJoined(ids.map((id) => ({ model: 'm', id }))), 'CONFIG_INVALID');
    await redis.del(c);
    await redis.set(c, joined as Buffer);
    await redis.set(store.keys.dirtySeq, 'x');
    await failsWritingNothing(store, () => store.ackJoined(ids.map((id) => ({ model: 'm', id }))), 'CONFIG_INVALID');
    await redis.del(store.keys.dirtySeq);
    await store.ackJoined(ids.map((id) => ({ model: 'm', id })));
    expect(await store.dirtyWindows(10)).toEqual([{ key: W, mark: expect.any(Number) }]);
  });

  it('takeTallies with a string at the taken group set or at a group hash, ackTallies with a set at the dirty windows', async () => {
    const store = open();
    await store.applyPredictions(predictions(true), now, 'predictions/0');
    await redis.set(store.keys.tallyTaken, 'x');
    const error = await failsWritingNothing(store, () => store.takeTallies('f1'), 'CONFIG_INVALID');
    expect(error.message).toMatch(/tally-taken holds a string/);
    await redis.del(store.keys.tallyTaken);
    await redis.sadd(store.keys.tallies, 'other');
    await redis.set(`${store.keys.tallyPrefix}other`, 'x');
    await failsWritingNothing(store, () => store.takeTallies('f1'), 'CONFIG_INVALID');
    await redis.del(`${store.keys.tallyPrefix}other`);
    expect((await store.takeTallies('f1')).batch?.flushId).toBe('f1');
    await redis.del(store.keys.dirty);
    await redis.sadd(store.keys.dirty, 'x');
    await failsWritingNothing(store, () => store.ackTallies('f1', [W]), 'CONFIG_INVALID');
  });

  it('migrateV1 with a hash at the v2 schedule', async () => {
    const store = open();
    await redis.set(`${store.prefix}s:p1`, `P1000\n${W}\nprediction m`);
    await redis.zadd(`${store.prefix}schedule`, 1000, 'p1');
    await redis.hset(store.keys.schedule, 'x', '1');
    await failsWritingNothing(store, () => store.migrateV1(async () => 'm'), 'CONFIG_INVALID');
  });
});
