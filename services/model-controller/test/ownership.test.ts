import type { Membership } from '@driftline/kafka';
import { describe, expect, it } from 'vitest';
import { CONTROLLER_LEASE_MS, CONTROLLER_SETTLE_MS, modelOwnership } from '../src/ownership.js';

const TOPIC = 'p.models.v1';
const NOW = 1_000_000;
const models = Array.from({ length: 200 }, (_, i) => `model-${i}`);

/** A member of join `joins` holding `partitions` of TOPIC since `heldSince`, confirmed at `confirmedAt`. */
function member(
  partitions: readonly number[],
  { heldSince = 0, confirmedAt = NOW - 1_000, joins = 1, topic = TOPIC } = {},
): Membership {
  return { partitions: partitions.map((partition) => ({ topic, partition, heldSince })), confirmedAt, joins };
}

const count = (partitions: number, joins = 1) => ({ partitions, joins });
const ownedBy = (m: Membership, n = 4) => models.filter((x) => modelOwnership(m, TOPIC, count(n), NOW)(x) === 'decide');

describe('modelOwnership: which controller decides a model', () => {
  it('a controller alone, holding every partition, decides every model', () => {
    expect(ownedBy(member([0, 1, 2, 3]))).toEqual(models);
  });

  it('two controllers splitting the partitions: every model is decided by exactly one of them', () => {
    const a = ownedBy(member([0, 2]));
    const b = ownedBy(member([1, 3]));
    expect(a.length).toBeGreaterThan(0);
    expect(b.length).toBeGreaterThan(0);
    expect([...a, ...b].sort()).toEqual([...models].sort());
    expect(a.filter((m) => b.includes(m))).toEqual([]);
  });

  it("a model goes with its key's partition as the producers choose it (murmur2, Kafka's test vectors), a model with no event yet too", () => {
    // Kafka's Utils.murmur2 vectors, as positive ints modulo 4 and 6: 21 → 0/0, foobar → 2/0,
    // a-little-bit-longer-string → 3/5.
    const decides = (partitions: number[], n: number, model: string) =>
      modelOwnership(member(partitions), TOPIC, count(n), NOW)(model);
    expect(decides([0], 4, '21')).toBe('decide');
    expect(decides([2], 4, 'foobar')).toBe('decide');
    expect(decides([0, 1, 3], 4, 'foobar')).toBe('none');
    expect(decides([3], 4, 'a-little-bit-longer-string')).toBe('decide');
    expect(decides([0], 6, 'foobar')).toBe('decide');
    expect(decides([5], 6, 'a-little-bit-longer-string')).toBe('decide');
  });

  it('a partition held for less than the settle time: its models are re-published, not decided', () => {
    const fresh = member([0, 1, 2, 3], { heldSince: NOW - CONTROLLER_SETTLE_MS + 1 });
    expect(new Set(models.map(modelOwnership(fresh, TOPIC, count(4), NOW)))).toEqual(new Set(['publish']));
    const settled = member([0, 1, 2, 3], { heldSince: NOW - CONTROLLER_SETTLE_MS });
    expect(new Set(models.map(modelOwnership(settled, TOPIC, count(4), NOW)))).toEqual(new Set(['decide']));
  });

  it('a membership not confirmed within the lease (evicted, or about to be) owns nothing', () => {
    const lapsed = member([0, 1, 2, 3], { confirmedAt: NOW - CONTROLLER_LEASE_MS });
    expect(new Set(models.map(modelOwnership(lapsed, TOPIC, count(4), NOW)))).toEqual(new Set(['none']));
    const never = { ...member([0, 1, 2, 3]), confirmedAt: undefined };
    expect(new Set(models.map(modelOwnership(never, TOPIC, count(4), NOW)))).toEqual(new Set(['none']));
  });

  it('rejoining (nothing held), no partition count read for this assignment, or one beyond the count: nothing owned', () => {
    const none = (m: Membership, c: { partitions: number; joins: number } | undefined) =>
      new Set(models.map(modelOwnership(m, TOPIC, c, NOW)));
    expect(none(member([]), count(4))).toEqual(new Set(['none']));
    expect(none(member([0, 1, 2, 3]), undefined)).toEqual(new Set(['none']));
    expect(none(member([0, 1, 2, 3], { joins: 2 }), count(4, 1))).toEqual(new Set(['none']));
    expect(none(member([0, 1, 2, 3, 4, 5]), count(4))).toEqual(new Set(['none']));
    expect(none(member([0, 1, 2, 3], { topic: 'other.models.v1' }), count(4))).toEqual(new Set(['none']));
  });
});
