import type { TallyInput } from './tally.js';

/**
 * The join of delayed labels with predictions, as pure state transitions over one join key: the
 * pair (model, prediction id). Two models may use the same prediction ids; each model's label joins
 * only that model's prediction (see {@link joinKey}).
 *
 * States (the Redis adapter stores the tag as the first byte of the value):
 * - absent
 * - `P` pending: the prediction waits for its label until `deadline` = prediction time + max delay
 * - `L` waiting label: the label came first and waits for its prediction
 * - `K` joined, not yet acknowledged: the joined row is kept until the sink has it (crash safety:
 *   a replayed record finds `K` and emits the same row again; the sink deduplicates)
 * - `J` joined tombstone (short-lived): replays and duplicate labels are recognised
 * - `E` expired, not yet acknowledged: the unlabeled prediction is kept until the sink has it
 * - `X` expired tombstone
 *
 * A label joins when its event time is at most `deadline` and it is read before the prediction
 * expires; later labels are `late` and never join, whatever the arrival order. A label dated more
 * than {@link labelEarlyMs} before its prediction (an older prediction's label under an id the
 * model used again, a placeholder date such as 2000-01-01) is `early` and never joins either: the
 * prediction stays pending for its own label. A pending prediction
 * (or waiting label) is expired by the scanner once the expiry clock passes its score plus the
 * grace: a label on time but read after that (published later than the grace) is dropped too,
 * so the result depends on the labels' publication lag, not on processing speed (the clock waits
 * for the slowest partition).
 */
export interface JoinConfig {
  /** Maximum label delay: a label joins when label time <= prediction time + maxDelayMs. */
  readonly maxDelayMs: number;
  /** Allowance for pipeline lag before a due entry is expired. */
  readonly graceMs: number;
  /** How long J/X tombstones stay (replays within it are recognised without touching the sink). */
  readonly tombstoneMs: number;
  /**
   * Largest accepted skew of an event time into the future of the clock that read it
   * (DRIFTLINE_EVENT_TIME_MAX_FUTURE; default {@link DEFAULT_MAX_FUTURE_MS}, libs/core's default):
   * how far a prediction's time may run ahead of its label's (see {@link labelEarlyMs}).
   */
  readonly maxFutureMs?: number;
}

/** libs/core's DEFAULT_EVENT_TIME_BOUNDS.maxFutureMs (an hour): JoinConfig.maxFutureMs when left out. */
export const DEFAULT_MAX_FUTURE_MS = 3_600_000;

/**
 * Allowance for the clocks of two joiner instances (the one that joined or expired a prediction,
 * the one reading a record now) and Redis' TTL clock: a look-up too many costs a query, one too
 * few a second count. Also the clock allowance between a prediction's producer and its label's
 * ({@link labelEarlyMs}).
 */
export const CLOCK_SKEW_MS = 60_000;

/**
 * How far before its prediction a label may be dated and still join it: the event-time future
 * bound (the prediction's clock may run that far ahead) plus {@link CLOCK_SKEW_MS}. A label dated
 * earlier cannot be this prediction's: it is an older prediction's label under an id used again,
 * or misdated (a placeholder such as 2000-01-01 passes the event-time validation).
 */
export const labelEarlyMs = (c: JoinConfig): number => (c.maxFutureMs ?? DEFAULT_MAX_FUTURE_MS) + CLOCK_SKEW_MS;

/**
 * The span of label times one prediction can join, from its earliest to its deadline:
 * label time ∈ [prediction time − {@link labelEarlyMs}, prediction time + maxDelayMs]. Two labels
 * dated further apart than this cannot both be on time for one prediction.
 */
export const labelReachMs = (c: JoinConfig): number => c.maxDelayMs + labelEarlyMs(c);

/**
 * What a join state is keyed by: the model and its prediction id. Prediction ids are unique per
 * model, not across models, so the model is part of the key.
 */
export interface JoinRef {
  readonly model: string;
  readonly id: string;
}

/**
 * The one encoding of a {@link JoinRef} as a string (state key suffix, schedule and outbox member):
 * `JSON.stringify([model, id])`. Injective for any strings (quotes, newlines, colons included), so
 * no (model, id) pair can collide with another; {@link parseJoinKey} reverses it.
 */
export const joinKey = (ref: JoinRef): string => JSON.stringify([ref.model, ref.id]);

/** Reverses {@link joinKey}; undefined for anything it did not produce. */
export function parseJoinKey(key: string): JoinRef | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(key);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed) || parsed.length !== 2) return undefined;
  const [model, id] = parsed as unknown[];
  return typeof model === 'string' && typeof id === 'string' ? { model, id } : undefined;
}

export interface PredictionInput<P> extends JoinRef {
  readonly eventTime: number;
  /** The record's Kafka timestamp (epoch ms), when it came from Kafka: bounds the watermark (batchWatermark). */
  readonly appendTime?: number;
  /** The record's Kafka offset, when it came from Kafka: the applied-through marker (applied.ts). */
  readonly offset?: number;
  /** Performance window the prediction counts in (pending counts per window). */
  readonly windowKey: string;
  readonly payload: P;
  /** Counted in its group's tally at the prediction's first transition only (see tally.ts). */
  readonly tally?: TallyInput;
}

export interface LabelInput<L> extends JoinRef {
  readonly eventTime: number;
  /** The record's Kafka timestamp (epoch ms), when it came from Kafka: bounds the watermark (batchWatermark). */
  readonly appendTime?: number;
  /** The record's Kafka offset, when it came from Kafka: the applied-through marker (applied.ts). */
  readonly offset?: number;
  readonly payload: L;
}

export type JoinState<P, L> =
  | { readonly tag: 'P'; readonly deadline: number; readonly windowKey: string; readonly prediction: P }
  | { readonly tag: 'L'; readonly eventTime: number; readonly label: L }
  | {
      readonly tag: 'K';
      readonly joinedAt: number;
      readonly windowKey: string;
      readonly prediction: P;
      readonly label: L;
    }
  | { readonly tag: 'J' }
  | { readonly tag: 'E'; readonly expiredAt: number; readonly windowKey: string; readonly prediction: P }
  | { readonly tag: 'X' };

export type PredictionOutcome =
  | 'pending'
  | 'pending-late-label'
  | 'pending-early-label'
  | 'joined'
  | 'replayed'
  | 'duplicate';
export type LabelOutcome = 'waiting' | 'waiting-duplicate' | 'joined' | 'replayed' | 'duplicate' | 'late' | 'early';
export type ExpireOutcome = 'expiring' | 'orphan-label' | 'stale' | 'not-due';

export interface Joined<P, L> extends JoinRef {
  readonly prediction: P;
  readonly label: L;
  readonly joinedAt: number;
}

/** What a transition does besides replacing the state; adapters apply these atomically. */
export interface Transition<P, L, O> {
  readonly outcome: O;
  /** New state; `null` deletes it; `undefined` leaves it unchanged. */
  readonly state?: JoinState<P, L> | null;
  /**
   * Time-to-live of the new state (ms from now). None for `P` and `L`: they are in the expiry
   * schedule, which is the one mechanism that ends them (and counts them).
   */
  readonly ttlMs?: number;
  /** Expiry schedule: a score (event-time ms) to (re)schedule at, or 'remove'. */
  readonly schedule?: number | 'remove';
  readonly pendingDelta?: { readonly windowKey: string; readonly delta: 1 | -1 };
  /** Window whose performance must be recomputed. */
  readonly dirty?: string;
  /** A joined row for the sink. */
  readonly emit?: Joined<P, L>;
}

/**
 * TTL of the unacknowledged states `K` and `E` (not in the schedule): they resolve as soon as the
 * sink accepts their row, so this is only a backstop against leaks (an instance that died and never
 * came back, a record that is never redelivered). Twice the maximum delay, on wall time.
 */
export const backstopTtl = (c: JoinConfig): number => 2 * c.maxDelayMs + c.graceMs + c.tombstoneMs;

/**
 * How long (on the expiry clock) a label waits for a prediction that has not arrived yet: as long
 * as a prediction waits for its label. The prediction topic may lag the label topic by hours (a
 * stalled partition backs off while the other topic flows), so a short wait would lose joins.
 */
export const labelWaitUntil = (labelTime: number, c: JoinConfig): number => labelTime + c.maxDelayMs;

export function onPrediction<P, L>(
  state: JoinState<P, L> | undefined,
  input: PredictionInput<P>,
  now: number,
  config: JoinConfig,
): Transition<P, L, PredictionOutcome> {
  const deadline = input.eventTime + config.maxDelayMs;
  const pending = (outcome: PredictionOutcome): Transition<P, L, PredictionOutcome> => ({
    outcome,
    state: { tag: 'P', deadline, windowKey: input.windowKey, prediction: input.payload },
    schedule: deadline,
    pendingDelta: { windowKey: input.windowKey, delta: 1 },
    dirty: input.windowKey,
  });
  if (state === undefined) return pending('pending');
  switch (state.tag) {
    case 'L': {
      if (state.eventTime > deadline) return pending('pending-late-label');
      // The waiting label is dated before this prediction could be labeled: not its label.
      if (state.eventTime < deadline - labelReachMs(config)) return pending('pending-early-label');
      const joined = {
        tag: 'K',
        joinedAt: now,
        windowKey: input.windowKey,
        prediction: input.payload,
        label: state.label,
      } as const;
      return {
        outcome: 'joined',
        state: joined,
        ttlMs: backstopTtl(config),
        schedule: 'remove',
        emit: { model: input.model, id: input.id, prediction: input.payload, label: state.label, joinedAt: now },
      };
    }
    case 'K':
      return {
        outcome: 'replayed',
        emit: {
          model: input.model,
          id: input.id,
          prediction: state.prediction,
          label: state.label,
          joinedAt: state.joinedAt,
        },
      };
    default:
      return { outcome: 'duplicate' };
  }
}

export function onLabel<P, L>(
  state: JoinState<P, L> | undefined,
  input: LabelInput<L>,
  now: number,
  config: JoinConfig,
): Transition<P, L, LabelOutcome> {
  if (state === undefined) {
    return {
      outcome: 'waiting',
      state: { tag: 'L', eventTime: input.eventTime, label: input.payload },
      schedule: labelWaitUntil(input.eventTime, config),
    };
  }
  switch (state.tag) {
    case 'P':
      if (input.eventTime > state.deadline) return { outcome: 'late' };
      // Dated before the prediction could be labeled (an older prediction's label under an id
      // used again, a placeholder date): not its label; the prediction keeps waiting for its own.
      if (input.eventTime < state.deadline - labelReachMs(config)) return { outcome: 'early' };
      return {
        outcome: 'joined',
        state: {
          tag: 'K',
          joinedAt: now,
          windowKey: state.windowKey,
          prediction: state.prediction,
          label: input.payload,
        },
        ttlMs: backstopTtl(config),
        schedule: 'remove',
        pendingDelta: { windowKey: state.windowKey, delta: -1 },
        emit: { model: input.model, id: input.id, prediction: state.prediction, label: input.payload, joinedAt: now },
      };
    case 'L':
      // Two labels before the prediction: the earliest observation wins (ties keep the first seen),
      // among labels that can be on time for one prediction. Dated further apart than that
      // (labelReachMs), at most one can be its label, and the later is kept: an earlier one is an
      // older prediction's label under an id used again, or misdated (a placeholder date); the
      // earliest would have made the prediction, when it comes, `pending-early-label`, and its
      // real label lost.
      if (input.eventTime > state.eventTime + labelReachMs(config)) {
        return {
          outcome: 'waiting-duplicate',
          state: { tag: 'L', eventTime: input.eventTime, label: input.payload },
          schedule: labelWaitUntil(input.eventTime, config),
        };
      }
      if (input.eventTime < state.eventTime && input.eventTime >= state.eventTime - labelReachMs(config)) {
        return {
          outcome: 'waiting-duplicate',
          state: { tag: 'L', eventTime: input.eventTime, label: input.payload },
          schedule: labelWaitUntil(input.eventTime, config),
        };
      }
      return { outcome: 'waiting-duplicate' };
    case 'K':
      return {
        outcome: 'replayed',
        emit: {
          model: input.model,
          id: input.id,
          prediction: state.prediction,
          label: state.label,
          joinedAt: state.joinedAt,
        },
      };
    case 'J':
      return { outcome: 'duplicate' };
    case 'E':
    case 'X':
      return { outcome: 'late' };
  }
}

/**
 * The scanner's transition for an id scheduled at `score` once the expiry clock minus grace passed
 * it (`cutoff`): a pending prediction becomes `E` (its unlabeled row goes to the sink), a waiting
 * label is dropped as an orphan.
 */
export function onExpire<P, L>(
  state: JoinState<P, L> | undefined,
  score: number | undefined,
  cutoff: number,
  now: number,
  config: JoinConfig,
): Transition<P, L, ExpireOutcome> {
  if (score === undefined || score > cutoff) return { outcome: 'not-due' };
  if (state?.tag === 'P') {
    return {
      outcome: 'expiring',
      state: { tag: 'E', expiredAt: now, windowKey: state.windowKey, prediction: state.prediction },
      ttlMs: backstopTtl(config),
      schedule: 'remove',
      pendingDelta: { windowKey: state.windowKey, delta: -1 },
    };
  }
  if (state?.tag === 'L') return { outcome: 'orphan-label', state: null, schedule: 'remove' };
  return { outcome: 'stale', schedule: 'remove' };
}

/** After the sink holds a joined or expired row: K → J, E → X, and the window becomes dirty. */
export function onAck<P, L>(
  state: JoinState<P, L> | undefined,
  config: JoinConfig,
): Transition<P, L, 'acked' | 'noop'> {
  if (state?.tag === 'K')
    return { outcome: 'acked', state: { tag: 'J' }, ttlMs: config.tombstoneMs, dirty: state.windowKey };
  if (state?.tag === 'E')
    return { outcome: 'acked', state: { tag: 'X' }, ttlMs: config.tombstoneMs, dirty: state.windowKey };
  return { outcome: 'noop' };
}

/**
 * What the expiry clock knows of one source of records (a partition of the prediction or the
 * label topic): its watermark (the least event time of its last batch, `batchWatermark`; written with the records' state), the
 * last time its owner had processed everything written to it, and the time of that owner's last
 * report. Shared by every instance (the expiry schedule is global).
 */
export interface SourceProgress {
  readonly source: string;
  readonly watermark?: number;
  readonly caughtUpAt?: number;
  readonly reportedAt: number;
}

/** An owner's report on one of its sources: it has processed everything written to it, or not. */
export interface SourceReport {
  readonly source: string;
  readonly caughtUp: boolean;
}

/**
 * A source with no report for this long has no owner (a topic no longer read, partitions that
 * are gone): it stops holding the clock back. An owner reports every expiry pass; a rebalance
 * hands a partition on within the session timeout.
 */
export const SOURCE_FORGET_MS = 60 * 60_000;

export interface ExpiryClock {
  /** The time every source is known complete up to (wall time at most); -Infinity: unknown. */
  readonly clock: number;
  /** Entries scheduled at or before this are due: clock minus grace. */
  readonly cutoff: number;
  /** The source furthest behind, which sets the clock (none without sources). */
  readonly heldBy?: string;
  /** Sources left out: no report for longer than `forgetMs`. */
  readonly forgotten: readonly string[];
}

/**
 * The expiry clock: the slowest source's progress, never beyond wall time. A source that is
 * caught up is complete up to when it last was; one with a backlog (an outage, a backfill, a
 * partition that backs off) only up to its watermark, so no prediction
 * expires while a label for it may still wait unread in any partition (nor a label while its
 * prediction may). Without any source, or with one that has neither, nothing is due.
 */
export function expiryClock(
  now: number,
  sources: readonly SourceProgress[],
  graceMs: number,
  forgetMs = SOURCE_FORGET_MS,
): ExpiryClock {
  let clock = now;
  let heldBy: string | undefined;
  let known = false;
  const forgotten: string[] = [];
  for (const s of sources) {
    if (now - s.reportedAt > forgetMs) {
      forgotten.push(s.source);
      continue;
    }
    known = true;
    const complete = Math.max(s.watermark ?? Number.NEGATIVE_INFINITY, s.caughtUpAt ?? Number.NEGATIVE_INFINITY);
    if (heldBy === undefined || complete < clock) {
      heldBy = s.source;
      clock = Math.min(clock, complete);
    }
  }
  if (!known) clock = Number.NEGATIVE_INFINITY;
  return { clock, cutoff: clock - graceMs, ...(heldBy === undefined ? {} : { heldBy }), forgotten };
}
