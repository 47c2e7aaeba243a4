import { realpathSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ConfigError, DriftlineError, parseEnv, printable } from '@driftline/core';
import { modelCardFileName, type ReportData, renderModelCard, renderReport } from '@driftline/report';
import type { Warehouse } from '@driftline/warehouse';
import { clickhouseEnvShape, openWarehouse, toClickHouseConfig } from '@driftline/warehouse';
import { parseCommandArgs } from '../args.js';
import { outputFile, writeOutput } from '../output-file.js';
import { parseTime } from '../time-options.js';
import { checkEnvNames } from './env-names.js';
import { jsonLine } from './json-line.js';

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
  await checkEnvNames();
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
      jsonLine(
        {
          report: out,
          model: values.model,
          drift_rows: data.drift.length,
          distributions: data.distributions.length,
          performance_rows: data.performance.length,
          retrain_events: data.retrain.length,
          model_cards: modelCards.size,
        },
        process.stderr.isTTY === true,
      ),
    );
    return 0;
  } finally {
    await warehouse.close();
  }
}
