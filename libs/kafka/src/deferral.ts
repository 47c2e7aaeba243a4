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
