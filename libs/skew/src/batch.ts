import type { FeatureView, FeatureViews } from '@driftline/features';
import type { FeatureValue } from '@driftline/schemas';
import { observe, type StoredValue, type Tolerance } from './compare.js';
import { emptyCounts, type SkewCounts } from './counts.js';

/**
 * Where each feature name lives in the online store: the one view declaring it as a feature or an
 * aggregate (the model-server's rule). A name two views declare is left out (`ambiguous`): which
 * value the model saw would be a guess. Names no view declares are request-only features, never
 * compared.
 */
export interface FeatureSources {
  get(feature: string): FeatureView | undefined;
  readonly ambiguous: ReadonlySet<string>;
}

export function featureSources(views: FeatureViews): FeatureSources {
  const byName = new Map<string, FeatureView>();
  const ambiguous = new Set<string>();
  for (const view of views.views) {
    const names = [...view.features.map((f) => f.name), ...view.aggregates.map((a) => a.name)];
    for (const name of names) {
      if (byName.has(name)) ambiguous.add(name);
      else byName.set(name, view);
    }
  }
  for (const name of ambiguous) byName.delete(name);
  return { get: (feature) => byName.get(feature), ambiguous };
}

/** A sampled prediction, as the comparison needs it. */
export interface SampledPrediction {
  readonly model: string;
  readonly version: string;
  readonly entity: string;
  readonly eventTime: number;
  readonly features: Readonly<Record<string, FeatureValue>>;
}

/** One view's batch read: the sampled entities, projected to the features they carried. */
export interface ViewRead {
  readonly view: FeatureView;
  readonly entities: string[];
  readonly features: string[];
}

/**
 * The reads of one batch: per view, every distinct entity of the sampled predictions that carried
 * one of its features, projected to those features. Shaped as `RowRequest`s of the online store, so
 * a batch costs one `readBatch`.
 */
export function planReads(predictions: readonly SampledPrediction[], sources: FeatureSources): ViewRead[] {
  const reads = new Map<FeatureView, { entities: Set<string>; features: Set<string> }>();
  for (const p of predictions) {
    for (const name of Object.keys(p.features)) {
      const view = sources.get(name);
      if (view === undefined) continue;
      let read = reads.get(view);
      if (read === undefined) {
        read = { entities: new Set(), features: new Set() };
        reads.set(view, read);
      }
      read.entities.add(p.entity);
      read.features.add(name);
    }
  }
  return [...reads].map(([view, r]) => ({ view, entities: [...r.entities], features: [...r.features] }));
}

/** A row as the online store answers it (FeatureRow of @driftline/online-store). */
export interface StoredRow {
  readonly eventTime: number;
  readonly features: Readonly<Record<string, FeatureValue>>;
}

/** Answers of `planReads`' reads (result `i` for read `i`, rows in the order of its entities) by view and entity. */
export function indexRows(
  reads: readonly ViewRead[],
  results: ReadonlyArray<ReadonlyArray<StoredRow | undefined>>,
): (view: FeatureView, entity: string) => StoredRow | undefined {
  const byView = new Map<FeatureView, Map<string, StoredRow | undefined>>();
  reads.forEach((read, i) => {
    const rows = results[i] ?? [];
    byView.set(read.view, new Map(read.entities.map((e, j) => [e, rows[j]])));
  });
  return (view, entity) => byView.get(view)?.get(entity);
}

/** Identity of a window of one model version: the unit the state, the writes and the replay guard share. */
export interface SkewGroupKey {
  readonly model: string;
  readonly version: string;
  readonly windowStart: number;
}

/** A stable string for a group key (Map key). */
export function groupId(k: SkewGroupKey): string {
  return JSON.stringify([k.model, k.version, k.windowStart]);
}

/** Start of the tumbling event-time window holding `t`. */
export function windowStartOf(t: number, windowMs: number): number {
  return Math.floor(t / windowMs) * windowMs;
}

/** How far past the read's end a row must be dated to count as ahead: hosts' clocks differ a little. */
export const FUTURE_SLACK_MS = 1_000;

/**
 * Rows of one view dated ahead of the read: their event time after the prediction's and more than
 * {@link FUTURE_SLACK_MS} after `readEndedAt` (the monitor's clock once the rows were read). No row
 * can honestly be dated after the moment it is read: its producer's clock runs ahead (by at least
 * `aheadMs`, the largest lead seen past the read's end).
 */
export interface FutureRows {
  /** (prediction, feature) values compared with no such row: counted `newerRow`, not compared. */
  values: number;
  /** The largest row event time − `readEndedAt` among them (ms). */
  aheadMs: number;
}

/**
 * Folds sampled predictions into per-(group, feature) counts: each feature a prediction carries
 * that a view declares is compared with that view's row of the entity (`rowOf`). `countsOf` returns
 * the (mutable) counts to add to — the caller decides where they live (a copy of the stored state,
 * so a failed write leaves the state untouched). `readAt` (ms, taken before the rows were read):
 * an absent row of a prediction whose event time was at or before `readAt` − its view's TTL is
 * `expired`, not `missingInStore` — any row served to it had expired by the read (the store reads
 * a row at or before now − ttl as absent), so a monitor lagging more than the TTL behind does not
 * take real skew for missing rows. Without `readAt`, every absent row is `missingInStore`.
 *
 * Returns, by view name, the values whose row is dated after the prediction and after the read's
 * end, `readEndedAt` (by default `readAt`) ({@link FutureRows}; none without it): counted `newerRow` like any row dated after the
 * prediction, but no row can be dated after its read — a feature producer whose clock runs
 * ahead by more than its entities' update interval made every prediction `newerRow` and hid all
 * skew, with no sign (a review). The caller says so. Not compared: the store keeps no write time,
 * so whether such a row was the one served or one written after the prediction is unknown.
 */
export function foldPredictions(
  predictions: readonly SampledPrediction[],
  sources: FeatureSources,
  rowOf: (view: FeatureView, entity: string) => StoredRow | undefined,
  windowMs: number,
  tolerance: Tolerance,
  countsOf: (key: SkewGroupKey, feature: string) => SkewCounts,
  readAt?: number,
  readEndedAt: number | undefined = readAt,
): Map<string, FutureRows> {
  const future = new Map<string, FutureRows>();
  // Ahead of the read's end (a row written during the read is honest), by more than hosts' clocks
  // commonly differ: a row written 80 ms into a read was "ahead" of its start (a review).
  const futureAfter = readEndedAt === undefined ? undefined : readEndedAt + FUTURE_SLACK_MS;
  for (const p of predictions) {
    const key = { model: p.model, version: p.version, windowStart: windowStartOf(p.eventTime, windowMs) };
    for (const [name, served] of Object.entries(p.features)) {
      const view = sources.get(name);
      if (view === undefined) continue;
      const row = rowOf(view, p.entity);
      const stored: StoredValue | 'expired' | undefined =
        row !== undefined
          ? { eventTime: row.eventTime, value: row.features[name] ?? null }
          : readAt !== undefined && view.ttlMs > 0 && p.eventTime <= readAt - view.ttlMs
            ? 'expired'
            : undefined;
      observe(countsOf(key, name), served, stored, p.eventTime, tolerance);
      if (
        row !== undefined &&
        futureAfter !== undefined &&
        row.eventTime > futureAfter &&
        row.eventTime > p.eventTime
      ) {
        const aheadMs = row.eventTime - readEndedAt!;
        const f = future.get(view.name);
        if (f === undefined) future.set(view.name, { values: 1, aheadMs });
        else {
          f.values++;
          f.aheadMs = Math.max(f.aheadMs, aheadMs);
        }
      }
    }
  }
  return future;
}

/** Per-feature counts of one group (convenience for callers keeping plain maps). */
export function countsIn(map: Map<string, SkewCounts>, feature: string): SkewCounts {
  let c = map.get(feature);
  if (c === undefined) {
    c = emptyCounts();
    map.set(feature, c);
  }
  return c;
}
