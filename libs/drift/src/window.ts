/** Tumbling event-time windows: [start, start + size), aligned to the epoch. */
export interface WindowSpec {
  /** Window size in ms (> 0). */
  readonly sizeMs: number;
  /** Allowed lateness in ms (>= 0): the watermark trails the largest event time by this much. */
  readonly latenessMs: number;
  /** How far ahead of wall time an event may move the watermark (default WATERMARK_MAX_AHEAD_MS). */
  readonly maxAheadMs?: number;
}

/** Start of the window holding `eventTime` (floor, so negative times work too). */
export function windowStartOf(eventTime: number, sizeMs: number): number {
  return Math.floor(eventTime / sizeMs) * sizeMs;
}

/** A window is closed once the watermark reached its end: end <= watermark. */
export function isClosed(windowStart: number, sizeMs: number, watermark: number): boolean {
  return windowStart + sizeMs <= watermark;
}

/**
 * The window a late event is reported with: the earliest window that is still open at this
 * watermark, i.e. the next one to close. It is always open (its end is past the watermark).
 */
export function nextOpenWindowStart(watermark: number, sizeMs: number): number {
  return windowStartOf(watermark, sizeMs);
}
