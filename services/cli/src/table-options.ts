import type { CsvOptions } from '@driftline/batch-drift';
import { ConfigError } from '@driftline/core';

/** What `readTable` takes: the CSV delimiter and the column selection and forced types. */
export type ReadOptions = CsvOptions;

/** The table options of `driftline drift` and `driftline reference`, for their --help. */
export const tableOptionsUsage = `  Formats: CSV (RFC 4180: header row, quoted fields with delimiters, line breaks and doubled
  quotes, CRLF, UTF-8 BOM), Arrow IPC (.arrow/.feather/.ipc, file or stream, uncompressed) and
  Parquet (.parquet; snappy, gzip, zstd, brotli, lz4), each optionally gzipped (.gz or gzip bytes).
  A numeric column is one whose every present cell is a number (inf, -inf, Infinity count as
  numbers); empty cells and pandas' NA spellings (NA, N/A, #N/A, NaN, nan, null, NULL, None, …)
  are missing.
  --delimiter C          CSV field separator: one character, or tab (default ',', tab for .tsv)
  --columns a,b          read only these columns
  --ignore c,d           leave these columns out
  --categorical x,y      read these columns as categories even if every value is a number
  --numeric z            these columns must be numbers (a value that is not is an error naming its line)
  List options take comma-separated names and may be repeated.`;

/** The parseArgs definitions of the table options, shared by `drift` and `reference`. */
export const tableArgOptions = {
  delimiter: { type: 'string' },
  columns: { type: 'string', multiple: true },
  ignore: { type: 'string', multiple: true },
  categorical: { type: 'string', multiple: true },
  numeric: { type: 'string', multiple: true },
} as const;

function names(option: string, values: readonly string[] | undefined): string[] | undefined {
  if (values === undefined) return undefined;
  const out = values.flatMap((v) => v.split(',')).map((s) => s.trim());
  if (out.some((s) => s === '')) {
    throw new ConfigError(
      `--${option}`,
      `needs comma-separated column names (got ${JSON.stringify(values.join(','))})`,
    );
  }
  return out;
}

/** `ReadOptions` from parsed `--delimiter`, `--columns`, `--ignore`, `--categorical`, `--numeric`. */
export function tableOptionsFrom(values: {
  delimiter?: string | undefined;
  columns?: string[] | undefined;
  ignore?: string[] | undefined;
  categorical?: string[] | undefined;
  numeric?: string[] | undefined;
}): ReadOptions {
  const out: { -readonly [K in keyof ReadOptions]: ReadOptions[K] } = {};
  if (values.delimiter !== undefined) out.delimiter = values.delimiter;
  for (const option of ['columns', 'ignore', 'categorical', 'numeric'] as const) {
    const list = names(option, values[option]);
    if (list !== undefined) out[option] = list;
  }
  return out;
}
