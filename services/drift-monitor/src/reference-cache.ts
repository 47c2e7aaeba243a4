import type { ReferenceSet } from '@driftline/drift';
import type { ReferenceStore } from '@driftline/warehouse';

const SEP = '\u0000';

/** Bounds of the reference cache (documented in the service README, "Reference cache"). */
export interface ReferenceCacheLimits {
  /** Reference sets held at most (least recently used evicted first; reloaded on demand). */
  readonly maxEntries: number;
  /** Reference sets loaded at start-up, those saved last (the rest when a batch needs them). */
  readonly preloadEntries: number;
  /**
   * How long the catalog of (model, version) pairs that have a reference is trusted: an unknown
   * pair is absent without a query until then; after it, one catalog query answers for all pairs.
   */
  readonly catalogTtlMs: number;
  /**
   * How often the catalog is read again even when every pair is known: a reference re-stored for
   * a version already in memory (its latest `reference_id` changed) is then loaded within it.
   */
  readonly catalogRefreshMs: number;
  /** Promotions remembered per model (the most recent by event time), and models with promotions. */
  readonly maxPromotionsPerModel: number;
  readonly maxPromotedModels: number;
}

export const DEFAULT_REFERENCE_CACHE_LIMITS: ReferenceCacheLimits = {
  maxEntries: 1_000,
  preloadEntries: 64,
  // Short: a reference registered just before its traffic (the usual order) must be found at once;
  // a flood of unknown versions still costs at most 4 small queries per second.
  catalogTtlMs: 250,
  catalogRefreshMs: 60_000,
  maxPromotionsPerModel: 64,
  maxPromotedModels: 10_000,
};

/** A Map in least-recently-used order with a maximum size. */
class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get size(): number {
    return this.map.size;
  }
  /** The value without making it the most recently used. */
  peek(key: string): V | undefined {
    return this.map.get(key);
  }
  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  delete(key: string): void {
    this.map.delete(key);
  }
  keys(): IterableIterator<string> {
    return this.map.keys();
  }
  set(key: string, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.max) this.map.delete(this.map.keys().next().value as string);
  }
}

/**
 * In-memory view of the reference store for the hot path: `resolve` is synchronous; `ensure`
 * loads what a batch needs before the batch is processed. A version without a profile of its
 * own is measured against the latest version of the model PROMOTED at or before the window start
 * (from models.v1), when one is known.
 *
 * Bounded whatever the events say: at most `maxEntries` reference sets (LRU), and which pairs have
 * a reference at all comes from one catalog (the (model, version) pairs of `reference_profiles`,
 * no profiles) refreshed at most once per `catalogTtlMs` — so a flood of predictions with random
 * versions costs no memory and at most one small query per TTL, not a query per record or version.
 */
export class ReferenceCache {
  private readonly sets: Lru<ReferenceSet>;
  private readonly byId: Lru<ReferenceSet>;
  private readonly promotions: Lru<Array<{ version: string; eventTime: number }>>;
  /** The pairs that have a reference, each with its latest reference id. */
  private catalog: { pairs: Map<string, string>; at: number } | undefined;
  private readonly limits: ReferenceCacheLimits;

  constructor(
    private readonly store: ReferenceStore,
    private readonly now: () => number = Date.now,
    limits: Partial<ReferenceCacheLimits> = {},
  ) {
    this.limits = { ...DEFAULT_REFERENCE_CACHE_LIMITS, ...limits };
    this.sets = new Lru(this.limits.maxEntries);
    this.byId = new Lru(this.limits.maxEntries);
    this.promotions = new Lru(this.limits.maxPromotedModels);
  }

  /** Reference sets held now (at most `maxEntries`). */
  get size(): number {
    return this.sets.size;
  }

  private put(set: ReferenceSet): void {
    this.sets.set(set.model + SEP + set.version, set);
    this.byId.set(set.referenceId, set);
  }

  private async refreshCatalog(): Promise<Map<string, string>> {
    const pairs = new Map((await this.store.catalog()).map((p) => [p.model + SEP + p.version, p.referenceId]));
    this.catalog = { pairs, at: this.now() };
    // A reference re-stored for a pair held here: dropped, so the next batch loads the latest
    // (before, a running instance kept the old one while a restarted one used the new one).
    for (const key of [...this.sets.keys()]) {
      const latest = pairs.get(key);
      if (latest !== undefined && this.sets.peek(key)?.referenceId !== latest) this.sets.delete(key);
    }
    return pairs;
  }

  /**
   * Loads the references saved last (at most `preloadEntries`) and the catalog; a malformed one of
   * those fails here, at start-up, naming the field. Every other is loaded when a batch needs it.
   * It loaded every reference ever saved: one per trained version, kept for ever, so each retrain
   * made every start slower and larger, up to a start that timed out or ran out of memory.
   */
  async preload(): Promise<number> {
    const sets = await this.store.newest(Math.min(this.limits.preloadEntries, this.limits.maxEntries));
    for (const s of sets.reverse()) this.put(s); // the newest last: the most recently used
    await this.refreshCatalog();
    return sets.length;
  }

  /**
   * Loads the references of (model, version) pairs not in memory. A pair missing from the
   * catalog is absent without a query while the catalog is fresh; a stale catalog is re-read
   * once, for all of them (so a reference stored after start-up is found within `catalogTtlMs`).
   */
  async ensure(pairs: Iterable<readonly [string, string]>): Promise<void> {
    if (this.catalog !== undefined && this.now() - this.catalog.at >= this.limits.catalogRefreshMs) {
      await this.refreshCatalog();
    }
    let catalog = this.catalog;
    for (const [model, version] of pairs) {
      const key = model + SEP + version;
      if (this.sets.get(key) !== undefined) continue;
      if (catalog === undefined || (!catalog.pairs.has(key) && this.now() - catalog.at >= this.limits.catalogTtlMs)) {
        catalog = { pairs: await this.refreshCatalog(), at: this.now() };
      }
      if (catalog.pairs.has(key)) await this.load(model, version);
      else {
        // Measured against a promoted version: make sure that one is in memory (it may have been evicted).
        for (const p of this.promotions.get(model) ?? [])
          if (catalog.pairs.has(model + SEP + p.version)) await this.load(model, p.version);
      }
    }
  }

  private async load(model: string, version: string): Promise<void> {
    if (this.sets.get(model + SEP + version) !== undefined) return;
    const set = await this.store.latest(model, version);
    if (set !== undefined) this.put(set);
  }

  resolve(model: string, version: string, windowStart: number): ReferenceSet | undefined {
    const own = this.sets.get(model + SEP + version);
    if (own !== undefined) return own;
    const promoted = this.promotions.get(model);
    if (promoted === undefined) return undefined;
    let best: { version: string; eventTime: number } | undefined;
    for (const p of promoted)
      if (p.eventTime <= windowStart && (best === undefined || p.eventTime >= best.eventTime)) best = p;
    return best === undefined ? undefined : this.sets.get(model + SEP + best.version);
  }

  /** A PROMOTED model event: load that version's reference and remember when it took over. */
  async promoted(model: string, version: string, eventTime: number): Promise<ReferenceSet | undefined> {
    const set = await this.store.latest(model, version);
    if (set !== undefined) {
      this.put(set);
      this.catalog?.pairs.set(model + SEP + version, set.referenceId);
    }
    const list = this.promotions.get(model) ?? [];
    if (!list.some((p) => p.version === version && p.eventTime === eventTime)) {
      list.push({ version, eventTime });
      list.sort((a, b) => a.eventTime - b.eventTime);
      if (list.length > this.limits.maxPromotionsPerModel)
        list.splice(0, list.length - this.limits.maxPromotionsPerModel);
    }
    this.promotions.set(model, list);
    return set;
  }

  async byReferenceId(id: string): Promise<ReferenceSet | undefined> {
    const cached = this.byId.get(id);
    if (cached !== undefined) return cached;
    const set = await this.store.byId(id);
    if (set !== undefined) this.byId.set(id, set);
    return set;
  }
}
