import {
  aggregate,
  compareCodePoints,
  compareEventOrder,
  copyDigest,
  decodeValue,
  type EntityWrite,
  type FeatureView,
} from '@driftline/features';
import type { FeatureValue } from '@driftline/schemas';
import { encodeEntity } from './keys.js';
import {
  type FeatureRow,
  type OnlineStore,
  type ReadBatchOptions,
  type RowRequest,
  throwIfReadAborted,
  type WriteStats,
} from './port.js';
import {
  checkBatchSize,
  checkedProjection,
  checkRowBytes,
  ROW_COPY,
  ROW_EVENT_ID,
  ROW_TIME,
  type RowProjection,
  withinTtl,
} from './rows.js';

interface WindowEvent {
  readonly eventTime: number;
  readonly eventId: string;
  /** copyDigest of the copy kept: a greater copy of the id (later, or same time and greater digest) replaces it. */
  readonly copy: string;
  /** Value per aggregated feature slot (`view.aggregatedFeatures` order); undefined = absent. */
  readonly slots: ReadonlyArray<number | undefined>;
}

interface Entry {
  eventTime: number;
  eventId: string;
  /** copyDigest of the winning event: breaks a tie with a copy of it that carries other values. */
  copy: string;
  /** Stored (encoded) feature values of the winning event. */
  values: Map<string, string>;
  aggregates: Map<string, number>;
  expiresAt: number;
}

/** An entity's events inside the longest window, by event id; it outlives the row by a horizon (see write). */
interface Window {
  readonly events: Map<string, WindowEvent>;
  expiresAt: number;
}

export interface InMemoryOnlineStoreOptions {
  /** Clock of the TTLs (default Date.now). */
  readonly now?: () => number;
}

/**
 * The executable spec of {@link OnlineStore}, on Maps, for unit tests and the contract suite: the
 * Redis adapter must answer exactly like it. It follows the Redis write script step by step —
 * a row is replaced only by a greater (event_time, event_id, copy digest); the window keeps, per event
 * id, its greatest copy (event_time, copy digest) above `anchor − horizon` (anchor = greatest event
 * time seen); aggregates are recomputed when the
 * window or the anchor changed, folded in (event_time, event_id) order; a changed row expires the
 * view's TTL after its newest event time, its window a horizon later (anchor + TTL + horizon, never
 * earlier than before; anchor = the newest event time seen, the window's included), and a read
 * refuses a row older than now − the view's TTL.
 */
export class InMemoryOnlineStore implements OnlineStore {
  private readonly entries = new Map<string, Entry>();
  private readonly windows = new Map<string, Window>();
  private readonly now: () => number;
  private closed = false;

  constructor(options: InMemoryOnlineStoreOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  /** Live entries (for tests); expired ones are dropped as they are found. */
  get size(): number {
    const at = this.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= at) this.entries.delete(key);
    for (const [key, window] of this.windows) if (window.expiresAt <= at) this.windows.delete(key);
    return this.entries.size;
  }

  private live(key: string, at: number): Entry | undefined {
    return liveIn(this.entries, key, at);
  }

  async write(writes: readonly EntityWrite[]): Promise<WriteStats> {
    this.checkOpen();
    const at = this.now();
    let rowsApplied = 0;
    let aggregatesUpdated = 0;
    let rowsExpired = 0;
    for (const w of writes) {
      const { view, winner } = w;
      const key = keyOf(view, w.entity);
      let entry = this.live(key, at);
      const oldTime = entry?.eventTime;
      let changed = false;
      const order = entry === undefined ? 1 : compareEventOrder(winner, entry);
      if (entry === undefined || order > 0 || (order === 0 && compareCodePoints(copyDigest(winner), entry.copy) > 0)) {
        const values = new Map<string, string>();
        for (const [i, f] of view.features.entries()) {
          const value = winner.values[i];
          if (value !== undefined) values.set(f.name, value);
        }
        entry = {
          eventTime: winner.eventTime,
          eventId: winner.eventId,
          copy: copyDigest(winner),
          values,
          aggregates: entry?.aggregates ?? new Map(),
          expiresAt: entry?.expiresAt ?? Number.POSITIVE_INFINITY,
        };
        this.entries.set(key, entry);
        rowsApplied++;
        changed = true;
      }
      const won = changed;
      let recomputed = false;
      if (view.aggregates.length > 0) {
        let window = liveIn(this.windows, key, at);
        if (window === undefined) {
          window = { events: new Map(), expiresAt: Number.POSITIVE_INFINITY };
          this.windows.set(key, window);
        }
        const anchor = updateWindow(view, entry, window.events, oldTime, w);
        if (anchor !== undefined) {
          recomputed = true;
          changed = true;
          // As in Redis: an event accepted until the row expires counts members down to its time −
          // horizon; only ever extended (Infinity: a set just created).
          const until = anchor + view.ttlMs + view.horizonMs;
          if (view.ttlMs > 0 && (window.expiresAt === Number.POSITIVE_INFINITY || until > window.expiresAt))
            window.expiresAt = until;
        }
        if (window.expiresAt <= at) this.windows.delete(key);
      }
      // A changed row expires the view's TTL after its newest event time, as in Redis; one already
      // past it is gone (expired, not applied).
      if (changed && view.ttlMs > 0) {
        entry.expiresAt = entry.eventTime + view.ttlMs;
        if (entry.expiresAt <= at) {
          this.entries.delete(key);
          if (won) {
            rowsApplied--;
            rowsExpired++;
          }
          recomputed = false; // never served
        }
      }
      if (recomputed) aggregatesUpdated++;
    }
    // Rows here were written by this process through the same bounds: none can be frozen.
    return { entities: writes.length, rowsApplied, aggregatesUpdated, rowsRepaired: 0, rowsExpired };
  }

  async read(view: FeatureView, entity: string, features?: readonly string[]): Promise<FeatureRow | undefined> {
    this.checkOpen();
    const projection = checkedProjection(view, features);
    const at = this.now();
    return withinTtl(view, this.project(projection, this.live(keyOf(view, entity), at)), at);
  }

  async readBatch(
    requests: readonly RowRequest[],
    options: ReadBatchOptions = {},
  ): Promise<Array<Array<FeatureRow | undefined>>> {
    this.checkOpen();
    checkBatchSize(requests);
    throwIfReadAborted(options.signal);
    const at = this.now();
    const resolved = requests.map((r) => ({
      projection: checkedProjection(r.view, r.features),
      view: r.view,
      keys: r.entities.map((e) => keyOf(r.view, e)),
    }));
    if (options.maxRowBytes !== undefined) {
      let total = 0;
      for (const key of new Set(resolved.flatMap((r) => r.keys))) total += storedBytes(this.live(key, at));
      checkRowBytes(total, options.maxRowBytes);
    }
    return resolved.map((r) =>
      r.keys.map((key) => withinTtl(r.view, this.project(r.projection, this.live(key, at)), at)),
    );
  }

  private project(projection: RowProjection, entry: Entry | undefined): FeatureRow | undefined {
    if (entry === undefined) return undefined;
    const features: Record<string, FeatureValue> = {};
    const { names, types } = projection;
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const stored = entry.values.get(name);
      features[name] = stored !== undefined ? decodeValue(types[i]!, stored) : (entry.aggregates.get(name) ?? null);
    }
    return { eventTime: entry.eventTime, eventId: entry.eventId, features };
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('in-memory online store is closed');
  }

  ready(): boolean {
    return !this.closed;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/**
 * Bytes of a row as the Redis adapter stores it (a JSON object of strings: its time, event id,
 * copy digest and values; cjson also escapes `/`, counted here as one byte), 0 when absent.
 */
function storedBytes(entry: Entry | undefined): number {
  if (entry === undefined) return 0;
  const row: Record<string, string> = {
    [ROW_TIME]: String(entry.eventTime),
    [ROW_EVENT_ID]: entry.eventId,
    [ROW_COPY]: entry.copy,
  };
  for (const [name, value] of entry.values) row[name] = value;
  for (const [name, value] of entry.aggregates) row[name] = String(value);
  return Buffer.byteLength(JSON.stringify(row));
}

/** Validates the entity id exactly as the Redis key layout does. */
function keyOf(view: FeatureView, entity: string): string {
  return `${view.name}\u0000${encodeEntity(entity)}`;
}

/** The live value at `key`, dropping an expired one. */
function liveIn<T extends { expiresAt: number }>(map: Map<string, T>, key: string, at: number): T | undefined {
  const value = map.get(key);
  if (value !== undefined && value.expiresAt <= at) {
    map.delete(key);
    return undefined;
  }
  return value;
}

/** Window step of one entity write; the anchor when the aggregates were recomputed, else undefined. */
function updateWindow(
  view: FeatureView,
  entry: Entry,
  window: Map<string, WindowEvent>,
  oldTime: number | undefined,
  w: EntityWrite,
): number | undefined {
  // The newest event seen, as in Redis: the row's time, or a newer event its window kept past it.
  let anchor = Math.max(oldTime ?? w.winner.eventTime, w.winner.eventTime);
  for (const e of window.values()) if (e.eventTime > anchor) anchor = e.eventTime;
  const floor = anchor - view.horizonMs;
  const slotIndexes = view.aggregatedFeatures.map((f) => view.featureIndex.get(f)!);
  let added = 0;
  for (const e of w.windowEvents) {
    if (e.eventTime <= floor) continue;
    const copy = copyDigest(e);
    const kept = window.get(e.eventId);
    // A copy kept already stays unless this one is greater: later, or as late with a greater digest.
    if (
      kept !== undefined &&
      (kept.eventTime > e.eventTime || (kept.eventTime === e.eventTime && compareCodePoints(copy, kept.copy) <= 0))
    ) {
      continue;
    }
    const slots = slotIndexes.map((i) => {
      const v = e.values[i];
      return v === undefined ? undefined : Number(v);
    });
    window.set(e.eventId, { eventTime: e.eventTime, eventId: e.eventId, copy, slots });
    added++;
  }
  const moved = oldTime === undefined || anchor > oldTime;
  if (added === 0 && !moved) return undefined;
  if (moved) for (const [id, e] of window) if (e.eventTime <= floor) window.delete(id);
  const events = [...window.values()].sort(compareEventOrder);
  // Newest maxWindowEvents kept (as the Redis script's ZREMRANGEBYRANK does).
  for (const e of events.splice(0, Math.max(0, events.length - view.maxWindowEvents))) window.delete(e.eventId);
  for (const spec of view.aggregates) {
    const slot = view.aggregatedFeatures.indexOf(spec.feature);
    const values: number[] = [];
    for (const e of events) {
      const v = e.slots[slot];
      if (e.eventTime > anchor - spec.windowMs && v !== undefined) values.push(v);
    }
    const value = aggregate(spec.function, values);
    if (value === null) entry.aggregates.delete(spec.name);
    else entry.aggregates.set(spec.name, value);
  }
  return anchor;
}
