import { DriftlineError } from '@driftline/core';

/**
 * A processor's "not yet" (`ProcessResult.defer`): the records from `offset` on cannot be processed
 * now (a retrain request whose labels have not arrived); redeliver the partition from there after
 * `delayMs`. kafkajs 2.2.4 fetches from a broker again only once every batch of its last fetch is
 * processed, so a processor that waited inside a batch held every partition of the process; a
 * deferral pauses only its own partition and returns at once.
 */
export interface Deferral {
  /** The first record not processed: nothing from it on is resolved or committed. One of the items offered. */
  readonly offset: string;
  /** How long the partition waits before it is fetched again from `offset` (at most MAX_DEFER_MS). */
  readonly delayMs: number;
  /** Why, for the loop's log line. */
  readonly reason: string;
}

/** A deferral the loop accepted: its offset as a number, its delay bounded. */
export interface HeldDeferral {
  readonly offset: bigint;
  readonly delayMs: number;
  readonly reason: string;
}

/** The longest a partition waits on one deferral: a processor asks again when it is redelivered. */
export const MAX_DEFER_MS = 3_600_000;

/**
 * Checks a deferral against the offsets of the items the processor was offered: its offset must be
 * one of them (else the loop could skip records or hand some over twice), its delay a number of
 * milliseconds (bounded to 0…MAX_DEFER_MS). A processor's bug otherwise: non-retriable `INTERNAL`.
 */
export function acceptDeferral(offered: readonly string[], deferral: Deferral): HeldDeferral {
  if (!offered.includes(deferral.offset)) {
    throw new DriftlineError(
      'INTERNAL',
      `processor deferred at offset ${deferral.offset}, which is none of the ${offered.length} records it was offered`,
    );
  }
  if (!Number.isFinite(deferral.delayMs)) {
    throw new DriftlineError('INTERNAL', `processor deferred with a delay of ${deferral.delayMs} ms`);
  }
  return {
    offset: BigInt(deferral.offset),
    delayMs: Math.min(MAX_DEFER_MS, Math.max(0, Math.round(deferral.delayMs))),
    reason: deferral.reason,
  };
}

/** The earlier of a deferral already taken in an attempt and a new one (bisection may ask twice). */
export function earlierDeferral(held: HeldDeferral | undefined, next: HeldDeferral): HeldDeferral {
  return held === undefined || next.offset < held.offset ? next : held;
}

/** Whether a record at `offset` waits behind the deferral (undefined: none, nothing waits). */
export function waitsBehind(held: HeldDeferral | undefined, offset: string): boolean {
  return held !== undefined && BigInt(offset) >= held.offset;
}

/** The offset after what a batch processed: the deferred record, else the offset after its last. */
export function processedUpTo(lastOffset: bigint, held: HeldDeferral | undefined): bigint {
  return held?.offset ?? lastOffset + 1n;
}

/**
 * A partition's wait on a deferral, as the loop keeps it (its timer is the loop's): paused in
 * kafkajs until the delay passes, then a known wait still until its next batch begins.
 */
export interface DeferralWait {
  /** The record it is fetched again from. */
  readonly offset: bigint;
  /** When the delay passed and the partition was resumed (undefined: still paused). */
  readonly resumedAt: number | undefined;
}

export type DeferralEvent =
  /**
   * A batch ended deferred at `offset`. `current`: no join since the batch began, the partition
   * still owned, not stopping (else it may be another member's now, or fetched from the group's
   * commit again: nothing to pause).
   */
  | { readonly kind: 'deferred'; readonly offset: bigint; readonly current: boolean }
  /** The delay passed. */
  | { readonly kind: 'delayPassed' }
  /** A batch of the partition begins (the deferred records are back). */
  | { readonly kind: 'batch' }
  /** The group was joined. */
  | { readonly kind: 'joined' }
  /** stop(): nothing is fetched again. */
  | { readonly kind: 'stopping' };

/** What the loop does after a deferral event, and the wait after it. */
export interface DeferralStep {
  readonly wait: DeferralWait | undefined;
  /** Pause the partition in kafkajs. */
  readonly pause: boolean;
  /** Resume it in kafkajs (which keeps paused partitions paused across joins). */
  readonly resume: boolean;
  /**
   * A paused partition is not fetched, so no "does not host" answer tells of its topic deleted and
   * created again meanwhile: its next batch re-reads the group's commit, as after such an answer.
   */
  readonly recheckLog: boolean;
  /** Its stall clock starts again now. */
  readonly restartStallClock: boolean;
}

/**
 * Folds an event into a partition's wait (pure: the loop pauses, resumes, re-reads and restarts
 * the clock as told). Checked with the restart detection against every sequence of events of a
 * model partition: `test/log-position.test.ts`.
 */
export function stepDeferral(wait: DeferralWait | undefined, event: DeferralEvent, now: number): DeferralStep {
  const unchanged: DeferralStep = { wait, pause: false, resume: false, recheckLog: false, restartStallClock: false };
  switch (event.kind) {
    case 'deferred':
      // The wait is known: its stall clock starts now (and the stall check leaves it out meanwhile).
      if (!event.current) return unchanged;
      return {
        wait: { offset: event.offset, resumedAt: undefined },
        pause: true,
        resume: false,
        recheckLog: false,
        restartStallClock: true,
      };
    case 'delayPassed':
      if (wait === undefined || wait.resumedAt !== undefined) return unchanged;
      return {
        wait: { ...wait, resumedAt: now },
        pause: false,
        resume: true,
        recheckLog: true,
        restartStallClock: false,
      };
    case 'batch':
    case 'joined':
      // Ended. kafkajs keeps a paused partition paused across joins: one assigned here again later
      // would never be fetched. Its stall clock starts again: kept by a join, it still carried the
      // one from before its wait, up to the deferral's hour old, and was reported stalled until its
      // processor answered (a review).
      if (wait === undefined) return unchanged;
      return { wait: undefined, pause: false, resume: true, recheckLog: false, restartStallClock: true };
    case 'stopping':
      // Nothing is fetched again: its commit stays at the deferred record.
      return { ...unchanged, wait: undefined };
  }
}

/**
 * Whether a partition waits on a deferral at `now`: paused, or resumed within the stall timeout
 * plus `fetchMaxWaitMs` (its batch must come by then). kafkajs 2.2.4 adds a resumed partition to
 * its broker's next fetch, which begins only after the current long poll ends, up to kafkajs'
 * maxWaitTimeInMs later when the broker's other partitions are idle: a grace of the stall timeout
 * alone reported a resumed partition stalled just before its batch came (a review).
 */
export function waitsOnDeferral(
  wait: DeferralWait | undefined,
  now: number,
  stallTimeoutMs: number,
  fetchMaxWaitMs: number,
): boolean {
  return wait !== undefined && (wait.resumedAt === undefined || now - wait.resumedAt < stallTimeoutMs + fetchMaxWaitMs);
}
