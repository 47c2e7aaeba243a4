import { readFile } from 'node:fs/promises';
import { profilesFromCsv, type ReferenceColumns } from '@driftline/batch-drift';
import { ConfigError, DriftlineError, parseEnv } from '@driftline/core';
import { type ReferenceSet, referenceSet } from '@driftline/drift';
import { clickhouseEnvShape, openWarehouse, type ReferenceStore, toClickHouseConfig } from '@driftline/warehouse';

const USAGE = `usage: driftline reference --model NAME --version V --file training.csv
                  [--prediction-column prediction] [--exclude col1,col2]

Builds a reference profile per column of a training table (numeric: quantile grid, coarse bins,
KS grid; text: category counts) and stores them in ClickHouse (reference_profiles) as the
reference of (model, version). The column --prediction-column (default "prediction") is profiled
as __prediction__ and "predicted_class" as __predicted_class__, for prediction drift.
ClickHouse comes from DRIFTLINE_CLICKHOUSE_* (embedded engine by default).
`;

/** Builds the profiles of a CSV training table and stores them as the reference of (model, version). */
export async function buildAndStoreReference(options: {
  references: ReferenceStore;
  model: string;
  version: string;
  file: string;
  columns?: ReferenceColumns;
}): Promise<ReferenceSet> {
  if (!options.file.toLowerCase().endsWith('.csv')) {
    throw new DriftlineError('BAD_REQUEST', `reference: only CSV files are supported for now (got ${options.file})`);
  }
  const text = await readFile(options.file, 'utf8');
  const set = referenceSet(options.model, options.version, profilesFromCsv(text, options.columns));
  await options.references.save(set);
  return set;
}

function options(args: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--help' || a === '-h') out.set('help', '1');
    else if (a.startsWith('--')) {
      const value = args[i + 1];
      if (value === undefined || value.startsWith('--')) throw new ConfigError(a, 'needs a value');
      out.set(a.slice(2), value);
      i++;
    } else throw new ConfigError(a, 'unexpected argument');
  }
  return out;
}

/** `driftline reference ...`: build and store the reference profiles of a model version. */
export async function referenceCommand(args: readonly string[]): Promise<number> {
  const o = options(args);
  if (o.has('help')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const model = o.get('model');
  const version = o.get('version');
  const file = o.get('file');
  if (model === undefined) throw new ConfigError('--model', 'is required');
  if (version === undefined) throw new ConfigError('--version', 'is required');
  if (file === undefined) throw new ConfigError('--file', 'is required');
  const warehouse = await openWarehouse(toClickHouseConfig(parseEnv(clickhouseEnvShape)));
  try {
    const exclude = o
      .get('exclude')
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const predictionColumn = o.get('prediction-column');
    const set = await buildAndStoreReference({
      references: warehouse.references,
      model,
      version,
      file,
      columns: {
        ...(exclude === undefined ? {} : { exclude }),
        ...(predictionColumn === undefined ? {} : { predictionColumn }),
      },
    });
    process.stdout.write(
      `${JSON.stringify({ model, version, reference_id: set.referenceId, features: set.features })}\n`,
    );
    return 0;
  } finally {
    await warehouse.close();
  }
}
