import { CLOCK_SKEW_MS, type JoinConfig, type JoinRef, type JoinState, joinKey, labelEarlyMs } from './state.js';

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
 * The latest prediction time whose expiry a label can find forgotten by the join state: an
 * expired prediction is `E`, then `X` for `tombstoneMs` after its acknowledgement, and it expires
 * once the expiry clock (never ahead of wall time) minus the grace passes its time + maxDelay. So
 * one dated later that expired still shows `E` or `X` now.
 */
const forgottenExpiryHorizon = (now: number, c: SinkCheckConfig): number =>
  now - c.maxDelayMs - c.graceMs - c.tombstoneMs + CLOCK_SKEW_MS;

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
 *
 * `state`: a label's join state as read ({@link JoinStateReader}; `{ tag: undefined }`: none).
 * A label whose state answers for it is not looked up ({@link labelAsksSink}). Absent or `L`:
 * only predictions dated at or before {@link forgottenExpiryHorizon}. One dated later that
 * expired would still show `E` or `X`, so its row beside such a state (its tombstone lost, or a
 * joined one's `J` gone) does not say the label's own prediction is done: with an id the model
 * used again, that one may still be read, and the label waits for it (it was dropped as
 * `expired-before-label`, its prediction then expiring unlabeled: found by a review). Read
 * within grace + tombstoneMs of its event time, such a label is not looked up at all. `E`/`X`:
 * the whole range.
 */
export function sinkLookup(
  record: SinkCandidate,
  now: number,
  c: SinkCheckConfig,
  state?: { readonly tag: JoinTag | undefined },
): SinkLookup | undefined {
  const ref = { model: record.model, id: record.id };
  if (record.kind === 'prediction') {
    if (!record.replayed && record.eventTime > predictionCheckHorizon(now, c)) return undefined;
    return { ...ref, from: record.eventTime, to: record.eventTime };
  }
  if (state !== undefined && !labelAsksSink(state.tag)) return undefined;
  if (record.replayed) return ref;
  if (record.eventTime > labelCheckHorizon(now, c)) return undefined;
  const from = record.eventTime - c.maxDelayMs;
  const forgotten = state !== undefined && (state.tag === undefined || state.tag === 'L');
  const horizon = forgotten ? forgottenExpiryHorizon(now, c) : now - c.maxDelayMs - c.graceMs + CLOCK_SKEW_MS;
  // A prediction dated after the label's time + labelEarlyMs cannot be its own (it is `early` for it).
  const to = Math.min(horizon, record.eventTime + labelEarlyMs(c));
  return to < from ? undefined : { ...ref, from, to };
}

/** A join state's tag (see {@link JoinState}); undefined: absent. */
export type JoinTag = JoinState<unknown, unknown>['tag'];

/**
 * Reads the tags of join states without a transition, in one round trip (the label-joiner reads
 * the states of the labels it would look up in the sink: {@link labelAsksSink}). An answer may be
 * stale by the time the batch is applied; it only decides whether to ask the sink.
 */
export interface JoinStateReader {
  /** The tag of each ref's state, in order; undefined where it has none. */
  stateTags(refs: readonly JoinRef[], now: number): Promise<Array<JoinTag | undefined>>;
}

/**
 * Whether the sink decides a label whose state has this tag. Not when the state remembers its
 * prediction: `P` (pending: the label joins it, or is `late` by its deadline; it cannot have
 * expired), `K` (joined, unacknowledged: re-emitted) or `J` (joined: a duplicate). Otherwise
 * (absent, a waiting label `L`, expired `E`/`X`) the state cannot say whether its prediction was
 * joined or expired before the label was read, or when, and the sink's row tells (over the range
 * {@link sinkLookup} gives that state).
 */
export const labelAsksSink = (tag: JoinTag | undefined): boolean =>
  tag === undefined || tag === 'L' || tag === 'E' || tag === 'X';

/**
 * The look-ups to send, each (model, id) once, over the union of its records' ranges (a side left
 * out by one is unbounded). Each record still judges only the rows within its own bounds
 * ({@link sinkVerdict}).
 */
export function mergeSinkLookups(lookups: readonly SinkLookup[]): SinkLookup[] {
  const merged = new Map<string, SinkLookup>();
  for (const lookup of lookups) {
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

/**
 * A row the sink holds of a prediction. One (model, id) can have several, one per prediction
 * time: an id a model used again is another prediction.
 */
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
 */
export type SinkVerdict = 'replay-duplicate' | 'sink-duplicate' | 'expired-before-label' | 'late';

/** A verdict and the row it rests on. */
export interface SinkMatch {
  readonly verdict: SinkVerdict;
  readonly row: WrittenRow;
}

/**
 * The verdict on a record looked up as `lookup` (its own {@link sinkLookup}), from the rows the
 * sink holds of its (model, id): only those within its own bounds count, so a prediction matches
 * the row of its own event time, never an older prediction with the same id. A label prefers a
 * joined row, then the latest it is on time for. Undefined: no such row, the record takes its
 * transition. With a row in the sink no transition can add one (a `K` the sink holds the row of
 * is acknowledged by the caller).
 */
export function sinkVerdict(
  record: SinkCandidate,
  lookup: SinkLookup,
  rows: readonly WrittenRow[],
  maxDelayMs: number,
): SinkMatch | undefined {
  const own = rows.filter(
    (r) =>
      (lookup.from === undefined || r.predictionTime >= lookup.from) &&
      (lookup.to === undefined || r.predictionTime <= lookup.to),
  );
  const latest = (candidates: readonly WrittenRow[]) =>
    candidates.reduce<WrittenRow | undefined>(
      (best, r) => (best === undefined || r.predictionTime > best.predictionTime ? r : best),
      undefined,
    );
  const any = latest(own);
  if (any === undefined) return undefined;
  if (record.replayed) return { verdict: 'replay-duplicate', row: any };
  if (record.kind === 'prediction') return { verdict: 'sink-duplicate', row: any };
  const joined = latest(own.filter((r) => r.labeled));
  if (joined !== undefined) return { verdict: 'sink-duplicate', row: joined };
  const onTime = latest(own.filter((r) => record.eventTime <= r.predictionTime + maxDelayMs));
  return onTime === undefined ? { verdict: 'late', row: any } : { verdict: 'expired-before-label', row: onTime };
}
