/**
 * Whether a partition's log is still the one the consumer loop read, decided before a batch is
 * processed (pure: the loop in consumer.ts does the reads, seeks, commits, logs and metrics).
 *
 * Kafka moves a fetch position on its own, and kafkajs follows it silently: a topic deleted and
 * created again (a new log, offsets from 0 again: the broker deletes the group's commits with it),
 * records removed by retention before they were read (kafkajs resets an out-of-range position to
 * the earliest offset and commits `-2` over the group's commit), a member back in its group (it
 * fetches from the group's commit). The loop reads five signals: a "does not host this
 * topic-partition" answer, an out-of-range reset, a join, a batch whose log ends below what was
 * processed, and — for an ephemeral follower, which has no commit — the record at the offset it
 * processed last. `step` folds each observation into a partition's state and says what to do;
 * a batch's check asks for the reads it needs one at a time (`read`), so the state changes only
 * with the loop's answers. Checked against every sequence of events of a model partition up to a
 * bound: `test/log-position.test.ts` (README: "Restart detection, checked").
 */

/** Batches an ephemeral partition drops waiting for its last record again before giving up. */
const RECORD_CHECK_TRIES = 5;
/** The offset Kafka reports for a partition the group has no commit of. */
const ABSENT_COMMIT = -1n;
/** What kafkajs commits when it resets a position out of range to the earliest offset. */
const EARLIEST_COMMIT = -2n;

export interface LastRecord {
  readonly offset: bigint;
  /** `recordFingerprint` of the record. */
  readonly fingerprint: string;
  /**
   * The record a processor deferred at (`ProcessResult.defer`), not processed: an ephemeral
   * follower that processed no record yet tells its log by it (nothing is sought past it).
   */
  readonly deferred?: true;
}

/** What the loop knows of one partition's position (immutable; `initialLogPosition` for none). */
export interface LogPosition {
  /** The offset after the last batch processed since the partition was assigned here. */
  readonly processedTo: bigint | undefined;
  /**
   * Where kafkajs fetches next, as far as the loop knows: after a batch, or where the loop sought
   * it. Undefined after a join (it fetches from the group's commit) or an out-of-range reset.
   */
  readonly position: bigint | undefined;
  /** The last offset committed since the last join: the loop never commits below it. */
  readonly lastCommitted: bigint | undefined;
  /**
   * The last offset this process committed, kept through rebalances: the broker deletes a group's
   * commits with their topic, so a commit of ours that is gone says the log restarted.
   */
  readonly committedHere: bigint | undefined;
  /**
   * The group's last known commit (read before the first join, at each join, and our own): where
   * kafkajs fetched from when it resets a position out of range (it commits -2 over it at once).
   */
  readonly knownCommit: bigint | undefined;
  /** The next batch checks that the group's commit is still there. */
  readonly verify: boolean;
  /** kafkajs reset the position as out of range, and the batch after has not come yet. */
  readonly reset: PendingReset | undefined;
  /**
   * An ephemeral consumer's last record processed (or, none yet, the one deferred at): its only
   * evidence of a recreated topic.
   */
  readonly lastRecord: LastRecord | undefined;
  /** An ephemeral partition's next batch checks `lastRecord` is still there: the batches dropped meanwhile. */
  readonly recordCheck: number | undefined;
}

/** An out-of-range reset waiting for the next batch. */
export interface PendingReset {
  /** Where kafkajs fetched from (undefined: from the group's commit, `knownCommit`, after a join). */
  readonly from: bigint | undefined;
  /** A join since: kafkajs fetched from the group's commit again. */
  readonly joinedSince: boolean;
  /**
   * What kafkajs committed for it was found gone right after a "does not host" answer: the topic
   * was deleted (the broker deletes its commits), whatever kafkajs commits in the new log after.
   */
  readonly markerGone: boolean;
}

export const initialLogPosition: LogPosition = {
  processedTo: undefined,
  position: undefined,
  lastCommitted: undefined,
  committedHere: undefined,
  knownCommit: undefined,
  verify: false,
  reset: undefined,
  lastRecord: undefined,
  recordCheck: undefined,
};

export interface LogMode {
  /** A follower that commits nothing (`ConsumerOptions.ephemeral`). */
  readonly ephemeral: boolean;
  /** kafkajs' default offset is the earliest (`ConsumerOptions.fromBeginning`): it commits -2 when it resets, else -1. */
  readonly fromBeginning: boolean;
}

/** The group's commit of the partition as read (`unreadable`: the read failed). */
export type CommitRead = { readonly stored: bigint | undefined } | 'unreadable';

/**
 * One batch under check, with what the loop read for it so far. A step that needs more answers
 * `read` with the check to fill in and hand back; `null` is an unreadable answer.
 */
export interface BatchCheck {
  /** The batch's first offset. */
  readonly first: bigint;
  readonly highWatermark: bigint;
  /** `recordFingerprint` of the batch's first record (read only for an ephemeral record check). */
  readonly fingerprint?: string;
  /** A fresh read of the log's end (its high watermark). */
  readonly logEnd?: bigint | null;
  /** A fresh read of the log's start (read once a restart is found). */
  readonly logStart?: bigint | null;
  readonly groupCommit?: CommitRead;
  /** The offset after the last batch processed, as it was when the log's end was asked for. */
  readonly endBelow?: bigint;
  /** The pending checks (a signal, a reset) taken from the state when the group's commit was asked for. */
  readonly taken?: { readonly reset: PendingReset | undefined };
  /** A restart found, waiting for the log's start. */
  readonly restart?: RestartFound;
}

export type RestartReason = 'logEnded' | 'commitGone' | 'resetBelow' | 'recordReplaced';

/** How each restart is found, in the loop's error line (followed by the cause and the remedy). */
export const restartFound: Readonly<Record<RestartReason, string>> = {
  logEnded: 'the log ends below the offset this process read to',
  commitGone: "the group's commit of this partition is gone",
  resetBelow: 'the fetch position was out of range above the end of the log',
  recordReplaced: 'another record is at the offset last processed (or deferred at)',
};

export interface RestartFound {
  readonly reason: RestartReason;
  /** The offsets that say so, for the log line. */
  readonly evidence: Readonly<Record<string, string | undefined>>;
}

export type Observation =
  /** The group's commit read (before the first join, at a join, or for a batch's check). */
  | { readonly kind: 'commitRead'; readonly stored: bigint | undefined }
  /** The group was joined: `assigned` now, `revoked` (owned before and lost, or owned under an old member id). */
  | { readonly kind: 'joined'; readonly assigned: boolean; readonly revoked: boolean }
  /** kafkajs reset the position as out of range to the default offset. */
  | { readonly kind: 'offsetReset' }
  /** A broker answered "does not host this topic-partition" (for some topic) while this partition was owned. */
  | { readonly kind: 'topicMissing' }
  /**
   * The group's commit read right after a `topicMissing` while `reset` was pending (see
   * `readsMarker`); ignored when that reset is no longer the pending one.
   */
  | { readonly kind: 'markerRead'; readonly reset: PendingReset; readonly stored: bigint | undefined }
  /** A batch is about to be processed. */
  | { readonly kind: 'batch'; readonly check: BatchCheck }
  /** A batch was processed up to `next`; `lastRecord` its last record (ephemeral). */
  | { readonly kind: 'processed'; readonly next: bigint; readonly lastRecord: LastRecord | undefined }
  /**
   * A batch whose processor took none of its records (it deferred at the first): kafkajs fetches
   * from `at` again. `deferred`: the record deferred at (ephemeral; `deferred: true`).
   */
  | { readonly kind: 'processedNone'; readonly at: bigint; readonly deferred: LastRecord | undefined }
  /** `offset` was committed (or, ephemeral, would have been). */
  | { readonly kind: 'committed'; readonly offset: bigint };

export type Decision =
  /** Bookkeeping only. */
  | { readonly kind: 'none' }
  /** Read `read` (from Kafka, or the batch's first record) and step again with `check` filled in. */
  | {
      readonly kind: 'read';
      readonly read: 'logEnd' | 'logStart' | 'groupCommit' | 'fingerprint';
      readonly check: BatchCheck;
    }
  /** Process the batch. */
  | { readonly kind: 'process' }
  /** Seek the partition to `offset`; a batch in hand is dropped. */
  | { readonly kind: 'seek'; readonly offset: bigint }
  /**
   * The log started over: tell the processor (before any batch of the new log), then process the
   * batch (it starts the new log) or, `seekTo` set, drop it and seek to the log's start.
   */
  | {
      readonly kind: 'restarted';
      readonly found: RestartFound;
      readonly startOfLog: bigint;
      readonly seekTo: bigint | undefined;
    }
  /**
   * kafkajs reset an out-of-range position forward: `count` records between `from` (unknown:
   * undefined) and the batch's first offset were removed by retention before they were read.
   * Count them, then process the batch (`movedBackwards` set: it also starts below the last
   * commit, as in `movedBackwards`).
   */
  | {
      readonly kind: 'skipped';
      readonly from: bigint | undefined;
      readonly count: bigint;
      readonly movedBackwards: bigint | undefined;
    }
  /** The batch starts below the last commit: the commit state is forgotten; process the batch. */
  | { readonly kind: 'movedBackwards'; readonly lastCommitted: bigint };

export interface Outcome {
  readonly state: LogPosition;
  readonly decision: Decision;
}

const none: Decision = { kind: 'none' };
const proceed: Decision = { kind: 'process' };

/** A member under a new id was out of the group: every partition it owned is lost (not an ephemeral one's). */
export function rejoinedUnderNewId(previous: string | undefined, current: string, mode: LogMode): boolean {
  // An ephemeral consumer's group is its own (no other member can have read meanwhile), and what it
  // read here is its only evidence of a recreated topic: a topic deleted long enough crashes
  // kafkajs into this very rejoin.
  return previous !== undefined && previous !== current && !mode.ephemeral;
}

/**
 * After a `topicMissing`, the reset whose marker (kafkajs' -2) the loop reads at once, before a
 * reset in a recreated log can commit its own over the gap (`markerRead`); undefined: none.
 */
export function readsMarker(state: LogPosition, mode: LogMode): PendingReset | undefined {
  return mode.fromBeginning && state.reset !== undefined && !state.reset.markerGone ? state.reset : undefined;
}

/** The marker reads of one pending reset after "does not host" answers. */
export interface MarkerReads {
  readonly reset: PendingReset;
  readonly count: number;
  /** When the last one began. */
  readonly at: number;
}

/** Spacing of a pending reset's marker reads after the first: 250 ms, doubling with each read, at most 30 s. */
const MARKER_READ_SPACING_MS = { first: 250, max: 30_000 } as const;

/**
 * Whether a "does not host" answer at `now` reads the marker of `reset` (then the reads so far,
 * this one included), or not (undefined). The first answer after a reset reads at once (a topic
 * deleted and created again must be seen before kafkajs' reset in the new log writes its -2
 * again); later ones at spacings doubling from 250 ms to 30 s. kafkajs retries a request about a
 * missing topic with backoff, and a consumer crash-looping on one restarts for as long as it is
 * missing: every one of their answers read the commits again (37 reads in 40 s against 2 without a
 * reset pending: a review; 41 for 40 answers in `offset-resets.int.test.ts`). A group coordinator
 * a moment behind the partition's leader still gets reads at 0.25, 0.75 and 1.75 s.
 */
export function markerReadDue(
  last: MarkerReads | undefined,
  reset: PendingReset,
  now: number,
): MarkerReads | undefined {
  if (last === undefined || last.reset !== reset) return { reset, count: 1, at: now };
  const spacing = Math.min(MARKER_READ_SPACING_MS.first * 2 ** (last.count - 1), MARKER_READ_SPACING_MS.max);
  return now - last.at >= spacing ? { reset, count: last.count + 1, at: now } : undefined;
}

/** Whether a commit of `offset` moves the partition's commit (never backwards). */
export function commitsForward(state: LogPosition, offset: bigint): boolean {
  return offset > (state.lastCommitted ?? -1n);
}

/** Forgets the partition's commits and position here: its offsets started over. */
function forgotten(state: LogPosition): LogPosition {
  return {
    ...state,
    lastCommitted: undefined,
    committedHere: undefined,
    knownCommit: undefined,
    processedTo: undefined,
    lastRecord: undefined,
  };
}

/** Folds one observation of a partition into its state, and says what the loop does. */
export function step(state: LogPosition, observation: Observation, mode: LogMode): Outcome {
  switch (observation.kind) {
    case 'commitRead': {
      // The real commits only: not kafkajs' -2 of a reset, nor -1 for none.
      const { stored } = observation;
      return {
        state: stored !== undefined && stored >= 0n ? { ...state, knownCommit: stored } : state,
        decision: none,
      };
    }
    case 'joined': {
      // kafkajs fetches from the group's commit after every join; another member may have committed meanwhile.
      let next: LogPosition = {
        ...state,
        lastCommitted: undefined,
        position: undefined,
        // Kept, also when revoked: the records kafkajs skipped are the group's loss while its -2
        // stands (see afterCommitRead).
        reset: state.reset === undefined ? undefined : { ...state.reset, joinedSince: true },
      };
      if (observation.revoked)
        next = { ...next, processedTo: undefined, lastRecord: undefined, recordCheck: undefined };
      // The first batch checks the group's commit is still there: a topic deleted for longer crashes
      // kafkajs into a rejoin.
      if (observation.assigned && knowsCommit(next)) next = { ...next, verify: true };
      // An ephemeral consumer has no commit: kafkajs would read the whole log again from its start
      // (a recreated one longer than what was read: taken for the old one). Its next batch re-reads
      // its last record instead, as after a "does not host" answer.
      // One deferred at its first record checks the record it deferred at (`processedNone`).
      if (observation.assigned && mode.ephemeral && next.lastRecord !== undefined) next = { ...next, recordCheck: 0 };
      return { state: next, decision: none };
    }
    case 'offsetReset':
      // Where kafkajs was: where the loop left it (undefined: a join since, it fetched from the
      // group's commit). A reset not yet followed by a batch keeps its own (kafkajs reset again from
      // its default offset), unless a join since moved kafkajs to the group's commit.
      return {
        state: {
          ...state,
          position: undefined,
          reset:
            state.reset !== undefined && !state.reset.joinedSince
              ? state.reset
              : { from: state.position, joinedSince: false, markerGone: false },
        },
        decision: none,
      };
    case 'topicMissing': {
      // Some topic was missing a moment ago (kafkajs does not say which, nor rejoin when it is back
      // in time): the next batch checks the commit this process knew.
      const next = knowsCommit(state) ? { ...state, verify: true } : state;
      // An ephemeral consumer has no commit to lose: its next batch re-reads its last record.
      if (state.lastRecord === undefined || state.recordCheck !== undefined) return { state: next, decision: none };
      return { state: { ...next, recordCheck: 0 }, decision: none };
    }
    case 'markerRead': {
      // While a reset is pending no batch is processed here: nothing of this process' own came between.
      const { reset, stored } = observation;
      const gone = stored === undefined || stored === ABSENT_COMMIT;
      if (state.reset !== reset || !gone) return { state, decision: none };
      return { state: { ...state, reset: { ...reset, markerGone: true } }, decision: none };
    }
    case 'processed':
      return {
        state: {
          ...state,
          processedTo: observation.next,
          position: observation.next,
          lastRecord: mode.ephemeral ? observation.lastRecord : state.lastRecord,
        },
        decision: none,
      };
    case 'processedNone': {
      // Where the partition was read to, never lowered (a replay from a commit held back does not
      // unlearn what was read past).
      const next = { ...state, position: observation.at, processedTo: laterOf(state.processedTo, observation.at) };
      // An ephemeral one that processed no record yet keeps the record deferred at: with only where
      // it read to, a topic recreated while it was paused and written past that offset was taken
      // for the old log, its records below never offered nor counted (a review).
      const keeps =
        mode.ephemeral &&
        observation.deferred !== undefined &&
        (state.lastRecord === undefined || state.lastRecord.deferred === true);
      return { state: keeps ? { ...next, lastRecord: observation.deferred } : next, decision: none };
    }
    case 'committed':
      return {
        state: mode.ephemeral
          ? { ...state, lastCommitted: observation.offset }
          : {
              ...state,
              lastCommitted: observation.offset,
              committedHere: observation.offset,
              knownCommit: observation.offset,
            },
        decision: none,
      };
    case 'batch':
      return checkBatch(state, observation.check, mode);
  }
}

function laterOf(a: bigint | undefined, b: bigint | undefined): bigint | undefined {
  if (a === undefined) return b;
  return b === undefined || a > b ? a : b;
}

function knowsCommit(state: LogPosition): boolean {
  return state.committedHere !== undefined || state.knownCommit !== undefined;
}

/**
 * Checks where a batch starts against what the loop knows, before anything of it is processed:
 * - the log ends below the offset after the last batch processed here (the batch's high
 *   watermark, confirmed by a fresh read: a leader that just took over may report one behind the
 *   old leader's for a moment): restarted;
 * - after a "does not host" answer or a join, the group's commit of a partition this process knew
 *   a commit of is gone (the broker deleted it with its topic, and kafkajs fetches at its old
 *   position in the new log): restarted;
 * - kafkajs reset an out-of-range position (and its -2 is still the group's commit): to below where
 *   it was (after a batch, or where the loop sought it; after a join, the group's commit), the log
 *   ended below it: restarted; else records removed by retention before they were read: counted;
 * - an ephemeral partition checking its last record (after a "does not host" answer or a join)
 *   finds another one there: restarted; the same, it seeks past it; gone below the log's start
 *   (retention), it goes on from where it read to;
 * - the batch starts below the last commit: the commit state is forgotten (the loop never commits
 *   backwards, so it committed nothing until it passed the old offset).
 */
function checkBatch(state: LogPosition, check: BatchCheck, mode: LogMode): Outcome {
  if (check.restart !== undefined) {
    if (check.logStart === undefined) return read(state, 'logStart', check);
    // Unreadable, offset 0 serves too: below the start of the log, kafkajs resets it to the earliest.
    const low = check.logStart ?? 0n;
    // All at once, after the read: the checks pending meanwhile were of the old log.
    const seekTo = check.first > low ? low : undefined;
    return {
      state: { ...initialLogPosition, position: seekTo },
      decision: {
        kind: 'restarted',
        found: check.restart,
        startOfLog: low,
        seekTo,
      },
    };
  }
  if (check.taken === undefined) {
    const processed = check.endBelow ?? state.processedTo;
    if (processed !== undefined && check.highWatermark < processed) {
      if (check.logEnd === undefined) return read(state, 'logEnd', { ...check, endBelow: processed });
      if (check.logEnd !== null && check.logEnd < processed)
        return found(state, check, 'logEnded', {
          processedTo: processed.toString(),
          endOfLog: check.logEnd.toString(),
        });
    }
    if (!state.verify && state.reset === undefined) return afterSignals(state, check, undefined);
    // Taken now, before the read: a signal that comes during it is for the next batch.
    return {
      state: { ...state, verify: false, reset: undefined },
      decision: { kind: 'read', read: 'groupCommit', check: { ...check, taken: { reset: state.reset } } },
    };
  }
  if (check.groupCommit === undefined) return read(state, 'groupCommit', check);
  return afterCommitRead(state, check, check.taken.reset, check.groupCommit, mode);
}

/** The record check and the commit's direction, once the signals are dealt with. */
function afterSignals(
  state: LogPosition,
  check: BatchCheck,
  skipped: { from: bigint | undefined; count: bigint } | undefined,
): Outcome {
  if (state.recordCheck !== undefined) return checkRecord(state, check);
  const last = state.lastCommitted;
  const back = last !== undefined && check.first < last;
  const next = back ? forgotten(state) : state;
  if (skipped !== undefined)
    return { state: next, decision: { kind: 'skipped', ...skipped, movedBackwards: back ? last : undefined } };
  return { state: next, decision: back ? { kind: 'movedBackwards', lastCommitted: last } : proceed };
}

function read(
  state: LogPosition,
  what: 'logEnd' | 'logStart' | 'groupCommit' | 'fingerprint',
  check: BatchCheck,
): Outcome {
  return { state, decision: { kind: 'read', read: what, check } };
}

function found(
  state: LogPosition,
  check: BatchCheck,
  reason: RestartReason,
  evidence: Readonly<Record<string, string | undefined>>,
): Outcome {
  return read(state, 'logStart', { ...check, restart: { reason, evidence } });
}

/** The group's commit read after a signal (`verify`) or an out-of-range reset. */
function afterCommitRead(
  state: LogPosition,
  check: BatchCheck,
  pending: PendingReset | undefined,
  commits: CommitRead,
  mode: LogMode,
): Outcome {
  const stored = commits === 'unreadable' ? undefined : commits.stored;
  const absent = stored === undefined || stored === ABSENT_COMMIT;
  // A reset stands while what kafkajs committed for it is the group's commit (the loop reads it
  // again after a reset): else another member committed since (it read on from there), or the
  // commit is gone with its topic (a recreated topic, not records removed). kafkajs' -1 of a reset
  // to the latest offset cannot be told from a commit gone.
  const stands = commits === 'unreadable' || (mode.fromBeginning ? stored === EARLIEST_COMMIT : absent);
  // A real commit read after the reset (the loop reads again after one): made since, by another
  // member or an operator, who read on from there.
  const committedSince = stored !== undefined && stored >= 0n;
  const markerGone = pending?.markerGone === true && !committedSince;
  const reset = stands && !markerGone ? pending : undefined;
  // The latest the process knew: its own, or one read since (another member's, after a rejoin).
  const had = laterOf(state.committedHere, state.knownCommit);
  // Gone: absent (-1, or not listed) after a "does not host this topic-partition" or a join. Never
  // while a reset stands: its records removed by retention are counted below, not a recreated topic.
  const gone = markerGone || (commits !== 'unreadable' && reset === undefined && absent);
  // A commit of 0 counts once this process read past it (stage one holds its commit at 0 through a
  // fresh topic's first window: such a recreated topic was read from the old position).
  const readPast = had !== undefined && (had > 0n || (state.processedTo ?? 0n) > 0n);
  if (readPast && gone) return found(state, check, 'commitGone', { committedBefore: had.toString() });
  // Gone, never read past (a commit made at a record deferred at first, or held at 0): nothing of the
  // old log was processed here; its commit is forgotten so that the new log's is made (kept, it
  // held back every commit of the new log up to it, and the gone commit was taken at the next join
  // for a restart the processor was told of).
  if (gone && had !== undefined)
    return afterSignals(
      { ...state, lastCommitted: undefined, committedHere: undefined, knownCommit: undefined },
      check,
      undefined,
    );
  if (reset === undefined) return afterSignals(state, check, undefined);
  // Where kafkajs fetched from when the position was out of range.
  const old = reset.from ?? state.knownCommit;
  // Reset below it: out of range above the end of the log, which ended below the position (retention
  // only removes records below it), so it started over. Where kafkajs fetched from, not what was
  // read here: a stateful processor holds its commit back, a rejoin resumes at that commit, and
  // retention removing records past it resets forward to a start still below what was read (taken
  // for a restart, the replay guards were dropped and those records counted twice); nor the commit
  // made here (held at 0, a restart went unseen; reset backwards by an operator since, a forward
  // reset was taken for one).
  if (old !== undefined && check.first < old)
    return found(state, check, 'resetBelow', { resetFrom: old.toString(), committedBefore: had?.toString() });
  // Skipped: from where kafkajs fetched, but not what the processor took already (held back).
  const from =
    state.processedTo !== undefined && (old === undefined || state.processedTo > old) ? state.processedTo : old;
  const count = from === undefined || check.first <= from ? 0n : check.first - from;
  // A batch past the last record: it was removed by retention, nothing to compare. At or below it
  // (kafkajs sought back to it since the reset), the record check goes on.
  const past = state.lastRecord === undefined || check.first > state.lastRecord.offset;
  const next: LogPosition = { ...state, knownCommit: undefined, recordCheck: past ? undefined : state.recordCheck };
  return afterSignals(next, check, { from, count });
}

/**
 * An ephemeral partition's first batch after a "does not host this topic-partition" answer or a
 * join, checked against the last record processed: the same record there, the log is the one read
 * (seek past it, nothing handed over twice; a record deferred at, not processed: the batch is
 * processed from it); another, the topic was recreated. A batch from below
 * the record seeks to it. A batch from above it (kafkajs went on from where it was, or the log now
 * starts past it) reads the log's start: the record removed by retention, there is nothing to
 * compare and the partition goes on from where it was read to (records removed past it counted as
 * skipped); else it seeks to the record. The loop seeks only once a batch showed where the log is:
 * sought at the signal, a record retention had removed was out of range, and kafkajs' reset
 * committed -2 into the ephemeral group (kept by the broker for 7 days after it emptied). At most
 * RECORD_CHECK_TRIES batches are dropped (a compacted record never comes back): then the check is
 * given up and the batch processed.
 */
function checkRecord(state: LogPosition, check: BatchCheck): Outcome {
  const known = state.lastRecord;
  const dropped = state.recordCheck ?? 0;
  if (known === undefined) return { state: { ...state, recordCheck: undefined }, decision: proceed };
  if (check.first === known.offset) {
    if (check.fingerprint === undefined) return read(state, 'fingerprint', check);
    if (check.fingerprint !== known.fingerprint)
      return found(state, check, 'recordReplaced', { offset: check.first.toString() });
    if (known.deferred === true) return { state: { ...state, recordCheck: undefined }, decision: proceed };
    return {
      state: { ...state, recordCheck: undefined, position: known.offset + 1n },
      decision: { kind: 'seek', offset: known.offset + 1n },
    };
  }
  let to = known.offset;
  if (check.first > known.offset) {
    if (check.logStart === undefined) return read(state, 'logStart', check);
    // Unreadable: sought to the record, as before the log's start was read.
    if (check.logStart !== null && check.logStart > known.offset) {
      const readTo = state.processedTo ?? (known.deferred === true ? known.offset : known.offset + 1n);
      to = check.logStart > readTo ? check.logStart : readTo;
      if (check.first === to) {
        const next = { ...state, recordCheck: undefined };
        if (to === readTo) return { state: next, decision: proceed };
        return {
          state: next,
          decision: { kind: 'skipped', from: readTo, count: to - readTo, movedBackwards: undefined },
        };
      }
    }
  }
  if (dropped >= RECORD_CHECK_TRIES) return { state: { ...state, recordCheck: undefined }, decision: proceed };
  return {
    state: { ...state, recordCheck: dropped + 1, position: to },
    decision: { kind: 'seek', offset: to },
  };
}
