import { parseArgs } from 'node:util';
import { type ColumnDrift, tableDrift } from '@driftline/batch-drift';
import { ConfigError } from '@driftline/core';

export const driftUsage = `usage: driftline drift --reference REF --current CUR [--bins N] [--binning quantile|evidently]
                      [--psi-threshold X] [--alpha P] [--json]

Compares every column the two tables share (CSV with a header row, or Arrow IPC). Numeric columns:
PSI, KS (statistic, p-value), Wasserstein, Jensen-Shannon, missing rate, out-of-range share.
Categorical columns: PSI, chi-square, Jensen-Shannon, missing rate. --json prints one JSON object
per column (one per line). Exit code 0 whether or not drift is found.
--binning evidently reproduces Evidently's PSI exactly and, like Evidently, ignores --bins
(numeric: Sturges equal-width bins over both samples; few distinct values and strings: one bin
per value).
`;

function number(name: string, value: string | undefined, fallback: number | undefined): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new ConfigError(`--${name}`, `must be a number (got ${JSON.stringify(value)})`);
  return n;
}

function format(n: number | undefined, digits = 4): string {
  if (n === undefined) return '-';
  if (Number.isNaN(n)) return 'nan';
  return Math.abs(n) > 0 && Math.abs(n) < 1e-4 ? n.toExponential(2) : n.toFixed(digits);
}

function table(rows: readonly ColumnDrift[]): string {
  const header = ['column', 'kind', 'psi', 'ks_D', 'ks_p', 'chi2_p', 'wasserstein', 'js', 'drifted'];
  const lines = rows.map((r) => [
    r.column,
    r.kind,
    format(r.psi),
    format(r.ks_statistic),
    format(r.ks_p_value),
    format(r.chi2_p_value),
    format(r.wasserstein),
    format(r.jensen_shannon),
    r.drifted ? `yes (${r.drifted_by.join('+')})` : 'no',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const render = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  const drifted = rows.filter((r) => r.drifted).length;
  return [render(header), ...lines.map(render), '', `${drifted} of ${rows.length} columns drifted`].join('\n');
}

/** `driftline drift`: the streaming monitor's statistics, offline, for a batch. */
export async function driftCommand(args: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...args],
    options: {
      reference: { type: 'string' },
      current: { type: 'string' },
      bins: { type: 'string' },
      binning: { type: 'string' },
      'psi-threshold': { type: 'string' },
      alpha: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(driftUsage);
    return 0;
  }
  if (values.reference === undefined) throw new ConfigError('--reference', 'is required');
  if (values.current === undefined) throw new ConfigError('--current', 'is required');
  const binning = values.binning ?? 'quantile';
  if (binning !== 'quantile' && binning !== 'evidently') {
    throw new ConfigError('--binning', `must be quantile or evidently (got ${JSON.stringify(binning)})`);
  }
  const bins = number('bins', values.bins, undefined);
  if (bins !== undefined && (!Number.isInteger(bins) || bins < 1))
    throw new ConfigError('--bins', 'must be a positive integer');
  // Loaded once the arguments are valid: apache-arrow alone takes longer to load than `--help` runs.
  const { readTable } = await import('../tables.js');
  const rows = tableDrift(readTable(values.reference), readTable(values.current), {
    binning,
    ...(bins === undefined ? {} : { bins }),
    psiThreshold: number('psi-threshold', values['psi-threshold'], 0.2)!,
    alpha: number('alpha', values.alpha, 0.05)!,
  });
  if (values.json) {
    process.stdout.write(`${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  } else {
    process.stdout.write(`${table(rows)}\n`);
  }
  return 0;
}
