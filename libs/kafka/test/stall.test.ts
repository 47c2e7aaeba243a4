import { describe, expect, it } from 'vitest';
import { autoReplication } from '../src/admin.js';
import { committedLag, isStalled, observeProgress, ProgressTracker } from '../src/stall.js';

describe('stall rule (lag on the committed offset, commit not moving)', () => {
  const T = 60_000;
  const at = (committed: bigint, highWatermark: bigint, caughtUp = false) => ({ committed, highWatermark, caughtUp });

  it('is stalled only with lag and no commit movement for the timeout', () => {
    let p = observeProgress(undefined, at(10n, 20n), 0, T);
    expect(committedLag(p)).toBe(10);
    expect(isStalled(p, T - 1, T)).toBe(false);
    p = observeProgress(p, at(10n, 25n), 30_000, T); // a failing sink: retried, nothing committed
    expect(isStalled(p, T, T)).toBe(true);
    p = observeProgress(p, at(11n, 25n), 61_000, T); // the commit moves: the clock starts over
    expect(isStalled(p, 61_000 + T - 1, T)).toBe(false);
    expect(isStalled(p, 61_000 + T, T)).toBe(true);
  });

  it('a commit pinned while records keep flowing through is a stall (a window that never closes)', () => {
    let p = observeProgress(undefined, at(100n, 110n), 0, T);
    for (let t = 1_000; t <= 2 * T; t += 1_000) {
      p = observeProgress(p, at(100n, BigInt(110 + t / 1_000)), t, T); // batch start
      p = observeProgress(p, at(100n, BigInt(110 + t / 1_000), true), t + 10, T); // processed, commit held
    }
    expect(isStalled(p, 2 * T + 20, T)).toBe(true);
  });

  it('an idle partition (no lag) is never stalled, and lag appearing later starts the clock then', () => {
    let p = observeProgress(undefined, at(20n, 20n, true), 0, T);
    expect(isStalled(p, 10 * T, T)).toBe(false);
    p = observeProgress(p, at(20n, 21n), 10 * T, T); // one record arrives after a long idle time
    expect(isStalled(p, 10 * T + 1, T)).toBe(false);
    expect(isStalled(p, 11 * T, T)).toBe(true);
  });

  it('a quiet partition holding an open window (processed, nothing new) is not stalled, nor when records resume', () => {
    let p = observeProgress(undefined, at(100n, 150n), 0, T);
    p = observeProgress(p, at(100n, 150n, true), 10, T); // all processed; the window holds the commit
    expect(isStalled(p, 5 * T, T)).toBe(false);
    p = observeProgress(p, at(100n, 160n), 5 * T, T); // traffic resumes: the clock starts now
    expect(isStalled(p, 5 * T + 1, T)).toBe(false);
    p = observeProgress(p, at(100n, 160n), 6 * T, T); // ...but this batch keeps failing
    expect(isStalled(p, 6 * T, T)).toBe(true);
  });

  it('a quiet partition is counted from its last new record, not its last observation: nothing new brings no stall', () => {
    // Held records delivered again (a rejoin fetches from the held commit), nothing new written.
    let p = observeProgress(undefined, at(0n, 10n), 0, T); // the first batch begins
    p = observeProgress(p, at(0n, 10n, true), 10, T); // processed; the window holds the commit
    p = observeProgress(p, at(0n, 10n), 20_000, T); // the same records again
    p = observeProgress(p, at(0n, 10n, true), 20_010, T);
    for (let t = T; t <= 3 * T; t += 1_000) expect(isStalled(p, t, T)).toBe(false);
    // New records while the commit stays held: the clock runs from the start, and they are lag.
    p = observeProgress(p, at(0n, 12n), 3 * T, T);
    p = observeProgress(p, at(0n, 12n, true), 3 * T + 10, T);
    expect(isStalled(p, 4 * T - 1, T)).toBe(false);
    expect(isStalled(p, 4 * T, T)).toBe(false); // quiet since 3T: the same timeout
    p = observeProgress(p, at(0n, 15n), 3 * T + 30_000, T); // more, half a timeout later
    p = observeProgress(p, at(0n, 15n, true), 3 * T + 30_010, T);
    expect(isStalled(p, 4 * T, T)).toBe(true); // held a timeout while records kept coming
    expect(isStalled(p, 4 * T + 30_000, T)).toBe(false); // then quiet for one
  });

  it('measures lag on the committed offset, never negative', () => {
    expect(committedLag({ committed: 5n, highWatermark: 3n })).toBe(0);
    expect(committedLag({ committed: 3n, highWatermark: 5n })).toBe(2);
  });

  it('tracks partitions and forgets revoked ones', () => {
    const t = new ProgressTracker(T);
    t.observe('a', 0, at(0n, 5n), 0);
    t.observe('a', 1, at(5n, 5n), 0);
    t.observe('b', 0, at(0n, 1n), 0);
    expect(t.stalls(T).map((s) => `${s.topic}/${s.partition}:${s.lag}`)).toEqual(['a/0:5', 'b/0:1']);
    t.retain((topic) => topic === 'a');
    expect(t.stalls(T)).toEqual([{ topic: 'a', partition: 0, lag: 5, stalledForMs: T }]);
    expect(t.committed('a', 1)).toBe(5n);
    expect(t.committed('b', 0)).toBeUndefined();
  });

  it('a batch the processor reports work on (heartbeats of a training run) is not a stall; silence after is', () => {
    const t = new ProgressTracker(T);
    t.observe('r', 0, at(0n, 1n), 0); // one request in hand, uncommitted: lag 1
    t.working('r', 0, T - 1);
    expect(t.stalls(T)).toEqual([]);
    t.observe('r', 0, at(0n, 1n), T); // the same batch, observed again: the clock stays where work was reported
    expect(t.stalls(2 * T - 2)).toEqual([]);
    expect(t.stalls(2 * T - 1)).toEqual([{ topic: 'r', partition: 0, lag: 1, stalledForMs: T }]);
    t.working('x', 9, 0); // a partition not owned: nothing to do
    expect(t.committed('x', 9)).toBeUndefined();
  });
});

describe('replication defaults of created topics', () => {
  it('auto: the broker count capped at 3, min.insync.replicas 2 from 3 replicas', () => {
    expect(autoReplication(1)).toEqual({ replicationFactor: 1, minInsyncReplicas: 1 });
    expect(autoReplication(2)).toEqual({ replicationFactor: 2, minInsyncReplicas: 1 });
    expect(autoReplication(5)).toEqual({ replicationFactor: 3, minInsyncReplicas: 2 });
  });

  it('explicit values win', () => {
    expect(autoReplication(5, { replicationFactor: 5, minInsyncReplicas: 3 })).toEqual({
      replicationFactor: 5,
      minInsyncReplicas: 3,
    });
    expect(autoReplication(1, { minInsyncReplicas: 1 })).toEqual({ replicationFactor: 1, minInsyncReplicas: 1 });
  });
});
