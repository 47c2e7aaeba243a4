/** A view's freshness expectation: the newest event may be at most `maxLagMs` behind the clock. */
export interface FreshnessSpec {
  readonly view: string;
  readonly maxLagMs: number;
}

/** Freshness of one view on one source partition at the end of one processing-time window. */
export interface FreshnessResult {
  readonly view: string;
  /** Where it was measured: `<topic>/<partition>` (each partition's owner reports its own). */
  readonly scope: string;
  readonly windowStart: number;
  readonly windowEnd: number;
  /** Newest event time this instance saw on the scope for the view (a scope is tracked from its first). */
  readonly newestEventTime: number;
  /** When this instance was last assigned the scope (null: not told, it saw an event first). */
  readonly assignedAt: number | null;
  /**
   * windowEnd − the later of newestEventTime and assignedAt (≥ 0 unless events come from the
   * future; 0 for an assignment after windowEnd). Not more than the true lag (events dated ahead of
   * the clock aside): nothing newer than the assignment can have been materialized unseen here.
   */
  readonly lagMs: number;
  /**
   * True when the lag counts from the assignment, no event newer than it seen yet: the true lag is
   * at least `lagMs` (what its other owner materialized meanwhile is not known here).
   */
  readonly lowerBound: boolean;
  readonly maxLagMs: number;
  readonly passed: boolean;
  /** Events of the view seen on the scope during the window. */
  readonly events: number;
}

/** Most (view, scope) pairs tracked: views ≤ their file's count, scopes ≤ the partitions owned. */
export const MAX_FRESHNESS_ENTRIES = 100_000;

interface Entry {
  readonly view: string;
  readonly scope: string;
  newest: number;
  assignedAt: number | null;
  /** Reported only while owned; kept after a revoke, so a partition that comes back has its history. */
  owned: boolean;
  events: number;
}

/**
 * Time since the last event per feature view, per source partition: O(1) per event (a max and a
 * count), one row per (view, partition) per window. Pure: the caller passes the clocks. Lag is
 * measured against processing time on purpose — "no event for 20 minutes" is a fact about now,
 * not about event time.
 *
 * Only a (view, partition) that has carried the view (an event observed here) is tracked: several
 * views share a topic, so an owned partition says nothing about whether a view reaches it (a view
 * of few entities reaches few partitions; tracking every assigned one failed max_lag for ever).
 * The newest event time is instance memory, so a tracked partition assigned here again after a
 * revoke (`assigned`) counts from that assignment until it sees a newer event: a lower bound of the
 * true lag, since the events its other owner materialized meanwhile are not known here. A view
 * not seen since the process started has no entry, hence no row: the caller alerts on absence.
 * A failure says the partition carried the view and has had none of its events for `max_lag`;
 * a view whose entities stopped reaching that partition fails there too. A revoked partition is
 * no longer reported (its new owner reports it); its entry is kept, bounded.
 */
export class FreshnessTracker {
  private readonly specs: ReadonlyMap<string, FreshnessSpec>;
  /** scope → view → entry. */
  private readonly scopes = new Map<string, Map<string, Entry>>();
  /** The entries not owned (revoked), dropped first when full: O(1), not a scan of every entry. */
  private readonly notOwned = new Set<Entry>();
  private size = 0;

  constructor(specs: readonly FreshnessSpec[]) {
    this.specs = new Map(specs.map((s) => [s.view, s]));
  }

  get enabled(): boolean {
    return this.specs.size > 0;
  }

  /** An event of `view` materialized from `scope`; a scope not told of yet counts as owned. */
  observe(view: string, scope: string, eventTime: number): void {
    if (!this.specs.has(view)) return;
    const entry = this.entry(view, scope, eventTime);
    if (entry === undefined) return;
    if (eventTime > entry.newest) entry.newest = eventTime;
    entry.events++;
  }

  /**
   * This instance owns `scope` (a source partition of `view`) since `at`. Only a (view, scope)
   * already tracked (it carried the view) is affected: a revoked one is reported again, its lag
   * counting from `at` until a newer event is seen; one never seen is not created (the partitions
   * of a shared topic a view does not reach would fail for ever). Owned already: nothing changes.
   */
  assigned(view: string, scope: string, at: number): void {
    const found = this.scopes.get(scope)?.get(view);
    if (found === undefined) return;
    if (!found.owned) {
      found.owned = true;
      this.notOwned.delete(found);
      found.assignedAt = at;
      found.events = 0;
    } else if (found.assignedAt === null) found.assignedAt = at;
  }

  /** A revoked partition is reported by its new owner; its entries are kept in case it comes back. */
  revoked(scope: string): void {
    for (const e of this.scopes.get(scope)?.values() ?? []) {
      e.owned = false;
      this.notOwned.add(e);
    }
  }

  /** One result per owned (view, scope), then the window's event counts start over. */
  evaluate(windowStart: number, windowEnd: number): FreshnessResult[] {
    const out: FreshnessResult[] = [];
    for (const entries of this.scopes.values()) {
      for (const e of entries.values()) {
        if (!e.owned) continue;
        const spec = this.specs.get(e.view)!;
        const lowerBound = e.assignedAt !== null && e.assignedAt > e.newest;
        // An assignment just after the window end (told at the tick) is no lag yet, not a negative one.
        const lagMs = lowerBound ? Math.max(0, windowEnd - e.assignedAt!) : windowEnd - e.newest;
        out.push({
          view: e.view,
          scope: e.scope,
          windowStart,
          windowEnd,
          newestEventTime: e.newest,
          assignedAt: e.assignedAt,
          lagMs,
          lowerBound,
          maxLagMs: spec.maxLagMs,
          passed: lagMs <= spec.maxLagMs,
          events: e.events,
        });
        e.events = 0;
      }
    }
    return out.sort((a, b) => (a.view + a.scope < b.view + b.scope ? -1 : 1));
  }

  /** The entry of (view, scope), created owned at `newest` if absent; undefined when full of owned ones. */
  private entry(view: string, scope: string, newest: number): Entry | undefined {
    let entries = this.scopes.get(scope);
    const found = entries?.get(view);
    if (found !== undefined) return found;
    if (this.size >= MAX_FRESHNESS_ENTRIES && !this.dropOneNotOwned()) return undefined;
    if (entries === undefined) {
      entries = new Map();
      this.scopes.set(scope, entries);
    }
    const entry: Entry = { view, scope, newest, assignedAt: null, owned: true, events: 0 };
    entries.set(view, entry);
    this.size++;
    return entry;
  }

  /** Makes room by forgetting a revoked partition's entry (only when full); O(1). */
  private dropOneNotOwned(): boolean {
    const e = this.notOwned.values().next().value;
    if (e === undefined) return false;
    this.notOwned.delete(e);
    const entries = this.scopes.get(e.scope)!;
    entries.delete(e.view);
    if (entries.size === 0) this.scopes.delete(e.scope);
    this.size--;
    return true;
  }
}
