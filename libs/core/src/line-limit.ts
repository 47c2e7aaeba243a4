/**
 * A run of like log lines of which at most one per interval is written, the others counted (pure).
 * The one rule of every rate-limited line: kafkajs' failed connections and the consumer loop's crash
 * lines (libs/kafka), the label joiner's invalid labels, expired-before-label labels and skipped
 * copies, the codec's failed id confirmations (per subject), the retrain trigger's data-quality hold
 * warning (per model).
 */
export interface LineLimit {
  /** When a line was last written (-Infinity: none yet, so the next one is). */
  loggedAt: number;
  /** What was left out since (lines, or the weights they were given). */
  unlogged: number;
}

/** A run with no line written yet: its first line is. */
export function lineLimit(): LineLimit {
  return { loggedAt: Number.NEGATIVE_INFINITY, unlogged: 0 };
}

/**
 * A line at `now` standing for `weight` events (a batch's count; 1 by default): undefined when it is
 * left out (and its weight counted), else what was left out since the last line written (the count
 * starts again: a caller writing "how many since the last line" adds `weight`). A line is written
 * once `intervalMs` or more have passed since the last one.
 *
 * A weight of 0 (nothing new, e.g. a batch without such an event) is written only to flush a count
 * left out: with none left out it is undefined and changes nothing, so it does not take the
 * interval's line from the next event.
 */
export function admitLine(limit: LineLimit, now: number, intervalMs: number, weight = 1): number | undefined {
  if (now - limit.loggedAt < intervalMs || (weight === 0 && limit.unlogged === 0)) {
    limit.unlogged += weight;
    return undefined;
  }
  const leftOut = limit.unlogged;
  limit.loggedAt = now;
  limit.unlogged = 0;
  return leftOut;
}

/** How a {@link keyedLineLimit} limits its lines. */
export interface KeyedLineLimitOptions {
  /** At most one line per key this often. */
  readonly intervalMs: number;
  /**
   * How many keys are remembered: past it, the key whose line was written longest ago is forgotten
   * (its next line is written at once, its count left out lost). Keys from input need a bound;
   * `Infinity` only for keys of the program's own (a codec's subjects).
   */
  readonly maxKeys: number;
}

/** Line limits per key (a model, a subject), bounded: {@link admitLine} for each. */
export interface KeyedLineLimit<K> {
  /** A line for `key` at `now` standing for `weight` events: as {@link admitLine}, for that key. */
  admit(key: K, now: number, weight?: number): number | undefined;
  /** How many keys are remembered. */
  readonly size: number;
}

/** One {@link LineLimit} per key, at most `maxKeys` of them (the least recently written forgotten first). */
export function keyedLineLimit<K>({ intervalMs, maxKeys }: KeyedLineLimitOptions): KeyedLineLimit<K> {
  /** In the order their lines were last written, oldest first. */
  const limits = new Map<K, LineLimit>();
  return {
    admit(key, now, weight = 1) {
      const limit = limits.get(key) ?? lineLimit();
      const leftOut = admitLine(limit, now, intervalMs, weight);
      // Left out: the key is remembered already (its count grew), or it was a flush of nothing.
      if (leftOut === undefined) return undefined;
      limits.delete(key); // re-inserted: the oldest lines are forgotten first
      limits.set(key, limit);
      for (const k of limits.keys()) {
        if (limits.size <= maxKeys) break;
        limits.delete(k);
      }
      return leftOut;
    },
    get size() {
      return limits.size;
    },
  };
}
