import { ConfigError, DURATION_HINT, parseDurationMs } from '@driftline/core';

/** The range of an epoch-milliseconds --from/--to: 2000-01-01 to 2100-01-01 (UTC). */
const EPOCH_MS_RANGE = [Date.UTC(2000, 0, 1), Date.UTC(2100, 0, 1)] as const;

/** The unit a number of digits suggests, for an epoch outside {@link EPOCH_MS_RANGE}. */
const UNIT_BY_DIGITS: Readonly<Record<number, string>> = { 10: 'seconds', 16: 'microseconds', 19: 'nanoseconds' };

/** An epoch in milliseconds between 2000 and 2100; anything else (seconds, µs, ns …) is a usage error. */
function epochMs(name: string, value: string): number {
  const ms = Number(value);
  if (ms >= EPOCH_MS_RANGE[0] && ms <= EPOCH_MS_RANGE[1]) return ms;
  const unit = UNIT_BY_DIGITS[value.replace(/^0+/, '').length];
  const hint = unit === undefined ? '' : `, which looks like ${unit}`;
  throw new ConfigError(
    `--${name}`,
    `epoch milliseconds must be from ${EPOCH_MS_RANGE[0]} (2000-01-01) to ${EPOCH_MS_RANGE[1]} (2100-01-01) (got ${value}${hint})`,
  );
}

/**
 * Parses --from/--to: ISO time, integer epoch ms (5 digits or more; 2000 to 2100), or a duration
 * (libs/core's grammar) before `now`.
 */
export function parseTime(name: string, value: string, now: number): number {
  // Bare digits: a year (4 digits, ISO) or epoch ms, never config's bare-ms duration.
  if (/^\d{5,}$/.test(value)) return epochMs(name, value);
  const duration = /^\d+$/.test(value) ? undefined : parseDurationMs(value);
  if (duration !== undefined) return now - duration;
  // ISO 8601 only: V8's Date.parse is lenient, and read `--from 7` (a forgotten `d`) as
  // 2001-07-01, so the report was silently built over the wrong range.
  const iso = ISO_TIME.exec(value);
  // V8 rolls a day past the month's end over (2025-02-30 was 2025-03-02): refused instead.
  const calendar =
    iso?.[2] === undefined || iso[3] === undefined || Number(iso[3]) <= daysIn(Number(iso[1]), Number(iso[2]));
  // A time without an offset is UTC, like a date alone and everything else here: Date.parse read
  // 2025-01-31T12:00 in the machine's zone. With the Z, no string depends on the local zone.
  const utc = iso?.[4] !== undefined && iso[5] === undefined ? `${value}Z` : value;
  const ms = iso !== null && calendar ? Date.parse(utc.toUpperCase()) : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new ConfigError(
      `--${name}`,
      `must be an ISO time (2025-01-30, 2025-01-30T12:00Z), epoch milliseconds or ${DURATION_HINT} (got ${JSON.stringify(value)})`,
    );
  }
  if (ms < EPOCH_MS_RANGE[0] || ms > EPOCH_MS_RANGE[1]) {
    throw new ConfigError(`--${name}`, `must be from 2000-01-01 to 2100-01-01 (got ${JSON.stringify(value)})`);
  }
  return ms;
}

/**
 * YYYY, YYYY-MM, YYYY-MM-DD, then optionally THH:MM[:SS[.fraction]] (group 4) and Z or ±HH[:]MM
 * (group 5; RFC 3339: t and z too).
 */
const ISO_TIME =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)(Z|[+-]\d{2}:?\d{2})?)?)?)?$/i;

/** Days in month `month` (1–12) of `year`; 0 for a month out of range. */
function daysIn(year: number, month: number): number {
  return month < 1 || month > 12 ? 0 : new Date(Date.UTC(year, month, 0)).getUTCDate();
}
