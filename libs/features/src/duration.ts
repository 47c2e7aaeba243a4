import { formatDuration, parseDurationMs } from '@driftline/core';

/** Parses `500ms`, `30s`, `10m`, `1h`, `1d`, `2w` into milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  return parseDurationMs(text);
}

export { formatDuration };
