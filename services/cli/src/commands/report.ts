import { realpathSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ConfigError, DriftlineError, DURATION_HINT, parseDurationMs, parseEnv, printable } from '@driftline/core';
import { modelCardFileName, type ReportData, renderModelCard, renderReport } from '@driftline/report';
import type { Warehouse } from '@driftline/warehouse';
import { clickhouseEnvShape, openWarehouse, toClickHouseConfig } from '@driftline/warehouse';
import { parseCommandArgs } from '../args.js';
import { outputFile, writeOutput } from '../output-file.js';

export const reportUsage = `usage: driftline report --model M [--from T] [--to T] [--out report.html]

Writes one self-contained HTML page (inline SVG, no network) for model M from ClickHouse:
drift over time (PSI, KS), feature distributions (reference vs current), prediction drift,
performance and label coverage per version, retrain decisions, model versions and their stage
timeline. The model card of every version in the range is written beside it
(model-card-<model>-<version>.html) and linked from the version timeline, unless FILE is not a
regular file (/dev/stdout, a pipe): then only the page is written. Status lines go to stderr.
T is an ISO-8601 time, UTC unless an offset is given (2025-01-31, 2025-01-31T12:00,
2025-01-31T12:00+01:00), integer epoch milliseconds from 2000 to 2100 (not seconds), or a duration
before now (30m, 6h, 7d). Defaults: --to now, --from 7d before --to, --out report.html.
ClickHouse comes from DRIFTLINE_CLICKHOUSE_URL, or the embedded engine at DRIFTLINE_CLICKHOUSE_PATH;
the database is DRIFTLINE_CLICKHOUSE_DATABASE.

  --model M      the model (required)
  --from T       start of the range (default: 7d before --to)
  --to T         end of the range (default: now)
  --out FILE     where to write the page (default report.html)
  --debug        stack traces for errors
  --help         this help
`;

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

/** The command's options (every one is in its usage: test/cli-surface.test.ts). */
export const reportOptions = {
  model: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  out: { type: 'string', default: 'report.html' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/**
 * The directory model cards go to: beside --out when --out is (or will be) a regular file. Not
 * beside /dev/stdout, /dev/fd/N or a pipe: cards were written into /dev, and with `> file` the
 * descriptor is a regular file, so the path itself is checked first.
 */
function cardDirectory(out: string): string | undefined {
  let dir: string;
  try {
    dir = realpathSync(dirname(out));
  } catch {
    return undefined;
  }
  if (/^\/(dev|proc)(\/|$)/.test(dir)) return undefined;
  try {
    return statSync(out).isFile() ? dir : undefined;
  } catch {
    return dir; // not there yet: written as a regular file
  }
}

/** Paths that name this process's stdout. */
const STDOUT = new Set(['/dev/stdout', '/dev/fd/1', '/proc/self/fd/1']);

/** Writes the card of every version the report names; versions with nothing recorded get no card. */
async function writeModelCards(
  warehouse: Warehouse,
  data: ReportData,
  dir: string,
  now: number,
): Promise<Map<string, string>> {
  const versions = new Set([...data.retrain.map((e) => e.version), ...data.performance.map((p) => p.version)]);
  const written = new Map<string, string>();
  for (const version of [...versions].sort()) {
    try {
      const card = await warehouse.modelCard(data.model, version, now);
      const file = modelCardFileName(data.model, version);
      writeOutput('--out', join(dir, file), renderModelCard(card));
      written.set(version, file);
    } catch (error) {
      if (!(error instanceof DriftlineError && error.code === 'NOT_FOUND')) throw error;
    }
  }
  return written;
}

/** `driftline report`: the drift report as one HTML file. */
export async function reportCommand(args: readonly string[]): Promise<number> {
  const { values } = parseCommandArgs(args, reportOptions);
  if (values.help) {
    process.stdout.write(reportUsage);
    return 0;
  }
  if (values.model === undefined || values.model === '') throw new ConfigError('--model', 'is required');
  const now = Date.now();
  const to = values.to === undefined ? now : parseTime('to', values.to, now);
  const from = values.from === undefined ? to - 7 * 86_400_000 : parseTime('from', values.from, now);
  if (!(from < to)) throw new ConfigError('--from', 'must be before --to');
  // Checked before any query or file: a wrong --out writes nothing.
  const out = outputFile('--out', values.out ?? 'report.html');
  const cards = cardDirectory(out);
  // Reading only: a mistyped database is an error, not a new empty one, and a read-only user can report.
  const warehouse = await openWarehouse(toClickHouseConfig(parseEnv(clickhouseEnvShape)), { migrate: false });
  try {
    const data = await warehouse.report({ model: values.model, from, to }, now);
    const modelCards =
      cards === undefined ? new Map<string, string>() : await writeModelCards(warehouse, data, cards, now);
    const page = renderReport(data, { modelCards });
    // Through the stream, not the path: opening /dev/stdout fails (ENXIO) when stdout is a socket,
    // as it is under Node's child_process and many supervisors.
    if (STDOUT.has(out)) process.stdout.write(page);
    else writeOutput('--out', out, page);
    // stderr: --out may be /dev/stdout, and nothing may follow the page there.
    for (const note of data.notes ?? []) process.stderr.write(`note: ${printable(note)}\n`);
    if (cards === undefined) process.stderr.write(`note: ${out} is not a regular file: no model cards written\n`);
    process.stderr.write(
      `${JSON.stringify({ report: out, model: values.model, drift_rows: data.drift.length, distributions: data.distributions.length, performance_rows: data.performance.length, retrain_events: data.retrain.length, model_cards: modelCards.size })}\n`,
    );
    return 0;
  } finally {
    await warehouse.close();
  }
}
