/**
 * Tallies: counts (and value sums) per slot of a group, kept by the join store and incremented in
 * the same atomic step as a prediction's first transition (absent → pending, a waiting label →
 * joined). Replays and duplicates never reach that transition, so every prediction is counted once,
 * whatever Kafka redelivers and wherever a process dies. The label-joiner tallies CBPE's score
 * histogram this way (group: threshold and window; slot: the score's slot of the grid).
 *
 * Taking and acknowledging tallies is a two-step hand-off to a sink that deduplicates by flush id:
 * `takeTallies` moves every group's counts into one batch named by the caller (or returns the batch
 * already in flight, under its first name), the sink writes it, and `ackTallies` forgets it. A crash
 * between the steps leaves the batch in flight; the next taker sends it again under the same id.
 */
import type { PredictionOutcome } from './state.js';

export interface TallyInput {
  /** What the counts add up per (a window's histogram); opaque to the store. */
  readonly group: string;
  /** A non-negative integer. */
  readonly slot: number;
  /** Added to the slot's sum (finite). */
  readonly value: number;
}

export interface SlotTally {
  readonly count: number;
  readonly sum: number;
}

export interface GroupTally {
  readonly group: string;
  readonly slots: ReadonlyMap<number, SlotTally>;
}

export interface TallyBatch {
  readonly flushId: string;
  readonly groups: readonly GroupTally[];
}

export interface TakenTallies {
  /** The batch to send; absent when nothing was counted since the last acknowledged one. */
  readonly batch?: TallyBatch;
  /** Groups counted since the batch was taken (they go in the next one). */
  readonly buffered: number;
}

/** The outcomes at which a prediction is seen for the first time: where its tally is counted. */
export const FIRST_SEEN: ReadonlySet<PredictionOutcome> = new Set([
  'pending',
  'pending-late-label',
  'pending-early-label',
  'joined',
]);

/** A mutable group tally (the in-memory store's and the aggregation's). */
export type TallyCounts = Map<number, { count: number; sum: number }>;

export function addTally(counts: TallyCounts, slot: number, count: number, sum: number): void {
  const s = counts.get(slot);
  if (s === undefined) counts.set(slot, { count, sum });
  else {
    s.count += count;
    s.sum += sum;
  }
}
