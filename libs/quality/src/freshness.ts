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
  /** Newest event time seen on the scope for the view so far. */
  readonly newestEventTime: number;
  /** windowEnd − newestEventTime (≥ 0 unless events come from the future). */
  readonly lagMs: number;
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
  events: number;
}

/**
 * Time since the last event per feature view, per source partition: O(1) per event (a max and a
 * count), one row per (view, partition) per window. Pure: the caller passes the clock at window
 * ends. Lag is measured against processing time on purpose — "no event for 20 minutes" is a fact
 * about now, not about event time. The newest time seen is instance memory: after a restart or a
 * rebalance a partition reports once it has seen an event again (a silent partition after a restart
 * goes unreported until then; its last row in ClickHouse shows how old it was).
 */
export class FreshnessTracker {
  private readonly specs: ReadonlyMap<string, FreshnessSpec>;
  private readonly entries = new Map<string, Entry>();

  constructor(specs: readonly FreshnessSpec[]) {
    this.specs = new Map(specs.map((s) => [s.view, s]));
  }

  get enabled(): boolean {
    return this.specs.size > 0;
  }

  observe(view: string, scope: string, eventTime: number): void {
    if (!this.specs.has(view)) return;
    const key = `${view}\u0000${scope}`;
    let entry = this.entries.get(key);
    if (entry === undefined) {
      if (this.entries.size >= MAX_FRESHNESS_ENTRIES) return;
      entry = { view, scope, newest: eventTime, events: 0 };
      this.entries.set(key, entry);
    }
    if (eventTime > entry.newest) entry.newest = eventTime;
    entry.events++;
  }

  /** One result per (view, scope) seen, then the window's event counts start over. */
  evaluate(windowStart: number, windowEnd: number): FreshnessResult[] {
    const out: FreshnessResult[] = [];
    for (const e of this.entries.values()) {
      const spec = this.specs.get(e.view)!;
      const lagMs = windowEnd - e.newest;
      out.push({
        view: e.view,
        scope: e.scope,
        windowStart,
        windowEnd,
        newestEventTime: e.newest,
        lagMs,
        maxLagMs: spec.maxLagMs,
        passed: lagMs <= spec.maxLagMs,
        events: e.events,
      });
      e.events = 0;
    }
    return out.sort((a, b) => (a.view + a.scope < b.view + b.scope ? -1 : 1));
  }

  /** A revoked partition is reported by its new owner. */
  forget(scope: string): void {
    for (const [key, e] of this.entries) if (e.scope === scope) this.entries.delete(key);
  }
}
