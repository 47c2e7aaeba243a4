import type { ReferenceSet } from '@driftline/drift';
import type { ReferenceStore } from '@driftline/warehouse';

const SEP = '\u0000';

/**
 * In-memory view of the reference store for the hot path: `resolve` is synchronous; `ensure`
 * loads what a batch needs before the batch is processed. A version without a profile of its
 * own is measured against the latest version of the model PROMOTED at or before the window start
 * (from models.v1), when one is known.
 */
export class ReferenceCache {
  private readonly byKey = new Map<string, { set: ReferenceSet | undefined; at: number }>();
  private readonly byId = new Map<string, ReferenceSet>();
  private readonly promotions = new Map<string, Array<{ version: string; eventTime: number }>>();

  constructor(
    private readonly store: ReferenceStore,
    private readonly now: () => number = Date.now,
    private readonly negativeTtlMs = 30_000,
  ) {}

  private put(model: string, version: string, set: ReferenceSet | undefined): void {
    this.byKey.set(model + SEP + version, { set, at: this.now() });
    if (set !== undefined) this.byId.set(set.referenceId, set);
  }

  /** Loads every stored reference; a malformed profile fails here, at start-up, naming the field. */
  async preload(): Promise<number> {
    const sets = await this.store.all();
    for (const s of sets) this.put(s.model, s.version, s);
    return sets.length;
  }

  /** Loads the references of (model, version) pairs not known yet (absent ones are re-checked after a while). */
  async ensure(pairs: Iterable<readonly [string, string]>): Promise<void> {
    const now = this.now();
    for (const [model, version] of pairs) {
      const known = this.byKey.get(model + SEP + version);
      if (known !== undefined && (known.set !== undefined || now - known.at < this.negativeTtlMs)) continue;
      this.put(model, version, await this.store.latest(model, version));
    }
  }

  resolve(model: string, version: string, windowStart: number): ReferenceSet | undefined {
    const own = this.byKey.get(model + SEP + version)?.set;
    if (own !== undefined) return own;
    const promoted = this.promotions.get(model);
    if (promoted === undefined) return undefined;
    let best: { version: string; eventTime: number } | undefined;
    for (const p of promoted)
      if (p.eventTime <= windowStart && (best === undefined || p.eventTime >= best.eventTime)) best = p;
    return best === undefined ? undefined : this.byKey.get(model + SEP + best.version)?.set;
  }

  /** A PROMOTED model event: load that version's reference and remember when it took over. */
  async promoted(model: string, version: string, eventTime: number): Promise<ReferenceSet | undefined> {
    const set = await this.store.latest(model, version);
    this.put(model, version, set);
    const list = this.promotions.get(model) ?? [];
    if (!list.some((p) => p.version === version && p.eventTime === eventTime)) list.push({ version, eventTime });
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
