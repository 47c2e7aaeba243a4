/**
 * What the reference store last answered about a (model, version) pair: its latest reference id,
 * or undefined when it has no reference; `at` is when that was read.
 */
interface Answer {
  readonly referenceId: string | undefined;
  readonly at: number;
}

/** Bounds and trust of a `ReferenceCatalog`. */
export interface ReferenceCatalogLimits {
  /** Answers kept at most (least recently used dropped first; those of the batch held are kept anyway). */
  readonly maxEntries: number;
  /** How long "no reference" is trusted: a pair named again after it is asked again. */
  readonly absentTtlMs: number;
  /** How long a reference id is trusted: a re-stored or deleted reference is seen within it. */
  readonly presentTtlMs: number;
}

/**
 * Which (model, version) pairs have a reference, for the pairs a monitor actually sees: the
 * store's answers for pairs asked about, each trusted for a while (a present one for
 * `presentTtlMs`, an absent one for `absentTtlMs`), at most `maxEntries` of them (least recently
 * used dropped; a dropped pair is simply asked again). The answers a batch relies on are held
 * (`hold`) until the next batch's, whatever the bound, so that a look-up in the middle of a batch
 * never finds its pair forgotten. Keys are the caller's (one string per pair).
 *
 * It replaces a catalog of every pair ever stored, read whole every minute: one row per trained
 * version, kept for good, so memory and the read grew with every retrain (~210 B a pair: 100,000
 * stored references, 24 MB held and 41 MB at a refresh).
 */
export class ReferenceCatalog {
  /** In least-recently-used order. */
  private readonly answers = new Map<string, Answer>();
  /** The pairs of the batch held (`hold`) and their answers (none yet: undefined): kept even when the LRU drops them. */
  private held = new Map<string, Answer | undefined>();

  constructor(private readonly limits: ReferenceCatalogLimits) {
    if (!(limits.maxEntries >= 1)) throw new RangeError('ReferenceCatalog: maxEntries must be at least 1');
  }

  /** Answers held in memory (the LRU's and those of the batch held only). */
  get size(): number {
    let n = this.answers.size;
    for (const [key, a] of this.held) if (a !== undefined && !this.answers.has(key)) n++;
    return n;
  }

  private answer(key: string): Answer | undefined {
    return this.held.get(key) ?? this.answers.get(key);
  }

  /** Whether the store said the pair has a reference (the latest answer, however old). */
  has(key: string): boolean {
    return this.answer(key)?.referenceId !== undefined;
  }

  /** The pair's latest reference id as last answered, undefined when absent or never asked. */
  referenceId(key: string): string | undefined {
    return this.answer(key)?.referenceId;
  }

  /** Whether the pair must be asked at `now`: never answered (or dropped), or its answer too old to trust. */
  stale(key: string, now: number): boolean {
    const a = this.answer(key);
    if (a === undefined) return true;
    return now - a.at >= (a.referenceId === undefined ? this.limits.absentTtlMs : this.limits.presentTtlMs);
  }

  /** The store's answer for the pair, read at `at`: its latest reference id, or undefined for none. */
  record(key: string, referenceId: string | undefined, at: number): void {
    const a: Answer = { referenceId, at };
    this.answers.delete(key);
    this.answers.set(key, a);
    if (this.held.has(key)) this.held.set(key, a);
    while (this.answers.size > this.limits.maxEntries) {
      this.answers.delete(this.answers.keys().next().value as string);
    }
  }

  /**
   * Holds the pairs `keys` until the next `hold`: their answers, those known now and those recorded
   * meanwhile, are kept whatever the LRU drops (made the most recently used). The previous batch's
   * are released.
   */
  hold(keys: Iterable<string>): void {
    const held = new Map<string, Answer | undefined>();
    for (const key of keys) {
      const a = this.answer(key);
      held.set(key, a);
      if (a === undefined) continue;
      this.answers.delete(key);
      this.answers.set(key, a);
    }
    this.held = held;
  }
}
