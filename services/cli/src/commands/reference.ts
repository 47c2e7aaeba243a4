import { parseNameList, profilesFromColumns, type ReferenceColumns } from '@driftline/batch-drift';
import { ARTIFACT_NAME_RULE, ConfigError, DriftlineError, isArtifactName, parseEnv } from '@driftline/core';
import { type ReferenceSet, referenceFindings, referenceSet } from '@driftline/drift';
import { clickhouseEnvShape, openWarehouse, type ReferenceStore, toClickHouseConfig } from '@driftline/warehouse';
import { parseCommandArgs } from '../args.js';
import {
  checkIgnoredNames,
  type ReadOptions,
  tableArgOptions,
  tableOptionsFrom,
  tableOptionsUsage,
} from '../table-options.js';
import { readTable, readTableAndHeader } from '../tables.js';
import { withWarehouse } from '../with-warehouse.js';
import { checkEnvNames } from './env-names.js';

export const referenceUsage = `usage: driftline reference --model NAME --version V --file TABLE [options]

Builds a reference profile per column of a training table (numeric: quantile grid, coarse bins,
KS grid; text: category counts) and stores them in ClickHouse (reference_profiles) as the
reference of (model, version). The table is read exactly as driftline drift reads it, so a file
gets the same column types in both.
A table the drift monitor could not measure is refused, nothing stored (one window's summaries
above the partials topic's 16 MiB: ~1,450 numeric columns); an id-like text column (over ~42,000
distinct values past the 1,000 kept, new categories then nearly invisible) is stored with a
warning on stderr: leave such columns out with --exclude.
ClickHouse comes from DRIFTLINE_CLICKHOUSE_* (embedded engine by default).

  --model NAME                the model
  --version V                 the model version
  --file TABLE                the training table (--data is the same option)
  --prediction-column NAME    column profiled as __prediction__ (default "prediction")
  --exclude c,d               columns to leave out (ids, labels, timestamps; same as --ignore)
${tableOptionsUsage}
  --debug                     stack traces for errors
  --help                      this help
`;

/**
 * The drift monitor's checks of a set about to be stored (`referenceFindings` of @driftline/drift):
 * one it could not measure at all (its partials above the partials topic's limit: every window
 * refused, its events left out) is refused, VALIDATION_FAILED with one line naming the width and
 * the limit — stored, it made the version "have a reference" (it never borrows another) that no
 * window could carry; a warning (a column whose tail sketch hides new categories) goes to `warn`
 * and the set is stored: measured less well, still measured.
 */
function checkReference(set: ReferenceSet, warn: (line: string) => void): void {
  const findings = referenceFindings(set);
  const error = findings.find((f) => f.severity === 'error');
  if (error !== undefined) throw new DriftlineError('VALIDATION_FAILED', `${error.message}; nothing was stored`);
  for (const f of findings) warn(`warning: ${f.message}`);
}

const warnOnStderr = (line: string) => {
  process.stderr.write(`${line}\n`);
};

/**
 * Builds the profiles of a training table file and stores them as the reference of (model,
 * version), after the drift monitor's checks (a set it cannot measure is refused; warnings to `warn`,
 * stderr by default).
 */
export async function buildAndStoreReference(options: {
  references: ReferenceStore;
  model: string;
  version: string;
  file: string;
  columns?: ReferenceColumns;
  read?: ReadOptions;
  warn?: (line: string) => void;
}): Promise<ReferenceSet> {
  const table = await readTable(options.file, options.read);
  const set = referenceSet(options.model, options.version, profilesFromColumns(table, options.columns, options.file));
  checkReference(set, options.warn ?? warnOnStderr);
  await options.references.save(set);
  return set;
}

/** The command's options (every one is in its usage: test/cli-surface.test.ts). */
export const referenceOptions = {
  model: { type: 'string' },
  version: { type: 'string' },
  file: { type: 'string' },
  data: { type: 'string' },
  'prediction-column': { type: 'string' },
  exclude: { type: 'string', multiple: true },
  ...tableArgOptions,
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** `driftline reference ...`: build and store the reference profiles of a model version. */
export async function referenceCommand(args: readonly string[]): Promise<number> {
  const { values } = parseCommandArgs(args, referenceOptions);
  if (values.help) {
    process.stdout.write(referenceUsage);
    return 0;
  }
  if (values.file !== undefined && values.data !== undefined && values.file !== values.data) {
    throw new ConfigError('--file', 'and --data are the same option: give one');
  }
  const file = values.file ?? values.data;
  if (values.model === undefined || values.model === '') throw new ConfigError('--model', 'is required');
  if (values.version === undefined || values.version === '') throw new ConfigError('--version', 'is required');
  if (file === undefined || file === '') throw new ConfigError('--file', 'is required (the training table)');
  // The names the model-server loads and `model stage` takes: a reference under another name is never used.
  for (const [option, name] of [
    ['--model', values.model],
    ['--version', values.version],
  ] as const) {
    if (!isArtifactName(name)) throw new ConfigError(option, `must be ${ARTIFACT_NAME_RULE}`);
  }
  const read = tableOptionsFrom({ ...values, ignore: [...(values.ignore ?? []), ...(values.exclude ?? [])] });
  const predictionColumn = values['prediction-column'];
  // Read before opening the warehouse: a bad file fails fast and touches nothing.
  const { columns: table, header } = await readTableAndHeader(file, read);
  // A name to leave out that the table lacks is a typo: the column it meant would be profiled.
  for (const option of ['ignore', 'exclude'] as const) {
    checkIgnoredNames(`--${option}`, values[option]?.flatMap(parseNameList), [{ path: file, header }]);
  }
  if (table.length === 0) {
    // The options left every column out: a usage error (2) naming the option, as `drift` says it.
    const option = values.exclude !== undefined ? '--exclude' : values.ignore !== undefined ? '--ignore' : '--columns';
    throw new ConfigError(option, 'leaves no column to profile — check --columns, --ignore and --exclude');
  }
  const profiles = profilesFromColumns(table, predictionColumn === undefined ? {} : { predictionColumn }, file);
  const set = referenceSet(values.model, values.version, profiles);
  // Before the warehouse is opened: a set the drift monitor cannot measure touches nothing.
  checkReference(set, warnOnStderr);
  await checkEnvNames();
  const config = toClickHouseConfig(parseEnv(clickhouseEnvShape));
  return withWarehouse(
    () => openWarehouse(config),
    async (warehouse) => {
      await warehouse.references.save(set);
      process.stdout.write(
        `${JSON.stringify({ model: set.model, version: set.version, reference_id: set.referenceId, features: set.features })}\n`,
      );
      return 0;
    },
  );
}
