import { type JoinConfig, type JoinRef, joinKey } from './state.js';

/**
 * A record as the sink check sees it: its join ref, its side, its event time, and whether it
 * carries the replay header (`driftline.replayed.from`, REPLAYED_FROM_HEADER of @driftline/kafka).
 */
export interface SinkCandidate extends JoinRef {
  readonly kind: 'prediction' | 'label';
  readonly eventTime: number;
  readonly replayed: boolean;
}

/** What decides which records are checked against the sink: the join's lifetimes and the event-time bound. */
export interface SinkCheckConfig extends JoinConfig {
  /** Largest accepted skew of an event time into the future of the clock that read it (DRIFTLINE_EVENT_TIME_MAX_FUTURE). */
  readonly maxFutureMs: number;
}

/**
 * Allowance for the clocks of two joiner instances (the one that joined or expired a prediction,
 * the one reading a record now) and Redis' TTL clock: a look-up too many costs a query, one too
 * few a second count.
 */
export const CLOCK_SKEW_MS = 60_000;

/**
 * A prediction to look up in the sink, with the prediction times its row can have (ms,
 * inclusive; a side left out is unbounded): the tables are sorted by time, so a bound keeps the
 * read to a few granules where the id's bloom filter alone passed about 40% of them for 500 ids.
 */
export interface SinkLookup extends JoinRef {
  readonly from?: number;
  readonly to?: number;
}

/**
 * The latest event time of a prediction whose join or expiry may be more than `tombstoneMs` old:
 * its `J`/`X` tombstone may be gone, so a copy of it (a new offset: the applied-through marker
 * does not know it) finds no state. The first copy was read at a wall time w ≥ t − maxFutureMs
 * (event times are at most that far ahead of the clock that reads them) and its tombstone written
 * at or after w, so it can be gone only once now ≥ t − maxFutureMs + tombstoneMs.
 */
export const predictionCheckHorizon = (now: number, c: SinkCheckConfig): number =>
  now - c.tombstoneMs + c.maxFutureMs + CLOCK_SKEW_MS;

/**
 * The latest event time of a label whose prediction may have expired before it was read: a
 * prediction expires once the expiry clock (never ahead of wall time) minus the grace passes its
 * deadline, so a label on time (event time ≤ deadline) finds it expired only once
 * now ≥ its event time + grace.
 */
export const labelCheckHorizon = (now: number, c: SinkCheckConfig): number => now - c.graceMs + CLOCK_SKEW_MS;

/**
 * Whether a record is looked up in the sink before any transition, and where its prediction's
 * row can be:
 * - a replayed record, always (unbounded for a label: a replay of a late label finds its
 *   prediction's expired row too);
 * - a prediction dated at or before {@link predictionCheckHorizon}: its own event time (the row's
 *   `prediction_time`);
 * - a label dated at or before {@link labelCheckHorizon}: a prediction it joined or is on time
 *   for is dated at or after its event time − maxDelay, and one that expired before now at or
 *   before now − maxDelay − grace.
 * Anything later (live traffic) is not looked up: its tombstone is still there, or its prediction
 * has not expired.
 */
export function sinkLookup(record: SinkCandidate, now: number, c: SinkCheckConfig): SinkLookup | undefined {
  const ref = { model: record.model, id: record.id };
  if (record.kind === 'prediction') {
    if (!record.replayed && record.eventTime > predictionCheckHorizon(now, c)) return undefined;
    return { ...ref, from: record.eventTime, to: record.eventTime };
  }
  if (record.replayed) return ref;
  if (record.eventTime > labelCheckHorizon(now, c)) return undefined;
  return { ...ref, from: record.eventTime - c.maxDelayMs, to: now - c.maxDelayMs - c.graceMs + CLOCK_SKEW_MS };
}

/** The look-ups of a batch, each (model, id) once, over the union of its records' ranges. */
export function sinkLookups(records: readonly SinkCandidate[], now: number, c: SinkCheckConfig): SinkLookup[] {
  const merged = new Map<string, SinkLookup>();
  for (const record of records) {
    const lookup = sinkLookup(record, now, c);
    if (lookup === undefined) continue;
    const key = joinKey(lookup);
    const seen = merged.get(key);
    if (seen === undefined) {
      merged.set(key, lookup);
      continue;
    }
    const from = seen.from === undefined || lookup.from === undefined ? undefined : Math.min(seen.from, lookup.from);
    const to = seen.to === undefined || lookup.to === undefined ? undefined : Math.max(seen.to, lookup.to);
    merged.set(key, {
      model: seen.model,
      id: seen.id,
      ...(from === undefined ? {} : { from }),
      ...(to === undefined ? {} : { to }),
    });
  }
  return [...merged.values()];
}

/** The row the sink holds of a prediction (by {@link joinKey}). */
export interface WrittenRow {
  /** Joined (`labeled_predictions`); otherwise only expired unlabeled (`unlabeled_predictions`). */
  readonly labeled: boolean;
  /** The prediction's event time (ms). */
  readonly predictionTime: number;
}

/**
 * What a record whose prediction the sink already holds a row of is, skipped before any
 * transition (no pending, no tally, no waiting label, no second row):
 * - `replay-duplicate`: it carries the replay header;
 * - `sink-duplicate`: a copy of a prediction, or a label of one that was joined;
 * - `expired-before-label`: a label on time by event time (≤ prediction time + maxDelay) whose
 *   prediction expired unlabeled before the label was read (published too late for the grace);
 * - `late`: a label beyond the maximum delay whose prediction expired.
 * Undefined: no row, the record takes its transition. Whatever its state: with the row in the
 * sink no transition can add one (a `K` the sink holds the row of is acknowledged by the caller).
 */
export type SinkVerdict = 'replay-duplicate' | 'sink-duplicate' | 'expired-before-label' | 'late';

export function sinkVerdict(
  record: SinkCandidate,
  written: ReadonlyMap<string, WrittenRow>,
  maxDelayMs: number,
): SinkVerdict | undefined {
  const row = written.get(joinKey(record));
  if (row === undefined) return undefined;
  if (record.replayed) return 'replay-duplicate';
  if (record.kind === 'prediction' || row.labeled) return 'sink-duplicate';
  return record.eventTime <= row.predictionTime + maxDelayMs ? 'expired-before-label' : 'late';
}
