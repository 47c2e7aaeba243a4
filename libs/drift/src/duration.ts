import { ConfigError } from '@driftline/core';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a duration such as `500ms`, `30s`, `5m`, `1h`, `1d` (or a bare number of milliseconds)
 * into milliseconds. `field` names the variable in the error.
 */
export function parseDuration(text: string, field: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!match) throw new ConfigError(field, `expected a duration like 30s, 5m, 1h or 1d (got ${JSON.stringify(text)})`);
  const ms = Number(match[1]) * UNITS[match[2] ?? 'ms']!;
  if (!Number.isFinite(ms) || !Number.isInteger(ms)) {
    throw new ConfigError(field, `must be a whole number of milliseconds (got ${JSON.stringify(text)})`);
  }
  return ms;
}
