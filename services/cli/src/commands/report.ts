import { realpathSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ConfigError, DriftlineError, errorLine, parseEnv, printable } from '@driftline/core';
import { realizedRuleEnvShape } from '@driftline/performance';
import { modelCardFileName, modelCardVersions, renderModelCard, renderReport } from '@driftline/report';
import type { Warehouse } from '@driftline/warehouse';
import { clickhouseEnvShape, openWarehouse, toClickHouseConfig } from '@driftline/warehouse';
import { parseCommandArgs } from '../args.js';
import { describeError, EXIT } from '../describe-error.js';
import { outputFile, writeOutput, writeRegularFile } from '../output-file.js';
import { parseTime } from '../time-options.js';
import { withWarehouse } from '../with-warehouse.js';
import { checkEnvNames } from './env-names.js';
import { jsonLine } from './json-line.js';

export const reportUsage = `usage: driftline report --model M [--from T] [--to T] [--out report.html]

Writes one self-contained HTML page (inline SVG, no network) for model M from ClickHouse:
drift over time (PSI, KS), feature distributions (reference vs current), prediction drift,
performance and label coverage per version, retrain decisions, model versions and their stage
timeline (the latest 1,000 events). First the model cards of at most 50 versions it names
(production and charted versions first, then those of the latest events) are written beside it
(model-card-<model>-<version>.html, regular files only: never through a symbolic link, nor into a
FIFO or device), then the page, which links the cards written; a card that cannot be written is
one error line, the others and the page are still written, and the command exits non-zero. No
cards when FILE is not a regular file (/dev/stdout, a pipe): then only the page is written.
Status lines, notes of what was left out and progress go to stderr. A model with no data in the
range (or a mistyped one) is a page that says so and a note naming the models that have drift
windows, exit 0; model-card exits 3 for a version with nothing recorded.
T is an ISO-8601 time, UTC unless an offset is given (2025-01-31, 2025-01-31T12:00,
2025-01-31T12:00+01:00), integer epoch milliseconds from 2000 to 2100 (not seconds), or a duration
before now (30m, 6h, 7d). Defaults: --to now, --from 7d before --to, --out report.html.
ClickHouse comes from DRIFTLINE_CLICKHOUSE_URL, or the embedded engine at DRIFTLINE_CLICKHOUSE_PATH;
the database is DRIFTLINE_CLICKHOUSE_DATABASE. Nothing is created: a database, or an engine
directory, that holds no warehouse is a configuration error (exit 78). A window's current
performance is its realized value once the label-joiner's alerts judge it (label coverage at least
DRIFTLINE_JOINER_REALIZED_COVERAGE, default 0.5, with DRIFTLINE_JOINER_ALERT_MIN_SAMPLES valid
labels, default 100), its CBPE estimate before: run it with the joiner's values of these two.

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

interface CardPage {
  readonly file: string;
  readonly html: string;
}

/**
 * The model cards of `versions` (modelCardVersions: bounded), rendered; a version with nothing
 * recorded gets none. Read and written before the page, which links the ones written.
 */
async function readModelCards(
  warehouse: Warehouse,
  model: string,
  versions: readonly string[],
  now: number,
): Promise<Map<string, CardPage>> {
  const cards = new Map<string, CardPage>();
  for (const [i, version] of versions.entries()) {
    // A line per ten cards: each is about seven queries.
    if (i % 10 === 0)
      process.stderr.write(
        `note: reading model cards ${i + 1}-${Math.min(i + 10, versions.length)} of ${versions.length}\n`,
      );
    try {
      const card = await warehouse.modelCard(model, version, now);
      cards.set(version, { file: modelCardFileName(model, version), html: renderModelCard(card) });
    } catch (error) {
      if (!(error instanceof DriftlineError && error.code === 'NOT_FOUND')) throw error;
    }
  }
  return cards;
}

/**
 * Writes the cards (before the page, which links those written): a card refused is one error line
 * on stderr, the others still written. Returns the versions written and the exit code of the first
 * refusal (0 when none).
 */
function writeCards(dir: string, cards: ReadonlyMap<string, CardPage>): { written: Map<string, string>; code: number } {
  const written = new Map<string, string>();
  let code: number = EXIT.ok;
  for (const [version, c] of cards) {
    try {
      writeRegularFile('--out', 'the model card', join(dir, c.file), c.html);
      written.set(version, c.file);
    } catch (error) {
      const described = describeError(error, 'driftline report --help');
      process.stderr.write(errorLine(described.line));
      if (code === EXIT.ok) code = described.code;
    }
  }
  return { written, code };
}

/** Resolves once stdout has taken `text`: false when the write failed (a full disk, a closed pipe). */
function writeStdout(text: string): Promise<boolean> {
  return new Promise((done) => process.stdout.write(text, (error) => done(error === undefined || error === null)));
}

/** `driftline report`: the drift report as one HTML file. */
export async function reportCommand(args: readonly string[]): Promise<number> {
  const { values } = parseCommandArgs(args, reportOptions);
  if (values.help) {
    process.stdout.write(reportUsage);
    return 0;
  }
  const { model } = values;
  if (model === undefined || model === '') throw new ConfigError('--model', 'is required');
  const now = Date.now();
  const to = values.to === undefined ? now : parseTime('to', values.to, now);
  const from = values.from === undefined ? to - 7 * 86_400_000 : parseTime('from', values.from, now);
  if (!(from < to)) throw new ConfigError('--from', 'must be before --to');
  // Checked before any query or file: a wrong --out writes nothing.
  const out = outputFile('--out', values.out ?? 'report.html');
  const cards = cardDirectory(out);
  // Reading only: a mistyped database or engine directory is an error, not a new empty one (nothing is
  // created), and a read-only user can report.
  await checkEnvNames();
  const env = parseEnv({ ...clickhouseEnvShape, ...realizedRuleEnvShape });
  return withWarehouse(
    () => openWarehouse(toClickHouseConfig(env), { migrate: false }),
    async (warehouse) => {
      const data = await warehouse.report({ model, from, to }, now);
      const chosen = modelCardVersions(data);
      const cardPages =
        cards === undefined
          ? new Map<string, CardPage>()
          : await readModelCards(warehouse, data.model, chosen.versions, now);
      // The cards first: the page links only those written (a card refused was a dead link).
      const { written: modelCards, code } =
        cards === undefined ? { written: new Map<string, string>(), code: EXIT.ok } : writeCards(cards, cardPages);
      const cardNotes =
        cards !== undefined && chosen.named > chosen.versions.length
          ? [
              `model cards for ${chosen.versions.length} of the ${chosen.named} versions the page names (the production and charted versions, then those of the latest events; \`driftline model-card\` writes any other)`,
            ]
          : [];
      // The page says so under its timeline table.
      const events = data.timelineTotals?.events ?? data.retrain.length;
      const cliNotes = [
        ...(events > data.retrain.length
          ? [`the timeline lists the latest ${data.retrain.length} of ${events} events (decisions, versions, stages)`]
          : []),
        ...cardNotes,
      ];
      const page = renderReport(data, {
        modelCards,
        notes: cardNotes,
        realizedCoverage: env.DRIFTLINE_JOINER_REALIZED_COVERAGE,
        alertMinSamples: env.DRIFTLINE_JOINER_ALERT_MIN_SAMPLES,
      });
      // Through the stream, not the path: opening /dev/stdout fails (ENXIO) when stdout is a socket,
      // as it is under Node's child_process and many supervisors.
      if (STDOUT.has(out)) {
        // The summary below says the page was written: not before stdout took it. A failed write is
        // reported once, at exit (main.ts), so nothing is said here.
        if (!(await writeStdout(page))) return code;
      } else writeOutput('--out', out, page);
      // stderr: --out may be /dev/stdout, and nothing may follow the page there.
      for (const note of [...(data.notes ?? []), ...cliNotes]) process.stderr.write(`note: ${printable(note)}\n`);
      if (cards === undefined) process.stderr.write(`note: ${out} is not a regular file: no model cards written\n`);
      process.stderr.write(
        jsonLine(
          {
            report: out,
            model,
            drift_rows: data.drift.length,
            distributions: data.distributions.length,
            performance_rows: data.performance.length,
            retrain_events: data.retrain.length,
            model_cards: modelCards.size,
          },
          process.stderr.isTTY === true,
        ),
      );
      return code;
    },
  );
}
