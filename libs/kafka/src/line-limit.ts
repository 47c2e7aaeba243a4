/**
 * A run of like log lines of which at most one per interval is written, the others counted (pure):
 * the consumer loop's crash lines, kafkajs' failed connections.
 */
export interface LineLimit {
  /** When a line was last written (-Infinity: none yet, so the next one is). */
  loggedAt: number;
  /** Lines left out since. */
  unlogged: number;
}

/** A run with no line written yet: its first line is. */
export function lineLimit(): LineLimit {
  return { loggedAt: Number.NEGATIVE_INFINITY, unlogged: 0 };
}

/**
 * A line at `now`: undefined when it is left out (and counted), else how many were left out since
 * the last one written (the count starts again).
 */
export function admitLine(limit: LineLimit, now: number, intervalMs: number): number | undefined {
  if (now - limit.loggedAt < intervalMs) {
    limit.unlogged++;
    return undefined;
  }
  const leftOut = limit.unlogged;
  limit.loggedAt = now;
  limit.unlogged = 0;
  return leftOut;
}
