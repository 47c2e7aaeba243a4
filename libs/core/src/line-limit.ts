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
   * How many keys are remembered. Keys from input need a bound; `Infinity` only for keys of the
   * program's own (a codec's subjects). What a new key does when all are taken is `onFull`'s.
   */
  readonly maxKeys: number;
  /**
   * A new key when `maxKeys` are remembered. `'evict'` (default): the key whose line was written
   * longest ago is forgotten (its next line is written at once, its count left out lost) — with
   * more keys cycling than the bound, every line is written. `'overflow'`: the key written longest
   * ago is forgotten only once its interval has passed (its next line would be written at once
   * anyway; a count it left out moves to the overflow), else the new key's line is left out and
   * counted into one overflow line ({@link KeyedLineLimit.overflow}), at most one per interval:
   * at most `maxKeys` + 1 lines per interval whatever the keys.
   */
  readonly onFull?: 'evict' | 'overflow';
}

/** What {@link KeyedLineLimit.overflow} tells of the lines left out for keys not remembered. */
export interface LineOverflow {
  /** Distinct keys among them, counted up to `maxKeys` (`keysAtLeast`: there were more). */
  readonly keys: number;
  readonly keysAtLeast: boolean;
  /** Their weights (events), and those left out by keys forgotten for them. */
  readonly weight: number;
}

/** Line limits per key (a model, a subject), bounded: {@link admitLine} for each. */
export interface KeyedLineLimit<K> {
  /**
   * A line for `key` at `now` standing for `weight` events: as {@link admitLine}, for that key.
   * With `onFull: 'overflow'`, undefined too for a key that found no room (counted in `overflow`).
   */
  admit(key: K, now: number, weight?: number): number | undefined;
  /**
   * The overflow line due at `now` (`onFull: 'overflow'`): what keys without room left out since
   * the last one, at most once per `intervalMs` (the first at once); undefined when none is due or
   * nothing is left out. Call it after the `admit`s of a batch. Always undefined with `'evict'`.
   */
  overflow(now: number): LineOverflow | undefined;
  /** How many keys are remembered. */
  readonly size: number;
}

/** One {@link LineLimit} per key, at most `maxKeys` of them (`onFull` says what a new key does past it). */
export function keyedLineLimit<K>({ intervalMs, maxKeys, onFull = 'evict' }: KeyedLineLimitOptions): KeyedLineLimit<K> {
  /** In the order their lines were last written, oldest first. */
  const limits = new Map<K, LineLimit>();
  /** The overflow line's limit, and the distinct keys it stands for (at most `maxKeys`). */
  const over = lineLimit();
  const overKeys = new Set<K>();
  let overKeysMore = false;
  const countOver = (key: K, weight: number) => {
    over.unlogged += weight;
    if (overKeys.size < maxKeys) overKeys.add(key);
    else if (!overKeys.has(key)) overKeysMore = true;
  };
  /** Whether a new key finds room: in 'overflow' mode an expired oldest key makes it. */
  const room = (now: number): boolean => {
    if (limits.size < maxKeys) return true;
    for (const [k, oldest] of limits) {
      if (now - oldest.loggedAt < intervalMs) return false;
      // Its next line would have said what it left out: the overflow says it, and counts its key
      // (else the line read "0 more keys" for events of keys named before; a regression review).
      if (oldest.unlogged > 0) countOver(k, oldest.unlogged);
      limits.delete(k);
      return true;
    }
    return maxKeys > 0;
  };
  return {
    admit(key, now, weight = 1) {
      let limit = limits.get(key);
      if (limit === undefined && onFull === 'overflow') {
        if (weight === 0) return undefined; // nothing to say, and no key to make room for
        if (!room(now)) {
          countOver(key, weight);
          return undefined;
        }
      }
      limit ??= lineLimit();
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
    overflow(now) {
      if (over.unlogged === 0 || now - over.loggedAt < intervalMs) return undefined;
      const due: LineOverflow = { keys: overKeys.size, keysAtLeast: overKeysMore, weight: over.unlogged };
      over.loggedAt = now;
      over.unlogged = 0;
      overKeys.clear();
      overKeysMore = false;
      return due;
    },
    get size() {
      return limits.size;
    },
  };
}
