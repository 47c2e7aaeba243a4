import { printable } from '@driftline/core';

/**
 * `value` as one line of JSON for stdout. JSON.stringify escapes only the C0 controls: a C1
 * control (U+009B, the 8-bit CSI) or a bidi override (U+202E) in a CSV header or a name from an
 * event reached the terminal as it is. On a terminal they are written as `\uXXXX` (`printable`),
 * still valid JSON of the same value; a pipe or a file gets the text unchanged.
 */
export function jsonLine(value: unknown, terminal: boolean): string {
  const json = JSON.stringify(value);
  return `${terminal ? printable(json) : json}\n`;
}
