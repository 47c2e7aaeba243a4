const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** Matched against the trimmed text: `\s*` at both ends backtracked quadratically on a long run of spaces. */
const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?$/;

/** The one duration grammar of driftline's config: `500ms`, `30s`, `5m`, `1.5h`, `7d`, `2w`, or bare milliseconds. */
export const DURATION_HINT = 'a duration such as 500ms, 30s, 5m, 1h, 7d or 2w';

/**
 * Parses a duration into whole milliseconds; undefined when the text is not a duration or does
 * not come to a whole number of milliseconds.
 */
export function parseDurationMs(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (match === null) return undefined;
  const ms = Number(match[1]) * UNIT_MS[match[2] ?? 'ms']!;
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** The shortest exact spelling of a duration (`3600000` → `1h`). */
export function formatDuration(ms: number): string {
  for (const unit of ['w', 'd', 'h', 'm', 's'] as const) {
    const size = UNIT_MS[unit]!;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
