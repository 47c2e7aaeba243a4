const UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

const DURATION = /^(\d{1,9})(ms|s|m|h|d|w)$/;

/** Parses `500ms`, `30s`, `10m`, `1h`, `1d`, `2w` into milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (match === null) return undefined;
  const unit = UNITS[match[2]!];
  if (unit === undefined) return undefined;
  return Number(match[1]) * unit;
}

/** The shortest exact spelling of a duration (`3600000` → `1h`), used for default aggregate names. */
export function formatDuration(ms: number): string {
  for (const unit of ['w', 'd', 'h', 'm', 's'] as const) {
    const size = UNITS[unit]!;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
