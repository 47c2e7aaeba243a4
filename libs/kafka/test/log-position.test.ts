import { describe, expect, it } from 'vitest';
import { initialLogPosition, type LogMode, markerReadDue, step } from '../src/log-position.js';
import { type Cause, type causes, explore, run, type WorldBounds } from './partition-world.js';

/**
 * `log-position.ts` against a model of one partition (`partition-world.ts`): every sequence of
 * events up to DEPTH — appends, retention, the topic deleted and created again (with or without a
 * "does not host" answer reaching the loop), fetches (a processor committing or holding its commit
 * back, a leader whose high watermark lags), answers for another topic, rebalances, rejoins under a
 * new member id (after another member committed everything), process restarts, an operator's reset
 * backwards or forwards — with the invariants checked at every step: a restart is told iff the log
 * changed since the loop last saw it, before any record of the new log; no record is handed twice
 * without a join between (a replay from the group's commit); none is skipped without being counted;
 * the loop never seeks outside the log (kafkajs would reset and commit -2, also into an ephemeral group).
 * With deferrals (`deferral.ts`: a processor deferring at a record of its batch, the delay passing,
 * a join or a stop ending the wait), also: nothing is committed past the deferred record, its
 * redelivery is an ordinary replay (no restart, reset or move backwards), and kafkajs never keeps
 * the partition paused once no deferral is left to resume it, nor across a join.
 */
const DEPTH = 7;
const committing: WorldBounds = { mode: { ephemeral: false, fromBeginning: true }, maxOffset: 3 };
const ephemeral: WorldBounds = { mode: { ephemeral: true, fromBeginning: true }, maxOffset: 3 };
const deferring: WorldBounds = { ...committing, deferrals: true };
/** Offsets up to 2 for one step more: a record deferred, the topic recreated unseen and written past it, the delay over. */
const deferringEphemeral: WorldBounds = { ...ephemeral, maxOffset: 2, deferrals: true };

/** A sequence of events, named as the findings name them. */
const events = (sequence: string) => sequence.split(' → ');

/** The causes a run met (`defect` when the loop could have told). */
function causesOf(bounds: WorldBounds, sequence: string): Cause[] {
  return [...new Set(run(bounds, events(sequence)).findings.map((f) => f.cause))];
}

describe('log-position: every sequence of events up to the depth, against a model of a partition', () => {
  it.each([
    // 20,920,445 sequences at depth 7, deferrals among the events (15,429,487 without one: every
    // such sequence is one of these). At depth 8: 261,592,413, no defect; without deferrals at
    // depth 9 with offsets to 4: 2,142,269,286, also without a defect, and startMoved, resetTwice
    // and their consequences met too.
    ['a committing group', deferring, DEPTH, 20_000_000, ['positionUnknown', 'processDied', 'unseen']],
    // 2,023,263. startMoved since its record check reads the log's start instead of seeking blind
    // (a recreated log's start moved before the check looks like retention past the record).
    ['an ephemeral follower', ephemeral, DEPTH, 2_000_000, ['positionUnknown', 'startMoved', 'unseen']],
    // 27,213,250 at depth 8 with offsets up to 2: a recreation while paused, written past the
    // deferred record, takes 8 events (with offsets up to 3: 31,604,772, no defect).
    [
      'an ephemeral follower that defers',
      deferringEphemeral,
      DEPTH + 1,
      27_000_000,
      ['positionUnknown', 'startMoved', 'unseen'],
    ],
  ] as const)(
    '%s: no defect, only the cases no loop can tell',
    (_name, bounds, depth, atLeast, limits) => {
      const { sequences, findings } = explore(bounds, depth);
      expect(sequences).toBeGreaterThan(atLeast);
      expect(findings.filter((f) => f.cause === 'defect')).toEqual([]);
      expect([...new Set(findings.map((f) => f.cause))].sort()).toEqual(limits);
      // CPU alone (tens of millions of sequences): 3 s on a quiet machine, past 30 s at a load of 17.
    },
    120_000,
  );
});

describe('deferral defects the model check found (each failed on the code before it)', () => {
  it('an ephemeral follower deferred at its first record, retention past it, then a rebalance: the removed records are counted', () => {
    // Before: nothing processed, the loop did not know where it was; kafkajs went to the log's start
    // at the join, past the deferred record, and it was skipped uncounted.
    const sequence = 'append → append → fetch, defer at 0 → retention to 1 → rebalance → fetch';
    const { findings, world } = run(deferringEphemeral, events(sequence));
    expect(findings).toEqual([]);
    expect(world.frontier).toBe(2); // record 0 counted, record 1 processed
  });

  it('the same, resumed after the delay: kafkajs resets from the deferred record, and the skip is counted from there', () => {
    const sequence = 'append → append → fetch, defer at 0 → retention to 1 → delay passes → fetch → fetch';
    expect(run(deferringEphemeral, events(sequence)).findings).toEqual([]);
  });

  it('an ephemeral follower deferred at its first record past 0, its topic recreated while paused and written past it: read from the start', () => {
    // Before: only where it read to was kept, so the resumed fetch at 1 in the new log was taken
    // for the old one: record 0 of the new log never offered nor counted, no restart told (a review).
    const sequence =
      'append → append → retention to 1 → fetch → fetch, defer at 1 → recreate → append → append → delay passes → fetch';
    expect(run(deferringEphemeral, events(sequence)).findings).toEqual([]);
    // Told of the new log (the resumed batch at 1 dropped for a seek to 0), then both its records offered.
    const { findings, world } = run(deferringEphemeral, events(`${sequence} → fetch`));
    expect(findings).toEqual([]);
    expect(world).toMatchObject({ gen: 1, toldGen: 1, frontier: 2 });
    expect([...world.handed.keys()]).toEqual(['1:0', '1:1']);
  });

  it('the same, the new log empty at the resume: the reset below the deferred record is a restart of a log the loop saw', () => {
    // Before: the loop kept nothing of the old log, so the restart it told was of a log it had not
    // seen (logRestarted to a processor that took nothing), and with a record written past the
    // deferred one before the resume, it took the new log for the old one (as above).
    const sequence =
      'append → append → retention to 1 → fetch → fetch, defer at 1 → recreate → delay passes → fetch → append → fetch';
    const { findings, world } = run(deferringEphemeral, events(sequence));
    expect(findings).toEqual([]);
    expect(world).toMatchObject({ gen: 1, toldGen: 1, frontier: 1 });
  });

  it('a commit made at a record deferred at first, its topic recreated: the new log is committed, no restart at the next join', () => {
    // Before: the gone commit (0, never read past: not a restart) was kept, so the new log's commit
    // of 0 was never made, and the next join found it gone again, now read past: the processor was
    // told of a restart that was none (its replay guards dropped).
    const sequence = 'append → fetch, defer at 0 → recreate → append → delay passes → fetch, hold → rebalance → fetch';
    expect(run(deferring, events(sequence)).findings).toEqual([]);
  });
});

describe('guards of the deferral (each fails without the part of stepDeferral it names)', () => {
  it("a topic recreated while its partition is paused is found at the resume (the group's commit re-read: a38f2da)", () => {
    const sequence =
      'append → append → fetch, defer at 1 → recreate unseen → append → append → delay passes → fetch → fetch';
    const { findings, world } = run(deferring, events(sequence));
    expect(findings).toEqual([]);
    // Told of the new log, then read from its start (the resumed batch at 1 dropped for a seek to 0).
    expect(world).toMatchObject({ toldGen: 1, frontier: 2 });
  });

  it("a join ends the deferral: kafkajs resumes the partition and fetches it from the group's commit", () => {
    const { findings, world } = run(deferring, events('append → append → fetch, defer at 1 → rebalance → fetch'));
    expect(findings).toEqual([]);
    expect(world).toMatchObject({ paused: false, deferral: undefined, position: 2 });
  });

  it('the redelivery after the delay goes on from the deferred record, nothing committed past it meanwhile', () => {
    const deferred = run(deferring, events('append → append → fetch, defer at 1'));
    expect(deferred.world).toMatchObject({ paused: true, commit: 1, position: 1 });
    const { findings, world } = run(deferring, events('append → append → fetch, defer at 1 → delay passes → fetch'));
    expect(findings).toEqual([]);
    expect(world).toMatchObject({ paused: false, commit: 2, frontier: 2 });
  });
});

/** Each failed on the old logic (the checks inline in consumer.ts, before this module). */
describe('defects the model check found', () => {
  it('a commit held at 0, the topic recreated shorter: kafkajs resets below where it was, then a burst passes it', () => {
    // Before: a reset was a restart only below the group's commit, 0 here: the new log was taken for the old one.
    expect(causesOf(committing, 'append → fetch, hold → recreate → fetch → append → fetch')).toEqual([]);
  });

  it('an operator reset backwards while the member was out, then retention past it: a forward reset, not a restart', () => {
    // Before: below the commit made here (2) before the operator's reset (0): a restart, replay guards dropped.
    const sequence =
      'append → append → fetch → operator resets to 0, rejoin under a new id → retention to 1 → fetch → fetch';
    expect(causesOf(committing, sequence)).toEqual([]);
  });

  it('kafkajs resets, then the member rejoins under a new id before the next batch: the skip is counted', () => {
    // Before: the rejoin dropped the pending reset with the partition's state: record 0 skipped uncounted.
    const sequence =
      'append → append → operator resets to 0, rejoin under a new id → retention to 1 → fetch → rejoin under a new id → fetch';
    expect(causesOf(committing, sequence)).toEqual([]);
  });

  it("another member committed past this one's commit held at 0, then the topic was recreated: read from its start", () => {
    // Before: the commit made here (0) was preferred to the other member's (1): "never read past 0".
    const sequence =
      'append → fetch, hold → another member commits all, rejoin under a new id → recreate → append → append → fetch';
    expect(causesOf(committing, sequence)).toEqual([]);
  });

  it('a reset in the old log, then the topic recreated before the next batch: the gone commit is seen', () => {
    // Before: the pending reset ruled out "commit gone" for good: the new log read from kafkajs' old position.
    const sequence = 'append → fetch, hold → retention to 1 → rebalance → fetch → recreate → append → append → fetch';
    expect(causesOf(committing, sequence)).toEqual([]);
  });

  it('the same, with kafkajs resetting again in the new log: the commit is read at once after the answer', () => {
    // The new log's reset commits -2 again: only a read right after "does not host" sees the commit gone.
    const sequence = 'append → fetch, hold → retention to 1 → rebalance → fetch → recreate → fetch → append → fetch';
    expect(causesOf(committing, sequence)).toEqual([]);
  });

  it('an ephemeral follower whose topic was recreated and grew past its position, then a rebalance', () => {
    // Before: after a join kafkajs read it from the start, nothing compared: the new log taken for the old one.
    expect(causesOf(ephemeral, 'append → fetch → recreate unseen → append → rebalance → fetch')).toEqual([]);
  });

  it('an ephemeral follower after a rebalance: records removed meanwhile are counted, not skipped', () => {
    // Before: kafkajs went to the earliest offset at the join, past record 1, and nothing was counted.
    const sequence = 'append → append → append → fetch, lagging leader → retention to 2 → rebalance → fetch';
    expect(causesOf(ephemeral, sequence)).toEqual([]);
  });

  it('an ephemeral follower after a rebalance and retention: a forward reset, not a restart', () => {
    // Before: the reset was compared with what was read (2), not where kafkajs was (0): a restart.
    const sequence = 'append → append → fetch → rebalance → retention to 1 → fetch → append → fetch';
    expect(causesOf(ephemeral, sequence)).toEqual([]);
  });
});

describe('an ephemeral follower whose last record retention removed (found by a review)', () => {
  it.each([
    ['a rebalance', 'rebalance'],
    ['a "does not host" answer', 'does not host (another topic)'],
  ])('%s: no seek outside the log, nothing skipped or handed twice after', (_case, signal) => {
    // Before: sought back to record 0 at the signal, below the log's start: out of range, and
    // kafkajs' reset committed -2 into the ephemeral group (kept by the broker for 7 days).
    const sequence = `append → fetch → retention to 1 → ${signal} → append → fetch`;
    expect(run(ephemeral, events(sequence)).findings).toEqual([]);
  });

  it('records removed past the last one read are counted as skipped', () => {
    const sequence = 'append → fetch → append → append → retention to 2 → rebalance → fetch';
    const { findings, world } = run(ephemeral, events(sequence));
    expect(findings).toEqual([]);
    expect(world.frontier).toBe(3); // record 1 counted, record 2 processed
  });
});

describe('guards of these fixes, found by the model check while making them', () => {
  it('kafkajs resets twice, an operator reset between: the second counts from where the operator put it', () => {
    // A reset kept across a rejoin, then another: the second's from is where the operator put kafkajs.
    const sequence =
      'append → append → append → retention to 1 → fetch → operator resets to 1, rejoin under a new id → retention to 2 → fetch → fetch';
    expect(causesOf(committing, sequence)).toEqual([]);
  });

  it('a reset before a rejoin whose commit read finds the commit gone: a recreated topic, not retention', () => {
    const sequence =
      'append → retention to 1 → fetch → another member commits all, rejoin under a new id → recreate → append → append → fetch';
    expect(causesOf(committing, sequence)).toEqual([]);
  });

  it('an ephemeral follower sought back at a join while a reset of its recreated log is pending', () => {
    const sequence = 'append → append → fetch → recreate → fetch → append → append → rebalance → fetch';
    expect(causesOf(ephemeral, sequence)).toEqual([]);
  });

  it("a commit found gone after a reset does not outlive an operator's commit read since", () => {
    const sequence =
      'append → retention to 1 → fetch → recreate → append → append → operator resets to 1, rejoin under a new id → fetch';
    expect(causesOf(committing, sequence)).toEqual([]);
  });

  it('retention past a held-back commit, then a rebalance: a forward reset, never a restart (as offset-resets.int)', () => {
    const sequence = 'append → append → append → fetch, hold → retention to 2 → rebalance → fetch → fetch';
    const { findings, world } = run(committing, events(sequence));
    expect(findings).toEqual([]);
    expect(world.toldGen).toBe(0); // the processor still holds the log it was told of
  });
});

describe('what the loop cannot tell (README: "Restart detection, checked")', () => {
  const limits: ReadonlyArray<[keyof typeof causes, WorldBounds, string]> = [
    ['unseen', committing, 'append → fetch → recreate unseen → append → append → fetch'],
    ['unseen', ephemeral, 'append → fetch → recreate unseen → append → append → fetch'],
    ['positionUnknown', committing, 'append → retention to 1 → fetch → recreate → append → append → fetch'],
    ['startMoved', committing, 'append → fetch → recreate → append → append → append → retention to 2 → fetch → fetch'],
    ['startMoved', ephemeral, 'append → fetch → recreate → append → append → retention to 1 → fetch'],
    [
      'processDied',
      committing,
      'append → append → operator resets to 0, rejoin under a new id → retention to 1 → fetch → process restart → fetch',
    ],
    [
      'resetTwice',
      committing,
      'append → fetch, hold → retention to 1 → rebalance → fetch → recreate unseen → fetch → append → fetch',
    ],
  ];
  it.each(limits)('%s (%#)', (cause, bounds, sequence) => {
    expect(causesOf(bounds, sequence)).toEqual([cause]);
  });
});

describe('step', () => {
  const mode: LogMode = { ephemeral: false, fromBeginning: true };

  it('asks for the reads it needs, one at a time, and changes nothing before the last answer', () => {
    const processed = step(initialLogPosition, { kind: 'processed', next: 10n, lastRecord: undefined }, mode).state;
    const committed = step(processed, { kind: 'committed', offset: 10n }, mode).state;
    const signalled = step(committed, { kind: 'topicMissing' }, mode).state;
    // A batch from the old position: the group's commit is read (the signal taken now), then the log's start.
    const first = step(signalled, { kind: 'batch', check: { first: 10n, highWatermark: 20n } }, mode);
    expect(first.decision).toMatchObject({ kind: 'read', read: 'groupCommit' });
    expect(first.state.verify).toBe(false);
    if (first.decision.kind !== 'read') throw new Error('unreachable');
    const gone = { ...first.decision.check, groupCommit: { stored: -1n } };
    const second = step(first.state, { kind: 'batch', check: gone }, mode);
    expect(second.decision).toMatchObject({ kind: 'read', read: 'logStart' });
    expect(second.state).toBe(first.state);
    if (second.decision.kind !== 'read') throw new Error('unreachable');
    const last = step(second.state, { kind: 'batch', check: { ...second.decision.check, logStart: 0n } }, mode);
    expect(last.decision).toMatchObject({ kind: 'restarted', seekTo: 0n, found: { reason: 'commitGone' } });
    expect(last.state).toEqual({ ...initialLogPosition, position: 0n });
  });
});

describe('markerReadDue', () => {
  const reset = { from: 5n, joinedSince: false, markerGone: false };

  it('reads at the first answer after a reset, then at spacings doubling from 250 ms up to 30 s', () => {
    let reads = markerReadDue(undefined, reset, 0);
    expect(reads).toEqual({ reset, count: 1, at: 0 });
    const readAt: number[] = [0];
    // An answer every 100 ms for a minute.
    for (let now = 100; now <= 60_000; now += 100) {
      const next = markerReadDue(reads, reset, now);
      if (next === undefined) continue;
      reads = next;
      readAt.push(now);
    }
    expect(readAt.slice(0, 6)).toEqual([0, 300, 800, 1_800, 3_800, 7_800]);
    const gaps = readAt.slice(1).map((t, i) => t - readAt[i]!);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(30_100);
    expect(readAt.length).toBeLessThan(12); // one per answer before: 601
  });

  it('a new reset reads at once, whatever the reads of the one before', () => {
    const last = { reset, count: 3, at: 1_000 };
    expect(markerReadDue(last, { ...reset, joinedSince: true }, 1_001)).toMatchObject({ count: 1, at: 1_001 });
    expect(markerReadDue(last, reset, 1_001)).toBeUndefined();
  });
});
