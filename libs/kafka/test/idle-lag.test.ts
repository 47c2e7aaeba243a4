import { describe, expect, it } from 'vitest';
import {
  type IdleObservation,
  type IdlePartition,
  type IdleRefreshDeps,
  idleObservation,
  isIdle,
  LagKnowledge,
  refreshIdleLag,
  type TopicOffsets,
} from '../src/idle-lag.js';
import { ProgressTracker } from '../src/stall.js';

const R = 5_000; // the refresh interval
const T = 60_000; // the stall timeout

describe('idle partitions: which are read, and what a fresh high watermark says', () => {
  const p = (over: Partial<IdlePartition>): IdlePartition => ({
    topic: 't',
    partition: 0,
    processedTo: undefined,
    committed: undefined,
    lastBatchAt: undefined,
    busy: false,
    ...over,
  });

  it('idle: no attempt in flight, no retry loop, no batch for the refresh interval', () => {
    expect(isIdle(p({}), 0, R)).toBe(true);
    expect(isIdle(p({ lastBatchAt: 1_000 }), 1_000 + R - 1, R)).toBe(false);
    expect(isIdle(p({ lastBatchAt: 1_000 }), 1_000 + R, R)).toBe(true);
    expect(isIdle(p({ busy: true, lastBatchAt: 0 }), 10 * R, R)).toBe(false);
  });

  it('records written past what was processed are lag; nothing new says nothing (a quiet open window)', () => {
    // Processed to 150, the commit held at 100 by an open window.
    expect(idleObservation({ processedTo: 150n, committed: 100n }, 150n)).toBeUndefined();
    expect(idleObservation({ processedTo: 150n, committed: 100n }, 160n)).toEqual({
      committed: 100n,
      highWatermark: 160n,
      caughtUp: false,
    });
    // A plain processor, caught up and committed.
    expect(idleObservation({ processedTo: 20n, committed: 20n }, 20n)).toBeUndefined();
    expect(idleObservation({ processedTo: 20n, committed: 20n }, 23n)?.highWatermark).toBe(23n);
  });

  it('a partition with no batch: its position is what the tracker knows, else where the group starts', () => {
    expect(idleObservation({ processedTo: undefined, committed: 7n }, 7n)).toBeUndefined();
    expect(idleObservation({ processedTo: undefined, committed: 7n }, 9n)).toEqual({
      committed: 7n,
      highWatermark: 9n,
      caughtUp: false,
    });
    // Never observed: its first gauge, with or without lag.
    expect(idleObservation({ processedTo: undefined, committed: undefined }, 9n, 9n)).toEqual({
      committed: 9n,
      highWatermark: 9n,
      caughtUp: true,
    });
    expect(idleObservation({ processedTo: undefined, committed: undefined }, 9n, 4n)?.caughtUp).toBe(false);
    // Unknown start (a group that starts at the end and never committed): nothing.
    expect(idleObservation({ processedTo: undefined, committed: undefined }, 9n)).toBeUndefined();
  });
});

/** A consumer's state as the refresh sees it, over a real ProgressTracker and a fake clock and broker. */
function harness(options: { partitions: number; topics?: string[] }) {
  let now = 0;
  const tracker = new ProgressTracker(T);
  const topics = options.topics ?? ['t'];
  const highs = new Map<string, bigint>();
  const commits = new Map<string, bigint>();
  const processedTo = new Map<string, bigint>();
  const lastBatchAt = new Map<string, number>();
  const busy = new Set<string>();
  const reads: string[] = [];
  const commitReads: string[] = [];
  const failures: string[] = [];
  const observed: Array<{ key: string } & IdleObservation> = [];
  let blocked = false;
  let failOffsets = false;
  /** Runs while a read is in flight (a batch that comes meanwhile, a rebalance). */
  let duringRead: (() => void) | undefined;
  const k = (topic: string, partition: number) => `${topic}/${partition}`;
  const owned = new Set(topics.flatMap((t) => Array.from({ length: options.partitions }, (_, i) => k(t, i))));
  const knowledge = new LagKnowledge();
  knowledge.assigned(topics, now);
  const deps: IdleRefreshDeps = {
    now: () => now,
    partitions: () =>
      [...owned].map((key) => {
        const [topic, partition] = key.split('/') as [string, string];
        return {
          topic,
          partition: Number(partition),
          processedTo: processedTo.get(key),
          committed: tracker.committed(topic, Number(partition)),
          lastBatchAt: lastBatchAt.get(key),
          busy: busy.has(key),
        };
      }),
    async readOffsets(topic) {
      reads.push(topic);
      duringRead?.();
      if (failOffsets) throw new Error('kafka down');
      const out: TopicOffsets[] = [];
      for (let i = 0; i < options.partitions; i++)
        out.push({ partition: i, low: 0n, high: highs.get(k(topic, i)) ?? 0n });
      return out;
    },
    async readCommits(topic) {
      commitReads.push(topic);
      const out = new Map<number, bigint>();
      for (let i = 0; i < options.partitions; i++) {
        const c = commits.get(k(topic, i));
        if (c !== undefined) out.set(i, c);
      }
      return out;
    },
    startOf: (stored, low) => (stored !== undefined && stored >= 0n ? stored : low),
    observe(topic, partition, o) {
      observed.push({ key: k(topic, partition), ...o });
      tracker.observe(topic, partition, o, now);
    },
    blocked: () => blocked,
    working: (topic, partition, at) => tracker.working(topic, partition, at),
    failed: (topic) => failures.push(topic),
    known: (topic, at) => knowledge.known(topic, at),
    stale: (at) => knowledge.stale(at, R),
  };
  return {
    tracker,
    highs,
    commits,
    reads,
    commitReads,
    failures,
    observed,
    owned,
    busy,
    k,
    at: () => now,
    advance(ms: number) {
      now += ms;
    },
    block(on: boolean) {
      blocked = on;
    },
    failReads(on: boolean) {
      failOffsets = on;
    },
    duringRead(fn: (() => void) | undefined) {
      duringRead = fn;
    },
    /** A batch of the loop: observed at its start, processed, committed up to `commit` (a held window: less). */
    batch(topic: string, partition: number, opts: { from: bigint; to: bigint; high: bigint; commit: bigint }) {
      const key = k(topic, partition);
      lastBatchAt.set(key, now);
      knowledge.known(topic, now);
      const before = tracker.committed(topic, partition) ?? opts.from;
      tracker.observe(topic, partition, { committed: before, highWatermark: opts.high, caughtUp: false }, now);
      processedTo.set(key, opts.to);
      let committed = before;
      if (opts.commit > committed) committed = opts.commit; // never backwards
      tracker.observe(topic, partition, { committed, highWatermark: opts.high, caughtUp: opts.to >= opts.high }, now);
    },
    refresh: () => refreshIdleLag(deps, R),
    stalled: () => tracker.stalls(now).map((s) => `${s.topic}/${s.partition}:${s.lag}`),
    /** Seconds since each topic's lag was known, as the gauge shows it. */
    lagAges: () => Object.fromEntries(knowledge.ages(now).map((a) => [a.topic, a.ageMs / 1000])),
  };
}

describe('refreshIdleLag (a fetch that wedges once caught up)', () => {
  it('records written but never fetched show as lag, and the partition stalls after the timeout', async () => {
    const h = harness({ partitions: 1 });
    h.batch('t', 0, { from: 0n, to: 10n, high: 10n, commit: 10n });
    h.highs.set(h.k('t', 0), 10n);
    h.advance(R);
    await h.refresh();
    expect(h.observed).toEqual([]); // caught up, nothing new: nothing to tell
    // The fetch wedges; producers write 5 more records.
    h.highs.set(h.k('t', 0), 15n);
    h.advance(R);
    await h.refresh();
    expect(h.observed.at(-1)).toEqual({ key: 't/0', committed: 10n, highWatermark: 15n, caughtUp: false });
    const since = h.at();
    for (; h.at() < since + T - R; ) {
      h.advance(R);
      await h.refresh();
      expect(h.stalled()).toEqual([]);
    }
    h.advance(R);
    await h.refresh();
    expect(h.stalled()).toEqual(['t/0:5']);
  });

  it('a quiet processor holding an open window is never stalled while nothing new arrives; new records unfetched stall it', async () => {
    const h = harness({ partitions: 1 });
    // Processed to 150, commit held at 100 by an open window.
    h.batch('t', 0, { from: 100n, to: 150n, high: 150n, commit: 100n });
    h.highs.set(h.k('t', 0), 150n);
    for (let i = 0; i < 60; i++) {
      h.advance(R);
      await h.refresh();
    }
    expect(h.observed).toEqual([]);
    expect(h.stalled()).toEqual([]); // lag 50 held on purpose, for 5 minutes: quiet, not stalled
    // New records arrive; no batch comes.
    h.highs.set(h.k('t', 0), 151n);
    h.advance(R);
    await h.refresh();
    expect(h.stalled()).toEqual([]); // the clock starts now
    for (let i = 0; i < T / R; i++) {
      h.advance(R);
      await h.refresh();
    }
    expect(h.stalled()).toEqual(['t/0:51']);
  });

  it('records a refresh saw before their first batch, then processed and held by a window: quiet, never stalled', async () => {
    // wedged-fetch.int failed once under load: the refresh read the records' high watermark before
    // kafkajs handed over their batch; the stall clock started at the read, the quiet one at the
    // batch, and for the time between them, a timeout later, the quiet partition was stalled.
    const h = harness({ partitions: 1 });
    h.highs.set(h.k('t', 0), 10n);
    h.advance(R);
    await h.refresh();
    expect(h.observed).toEqual([{ key: 't/0', committed: 0n, highWatermark: 10n, caughtUp: false }]);
    h.advance(800); // the batch comes late (a loaded machine)
    h.batch('t', 0, { from: 0n, to: 10n, high: 10n, commit: 0n });
    for (let i = 0; i < (3 * T) / 100; i++) {
      h.advance(100);
      if (i % (R / 100) === 0) await h.refresh();
      expect(h.stalled()).toEqual([]);
    }
  });

  it('new records that a batch then brings are no stall: the batch path takes over', async () => {
    const h = harness({ partitions: 1 });
    h.batch('t', 0, { from: 0n, to: 10n, high: 10n, commit: 10n });
    h.highs.set(h.k('t', 0), 12n);
    h.advance(R);
    await h.refresh();
    expect(h.observed).toHaveLength(1);
    h.advance(100);
    h.batch('t', 0, { from: 10n, to: 12n, high: 12n, commit: 12n });
    h.advance(10 * T);
    await h.refresh();
    expect(h.stalled()).toEqual([]);
  });

  it('skips partitions with an attempt in flight or a retry loop, and those with a recent batch; reads nothing then', async () => {
    const h = harness({ partitions: 2 });
    h.batch('t', 0, { from: 0n, to: 1n, high: 1n, commit: 1n });
    h.batch('t', 1, { from: 0n, to: 1n, high: 1n, commit: 1n });
    h.highs.set(h.k('t', 0), 9n);
    h.highs.set(h.k('t', 1), 9n);
    h.advance(R - 1);
    expect(await h.refresh()).toEqual([]); // both had a batch within the interval
    h.advance(1);
    h.busy.add(h.k('t', 0)); // backing off: it has a refresh of its own
    expect(await h.refresh()).toEqual(['t']);
    expect(h.observed.map((o) => o.key)).toEqual(['t/1']);
    h.busy.add(h.k('t', 1));
    expect(await h.refresh()).toEqual([]);
  });

  it('one read per topic, however many partitions; commits are read only for partitions never observed', async () => {
    const h = harness({ partitions: 6, topics: ['a', 'b'] });
    for (let i = 0; i < 6; i++) h.batch('a', i, { from: 0n, to: 3n, high: 3n, commit: 3n });
    // Topic b: no batch yet; the group committed 2 on partition 0, nothing on the others.
    h.commits.set(h.k('b', 0), 2n);
    h.highs.set(h.k('b', 0), 5n);
    h.advance(R);
    expect((await h.refresh()).sort()).toEqual(['a', 'b']);
    expect(h.reads.sort()).toEqual(['a', 'b']);
    expect(h.commitReads).toEqual(['b']);
    expect(
      h.observed.filter((o) => o.key.startsWith('b/')).map((o) => `${o.key}:${o.committed}-${o.highWatermark}`),
    ).toEqual(['b/0:2-5', 'b/1:0-0', 'b/2:0-0', 'b/3:0-0', 'b/4:0-0', 'b/5:0-0']);
    h.advance(R);
    await h.refresh();
    expect(h.commitReads).toEqual(['b']); // known now
    h.advance(T);
    await h.refresh();
    expect(h.stalled()).toEqual(['b/0:3']); // never fetched, lag, for the timeout
  });

  it('a partition waiting behind a batch in hand for a while (a training run) or a retry loop restarts its clock', async () => {
    const h = harness({ partitions: 2 });
    h.batch('t', 1, { from: 0n, to: 1n, high: 1n, commit: 1n });
    h.highs.set(h.k('t', 1), 2n); // a request waits on partition 1 while partition 0 trains
    h.block(true);
    for (let i = 0; i < (4 * T) / R; i++) {
      h.advance(R);
      await h.refresh();
    }
    expect(h.stalled()).toEqual([]);
    h.block(false); // the training ends; partition 1 is not fetched though
    for (let i = 0; i < T / R; i++) {
      h.advance(R);
      await h.refresh();
    }
    expect(h.stalled()).toEqual(['t/1:1']);
  });

  it('a batch or a rebalance during the read wins: nothing is observed for that partition', async () => {
    const h = harness({ partitions: 2 });
    h.batch('t', 0, { from: 0n, to: 1n, high: 1n, commit: 1n });
    h.batch('t', 1, { from: 0n, to: 1n, high: 1n, commit: 1n });
    h.highs.set(h.k('t', 0), 4n);
    h.highs.set(h.k('t', 1), 4n);
    h.advance(R);
    h.duringRead(() => {
      h.batch('t', 0, { from: 1n, to: 4n, high: 4n, commit: 4n });
      h.owned.delete(h.k('t', 1));
    });
    await h.refresh();
    expect(h.observed).toEqual([]);
  });

  it('a failing read is reported and changes nothing; the other topics are still read', async () => {
    const h = harness({ partitions: 1, topics: ['a', 'b'] });
    h.batch('a', 0, { from: 0n, to: 1n, high: 1n, commit: 1n });
    h.batch('b', 0, { from: 0n, to: 1n, high: 1n, commit: 1n });
    h.highs.set(h.k('a', 0), 3n);
    h.advance(R);
    h.failReads(true);
    await expect(h.refresh()).resolves.toEqual([]);
    expect(h.failures).toEqual(['a', 'b']);
    expect(h.observed).toEqual([]);
  });
});

describe('how long the lag has not been known (driftline_consumer_lag_age_seconds)', () => {
  it('grows while reads fail (the gauges keep their last values), and a read that answers resets it', async () => {
    const h = harness({ partitions: 1 });
    h.batch('t', 0, { from: 0n, to: 10n, high: 10n, commit: 10n });
    h.highs.set(h.k('t', 0), 10n);
    h.advance(R);
    await h.refresh();
    expect(h.lagAges()).toEqual({ t: 0 }); // read, nothing new
    // The broker stops answering: the lag gauge stays 0, and its age says how stale that 0 is.
    h.failReads(true);
    for (let i = 0; i < 19; i++) {
      h.advance(R);
      await h.refresh();
    }
    expect(h.observed).toEqual([]);
    expect(h.lagAges()).toEqual({ t: 95 });
    h.failReads(false);
    h.advance(R);
    await h.refresh();
    expect(h.lagAges()).toEqual({ t: 0 });
  });

  it('an answer 45 s late knows the lag as of when the read began', async () => {
    const h = harness({ partitions: 1 });
    h.batch('t', 0, { from: 0n, to: 10n, high: 10n, commit: 10n });
    h.advance(R);
    h.duringRead(() => h.advance(45_000));
    await h.refresh();
    expect(h.lagAges()).toEqual({ t: 45 });
  });

  it('a topic whose partitions all have a batch in hand for long is read for its age alone', async () => {
    const h = harness({ partitions: 2 });
    h.batch('t', 0, { from: 0n, to: 1n, high: 1n, commit: 1n });
    h.batch('t', 1, { from: 0n, to: 1n, high: 1n, commit: 1n });
    h.busy.add(h.k('t', 0));
    h.busy.add(h.k('t', 1));
    h.highs.set(h.k('t', 0), 9n);
    h.advance(R - 1);
    expect(await h.refresh()).toEqual([]); // known within the interval: nothing to read
    h.advance(1);
    expect(await h.refresh()).toEqual(['t']);
    expect(h.observed).toEqual([]); // busy partitions have observations of their own
    expect(h.lagAges()).toEqual({ t: 0 });
  });

  it('counts a new topic from its assignment; a topic no longer owned is dropped and a late answer brings it back not', () => {
    const knowledge = new LagKnowledge();
    expect(knowledge.assigned(['a', 'b'], 1_000)).toEqual([]);
    knowledge.known('a', 4_000);
    knowledge.known('a', 3_000); // an older answer than the one held
    expect(knowledge.ages(10_000)).toEqual([
      { topic: 'a', ageMs: 6_000 },
      { topic: 'b', ageMs: 9_000 },
    ]);
    expect(knowledge.stale(10_000, 7_000)).toEqual(['b']);
    expect(knowledge.assigned(['a', 'c'], 10_000)).toEqual(['b']);
    knowledge.known('b', 10_000);
    expect(knowledge.ages(12_000)).toEqual([
      { topic: 'a', ageMs: 8_000 },
      { topic: 'c', ageMs: 2_000 },
    ]);
  });
});
