import { type JoinRef, joinKey } from './state.js';

/**
 * A record as the replay rule sees it: its join ref, and whether it carries the replay header
 * (`driftline.replayed.from`, REPLAYED_FROM_HEADER of @driftline/kafka).
 */
export interface ReplayCandidate extends JoinRef {
  readonly replayed: boolean;
}

/**
 * The refs of a batch to look up in the sink: those of replayed records, each once. `driftline dlq
 * replay` sends a dead letter back to its topic, where every consumer group reads it again under a
 * new offset: neither a tombstone (gone after its TTL) nor the applied-through marker (offsets
 * applied) knows it. Records without the header cost nothing.
 */
export function replayLookups(records: readonly ReplayCandidate[]): JoinRef[] {
  const refs = new Map<string, JoinRef>();
  for (const r of records) if (r.replayed) refs.set(joinKey(r), { model: r.model, id: r.id });
  return [...refs.values()];
}

/**
 * Whether a record is a replayed copy of a prediction the sink already holds a row of (`written`:
 * the {@link joinKey}s the sink holds, labeled or expired): a duplicate, skipped before any
 * transition, so it neither pends, tallies nor joins again. Whatever its state: with the row in
 * the sink no transition can add one (a `K` re-emits a row the sink might lack; this one it has,
 * and the original record, not yet committed, is redelivered and acknowledges it).
 */
export const isWrittenReplay = (record: ReplayCandidate, written: ReadonlySet<string>): boolean =>
  record.replayed && written.has(joinKey(record));
