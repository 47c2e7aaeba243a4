import { type AppliedMarker, coveredBy, markerHolds, nextMarker, type OffsetSpan } from './applied.js';
import {
  type ExpireOutcome,
  type JoinConfig,
  type Joined,
  type JoinRef,
  type JoinState,
  joinKey,
  type LabelInput,
  type LabelOutcome,
  onAck,
  onExpire,
  onLabel,
  onPrediction,
  type PredictionInput,
  type PredictionOutcome,
  parseJoinKey,
  type SourceProgress,
  type SourceReport,
  type Transition,
} from './state.js';
import { addTally, FIRST_SEEN, type TakenTallies, type TallyBatch, type TallyCounts } from './tally.js';
import type { JoinStateReader, JoinTag } from './written.js';

export interface Applied<P, L, O> {
  readonly outcome: O;
  readonly emit?: Joined<P, L>;
}

export interface ExpiredRow<P> extends JoinRef {
  readonly prediction: P;
  readonly expiredAt: number;
}

export interface ExpireSummary {
  readonly cutoff: number;
  readonly counts: Readonly<Record<ExpireOutcome, number>>;
}

/**
 * How far a batch read from one partition moves that partition's watermark: to the LEAST event time
 * of the batch (never lowered across batches). A partition is read in about event-time order, so
 * this trails its progress by one batch; the greatest event time had let one record dated up to the
 * event-time bound ahead (an hour by default) carry the watermark past a whole backlog, and the
 * predictions of that backlog's span expired before their labels were read, which were then
 * dropped as late. A record's event time counts at most its `appendTime` (its Kafka timestamp,
 * when it came from Kafka): a batch made only of future-dated records is still where it is in
 * the log, and had carried the watermark ahead of the backlog behind it. A bogus append time (a
 * producer clock in 1970) only holds the watermark back, and only while the partition has a
 * backlog (caught up, the clock follows the catch-up time instead): late expiry, never a loss.
 */
export function batchWatermark(inputs: readonly { eventTime: number; appendTime?: number }[]): number {
  let least = Number.POSITIVE_INFINITY;
  for (const input of inputs) {
    const append = input.appendTime;
    // Kafka's -1 ("no timestamp", old message formats) bounds nothing.
    const t =
      append !== undefined && Number.isFinite(append) && append >= 0 && append < input.eventTime
        ? append
        : input.eventTime;
    if (t < least) least = t;
  }
  return least;
}

/**
 * The port the label-joiner needs from its state store, keyed by (model, prediction id): records
 * of different models never share a state, whatever their prediction ids. Every method is idempotent under replay:
 * applying the same records again returns `duplicate`/`replayed` (re-emitting unacknowledged rows),
 * never a second join. Adapters: in memory (tests, the reference model) and Redis (Lua scripts).
 */
export interface JoinStore<P, L> {
  /**
   * Applies records read from `source` (one partition) and raises its watermark to their least
   * event time ({@link batchWatermark}), in the same atomic step as their state. With `span` (the
   * offsets the batch covers), a record whose state is absent but that the source's applied
   * marker covers is a `duplicate` (its tombstone expired), and the marker takes in `span`, in
   * the same step (applied.ts), its greatest timestamp taken at most `now`; also with no inputs
   * (a batch of records the join skips). Without it, no marker is read or written.
   */
  applyPredictions(
    inputs: readonly PredictionInput<P>[],
    now: number,
    source: string,
    span?: OffsetSpan,
  ): Promise<Array<Applied<P, L, PredictionOutcome>>>;
  /**
   * Like applyPredictions. A label repeated within `inputs` (same model and id) replays without a
   * row (`emit` unset) when its earlier copy already carries it: a flood of one label must not
   * return the stored prediction once per copy.
   */
  applyLabels(
    inputs: readonly LabelInput<L>[],
    now: number,
    source: string,
    span?: OffsetSpan,
  ): Promise<Array<Applied<P, L, LabelOutcome>>>;
  /** Records what the owners of these sources see now (reportedAt, and caughtUpAt when caught up). */
  reportSources(reports: readonly SourceReport[], now: number): Promise<void>;
  /** Every source ever reported, with its watermark (see {@link expiryClock}). */
  sources(): Promise<SourceProgress[]>;
  /** The sink holds these joined rows: K → J. */
  ackJoined(refs: readonly JoinRef[], now: number): Promise<void>;
  /**
   * Expires entries scheduled at or before `cutoff` (pending predictions → E, waiting labels
   * dropped), at most `limit`.
   */
  expireDue(cutoff: number, now: number, limit: number): Promise<ExpireSummary>;
  /**
   * Expired predictions whose unlabeled row the sink may not have yet: at most `limit`, oldest
   * first, and (a store that copies payloads out, Redis) no more than `maxBytes` of prediction
   * payload, at least one row. The memory store hands out references and bounds the count only.
   */
  unackedExpired(limit: number, maxBytes?: number): Promise<Array<ExpiredRow<P>>>;
  ackExpired(refs: readonly JoinRef[], now: number): Promise<void>;
  pendingCount(windowKey: string): Promise<number>;
  /**
   * Windows to recompute, oldest mark first, each with its mark: a number that increases with every
   * mark and that no other mark shares (not a time: two marks within one clock tick must differ).
   */
  dirtyWindows(limit: number): Promise<Array<{ key: string; mark: number }>>;
  /** Unmarks a window if nothing marked it again since `mark` was read. */
  clearDirty(key: string, mark: number): Promise<boolean>;
  /**
   * Gives a window whose recompute failed a new mark (the back of the queue), unless something
   * marked it again since `mark` was read: windows that keep failing, oldest first, had filled
   * every batch and no other window was recomputed again.
   */
  requeueDirty(key: string, mark: number): Promise<void>;
  /** Predictions pending plus labels waiting. */
  scheduledCount(): Promise<number>;
  /**
   * The tally batch in flight (under the id it was taken with); else every group's tallies moved
   * into a new batch named `flushId`, in one atomic step. See tally.ts.
   */
  takeTallies(flushId: string): Promise<TakenTallies>;
  /**
   * The sink holds batch `flushId`: forgets it and marks the windows `dirty` (those its groups
   * count) in the same atomic step. Any other id (already acknowledged) is a no-op.
   */
  ackTallies(flushId: string, dirty: readonly string[]): Promise<void>;
}

/**
 * A single-process JoinStore on Maps: the executable model the Redis adapter is tested against.
 * `states`, `schedule` and `outbox` are keyed by {@link joinKey}.
 */
export class InMemoryJoinStore<P, L> implements JoinStore<P, L>, JoinStateReader {
  readonly states = new Map<string, { state: JoinState<P, L>; expiresAt: number }>();
  readonly schedule = new Map<string, number>();
  readonly outbox = new Map<string, number>();
  readonly pending = new Map<string, number>();
  readonly dirty = new Map<string, number>();
  private dirtyMarks = 0;
  readonly tallies = new Map<string, TallyCounts>();
  tallyBatch: TallyBatch | undefined;
  readonly watermarks = new Map<string, number>();
  /** Applied-through marker per source (applied.ts). */
  readonly markers = new Map<string, AppliedMarker>();
  readonly reports = new Map<string, { reportedAt: number; caughtUpAt?: number }>();

  constructor(readonly config: JoinConfig) {}

  private get(id: string, now: number): JoinState<P, L> | undefined {
    const entry = this.states.get(id);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= now) {
      this.states.delete(id);
      return undefined;
    }
    return entry.state;
  }

  private apply<O>(id: string, t: Transition<P, L, O>, now: number): Applied<P, L, O> {
    if (t.state === null) this.states.delete(id);
    else if (t.state !== undefined) {
      this.states.set(id, {
        state: t.state,
        expiresAt: t.ttlMs === undefined ? Number.POSITIVE_INFINITY : now + t.ttlMs,
      });
    }
    if (t.schedule === 'remove') this.schedule.delete(id);
    else if (t.schedule !== undefined) this.schedule.set(id, t.schedule);
    if (t.pendingDelta !== undefined) {
      const n = (this.pending.get(t.pendingDelta.windowKey) ?? 0) + t.pendingDelta.delta;
      if (n <= 0) this.pending.delete(t.pendingDelta.windowKey);
      else this.pending.set(t.pendingDelta.windowKey, n);
    }
    if (t.dirty !== undefined) this.markDirty([t.dirty]);
    return t.emit === undefined ? { outcome: t.outcome } : { outcome: t.outcome, emit: t.emit };
  }

  /** Raises the source's watermark to the least event time of a batch (see {@link batchWatermark}). */
  private advance(source: string, inputs: readonly { eventTime: number; appendTime?: number }[]): void {
    if (inputs.length === 0) return;
    const eventTime = batchWatermark(inputs);
    const watermark = this.watermarks.get(source);
    if (watermark === undefined || eventTime > watermark) this.watermarks.set(source, eventTime);
  }

  /** The source's marker if it holds for this batch (markerHolds), and a function that stores its successor. */
  private marker(
    source: string,
    inputs: readonly PredictionInput<P>[] | readonly LabelInput<L>[],
    now: number,
    span?: OffsetSpan,
  ) {
    const stored = this.markers.get(source);
    const holding = markerHolds(stored, inputs, span) ? stored : undefined;
    // Also for no inputs: a span of records the join skips (shadow predictions) was applied too,
    // and left out it made a gap that restarted the marker at the next batch.
    const commit = () => {
      if (span === undefined) return;
      const next = nextMarker(holding, span, now, inputs.length > 0);
      if (next === undefined) this.markers.delete(source);
      else this.markers.set(source, next);
    };
    return { holding, commit };
  }

  async applyPredictions(inputs: readonly PredictionInput<P>[], now: number, source: string, span?: OffsetSpan) {
    this.advance(source, inputs);
    const marker = this.marker(source, inputs, now, span);
    const out = inputs.map((input): Applied<P, L, PredictionOutcome> => {
      const key = joinKey(input);
      const state = this.get(key, now);
      // Applied before and its tombstone gone: a replay, not a new prediction (applied.ts).
      if (state === undefined && coveredBy(marker.holding, input)) return { outcome: 'duplicate' };
      const applied = this.apply(key, onPrediction(state, input, now, this.config), now);
      const t = input.tally;
      if (t !== undefined && FIRST_SEEN.has(applied.outcome)) {
        let counts = this.tallies.get(t.group);
        if (counts === undefined) {
          counts = new Map();
          this.tallies.set(t.group, counts);
        }
        addTally(counts, t.slot, 1, t.value);
      }
      return applied;
    });
    marker.commit();
    return out;
  }

  async applyLabels(inputs: readonly LabelInput<L>[], now: number, source: string, span?: OffsetSpan) {
    this.advance(source, inputs);
    const marker = this.marker(source, inputs, now, span);
    const seen = new Set<string>();
    const out = inputs.map((input): Applied<P, L, LabelOutcome> => {
      const key = joinKey(input);
      const state = this.get(key, now);
      if (state === undefined && coveredBy(marker.holding, input)) {
        seen.add(key);
        return { outcome: 'duplicate' };
      }
      const applied = this.apply(key, onLabel(state, input, now, this.config), now);
      const repeated = seen.has(key);
      seen.add(key);
      // A repeat within the batch replays without a row: the earlier record emits it (JoinStore).
      return repeated && applied.outcome === 'replayed' ? { outcome: 'replayed' } : applied;
    });
    marker.commit();
    return out;
  }

  async stateTags(refs: readonly JoinRef[], now: number): Promise<Array<JoinTag | undefined>> {
    return refs.map((ref) => this.get(joinKey(ref), now)?.tag);
  }

  async ackJoined(refs: readonly JoinRef[], now: number) {
    for (const ref of refs) {
      const key = joinKey(ref);
      const state = this.get(key, now);
      if (state?.tag === 'K') this.apply(key, onAck(state, this.config), now);
    }
  }

  async reportSources(reports: readonly SourceReport[], now: number) {
    for (const { source, caughtUp } of reports) {
      const caughtUpAt = caughtUp ? now : this.reports.get(source)?.caughtUpAt;
      this.reports.set(source, caughtUpAt === undefined ? { reportedAt: now } : { reportedAt: now, caughtUpAt });
    }
  }

  async sources(): Promise<SourceProgress[]> {
    return [...this.reports].map(([source, r]) => {
      const watermark = this.watermarks.get(source);
      return { source, ...r, ...(watermark === undefined ? {} : { watermark }) };
    });
  }

  async expireDue(cutoff: number, now: number, limit: number): Promise<ExpireSummary> {
    const counts: Record<ExpireOutcome, number> = { expiring: 0, 'orphan-label': 0, stale: 0, 'not-due': 0 };
    const due = [...this.schedule.entries()]
      .filter(([, score]) => score <= cutoff)
      .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, limit);
    for (const [id, score] of due) {
      const t = onExpire(this.get(id, now), score, cutoff, now, this.config);
      this.apply(id, t, now);
      if (t.outcome === 'expiring') this.outbox.set(id, now);
      counts[t.outcome]++;
    }
    return { cutoff, counts };
  }

  async unackedExpired(limit: number) {
    const out: Array<ExpiredRow<P>> = [];
    for (const key of this.outbox.keys()) {
      const entry = this.states.get(key);
      const ref = parseJoinKey(key);
      if (entry?.state.tag === 'E' && ref !== undefined)
        out.push({ ...ref, prediction: entry.state.prediction, expiredAt: entry.state.expiredAt });
      if (out.length >= limit) break;
    }
    return out;
  }

  async ackExpired(refs: readonly JoinRef[], now: number) {
    for (const ref of refs) {
      const key = joinKey(ref);
      const state = this.get(key, now);
      if (state?.tag === 'E') this.apply(key, onAck(state, this.config), now);
      this.outbox.delete(key);
    }
  }

  async pendingCount(windowKey: string) {
    return this.pending.get(windowKey) ?? 0;
  }

  private markDirty(windows: readonly string[]): void {
    this.dirtyMarks++;
    for (const w of windows) this.dirty.set(w, this.dirtyMarks);
  }

  async dirtyWindows(limit: number) {
    return [...this.dirty.entries()]
      .sort((a, b) => a[1] - b[1])
      .slice(0, limit)
      .map(([key, mark]) => ({ key, mark }));
  }

  async clearDirty(key: string, mark: number) {
    if (this.dirty.get(key) !== mark) return false;
    this.dirty.delete(key);
    return true;
  }

  async requeueDirty(key: string, mark: number) {
    if (this.dirty.get(key) === mark) this.markDirty([key]);
  }

  async scheduledCount() {
    return this.schedule.size;
  }

  async takeTallies(flushId: string): Promise<TakenTallies> {
    if (this.tallyBatch === undefined && this.tallies.size > 0) {
      this.tallyBatch = { flushId, groups: [...this.tallies].map(([group, slots]) => ({ group, slots })) };
      this.tallies.clear();
    }
    return this.tallyBatch === undefined
      ? { buffered: this.tallies.size }
      : { batch: this.tallyBatch, buffered: this.tallies.size };
  }

  async ackTallies(flushId: string, dirty: readonly string[]) {
    if (this.tallyBatch?.flushId !== flushId) return;
    this.tallyBatch = undefined;
    this.markDirty(dirty);
  }
}
