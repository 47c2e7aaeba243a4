import { statSync } from 'node:fs';
import {
  type Column,
  type ColumnDrift,
  columnDistribution,
  DEFAULT_MIN_ROWS,
  DEFAULT_MISSING_THRESHOLD,
  datasetDrift,
  floatColumnsAtWidth,
  quotedName,
  suggestedOption,
  timeColumnsAsNumbers,
} from '@driftline/batch-drift';
import { ConfigError, DriftlineError, maxOf, printable } from '@driftline/core';
import { parseCommandArgs } from '../args.js';
import { notAnInput, outputFile } from '../output-file.js';
import {
  checkIgnoredNames,
  type ReadOptions,
  tableArgOptions,
  tableOptionsFrom,
  tableOptionsUsage,
} from '../table-options.js';
import { jsonLine } from './json-line.js';

export const driftUsage = `usage: driftline drift --reference REF --current CUR [options]

Compares every column of two tables: numeric columns by PSI, KS (statistic, p-value), Wasserstein,
Jensen-Shannon, missing rate and out-of-range share; categorical ones by PSI, chi-square,
Jensen-Shannon and missing rate. A column is drifted when a KS / chi-square p-value < --alpha,
when PSI >= --psi-threshold and both sides have --min-rows present values, or when its missing
share rises by --missing-threshold or more and a two-proportion test agrees (p < --alpha). Prints a
table (missing shares as reference→current) or, with --json, one JSON object per column on stdout.
Exit code 0 whether or not drift is found.

tables (both sides are read the same way):
${tableOptionsUsage}
  Both tables must have the same columns (after --columns/--ignore): a column missing from one
  side is an error naming it.

statistics:
  --bins N               PSI / Jensen-Shannon bins (default 10, quantile binning)
  --binning quantile|evidently
                         evidently reproduces Evidently's PSI exactly and, like Evidently, ignores
                         --bins (numeric: Sturges equal-width bins over both samples; few distinct
                         values and strings: one bin per value)
  --psi-threshold X      PSI at or above X is drift (default 0.2)
  --alpha P              a KS / chi-square p-value below P is drift (default 0.05)
  --min-rows N           fewest present (non-missing) values a column needs on each side for PSI
                         to decide (default 100; on fewer PSI is noise, and only the tests with a
                         p-value decide; 0: PSI always decides). Such columns are marked * in the
                         table, small_sample in --json, and named in a note on stderr;
                         --stattest evidently keeps Evidently's verdict
  --missing-threshold X  a current missing share X or more above the reference's (absolute,
                         default 0.1) is drift by "missing" when a two-proportion test agrees
                         (p < --alpha); 1: only a column with every current cell missing, which
                         is always drifted by "missing"
  --stattest driftline|evidently
                         who decides "drifted": driftline's tests above (default), or evidently:
                         per column the test, threshold and binning of Evidently's DataDriftPreset
                         (by type, size and distinct values: KS / chi-square / z-test up to 1000
                         reference rows, Wasserstein normed / Jensen-Shannon above; dataset drift
                         when half the columns drift); the statistics above are printed either way

output:
  --json                 one JSON object per column, one per line
  --html FILE            also write a self-contained HTML report (statistics and distributions;
                         a wide table: the 10,000 most drifted columns listed, 500 charted)
  --progress             progress on stderr (default: only on a terminal, for inputs of 32 MiB or more)
  --debug                stack traces for errors
  --help                 this help
`;

/** A decimal number (`10`, `0.05`, `5e-2`): `Number` also reads `0x10`, `0b1` and `0o7` (16, 1, 7). */
const DECIMAL = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;

function number(name: string, value: string | undefined, fallback: number | undefined): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!DECIMAL.test(value) || !Number.isFinite(n)) {
    throw new ConfigError(`--${name}`, `must be a number (got ${JSON.stringify(value)})`);
  }
  return n;
}

function format(n: number | undefined, digits = 4): string {
  if (n === undefined) return '-';
  if (Number.isNaN(n)) return 'nan';
  return Math.abs(n) > 0 && Math.abs(n) < 1e-4 ? n.toExponential(2) : n.toFixed(digits);
}

/**
 * `yes (psi+ks)`; with --stattest evidently the test and its score: `yes (wasserstein 0.2456)`;
 * ` *` when a side had fewer than --min-rows present values (PSI did not decide).
 */
function verdict(r: ColumnDrift): string {
  const by = r.stattest === undefined ? r.drifted_by.join('+') : `${r.stattest} ${format(r.drift_score)}`;
  const said = r.drifted ? `yes (${by})` : r.stattest === undefined ? 'no' : `no (${by})`;
  return r.small_sample ? `${said} *` : said;
}

/** A share as a compact percentage: `0%`, `0.4%`, `12%`, `<0.1%`. */
function percent(share: number): string {
  if (Number.isNaN(share)) return 'nan';
  const p = share * 100;
  if (p === 0 || p >= 10) return `${Math.round(p)}%`;
  return p < 0.1 ? '<0.1%' : `${Number(p.toFixed(1))}%`;
}

function table(rows: readonly ColumnDrift[], smallNote: string): string {
  const header = ['column', 'kind', 'psi', 'ks_D', 'ks_p', 'chi2_p', 'wasserstein', 'js', 'missing', 'drifted'];
  const lines = rows.map((r) => [
    printable(r.column), // a header from the file: never a terminal command, never two lines
    r.kind,
    format(r.psi),
    format(r.ks_statistic),
    format(r.ks_p_value),
    format(r.chi2_p_value),
    format(r.wasserstein),
    format(r.jensen_shannon),
    `${percent(r.missing_rate_reference)}→${percent(r.missing_rate_current)}`,
    verdict(r),
  ]);
  const widths = header.map((h, i) =>
    maxOf(
      lines.map((l) => l[i]!.length),
      h.length,
    ),
  );
  const render = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  const drifted = rows.filter((r) => r.drifted).length;
  const summary = `${drifted} of ${rows.length} columns drifted`;
  return [
    render(header),
    ...lines.map(render),
    '',
    summary,
    ...(rows.some((r) => r.small_sample) ? [smallNote] : []),
  ].join('\n');
}

/** Columns listed by name in the small-sample note; the rest are counted. */
const NOTE_COLUMNS = 5;

/**
 * The one-line note (stderr) naming the columns with fewer than --min-rows present values on a
 * side, with their counts; undefined when there are none.
 */
function smallSampleNote(rows: readonly ColumnDrift[], minRows: number, evidently: boolean): string | undefined {
  const small = rows.filter((r) => r.small_sample);
  if (small.length === 0) return undefined;
  const named = small
    .slice(0, NOTE_COLUMNS)
    .map((r) => `${printable(quotedName(r.column))} (reference ${r.reference_size}, current ${r.current_size})`);
  const more = small.length > NOTE_COLUMNS ? ` and ${small.length - NOTE_COLUMNS} more` : '';
  const what = evidently
    ? "Evidently's verdict is kept"
    : 'PSI is left out of the verdict there (the tests with a p-value decide)';
  const columns = small.length === 1 ? '1 column has' : `${small.length} columns have`;
  return `note: ${columns} fewer than ${minRows} present values on a side (--min-rows): ${named.join(', ')}${more} — ${what}\n`;
}

/** Both tables must have the same columns; a table without rows has nothing to compare. */
function checkSides(
  reference: readonly Column[],
  current: readonly Column[],
  paths: readonly [string, string],
  selected: ReadOptions,
): void {
  const sides = [reference, current] as const;
  for (const [i, side] of sides.entries()) {
    const other = new Set(sides[1 - i]!.map((c) => c.name));
    const missing = side.find((c) => !other.has(c.name));
    if (missing !== undefined) {
      throw new DriftlineError(
        'BAD_REQUEST',
        `${paths[1 - i]}: no column ${quotedName(missing.name)} (it is in ${paths[i]}) — add it, or leave it out with ${suggestedOption('--ignore', missing.name)}`,
      );
    }
    if (side.length > 0 && side[0]!.values.length === 0) {
      throw new DriftlineError('BAD_REQUEST', `${paths[i]}: no data rows — both tables need at least one row`);
    }
  }
  if (reference.length === 0) {
    // The options left every column out: a usage error (2), like a name given to two of them.
    const option =
      selected.ignore !== undefined ? '--ignore' : selected.columns !== undefined ? '--columns' : undefined;
    if (option !== undefined)
      throw new ConfigError(option, 'leaves no column to compare — check --columns and --ignore');
    throw new DriftlineError('BAD_REQUEST', `${paths[0]}: no column to compare — check the file`);
  }
}

function inputBytes(paths: readonly string[]): number {
  let total = 0;
  for (const p of paths) {
    try {
      total += statSync(p).size;
    } catch {
      // Reading the file reports it.
    }
  }
  return total;
}

/** The options of `driftline drift` (every one is in `driftUsage`: test/cli-surface.test.ts). */
export const driftOptions = {
  reference: { type: 'string' },
  current: { type: 'string' },
  bins: { type: 'string' },
  binning: { type: 'string' },
  'psi-threshold': { type: 'string' },
  alpha: { type: 'string' },
  'min-rows': { type: 'string' },
  'missing-threshold': { type: 'string' },
  stattest: { type: 'string' },
  json: { type: 'boolean', default: false },
  html: { type: 'string' },
  progress: { type: 'boolean', default: false },
  ...tableArgOptions,
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** `driftline drift`: the streaming monitor's statistics, offline, for a batch. */
export async function driftCommand(args: readonly string[]): Promise<number> {
  const { values } = parseCommandArgs(args, driftOptions);
  if (values.help) {
    process.stdout.write(driftUsage);
    return 0;
  }
  if (values.reference === undefined) throw new ConfigError('--reference', 'is required (the reference table)');
  if (values.current === undefined) throw new ConfigError('--current', 'is required (the current table)');
  const binning = values.binning ?? 'quantile';
  if (binning !== 'quantile' && binning !== 'evidently') {
    throw new ConfigError('--binning', `must be quantile or evidently (got ${JSON.stringify(binning)})`);
  }
  const bins = number('bins', values.bins, undefined);
  if (bins !== undefined && (!Number.isInteger(bins) || bins < 1 || bins > 10_000))
    throw new ConfigError('--bins', `must be an integer from 1 to 10000 (got ${JSON.stringify(values.bins)})`);
  const psiThreshold = number('psi-threshold', values['psi-threshold'], 0.2)!;
  if (!(psiThreshold > 0)) throw new ConfigError('--psi-threshold', `must be above 0 (got ${psiThreshold})`);
  const alpha = number('alpha', values.alpha, 0.05)!;
  if (!(alpha > 0 && alpha < 1)) throw new ConfigError('--alpha', `must be between 0 and 1 (got ${alpha})`);
  const minRows = number('min-rows', values['min-rows'], DEFAULT_MIN_ROWS)!;
  if (!Number.isInteger(minRows) || minRows < 0 || minRows > 1_000_000_000)
    throw new ConfigError(
      '--min-rows',
      `must be an integer from 0 to 1000000000 (got ${JSON.stringify(values['min-rows'])})`,
    );
  const missingThreshold = number('missing-threshold', values['missing-threshold'], DEFAULT_MISSING_THRESHOLD)!;
  if (!(missingThreshold >= 0 && missingThreshold <= 1))
    throw new ConfigError('--missing-threshold', `must be from 0 to 1 (got ${missingThreshold})`);
  // Checked before any read: a wrong --html writes nothing, and never overwrites an input.
  const html = values.html === undefined ? undefined : outputFile('--html', values.html);
  if (html !== undefined) notAnInput('--html', html, { '--reference': values.reference, '--current': values.current });
  const stattest = values.stattest ?? 'driftline';
  if (stattest !== 'driftline' && stattest !== 'evidently') {
    throw new ConfigError('--stattest', `must be driftline or evidently (got ${JSON.stringify(stattest)})`);
  }
  const readOptions: ReadOptions = tableOptionsFrom(values);
  const paths = [values.reference, values.current] as const;
  const progress = (await import('../progress.js')).progress({
    forced: values.progress,
    inputBytes: inputBytes(paths),
  });
  // Loaded once the arguments are valid: the readers (apache-arrow, hyparquet) load on demand.
  const { readTableAndHeader } = await import('../tables.js');
  progress.phase(`reading ${values.reference}`);
  const referenceTable = await readTableAndHeader(values.reference, readOptions);
  progress.phase(`reading ${values.current}`);
  const currentTable = await readTableAndHeader(values.current, readOptions);
  // An --ignore name neither table has is a typo (the column it meant stays in); in one of them, fine.
  checkIgnoredNames('--ignore', readOptions.ignore, [
    { path: values.reference, header: referenceTable.header },
    { path: values.current, header: currentTable.header },
  ]);
  const referenceRead = referenceTable.columns;
  const currentRead = currentTable.columns;
  checkSides(referenceRead, currentRead, paths, readOptions);
  // A timestamp/date/time column (Arrow, Parquet) against its ISO-8601 text (CSV): the same numbers;
  // a float32/16 column and its pair at that width, each value at its shortest digits, whatever the
  // other side's spelling (CSV digits, float64 upcast): the same numbers. For the statistics and the
  // page's distributions alike.
  const [reference, current] = floatColumnsAtWidth(...timeColumnsAsNumbers(referenceRead, currentRead));
  progress.phase(`comparing ${reference.length} columns`);
  const { tableDriftInParallel } = await import('../parallel-drift.js');
  const rows = await tableDriftInParallel(reference, current, {
    binning,
    ...(bins === undefined ? {} : { bins }),
    psiThreshold,
    alpha,
    minRows,
    missingThreshold,
    stattest,
  });
  const note = smallSampleNote(rows, minRows, stattest === 'evidently');
  // The results first: a page that cannot be written (a full disk) loses only the page.
  if (values.json) {
    const terminal = process.stdout.isTTY === true;
    process.stdout.write(rows.map((r) => jsonLine(r, terminal)).join(''));
  } else {
    const legend =
      stattest === 'evidently'
        ? `* fewer than ${minRows} present values on a side (--min-rows); Evidently's verdict as it is`
        : `* fewer than ${minRows} present values on a side (--min-rows): PSI did not decide`;
    process.stdout.write(`${table(rows, legend)}\n`);
    if (stattest === 'evidently') {
      const verdict = datasetDrift(rows);
      process.stdout.write(`dataset drift (Evidently: drifted share ≥ 0.5): ${verdict.datasetDrift ? 'yes' : 'no'}\n`);
    }
  }
  if (note !== undefined) process.stderr.write(note);
  if (html !== undefined) {
    progress.phase(`writing ${html}`);
    const { writeTableReport } = await import('../html-report.js');
    const { chartedColumns } = await import('@driftline/report');
    // Distributions of the charted columns only (the page charts the most drifted), each current
    // column found by name once: a find per column was quadratic (100,000 columns: 5·10^9 compares).
    const currentByName = new Map(current.map((c) => [c.name, c]));
    const charted = new Set(chartedColumns(rows));
    writeTableReport(html, {
      reference: { name: values.reference, rows: reference[0]!.values.length },
      current: { name: values.current, rows: current[0]!.values.length },
      generatedAt: Date.now(),
      rule:
        stattest === 'evidently'
          ? "drift by Evidently's default test of each column"
          : `drift when p < ${alpha}, PSI ≥ ${psiThreshold} (with ${minRows} values a side), or the missing share rises ${missingThreshold} or more (p < ${alpha})`,
      columns: rows,
      distributions: reference
        .filter((c) => charted.has(c.name))
        .map((c) => columnDistribution(c, currentByName.get(c.name)!, bins ?? 10)),
    });
  }
  progress.done();
  return 0;
}
