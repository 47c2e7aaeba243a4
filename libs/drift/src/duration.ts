import { ConfigError, DURATION_HINT, parseDurationMs } from '@driftline/core';

/** Parses a duration (the grammar of parseDurationMs) into milliseconds; `field` names the variable in the error. */
export function parseDuration(text: string, field: string): number {
  const ms = parseDurationMs(text);
  if (ms === undefined) throw new ConfigError(field, `expected ${DURATION_HINT} (got ${JSON.stringify(text)})`);
  return ms;
}
