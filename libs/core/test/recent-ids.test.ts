import { randomUUID } from 'node:crypto';
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import { hashText32 } from '../src/hash.js';
import { silentLogger } from '../src/logger.js';
import { hashText53, RecentIds, recentIdsHeapWarning, recentIdsHeapWatch } from '../src/recent-ids.js';

/** The same contract kept exactly (strings, oldest first out): what RecentIds must agree with. */
function exactModel(capacity: number) {
  const order: string[] = [];
  const kept = new Set<string>();
  return (id: string): boolean => {
    if (kept.has(id)) return true;
    if (order.length === capacity) kept.delete(order.shift()!);
    order.push(id);
    kept.add(id);
    return false;
  };
}

describe('RecentIds', () => {
  it('recognises an id seen before and remembers each id once', () => {
    const ids = new RecentIds(3);
    expect([ids.repeat('a'), ids.repeat('b'), ids.repeat('a'), ids.repeat('b')]).toEqual([false, false, true, true]);
    expect(ids.size).toBe(2);
  });

  it('forgets the oldest first, and a repeat does not renew its place', () => {
    const ids = new RecentIds(2);
    ids.repeat('a');
    ids.repeat('b');
    expect(ids.repeat('a')).toBe(true); // still the oldest
    expect(ids.repeat('c')).toBe(false); // 'a' goes
    expect(ids.size).toBe(2);
    expect(ids.repeat('b')).toBe(true);
    expect(ids.repeat('a')).toBe(false); // forgotten, so new again ('b' goes)
    expect(ids.repeat('b')).toBe(false);
  });

  it('has() remembers nothing; add() remembers once, without renewing a place', () => {
    const ids = new RecentIds(2);
    expect(ids.has('a')).toBe(false);
    expect(ids.size).toBe(0);
    ids.add('a');
    ids.add('a');
    expect(ids.size).toBe(1);
    ids.add('b');
    ids.add('a'); // already there: 'a' stays the oldest
    ids.add('c');
    expect([ids.has('a'), ids.has('b'), ids.has('c')]).toEqual([false, true, true]);
  });

  it('agrees with an exact model on seeded streams with repeats near and far', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const random = new SeededRandom(seed);
      // Small and beyond the first table (1,024 slots): growth, wrap-around and deletions in long runs.
      const capacity = seed % 2 === 0 ? 1 + random.int(50) : 500 + random.int(3_000);
      const ids = new RecentIds(capacity);
      const model = exactModel(capacity);
      for (let i = 0; i < 20_000; i++) {
        // Ids from a pool a few times the capacity: some repeats are remembered, some forgotten.
        const id = `p-${random.int(capacity * 3)}`;
        // Every step compared; an expect() is made only for a step that differs (400,000 of them
        // were most of this file's seconds).
        const [got, want] = [ids.repeat(id), model(id)];
        if (got !== want) expect(got, `seed ${seed}, step ${i}, ${id}`).toBe(want);
      }
      expect(ids.size).toBeLessThanOrEqual(capacity);
    }
  });

  it('takes no new id for a repeat among 1,000,000 distinct ones (collisions ~1e-4 in all)', () => {
    const ids = new RecentIds(1_000_000);
    let repeats = 0;
    for (let i = 0; i < 1_000_000; i++) if (ids.repeat(randomUUID())) repeats++;
    expect(repeats).toBe(0);
    expect(ids.size).toBe(1_000_000);
  });

  it('refuses a capacity that is not a whole number from 1 to 2^30', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 30 + 1]) {
      expect(() => new RecentIds(bad)).toThrow(/capacity must be a whole number from 1 to 2\^30/);
    }
  });
});

describe('hashText53', () => {
  it('is a whole number below 2^53, the same for the same text, different for near texts', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 100_000; i++) {
      const h = hashText53(`id-${i}`);
      const whole = Number.isSafeInteger(h) && h >= 0;
      if (!whole) expect(whole, `id-${i}: ${h}`).toBe(true); // an expect() only for a failing id
      seen.add(h);
    }
    expect(seen.size).toBe(100_000);
    expect(hashText53('é-1')).toBe(hashText53('é-1'));
    // Its high bits are hashText32's: the same mixing as the sketches and the canary split.
    expect(Math.floor(hashText53('é-1') / 2 ** 21)).toBe(hashText32('é-1'));
  });
});

describe('recentIdsHeapWarning / recentIdsHeapWatch', () => {
  const MB = 1_048_576;
  it('warns only past half the heap, naming the setting and the figures', () => {
    // 10 partitions × 1,000,000 ids × 40 B = 400 MB: under half of 1 GB, over half of 512 MB.
    expect(recentIdsHeapWarning('X_RECENT_IDS', 10, 1_000_000, 1024 * MB)).toBeUndefined();
    const warning = recentIdsHeapWarning('X_RECENT_IDS', 10, 1_000_000, 512 * MB);
    expect(warning).toContain('up to 381 MB (10 partitions × 1000000 ids × 40 B)');
    expect(warning).toContain('heap limit of 512 MB');
    expect(warning).toContain('lower X_RECENT_IDS');
    expect(recentIdsHeapWarning('X_RECENT_IDS', 1000, 0, MB)).toBeUndefined(); // off
  });

  it('a watch warns once, when the partitions held first cross the line', () => {
    const warnings: Array<[unknown, string]> = [];
    const logger = { ...silentLogger, warn: (fields: unknown, message: string) => warnings.push([fields, message]) };
    const watch = recentIdsHeapWatch('X_RECENT_IDS', 1_000_000, logger, 200 * MB);
    watch(1);
    watch(2);
    expect(warnings).toHaveLength(0); // 80 MB of a 100 MB half
    watch(3);
    watch(4);
    watch(3);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]![0]).toEqual({ partitions: 3, recentIds: 1_000_000 });
  });
});
