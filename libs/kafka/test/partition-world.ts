import { type DeferralEvent, type DeferralWait, processedUpTo, stepDeferral } from '../src/deferral.js';
import {
  type BatchCheck,
  type CommitRead,
  commitsForward,
  initialLogPosition,
  type LogMode,
  type LogPosition,
  type Observation,
  readsMarker,
  rejoinedUnderNewId,
  step,
} from '../src/log-position.js';

/**
 * A small world of one partition, for the exhaustive check of `log-position.ts`: Kafka's log
 * (generations: a topic deleted and created again is a new log, offsets from 0), the group's
 * stored commit, kafkajs' fetch position, the consumer loop's glue around `step` (as consumer.ts
 * does it) and a processor that may hold its commit back — plus what the invariants need.
 *
 * kafkajs as modelled (read from kafkajs 2.2.4): it fetches from its position; a position outside
 * [start, end] is out of range — it commits -2 over the group's commit, reports the reset and
 * fetches from the earliest offset (fromBeginning, as every driftline consumer). A batch is the
 * records from the position to the end; after it the position is the offset after it (resolved,
 * whatever was committed). After every join it fetches from the group's commit, or the earliest
 * offset without one. A topic deleted and created again keeps its position (in the new log).
 *
 * With `deferrals` (`ProcessResult.defer`), the processor may defer at any record it is offered
 * (holding its commit back or not): the loop pauses the
 * partition, and kafkajs fetches nothing of it — no batch, no reset, no "does not host" answer —
 * until the loop resumes it (the delay passed, or a join: kafkajs keeps paused partitions paused
 * across joins); a new process has a kafkajs of its own, nothing paused.
 */
export interface World {
  /** The log's generation (one more per topic deleted and created again), its start and end. */
  readonly gen: number;
  readonly low: number;
  readonly high: number;
  /** The group's stored commit: an offset, kafkajs' -2 after a reset, or none. */
  readonly commit: number | 'earliest' | undefined;
  /** kafkajs' fetch position (an offset of the current log) and member id. */
  readonly position: number;
  readonly memberId: number;
  /** The loop: the pure state, the member id it saw last, the commit read at the join (cached). */
  readonly log: LogPosition;
  readonly loopMemberId: string | undefined;
  readonly joinRead: CommitRead | undefined;
  /** A stateful processor's commit held back at the first record it holds in memory only. */
  readonly holdFrom: number | undefined;
  /** The loop's wait on a processor's deferral (`deferral.ts`), and whether kafkajs has the partition paused. */
  readonly deferral: DeferralWait | undefined;
  readonly paused: boolean;
  /** The offset of this generation a deferral asked to be redelivered from, until a batch is offered from anywhere. */
  readonly redelivery: number | undefined;
  // What the invariants need.
  /** Records handed to this process' processor (`gen:offset`), true when handed since the last join. */
  readonly handed: ReadonlyMap<string, boolean>;
  /** The generation of the last record handed since the processor was last told restarted, revoked or started. */
  readonly toldGen: number | undefined;
  /** The generation when the loop last saw the log (a record, a commit, a restart). */
  readonly refGen: number | undefined;
  /** The first offset of this generation the group has neither processed nor counted as skipped. */
  readonly frontier: number;
  /** The group has a position in this generation (a record processed, or a commit made in it). */
  readonly entered: boolean;
  // Why the loop cannot know (see `Cause`).
  /** The log was recreated and nothing reached the loop since: no answer, join, reset, or restart. */
  readonly unseen: boolean;
  /** kafkajs fetches from a default offset (no commit, or a reset) that the loop never learnt, nothing processed since. */
  readonly defaultPosition: boolean;
  /** That unknown position was carried into a recreated log. */
  readonly blind: boolean;
  /** A recreated log's start moved before the loop saw anything of it. */
  readonly startPassed: boolean;
  /** The process that saw a reset died before the next batch. */
  readonly resetLost: boolean;
  /** kafkajs reset a second time before a batch came: where the first reset took it is not known. */
  readonly resetTwice: boolean;
  /** A violation of one of these kinds happened: the processor's state mixes two logs since. */
  readonly mixed: boolean;
}

export type Violation =
  /** A record of a new generation handed to a processor holding the old one, not told. */
  | 'missed restart'
  /** The processor told restarted while the log is the one the loop saw last. */
  | 'restart not a restart'
  /** A record handed twice with no join between (no replay from a commit). */
  | 'handed twice'
  /** Records neither processed nor counted as skipped. */
  | 'skipped silently'
  /**
   * The loop sought outside the log: kafkajs resets the position and commits -2 (also into an
   * ephemeral group, which then outlives its process by the broker's offset retention).
   */
  | 'sought outside the log'
  /** A batch committed past the record its processor deferred at: those records would never be offered again. */
  | 'committed past the deferral'
  /** The redelivery from a deferred record (the same log, in range) taken for a restart, a reset or a move backwards. */
  | 'redelivery taken for a reset'
  /** kafkajs keeps the partition paused with no deferral of the loop left to resume it: never fetched again. */
  | 'paused for good'
  /** The partition still paused after a join (kafkajs keeps paused partitions across joins). */
  | 'paused across a join';

export interface WorldEvent {
  readonly name: string;
  readonly apply: (w: World) => Outcome;
}

export interface Outcome {
  readonly world: World;
  readonly violations: readonly Violation[];
}

export interface WorldBounds {
  readonly mode: LogMode;
  /** The highest end of log. */
  readonly maxOffset: number;
  /** Whether the processor may defer (`ProcessResult.defer`) at a record of its batch. */
  readonly deferrals?: boolean;
}

/** What a process starts with: a fresh loop and processor. */
function freshProcess(): Pick<
  World,
  'log' | 'loopMemberId' | 'joinRead' | 'holdFrom' | 'deferral' | 'paused' | 'handed' | 'toldGen' | 'refGen'
> {
  return {
    log: initialLogPosition,
    loopMemberId: undefined,
    joinRead: undefined,
    holdFrom: undefined,
    // A new kafkajs consumer: nothing of it paused.
    deferral: undefined,
    paused: false,
    handed: new Map(),
    toldGen: undefined,
    refGen: undefined,
  };
}

/** A process started (its group joined) over an empty topic. */
export function initialWorld(mode: LogMode): World {
  const empty: World = {
    gen: 0,
    low: 0,
    high: 0,
    commit: undefined,
    position: 0,
    memberId: 0,
    ...freshProcess(),
    redelivery: undefined,
    frontier: 0,
    entered: false,
    unseen: false,
    defaultPosition: false,
    blind: false,
    startPassed: false,
    resetLost: false,
    resetTwice: false,
    mixed: false,
  };
  return startProcess(empty, mode).world;
}

const key = (gen: number, offset: number) => `${gen}:${offset}`;
const fingerprint = key;

function observe(w: World, observation: Observation, mode: LogMode) {
  const { state, decision } = step(w.log, observation, mode);
  return { world: { ...w, log: state }, decision };
}

function storedOf(commit: World['commit']): bigint | undefined {
  if (commit === undefined) return undefined;
  return commit === 'earliest' ? -2n : BigInt(commit);
}

/** The group's commit as the loop reads it; a read of a real commit is the loop seeing the log. */
function readCommit(w: World, mode: LogMode): World {
  const stored = storedOf(w.commit);
  const read = observe(w, { kind: 'commitRead', stored }, mode).world;
  return {
    ...read,
    joinRead: { stored },
    refGen: stored !== undefined && stored >= 0n ? w.gen : w.refGen,
  };
}

/** The loop seeks kafkajs to `offset` (after a batch, or at a signal). */
function seek(w: World, offset: bigint, violations: Violation[]): World {
  const at = Number(offset);
  if (at < w.low || at > w.high) violations.push('sought outside the log');
  return { ...w, position: at, defaultPosition: false, blind: false };
}

/**
 * A deferral event, as consumer.ts applies `stepDeferral`: kafkajs paused or resumed, the log
 * re-checked as after a "does not host" answer (the group's commit read again). No time: the stall
 * clock is not modelled (`test/deferral.test.ts`).
 */
function deferralEvent(w: World, event: DeferralEvent, mode: LogMode): World {
  const next = stepDeferral(w.deferral, event, 0);
  let world: World = { ...w, deferral: next.wait };
  if (next.pause) world = { ...world, paused: true };
  if (next.recheckLog) world = observe({ ...world, joinRead: undefined }, { kind: 'topicMissing' }, mode).world;
  if (next.resume) world = { ...world, paused: false };
  return world;
}

/**
 * The delay of a deferral passes: the partition is resumed. A paused partition is not fetched, so
 * no "does not host" answer can reach the loop for it: what happened to its log meanwhile is the
 * loop's to find now (a recreation while paused is never "unseen": see the events).
 */
function delayPasses(w: World, mode: LogMode): Outcome {
  return unchanged(deferralEvent(w, { kind: 'delayPassed' }, mode));
}

/** kafkajs joins the group: the loop's GROUP_JOIN, then fetching from the group's commit. */
function join(w: World, mode: LogMode, newMemberId: boolean): Outcome {
  const memberId = newMemberId ? w.memberId + 1 : w.memberId;
  const revoked = rejoinedUnderNewId(w.loopMemberId, String(memberId), mode);
  let next: World = {
    ...deferralEvent(w, { kind: 'joined' }, mode),
    memberId,
    loopMemberId: String(memberId),
    joinRead: undefined,
    handed: new Map([...w.handed.keys()].map((k) => [k, false])),
    unseen: false,
    blind: false,
  };
  if (revoked) next = { ...next, toldGen: undefined, holdFrom: undefined };
  const joined = observe(next, { kind: 'joined', assigned: true, revoked }, mode);
  next = joined.world;
  if (!mode.ephemeral) next = readCommit(next, mode);
  // kafkajs keeps a paused partition paused across joins.
  const violations: Violation[] = next.paused ? ['paused across a join'] : [];
  if (joined.decision.kind === 'seek') return { world: seek(next, joined.decision.offset, violations), violations };
  const committed = typeof w.commit === 'number';
  return {
    world: { ...next, position: committed ? (w.commit as number) : w.low, defaultPosition: !committed },
    violations,
  };
}

/** A new process: a fresh loop and processor; a committing group's commits are read before the join. */
function startProcess(w: World, mode: LogMode): Outcome {
  let next: World = {
    // stop(): its deferral ends, nothing fetched again; the new process has a kafkajs of its own.
    ...deferralEvent(w, { kind: 'stopping' }, mode),
    ...freshProcess(),
    // Its in-memory position went with it: a reset it saw is counted by no one.
    resetLost: w.resetLost || w.log.reset !== undefined,
  };
  if (mode.ephemeral) {
    // A group of its own per process: no commit, read from the start; this process has no position yet.
    next = { ...next, commit: undefined, frontier: w.low, entered: false };
  } else next = readCommit(next, mode);
  return join(next, mode, true);
}

/** A "does not host this topic-partition" answer reaching the loop (for this topic or another). */
function topicMissing(w: World, mode: LogMode): Outcome {
  const out = observe({ ...w, joinRead: undefined, unseen: false }, { kind: 'topicMissing' }, mode);
  let world = out.world;
  const reset = readsMarker(world.log, mode);
  if (reset !== undefined) {
    world = readCommit(world, mode);
    world = observe(world, { kind: 'markerRead', reset, stored: storedOf(world.commit) }, mode).world;
  }
  const violations: Violation[] = [];
  if (out.decision.kind !== 'seek') return { world, violations };
  return { world: seek(world, out.decision.offset, violations), violations };
}

/** kafkajs fetches at its position: an out-of-range reset, or a batch the loop checks and processes. */
function fetch(w: World, mode: LogMode, hold: boolean, lagging: boolean, deferAt?: number): Outcome {
  if (w.position < w.low || w.position > w.high) {
    const seen: World = {
      ...w,
      resetTwice: w.resetTwice || (w.log.reset !== undefined && !w.log.reset.joinedSince),
      commit: 'earliest',
      // What follows is the reset's batch, not the deferral's redelivery.
      redelivery: undefined,
      joinRead: undefined,
      unseen: false,
      blind: false,
      defaultPosition: true,
    };
    const reset = observe(seen, { kind: 'offsetReset' }, mode).world;
    return { world: { ...reset, position: w.low }, violations: [] };
  }
  // A leader that just took over may serve up to a high watermark behind the log's end for a moment.
  const end = lagging ? w.position + 1 : w.high;
  // The batch begins: a deferral waiting for it is over.
  let world = deferralEvent(w, { kind: 'batch' }, mode);
  const violations: Violation[] = [];
  // An ordinary replay of the same offsets: no restart, reset, nor move backwards.
  const redelivered = w.redelivery === w.position;
  let check: BatchCheck = { first: BigInt(w.position), highWatermark: BigInt(end) };
  for (;;) {
    const out = observe(world, { kind: 'batch', check }, mode);
    world = out.world;
    const d = out.decision;
    if (d.kind === 'read') {
      check = { ...d.check, ...answer(world, d.read, mode) };
      if (d.read === 'groupCommit' && world.joinRead === undefined) world = readCommit(world, mode);
      continue;
    }
    if (redelivered && (d.kind === 'restarted' || d.kind === 'skipped' || d.kind === 'movedBackwards'))
      violations.push('redelivery taken for a reset');
    const sought = (offset: bigint): World => seek(world, offset, violations);
    if (d.kind === 'seek') return { world: sought(d.offset), violations };
    if (d.kind === 'restarted') {
      if (!(world.refGen !== undefined && world.refGen < world.gen)) violations.push('restart not a restart');
      world = { ...world, toldGen: undefined, holdFrom: undefined, refGen: world.gen };
      if (d.seekTo !== undefined) return { world: sought(d.seekTo), violations };
    }
    if (d.kind === 'skipped') {
      const count = Number(d.count);
      const from = w.position - count;
      world = { ...world, frontier: from <= world.frontier ? Math.max(world.frontier, w.position) : world.frontier };
    }
    break;
  }
  return handOver(world, mode, w.position, end, hold, violations, deferAt);
}

/** The answer to a check's read, from the world as it is now. */
function answer(
  w: World,
  read: 'logEnd' | 'logStart' | 'groupCommit' | 'fingerprint',
  _mode: LogMode,
): Partial<BatchCheck> {
  switch (read) {
    case 'logEnd':
      return { logEnd: BigInt(w.high) };
    case 'logStart':
      return { logStart: BigInt(w.low) };
    case 'fingerprint':
      return { fingerprint: fingerprint(w.gen, w.position) };
    case 'groupCommit':
      return { groupCommit: w.joinRead ?? { stored: storedOf(w.commit) } };
  }
}

/**
 * The processor is offered records [from, end) and takes them, or those before `deferAt` (it defers
 * the rest: redelivered from there after a delay); then the loop commits (at most where the
 * processor holds) and, deferred, pauses the partition.
 */
function handOver(
  w: World,
  mode: LogMode,
  from: number,
  end: number,
  hold: boolean,
  found: Violation[],
  deferAt: number | undefined,
): Outcome {
  const violations = [...found];
  const deferral = deferAt === undefined ? undefined : { offset: BigInt(deferAt), delayMs: 0, reason: '' };
  const next = processedUpTo(BigInt(end - 1), deferral);
  // The records processed (none: deferred at the first, the processor took nothing).
  const taken = Number(next);
  // Offered, also when it takes none: what it defers by is its state of the old log.
  if (w.toldGen !== undefined && w.toldGen < w.gen) violations.push('missed restart');
  if (from > w.frontier) violations.push('skipped silently');
  const handed = new Map(w.handed);
  for (let o = from; o < taken; o++) {
    if (handed.get(key(w.gen, o)) === true && !violations.includes('handed twice')) violations.push('handed twice');
    handed.set(key(w.gen, o), true);
  }
  const holdFrom = hold ? (w.holdFrom ?? from) : undefined;
  let world: World = {
    ...w,
    handed,
    holdFrom,
    // Offered records it took none of (deferred at the first), the processor holds nothing of them,
    // nor did the loop see more of the log than where it is.
    toldGen: taken > from ? w.gen : w.toldGen,
    refGen: taken > from ? w.gen : w.refGen,
    frontier: from <= w.frontier ? Math.max(w.frontier, taken) : w.frontier,
    entered: true,
    // Resolved up to what was processed: kafkajs fetches from there next.
    position: taken,
    // Checked only for a log the loop had seen last: one recreated unseen before is found then (late).
    redelivery: (taken > from ? w.gen : w.refGen) === w.gen ? deferAt : undefined,
    defaultPosition: false,
    blind: false,
    startPassed: false,
    resetLost: false,
    resetTwice: false,
  };
  // As consumer.ts: the record deferred at is given to an ephemeral loop, which has no commit.
  const deferredRecord =
    mode.ephemeral && deferAt !== undefined
      ? { offset: BigInt(deferAt), fingerprint: fingerprint(w.gen, deferAt), deferred: true as const }
      : undefined;
  const processed: Observation =
    taken > from
      ? { kind: 'processed', next, lastRecord: { offset: next - 1n, fingerprint: fingerprint(w.gen, taken - 1) } }
      : { kind: 'processedNone', at: next, deferred: deferredRecord };
  world = observe(world, processed, mode).world;
  // The loop kept the record deferred at: it saw this log (a restart of it is one), and the
  // redelivery from that record is checked.
  if (taken === from && deferAt !== undefined && world.log.lastRecord?.fingerprint === fingerprint(w.gen, deferAt))
    world = { ...world, refGen: w.gen, redelivery: deferAt };
  const offered = holdFrom === undefined ? undefined : BigInt(holdFrom);
  const safe = offered !== undefined && offered < next ? offered : next;
  if (commitsForward(world.log, safe)) {
    if (!mode.ephemeral) world = { ...world, commit: Number(safe) };
    world = observe(world, { kind: 'committed', offset: safe }, mode).world;
  }
  if (deferAt !== undefined) {
    if (safe > BigInt(deferAt)) violations.push('committed past the deferral');
    world = deferralEvent(world, { kind: 'deferred', offset: BigInt(deferAt), current: true }, mode);
  }
  return { world, violations };
}

function unchanged(world: World): Outcome {
  return { world, violations: [] };
}

/** Every event that can happen next in `w`. */
export function events(w: World, bounds: WorldBounds): WorldEvent[] {
  const { mode, maxOffset } = bounds;
  const out: WorldEvent[] = [];
  if (w.high < maxOffset) out.push({ name: 'append', apply: (x) => unchanged({ ...x, high: x.high + 1 }) });
  for (let low = w.low + 1; low <= w.high; low++)
    out.push({
      name: `retention to ${low}`,
      apply: (x) => {
        const unseenLog = x.refGen !== undefined && x.refGen < x.gen;
        return unchanged({
          ...x,
          low,
          frontier: x.entered ? x.frontier : Math.max(x.frontier, low),
          startPassed: x.startPassed || unseenLog,
        });
      },
    });
  const recreated = (x: World): World => ({
    ...x,
    redelivery: undefined,
    gen: x.gen + 1,
    low: 0,
    high: 0,
    commit: undefined,
    frontier: 0,
    entered: false,
    blind: x.defaultPosition,
  });
  out.push({ name: 'recreate', apply: (x) => topicMissing({ ...recreated(x), unseen: false }, mode) });
  // A paused partition gets no answer at all: its resume re-checks the log (not unseen past it).
  out.push({
    name: 'recreate unseen',
    apply: (x) => unchanged({ ...recreated(x), unseen: x.paused ? x.unseen : true }),
  });
  const outOfRange = w.position < w.low || w.position > w.high;
  // kafkajs fetches nothing of a paused partition (nor resets its position).
  const fetching = !w.paused;
  if (fetching && (outOfRange || w.position < w.high))
    out.push({ name: 'fetch', apply: (x) => fetch(x, mode, false, false) });
  if (fetching && !outOfRange && w.position < w.high)
    out.push({ name: 'fetch, hold', apply: (x) => fetch(x, mode, true, false) });
  if (fetching && !outOfRange && w.position + 1 < w.high)
    out.push({ name: 'fetch, lagging leader', apply: (x) => fetch(x, mode, false, true) });
  if (bounds.deferrals === true) {
    // The processor defers at one of the records it was offered (`acceptDeferral` refuses others).
    if (fetching && !outOfRange)
      for (let at = w.position; at < w.high; at++) {
        out.push({ name: `fetch, defer at ${at}`, apply: (x) => fetch(x, mode, false, false, at) });
        out.push({ name: `fetch, hold, defer at ${at}`, apply: (x) => fetch(x, mode, true, false, at) });
      }
    if (w.deferral !== undefined && w.deferral.resumedAt === undefined)
      out.push({ name: 'delay passes', apply: (x) => delayPasses(x, mode) });
  }
  out.push({ name: 'does not host (another topic)', apply: (x) => topicMissing(x, mode) });
  out.push({ name: 'rebalance', apply: (x) => join(x, mode, false) });
  out.push({ name: 'rejoin under a new id', apply: (x) => join(x, mode, true) });
  out.push({ name: 'process restart', apply: (x) => startProcess(x, mode) });
  if (!mode.ephemeral) {
    // Out of the group, another member processed everything and committed, then this one rejoins.
    out.push({
      name: 'another member commits all, rejoin under a new id',
      apply: (x) =>
        join(
          { ...x, commit: x.high, frontier: Math.max(x.frontier, x.high), entered: true, redelivery: undefined },
          mode,
          true,
        ),
    });
    // An operator's reset (the group has no member meanwhile: this one was out, or restarted).
    for (let to = w.low; to <= w.high; to++) {
      if (to === w.commit) continue;
      const reset = (x: World): World => ({
        ...x,
        redelivery: undefined,
        commit: to,
        frontier: Math.max(x.frontier, to),
        entered: true,
      });
      out.push({
        name: `operator resets to ${to}, rejoin under a new id`,
        apply: (x) => join(reset(x), mode, true),
      });
      out.push({ name: `operator resets to ${to}, process restart`, apply: (x) => startProcess(reset(x), mode) });
    }
  }
  return out;
}

/** A canonical key of a world: equal keys, equal futures (the invariants read the world only). */
export function worldKey(w: World): string {
  return JSON.stringify(w, (_k, v: unknown) => {
    if (typeof v === 'bigint') return `${v}n`;
    if (v instanceof Map) return [...v.entries()].sort();
    return v;
  });
}

/**
 * Why a violation happened: a defect of the loop, or a case it cannot tell from what it reads
 * (`causes` says why each is one; all but `resetTwice` are limits without Kafka's topic ids, which
 * kafkajs does not expose, or of a process' memory).
 */
export type Cause = 'defect' | keyof typeof causes;

export const causes = {
  unseen:
    'recreated unseen: no "does not host" answer, join or reset reached the loop before the new log reached where it had read to',
  positionUnknown:
    'position never known: kafkajs fetched from a default offset (no commit, or a reset) and nothing was processed since; that position carried into the new log',
  startMoved:
    "start moved: the new log's start moved (records deleted) before the loop saw any of it; its resets look like the old log's",
  processDied: 'process died after a reset: the reset, and where kafkajs was, went with it',
  resetTwice:
    'reset twice before a batch: where the first reset took kafkajs is not read (a gap, not a limit of Kafka)',
  consequence: 'after one of these: the processor already mixes two logs',
} as const;

/** Which violations each cause can explain (any other is a defect). */
const explains: Readonly<Record<keyof typeof causes, readonly Violation[]>> = {
  unseen: ['missed restart', 'skipped silently'],
  positionUnknown: ['skipped silently'],
  startMoved: ['missed restart'],
  processDied: ['skipped silently'],
  resetTwice: ['missed restart'],
  consequence: ['missed restart', 'restart not a restart', 'handed twice', 'skipped silently'],
};

function causeOf(w: World, violation: Violation): Cause {
  const holding: Array<[boolean, keyof typeof causes]> = [
    [w.mixed, 'consequence'],
    [w.unseen, 'unseen'],
    [w.blind, 'positionUnknown'],
    [w.startPassed, 'startMoved'],
    [w.resetLost, 'processDied'],
    [w.resetTwice, 'resetTwice'],
  ];
  for (const [holds, cause] of holding) if (holds && explains[cause].includes(violation)) return cause;
  return 'defect';
}

export interface Finding {
  readonly violation: Violation;
  readonly cause: Cause;
  readonly sequence: readonly string[];
}

/** One event: the next world and the violations met, each with its cause. */
export function happen(w: World, e: WorldEvent): { world: World; findings: Array<Omit<Finding, 'sequence'>> } {
  const { world, violations: met } = e.apply(w);
  // Nothing resumes a partition kafkajs keeps paused but the loop's deferral, before its delay passed.
  const pausedForGood = world.paused && (world.deferral === undefined || world.deferral.resumedAt !== undefined);
  const violations: readonly Violation[] = pausedForGood ? [...met, 'paused for good'] : met;
  const findings = violations.map((violation) => ({ violation, cause: causeOf(w, violation) }));
  // A recreation the loop has nothing to tell by must be missed, or it was not unseen: no check
  // pending from before it, and the new log not ending below what was read.
  const nothingToTell =
    w.unseen &&
    !w.log.verify &&
    w.log.reset === undefined &&
    w.log.recordCheck === undefined &&
    BigInt(w.high) >= (w.log.processedTo ?? 0n);
  const handedNew = e.name.startsWith('fetch') && world.toldGen === world.gen;
  if (
    nothingToTell &&
    handedNew &&
    w.toldGen !== undefined &&
    w.toldGen < w.gen &&
    !violations.includes('missed restart')
  )
    findings.push({ violation: 'missed restart', cause: 'defect' });
  const mixed = findings.some((f) => f.cause !== 'defect');
  return { world: mixed && !world.mixed ? { ...world, mixed } : world, findings };
}

export interface Exploration {
  /** Event sequences checked (every sequence of every length up to the depth). */
  readonly sequences: number;
  /** Distinct worlds visited (sequences reaching the same world share their futures). */
  readonly worlds: number;
  /** The shortest sequence found per violation and cause. */
  readonly findings: readonly Finding[];
}

/**
 * Every sequence of events up to `depth` from the initial world, each step's invariants checked.
 * Worlds already explored with as many steps left are not explored again (their futures are the
 * same); their sequences are still counted.
 */
export function explore(bounds: WorldBounds, depth: number): Exploration {
  const counted = new Map<string, number>();
  const findings = new Map<string, Finding>();
  let worlds = 0;
  const visit = (w: World, left: number, path: string[]): number => {
    const k = `${left}|${worldKey(w)}`;
    const known = counted.get(k);
    if (known !== undefined) return known;
    worlds++;
    let sequences = 1;
    if (left > 0) {
      for (const e of events(w, bounds)) {
        const { world, findings: met } = happen(w, e);
        const sequence = [...path, e.name];
        for (const f of met) {
          const id = `${f.violation}|${f.cause}`;
          const found = findings.get(id);
          if (found === undefined || found.sequence.length > sequence.length) findings.set(id, { ...f, sequence });
        }
        sequences += visit(world, left - 1, sequence);
      }
    }
    counted.set(k, sequences);
    return sequences;
  };
  const sequences = visit(initialWorld(bounds.mode), depth, []);
  return { sequences, worlds, findings: [...findings.values()] };
}

/** Runs named events from the initial world; what they met on the way. */
export function run(bounds: WorldBounds, names: readonly string[]): { world: World; findings: Finding[] } {
  let world = initialWorld(bounds.mode);
  const findings: Finding[] = [];
  const path: string[] = [];
  for (const name of names) {
    const e = events(world, bounds).find((x) => x.name === name);
    if (e === undefined) throw new Error(`"${name}" cannot happen after ${path.join(' → ') || 'the start'}`);
    path.push(name);
    const out = happen(world, e);
    world = out.world;
    findings.push(...out.findings.map((f) => ({ ...f, sequence: [...path] })));
  }
  return { world, findings };
}
