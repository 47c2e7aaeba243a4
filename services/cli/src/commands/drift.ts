import { statSync } from 'node:fs';
import {
  type Column,
  type ColumnDrift,
  columnDistribution,
  datasetDrift,
  quotedName,
  shortName,
} from '@driftline/batch-drift';
import { ConfigError, DriftlineError, maxOf, printable } from '@driftline/core';
import { parseCommandArgs } from '../args.js';
import { notAnInput, outputFile } from '../output-file.js';
import { type ReadOptions, tableArgOptions, tableOptionsFrom, tableOptionsUsage } from '../table-options.js';
import { jsonLine } from './json-line.js';

export const driftUsage = `usage: driftline drift --reference REF --current CUR [options]

Compares every column of two tables: numeric columns by PSI, KS (statistic, p-value), Wasserstein,
Jensen-Shannon, missing rate and out-of-range share; categorical ones by PSI, chi-square,
Jensen-Shannon and missing rate. A column is drifted when PSI >= --psi-threshold or a p-value
< --alpha. Prints a table (or one JSON object per column with --json) on stdout.
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

function number(name: string, value: string | undefined, fallback: number | undefined): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) {
    throw new ConfigError(`--${name}`, `must be a number (got ${JSON.stringify(value)})`);
  }
  return n;
}

function format(n: number | undefined, digits = 4): string {
  if (n === undefined) return '-';
  if (Number.isNaN(n)) return 'nan';
  return Math.abs(n) > 0 && Math.abs(n) < 1e-4 ? n.toExponential(2) : n.toFixed(digits);
}

/** `yes (psi+ks)`; with --stattest evidently the test and its score: `yes (wasserstein 0.2456)`. */
function verdict(r: ColumnDrift): string {
  const by = r.stattest === undefined ? r.drifted_by.join('+') : `${r.stattest} ${format(r.drift_score)}`;
  return r.drifted ? `yes (${by})` : r.stattest === undefined ? 'no' : `no (${by})`;
}

function table(rows: readonly ColumnDrift[]): string {
  const header = ['column', 'kind', 'psi', 'ks_D', 'ks_p', 'chi2_p', 'wasserstein', 'js', 'drifted'];
  const lines = rows.map((r) => [
    printable(r.column), // a header from the file: never a terminal command, never two lines
    r.kind,
    format(r.psi),
    format(r.ks_statistic),
    format(r.ks_p_value),
    format(r.chi2_p_value),
    format(r.wasserstein),
    format(r.jensen_shannon),
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
  return [render(header), ...lines.map(render), '', `${drifted} of ${rows.length} columns drifted`].join('\n');
}

/** Both tables must have the same columns; a table without rows has nothing to compare. */
function checkSides(reference: readonly Column[], current: readonly Column[], paths: readonly [string, string]): void {
  const sides = [reference, current] as const;
  for (const [i, side] of sides.entries()) {
    const other = new Set(sides[1 - i]!.map((c) => c.name));
    const missing = side.find((c) => !other.has(c.name));
    if (missing !== undefined) {
      throw new DriftlineError(
        'BAD_REQUEST',
        `${paths[1 - i]}: no column ${quotedName(missing.name)} (it is in ${paths[i]}) — add it, or leave it out with --ignore ${shortName(missing.name)}`,
      );
    }
    if (side.length > 0 && side[0]!.values.length === 0) {
      throw new DriftlineError('BAD_REQUEST', `${paths[i]}: no data rows — both tables need at least one row`);
    }
  }
  if (reference.length === 0) {
    throw new DriftlineError('BAD_REQUEST', 'no column left to compare — check --columns and --ignore');
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
  const { readTable } = await import('../tables.js');
  progress.phase(`reading ${values.reference}`);
  const reference = await readTable(values.reference, readOptions);
  progress.phase(`reading ${values.current}`);
  const current = await readTable(values.current, readOptions);
  checkSides(reference, current, paths);
  progress.phase(`comparing ${reference.length} columns`);
  const { tableDriftInParallel } = await import('../parallel-drift.js');
  const rows = await tableDriftInParallel(reference, current, {
    binning,
    ...(bins === undefined ? {} : { bins }),
    psiThreshold,
    alpha,
    stattest,
  });
  // The results first: a page that cannot be written (a full disk) loses only the page.
  if (values.json) {
    const terminal = process.stdout.isTTY === true;
    process.stdout.write(rows.map((r) => jsonLine(r, terminal)).join(''));
  } else {
    process.stdout.write(`${table(rows)}\n`);
    if (stattest === 'evidently') {
      const verdict = datasetDrift(rows);
      process.stdout.write(`dataset drift (Evidently: drifted share ≥ 0.5): ${verdict.datasetDrift ? 'yes' : 'no'}\n`);
    }
  }
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
          : `drift when PSI ≥ ${psiThreshold} or p < ${alpha}`,
      columns: rows,
      distributions: reference
        .filter((c) => charted.has(c.name))
        .map((c) => columnDistribution(c, currentByName.get(c.name)!, bins ?? 10)),
    });
  }
  progress.done();
  return 0;
}
