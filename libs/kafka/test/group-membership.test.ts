import { describe, expect, it } from 'vitest';
import { leasedPartitions, MembershipTracker } from '../src/group-membership.js';

const LEASE = 10_000;
const held = (t: MembershipTracker, now: number) =>
  leasedPartitions(t.current(), now, LEASE).map((p) => `${p.topic}/${p.partition}@${p.heldSince}`);

/** A tracker joined as `member` with `assignment`, its SyncGroup sent at `syncAt` and the join at `at`. */
function joinedTracker(member: string, assignment: Record<string, number[]>, syncAt: number, at: number) {
  const t = new MembershipTracker();
  t.answered('JoinGroup', syncAt - 5);
  t.answered('SyncGroup', syncAt);
  t.joined(member, assignment, at);
  return t;
}

describe('MembershipTracker and leasedPartitions: a group membership as a lease', () => {
  it('holds nothing before its first join', () => {
    const t = new MembershipTracker();
    expect(t.current()).toEqual({ partitions: [], confirmedAt: undefined, joins: 0 });
    expect(held(t, 0)).toEqual([]);
  });

  it('a join is confirmed from when its SyncGroup was sent; the lease ends leaseMs later without an accepted heartbeat', () => {
    const t = joinedTracker('m1', { models: [0, 2] }, 100, 120);
    expect(t.current()).toMatchObject({ confirmedAt: 100, joins: 1 });
    expect(held(t, 100 + LEASE - 1)).toEqual(['models/0@120', 'models/2@120']);
    expect(held(t, 100 + LEASE)).toEqual([]);
  });

  it('an accepted heartbeat extends the lease from when it was sent; one answered with an error does not', () => {
    const t = joinedTracker('m1', { models: [0] }, 0, 0);
    t.answered('Heartbeat', 5_000);
    t.heartbeatAccepted();
    expect(held(t, 14_999)).toEqual(['models/0@0']);
    t.answered('Heartbeat', 9_000); // answered with an error (REBALANCE_IN_PROGRESS): no HEARTBEAT event
    expect(t.current().confirmedAt).toBe(5_000);
    expect(held(t, 15_000)).toEqual([]);
  });

  it('a heartbeat answered late (a frozen process, a slow path) confirms the time it was sent, not the answer', () => {
    const t = joinedTracker('m1', { models: [1] }, 0, 0);
    t.answered('Heartbeat', 3_000); // sent, then the process froze for 40 s before reading the answer
    t.heartbeatAccepted();
    expect(held(t, 43_000)).toEqual([]); // the coordinator may have evicted it at 3 s + the session
  });

  it('holds nothing from the moment it learns of a rebalance until the next join (eager: revoke before assign)', () => {
    const t = joinedTracker('m1', { models: [0, 1] }, 0, 0);
    t.rebalancing();
    expect(held(t, 1_000)).toEqual([]);
    t.answered('SyncGroup', 2_000);
    t.joined('m1', { models: [1, 3] }, 2_010);
    // Partition 1 was assigned to the same member in both generations: held throughout.
    expect(held(t, 3_000)).toEqual(['models/1@0', 'models/3@2010']);
    expect(t.current().joins).toBe(2);
  });

  it('a JoinGroup answered revokes too, when kafkajs rejoins without a REBALANCING event (stale metadata)', () => {
    const t = joinedTracker('m1', { models: [0] }, 0, 0);
    t.answered('JoinGroup', 500);
    expect(held(t, 1_000)).toEqual([]);
  });

  it('a join under a new member id (it was out of the group) holds every partition from that join', () => {
    const t = joinedTracker('m1', { models: [0, 1] }, 0, 0);
    t.answered('SyncGroup', 50_000);
    t.joined('m2', { models: [0, 1] }, 50_010);
    expect(held(t, 50_020)).toEqual(['models/0@50010', 'models/1@50010']);
  });

  it('a crash or a stop holds nothing and carries nothing into the next join', () => {
    const t = joinedTracker('m1', { models: [0] }, 0, 0);
    t.lost();
    expect(t.current()).toMatchObject({ partitions: [], confirmedAt: undefined });
    expect(held(t, 1)).toEqual([]);
    t.answered('SyncGroup', 100);
    t.joined('m1', { models: [0] }, 110);
    expect(held(t, 200)).toEqual(['models/0@110']);
  });
});
