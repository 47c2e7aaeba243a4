import { toDriftlineError } from '@driftline/core';
import { ReferenceCatalog, type ReferenceSet } from '@driftline/drift';
import {
  type DatedStageEvent,
  EMPTY_PRODUCTION_HISTORY,
  followProduction,
  type ProductionHistory,
  type ProductionSpell,
  type ProductionStep,
} from '@driftline/policy';
import type { ReferenceStore } from '@driftline/warehouse';

/** What `ReferenceStore.newest` tells of a set it leaves out (a profile that cannot be read). */
type InvalidReference = Parameters<NonNullable<Parameters<ReferenceStore['newest']>[1]>>[0];

/**
 * A stored reference set this release cannot read (a profile of another format), remembered by its
 * `referenceId` until the catalog names a newer one for its pair, and at most one catalog refresh
 * interval (then read once more): no query per batch for it.
 */
export interface UnreadableReference {
  readonly model: string;
  readonly version: string;
  readonly referenceId: string;
  /** The ConfigError's message, naming the row and field. */
  readonly reason: string;
}

const SEP = '\u0000';

/** Bounds of the reference cache (documented in the service README, "Reference cache"). */
export interface ReferenceCacheLimits {
  /** Reference sets held at most (least recently used evicted first; reloaded on demand). */
  readonly maxEntries: number;
  /** Reference sets loaded at start-up, those saved last (the rest when a batch needs them). */
  readonly preloadEntries: number;
  /**
   * How long the catalog's "no reference" for a (model, version) pair is trusted: a batch naming
   * the pair after it asks again (one catalog query for all the batch's pairs).
   */
  readonly catalogTtlMs: number;
  /**
   * How long the catalog's reference id of a pair is trusted: a reference re-stored for a version
   * already in memory (its latest `reference_id` changed), or deleted, is seen by the first batch
   * that needs the pair after it.
   */
  readonly catalogRefreshMs: number;
  /**
   * Catalog answers (pairs with or without a reference) held at most, least recently used dropped
   * (asked again when needed); a batch's own are held until the next batch whatever this bound.
   */
  readonly maxCatalogEntries: number;
  /**
   * Production spells remembered per model (the newest: each promotion or rollback that changed
   * the serving version starts one), and models with a production history. The versions that
   * ended are the stages' own bound (`MAX_ENDED` of `@driftline/policy`, the model-server's).
   */
  readonly maxSpellsPerModel: number;
  readonly maxPromotedModels: number;
}

export const DEFAULT_REFERENCE_CACHE_LIMITS: ReferenceCacheLimits = {
  maxEntries: 1_000,
  preloadEntries: 64,
  // Short: a reference stored after its version's first predictions is found within it (a pair
  // never asked about is asked at once); the same unknown versions again cost at most 4 small
  // queries per second.
  catalogTtlMs: 250,
  catalogRefreshMs: 60_000,
  // ~330 B an answer (26-character versions, 64-character ids): ~3.2 MB at the bound, whatever
  // `reference_profiles` holds (one row per trained version, kept for good).
  maxCatalogEntries: 10_000,
  maxSpellsPerModel: 64,
  maxPromotedModels: 10_000,
};

/**
 * A (model, version) of a batch and the earliest start of the windows its events are counted in
 * (`PartitionWindows.placement`: a late event's is the open window it goes to, not its own).
 */
export interface BatchPair {
  readonly model: string;
  readonly version: string;
  readonly earliestWindowStart: number;
}

/** A reference set in memory and the `loads` count it was loaded at (see `refreshCatalog`). */
interface Loaded {
  readonly set: ReferenceSet;
  readonly load: number;
}

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
  /** Every entry, least recently used first, without using any. */
  entries(): IterableIterator<[string, V]> {
    return this.map.entries();
  }
  set(key: string, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.max) this.map.delete(this.map.keys().next().value as string);
  }
}

/**
 * In-memory view of the reference store for the hot path: `resolve` is synchronous; `ensure`
 * loads what a batch needs before the batch is processed. A version has a reference when the
 * catalog names it (`hasReference`, for both). A version without one that never served production
 * (a canary tag) is measured against the version serving at the window start (models.v1 folded by
 * `followProduction`: promotions and rollbacks), or the latest one before it that has a reference;
 * a version that served without one is unreferenced: it never borrows on its own behalf (measured
 * on its predecessor's training distribution, a retrained version flagged drift that is not there).
 *
 * Bounded whatever the events say or the store holds: at most `maxEntries` reference sets (LRU;
 * plus those of the last batch the LRU evicted since, at most `maxEntries`), and which pairs have a
 * reference at all comes from a catalog of the pairs the batches name and their models' serving
 * versions only (`ReferenceCatalog` of `@driftline/drift`: at most `maxCatalogEntries` answers,
 * plus the last batch's), asked of the store in one query per batch at most, for those pairs only
 * (no profiles) — so a flood of predictions with random versions costs no memory and at most one
 * small query per batch, not a query per record or version; and a store of every version ever
 * trained costs neither memory nor a read of it all (it was read whole every minute, and held).
 */
export class ReferenceCache {
  private readonly sets: Lru<Loaded>;
  private readonly byId: Lru<ReferenceSet>;
  private readonly histories: Lru<ProductionHistory>;
  /** Which pairs have a reference (and its latest id), for the pairs asked about. */
  private readonly catalog: ReferenceCatalog;
  /** Sets loaded so far (`put`): a catalog read begun before a load may not name its pair yet. */
  private loads = 0;
  /** The sets the last `ensure` found for its batch (at most `maxEntries`): held even if evicted. */
  private held = new Map<string, ReferenceSet>();
  /**
   * Pairs whose latest set cannot be read, by the id that failed (at most `maxEntries`): `hold`
   * loads none of them again until the catalog names another id (a corrected reference, saved
   * again, is loaded without a restart). Each failed load queried ClickHouse and threw for the
   * whole batch: the consumer held the partition, every model in it, and bisected mixed batches.
   */
  /** Unreadable sets by pair, with when each was found so (see `refreshCatalog`). */
  private readonly unreadable: Lru<UnreadableReference & { readonly at: number }>;
  private readonly limits: ReferenceCacheLimits;

  /**
   * `loaded` sees every set this cache loads (preloaded, for a batch, for a promotion), each time
   * it is loaded: the drift monitor checks it there (`referenceFindingsLog`).
   */
  constructor(
    private readonly store: ReferenceStore,
    private readonly now: () => number = Date.now,
    limits: Partial<ReferenceCacheLimits> = {},
    private readonly loaded: (set: ReferenceSet) => void = () => {},
  ) {
    this.limits = { ...DEFAULT_REFERENCE_CACHE_LIMITS, ...limits };
    this.sets = new Lru(this.limits.maxEntries);
    this.byId = new Lru(this.limits.maxEntries);
    this.histories = new Lru(this.limits.maxPromotedModels);
    this.unreadable = new Lru(this.limits.maxEntries);
    this.catalog = new ReferenceCatalog({
      maxEntries: this.limits.maxCatalogEntries,
      absentTtlMs: this.limits.catalogTtlMs,
      presentTtlMs: this.limits.catalogRefreshMs,
    });
  }

  /** Reference sets held now (at most `maxEntries`). */
  get size(): number {
    return this.sets.size;
  }

  /** Catalog answers held now (at most `maxCatalogEntries`, plus those of the last batch). */
  get catalogSize(): number {
    return this.catalog.size;
  }

  private put(set: ReferenceSet): void {
    this.loaded(set);
    this.loads++;
    this.sets.set(set.model + SEP + set.version, { set, load: this.loads });
    this.byId.set(set.referenceId, set);
  }

  /** The pair's set in memory (the LRU, else the last batch's), whether or not it still has a reference. */
  private setOf(key: string): ReferenceSet | undefined {
    return this.sets.get(key)?.set ?? this.held.get(key);
  }

  /** Forgets the pair's set: its reference is gone (the store just said so). */
  private forget(key: string): void {
    this.catalog.record(key, undefined, this.now());
    this.sets.delete(key);
    this.held.delete(key);
    this.unreadable.delete(key);
  }

  /**
   * Asks the store which of `pairs` have a reference, and records each answer. A pair it does not
   * name lost its reference (or never had one): its set leaves memory, so that this instance
   * resolves as a fresh one does (kept, a running instance measured on the deleted set for as long
   * as it ran, a restarted one on the promoted version: one window split between them). A set
   * loaded while the read ran is newer than the read: kept, and named.
   */
  private async readCatalog(pairs: ReadonlyMap<string, { readonly model: string; readonly version: string }>) {
    const loadsBefore = this.loads;
    const found = new Map<string, string>();
    for (const p of await this.store.catalog([...pairs.values()])) {
      const key = p.model + SEP + p.version;
      if (pairs.has(key)) found.set(key, p.referenceId); // a store may name others: not asked, not kept
    }
    const now = this.now();
    for (const key of pairs.keys()) {
      let id = found.get(key);
      if (id === undefined) {
        const loaded = this.sets.peek(key);
        if (loaded !== undefined && loaded.load > loadsBefore) id = loaded.set.referenceId;
        else {
          this.sets.delete(key);
          this.held.delete(key);
        }
      }
      this.catalog.record(key, id, now);
      // An unreadable set stays known while the catalog names it; another id (saved again) is
      // loaded. Also read again once a refresh interval has passed: a corrected set saved again
      // from the same data has the same id (a hash of its content, not of its format), and was
      // dead-lettered until a restart (found by a regression review). One query per bad pair and interval.
      const bad = this.unreadable.peek(key);
      if (bad !== undefined && (id !== bad.referenceId || now - bad.at >= this.limits.catalogRefreshMs))
        this.unreadable.delete(key);
    }
    // A set whose reference was re-stored stays until a batch needs it (`hold` replaces it then):
    // dropping it here took the set of a pair the same batch had already checked, whose events then
    // borrowed the promoted version's reference or were refused by the borrowed-version cap.
  }

  /**
   * Loads the references saved last (at most `preloadEntries`), each the latest of its pair: the
   * catalog's answer for those pairs. Every other is loaded, and asked of the catalog, when a batch
   * needs it. It loaded every reference ever saved: one per trained version, kept for ever, so each
   * retrain made every start slower and larger, up to a start that timed out or ran out of memory.
   *
   * A set with a malformed profile is left out and told to `skipped` (model, version, feature,
   * reason), as a running instance treats it: the catalog still names it, so its model's
   * predictions load it when they come, and fail there (dead-lettered CONFIG_INVALID) while every
   * other model is measured. It failed start-up here, for every model, for one bad row of one.
   */
  async preload(skipped: (invalid: InvalidReference) => void = () => {}): Promise<number> {
    const invalids: InvalidReference[] = [];
    const sets = await this.store.newest(Math.min(this.limits.preloadEntries, this.limits.maxEntries), (invalid) => {
      invalids.push(invalid);
      skipped(invalid);
    });
    const at = this.now();
    for (const s of sets.reverse()) {
      this.put(s); // the newest last: the most recently used
      this.catalog.record(s.model + SEP + s.version, s.referenceId, at);
    }
    for (const invalid of invalids) {
      this.catalog.record(invalid.model + SEP + invalid.version, invalid.referenceId, at);
      this.markUnreadable(invalid);
    }
    return sets.length;
  }

  /**
   * Loads what a batch's (model, version) pairs need and holds it until the next `ensure`, even if
   * the LRU evicts it: at most `maxEntries` sets. First each pair's own reference (the latest in the
   * catalog), then, for each model with a pair that has none and never served, its lenders:
   * the version in force at the earliest window start of those pairs and every one serving
   * after it (the windows `PartitionWindows.placement` counts the events in: a later
   * window resolves to one of those), newest first across
   * models — every borrowing model's newest lender, then each one's next older, and so on. Holding
   * only the newest, a window before that promotion was measured only while the LRU still had its
   * lender, else its events were unreferenced. Own references first, so lenders never crowd one
   * out of the bound (holding every promoted version, 16 borrowing models took 1,024 sets); past it
   * an own-reference pair resolves to nothing (unreferenced), never to a borrowed reference.
   * The catalog is asked at most once, first, about every pair the batch may need — its own pairs
   * and, for each model with a pair that never served, the versions of its spells (its possible
   * lenders) — when one of them has no answer or one too old to trust (`catalogTtlMs` for "none",
   * `catalogRefreshMs` for a reference id); those answers are held until the next batch. Nothing
   * is loaded twice.
   */
  async ensure(pairs: Iterable<BatchPair>): Promise<void> {
    const batch = [...pairs];
    const asked = new Map<string, { readonly model: string; readonly version: string }>();
    const ask = (model: string, version: string) => {
      const key = model + SEP + version;
      if (!asked.has(key)) asked.set(key, { model, version });
    };
    const mayBorrow = new Set<string>();
    for (const { model, version } of batch) {
      ask(model, version);
      if (!this.hasServed(model, version)) mayBorrow.add(model);
    }
    for (const model of mayBorrow) for (const p of this.histories.peek(model)?.spells ?? []) ask(model, p.version);
    this.catalog.hold(asked.keys());
    const now = this.now();
    for (const key of asked.keys()) {
      if (!this.catalog.stale(key, now)) continue;
      await this.readCatalog(asked);
      break;
    }
    const needed = new Map<string, ReferenceSet>();
    /** Each borrowing model and the earliest window start its borrowing pairs have in the batch. */
    const borrowing = new Map<string, number>();
    for (const { model, version, earliestWindowStart } of batch) {
      if (this.hasReference(model + SEP + version) && (await this.hold(needed, model, version))) continue;
      if (this.hasServed(model, version)) continue; // unreferenced: never borrows on its own behalf
      const earliest = borrowing.get(model);
      if (earliest === undefined || earliestWindowStart < earliest) borrowing.set(model, earliestWindowStart);
    }
    // A copy of each model's spells: a models.v1 event read while this batch loads changes the list.
    let lending = [...borrowing].map(([model, from]) => ({
      model,
      from,
      spells: [...(this.histories.get(model)?.spells ?? [])],
    }));
    while (lending.length > 0 && needed.size < this.limits.maxEntries) {
      const more: typeof lending = [];
      for (const lender of lending) if (await this.holdNextLender(needed, lender)) more.push(lender);
      lending = more;
    }
    this.held = needed;
  }

  /**
   * Holds the version of the newest spell left in `lender.spells` that has a reference (and takes
   * it, and those skipped, off the list). True while older ones are in force in the batch: the one
   * held began serving after its earliest window start. A set deleted since the catalog read is
   * skipped: the one before it is in force instead (`resolve` skips it too).
   */
  private async holdNextLender(
    needed: Map<string, ReferenceSet>,
    lender: { readonly model: string; readonly from: number; readonly spells: ProductionSpell[] },
  ): Promise<boolean> {
    for (let p = lender.spells.pop(); p !== undefined; p = lender.spells.pop()) {
      if (!this.hasReference(lender.model + SEP + p.version)) continue;
      if (await this.hold(needed, lender.model, p.version)) return p.from > lender.from;
    }
    return false;
  }

  /**
   * Whether the pair has a reference of its own: the catalog's latest answer names one (a set is
   * in memory only while it does; `readCatalog`). `ensure` and `resolve` both decide by it:
   * counting a set still in memory too kept a deleted reference in force on a running instance for
   * good. A pair never asked has none: `ensure` asks about every pair its batch resolves.
   */
  private hasReference(key: string): boolean {
    return this.catalog.has(key);
  }

  /** Whether the version served production in one of the model's spells remembered: it never borrows. */
  private hasServed(model: string, version: string): boolean {
    return this.histories.peek(model)?.spells.some((p) => p.version === version) === true;
  }

  private markUnreadable(bad: UnreadableReference): void {
    const key = bad.model + SEP + bad.version;
    this.unreadable.set(key, {
      model: bad.model,
      version: bad.version,
      referenceId: bad.referenceId,
      reason: bad.reason,
      at: this.now(),
    });
    // Not in force any more: an older set of the pair in memory must not stand in for it.
    this.sets.delete(key);
    this.held.delete(key);
  }

  /**
   * The store's latest set of the pair; one that cannot be read (ConfigError: a profile of a
   * format this release does not know) is remembered as unreadable under `referenceId` (the id
   * the catalog names) and answered `'unreadable'`. Other errors (ClickHouse down) are thrown.
   */
  private async load(
    model: string,
    version: string,
    referenceId: string | undefined,
  ): Promise<ReferenceSet | undefined | 'unreadable'> {
    try {
      return await this.store.latest(model, version);
    } catch (error) {
      const e = toDriftlineError(error);
      if (e.code !== 'CONFIG_INVALID') throw error;
      this.markUnreadable({ model, version, referenceId: referenceId ?? '', reason: e.message });
      return 'unreadable';
    }
  }

  /**
   * Why the reference `resolve` would measure this event on cannot be read (its own version's, or
   * the lender's in force at `windowStart`), or undefined: such events are dead-lettered
   * (CONFIG_INVALID) by stage one, one by one, while every other model of the batch is measured.
   */
  unreadableFor(model: string, version: string, windowStart: number): UnreadableReference | undefined {
    if (this.unreadable.size === 0) return undefined;
    const key = model + SEP + version;
    if (this.hasReference(key)) return this.unreadableOf(key);
    if (this.hasServed(model, version)) return undefined;
    const spells = this.histories.peek(model)?.spells;
    if (spells === undefined) return undefined;
    for (let i = spells.length - 1; i >= 0; i--) {
      const p = spells[i]!;
      if (p.from > windowStart) continue;
      const lender = model + SEP + p.version;
      if (this.hasReference(lender)) return this.unreadableOf(lender);
    }
    return undefined;
  }

  /** The pair's unreadable set, while the catalog still names that id as its latest. */
  private unreadableOf(key: string): UnreadableReference | undefined {
    const bad = this.unreadable.peek(key);
    return bad !== undefined && this.catalog.referenceId(key) === bad.referenceId ? bad : undefined;
  }

  /**
   * Adds the pair's latest set to `needed`, loading it when it is missing or older than the
   * catalog's. False when the store no longer has one (deleted since the catalog was read); true
   * when held, and past the batch bound (not held, nothing loaded). An unreadable latest set is
   * true and not held: its events are dead-lettered (`unreadableFor`), never measured on another
   * set; a known one is not queried again until the catalog names a newer id.
   */
  private async hold(needed: Map<string, ReferenceSet>, model: string, version: string): Promise<boolean> {
    const key = model + SEP + version;
    if (needed.has(key) || needed.size >= this.limits.maxEntries) return true;
    const latest = this.catalog.referenceId(key);
    if (latest !== undefined && this.unreadable.peek(key)?.referenceId === latest) return true;
    let set = this.sets.get(key)?.set;
    if (latest !== undefined && set?.referenceId !== latest) {
      const loaded = await this.load(model, version, latest);
      if (loaded === 'unreadable') return true;
      set = loaded;
      if (set === undefined) {
        // Deleted since the catalog was read: no reference until the next read says otherwise.
        this.forget(key);
        return false;
      }
      // Saved again since the catalog was read: the id loaded is the latest, not reloaded per batch.
      this.catalog.record(key, set.referenceId, this.now());
      this.unreadable.delete(key);
      this.put(set);
    }
    if (set === undefined) return false;
    needed.set(key, set);
    return true;
  }

  resolve(model: string, version: string, windowStart: number): ReferenceSet | undefined {
    const key = model + SEP + version;
    // A version with a reference of its own is never measured on another's (nor counted against
    // the borrowed-version cap): only past the batch bound is its set not held, see `ensure`.
    if (this.hasReference(key)) return this.setOf(key);
    if (this.hasServed(model, version)) return undefined;
    const spells = this.histories.get(model)?.spells;
    if (spells === undefined) return undefined;
    // In force at the window start: the latest spell begun at or before it with a reference (the
    // same one `ensure` holds; a version serving without one leaves the one before it in force).
    for (let i = spells.length - 1; i >= 0; i--) {
      const p = spells[i]!;
      if (p.from > windowStart) continue;
      const lender = model + SEP + p.version;
      if (this.hasReference(lender)) return this.setOf(lender);
    }
    return undefined;
  }

  /**
   * A models.v1 event of `model`, in topic order: folded into the model's production history
   * (`followProduction`: what the model-server serves from the event's time on). When it names
   * the serving version — a promotion, a rollback's restored version, a PROMOTED of the one serving
   * — that version's reference is loaded (`set`, undefined when it has none).
   */
  async modelEvent(model: string, e: DatedStageEvent): Promise<ProductionStep & { readonly set?: ReferenceSet }> {
    const history = this.histories.get(model) ?? EMPTY_PRODUCTION_HISTORY;
    const step = followProduction(history, e, this.limits.maxSpellsPerModel);
    if (step.outcome === 'ignored') return step;
    const serving = step.history.stages.production;
    const named =
      serving !== undefined && (step.outcome === 'swapped' || (e.kind === 'PROMOTED' && e.version === serving));
    // Loaded before the history says it serves: `resolve` meanwhile answers as before the event.
    const set = named ? await this.loadServing(model, serving) : undefined;
    this.histories.set(model, step.history);
    return set === undefined ? step : { ...step, set };
  }

  /** The serving version's latest reference, into memory and the catalog; forgotten when it has none. */
  private async loadServing(model: string, version: string): Promise<ReferenceSet | undefined> {
    const key = model + SEP + version;
    const named = this.catalog.referenceId(key);
    // Known unreadable under the id the catalog names: not queried again (its events dead-lettered).
    if (named !== undefined && this.unreadable.peek(key)?.referenceId === named) return undefined;
    // Unreadable: kept in the catalog (the version has a reference: never borrows, dead-lettered),
    // not thrown, which held models.v1 and so every later promotion.
    const set = await this.load(model, version, named);
    if (set === 'unreadable') return undefined;
    if (set === undefined) {
      // Kept, `resolve` stopped at this version (it has a reference, none held) until the next
      // batch: a canary's events meanwhile were unreferenced instead of borrowing the one before.
      this.forget(model + SEP + version);
      return undefined;
    }
    this.put(set);
    this.unreadable.delete(key);
    this.catalog.record(key, set.referenceId, this.now());
    return set;
  }

  /** A PROMOTED event of `version` at `eventTime` (`modelEvent`); the version's reference if it serves. */
  async promoted(model: string, version: string, eventTime: number): Promise<ReferenceSet | undefined> {
    return (await this.modelEvent(model, { kind: 'PROMOTED', version, event_time: eventTime })).set;
  }

  async byReferenceId(id: string): Promise<ReferenceSet | undefined> {
    const cached = this.byId.get(id);
    if (cached !== undefined) return cached;
    const set = await this.store.byId(id);
    if (set !== undefined) this.byId.set(id, set);
    return set;
  }
}
