import { DriftlineError } from '@driftline/core';
import type { EntityWrite, FeatureView } from '@driftline/features';
import type { FeatureValue } from '@driftline/schemas';

/** A row as the store serves it: the winning event's values plus the aggregates as of its event time. */
export interface FeatureRow {
  readonly eventTime: number;
  readonly eventId: string;
  readonly features: Record<string, FeatureValue>;
}

export interface WriteStats {
  readonly entities: number;
  /** Rows whose last-write-wins winner changed (and is served: within the TTL). */
  readonly rowsApplied: number;
  /** Entities whose window aggregates changed. */
  readonly aggregatesUpdated: number;
  /**
   * Rows found with a stored event time no accepted event can have (written before event times were
   * bounded, e.g. µs read as ms) and replaced by this write instead of winning it forever.
   */
  readonly rowsRepaired: number;
  /**
   * Winners already older than the view's TTL (an old event for an entity without a live row):
   * deleted as they arrive, never served; not counted in `rowsApplied`.
   */
  readonly rowsExpired: number;
}

/** Entities of one view to read, optionally projected to some features or aggregates. */
export interface RowRequest {
  readonly view: FeatureView;
  readonly entities: readonly string[];
  /** Names of features or aggregates of the view; every one when omitted. */
  readonly features?: readonly string[];
}

/** Bounds of one `readBatch` call. */
export interface ReadBatchOptions {
  /**
   * Most bytes the batch's distinct rows may hold as the store keeps them (whole rows: every field,
   * not only those asked for); more is a `DriftlineError('BAD_REQUEST')` naming the total, raised
   * before any row is read. No bound when absent. The feature API passes its answer bound: a batch
   * of 1,000 rows of 512 KB (a 7 KB request) made Redis build a 512 MB reply before the API refused
   * the answer (a review).
   */
  readonly maxRowBytes?: number;
  /**
   * The caller's interest in the answer (the HTTP client's connection): once aborted, the reads
   * of the batch not yet issued (waiting for room among the reads in flight, a later part or round
   * trip) are skipped and the call rejects with a {@link ReadAbortedError}. A read already sent
   * is not recalled.
   */
  readonly signal?: AbortSignal;
}

/**
 * The store has more reads in flight than it answers within its command timeout, and this one
 * found no room within a short wait: retriable (answer 503 with Retry-After), and not an outage
 * (the store is up and answering; nothing is disconnected, readiness holds).
 */
export class StoreOverloadedError extends DriftlineError {
  constructor(message: string, details: Readonly<Record<string, unknown>> = {}) {
    super('OVERLOADED', message, { retriable: true, details });
    this.name = 'StoreOverloadedError';
  }
}

/** A read skipped because its `signal` was aborted (its caller went away): nobody awaits it. */
export class ReadAbortedError extends DriftlineError {
  constructor() {
    super('BAD_REQUEST', 'read abandoned: its caller went away before it was issued');
    this.name = 'ReadAbortedError';
  }
}

/** Throws a {@link ReadAbortedError} when `signal` was aborted. */
export function throwIfReadAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new ReadAbortedError();
}

/** Most entities one `readBatch` may ask for, over all its requests (a bound on one round trip). */
export const MAX_READ_BATCH = 10_000;

/**
 * The online store port: what the feature-materializer writes and the feature API reads.
 *
 * - `write` applies planned entity writes with event-time last-write-wins on (event_time, event_id)
 *   and maintains the views' sliding window aggregates, atomically per entity; replays, duplicates
 *   and older events change nothing, so a retried batch is harmless. A changed row expires
 *   `view.ttlMs` after its newest event time (never when 0); an entity's window events are kept
 *   `view.horizonMs` longer, for the events that may still arrive within the TTL. Resolves only once the store holds the batch.
 * - `read` / `readBatch` return rows projected to the requested fields (every declared feature and
 *   aggregate by default, null when it has no value); `undefined` for an absent entity, and for
 *   a row whose event time is at or before now − `view.ttlMs` (the view's TTL as it is now).
 *
 * Errors: a store that is down or slow is a retriable `SinkUnavailableError`; one with more reads
 * in flight than it answers in time refuses more with a retriable `StoreOverloadedError` (Redis);
 * a read whose `signal` was aborted, a `ReadAbortedError`; a bad entity id,
 * an unknown field or an oversized batch is a `DriftlineError('BAD_REQUEST')`; a write the store
 * can never accept is a non-retriable error. Adapters: `InMemoryOnlineStore` (the executable
 * spec) and `RedisOnlineStore` (`@driftline/online-store/redis`); one contract suite runs both.
 */
export interface OnlineStore {
  write(writes: readonly EntityWrite[]): Promise<WriteStats>;
  read(view: FeatureView, entity: string, features?: readonly string[]): Promise<FeatureRow | undefined>;
  /** Result `i` holds the rows of request `i`, in the order of its entities. */
  readBatch(requests: readonly RowRequest[], options?: ReadBatchOptions): Promise<Array<Array<FeatureRow | undefined>>>;
  /** True while the store can serve (the connection is up and answers). */
  ready(): boolean;
  close(): Promise<void>;
}
