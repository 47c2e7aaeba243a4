import { type CsvOptions, parseNameList, quotedName, suggestedOption } from '@driftline/batch-drift';
import { ConfigError, closestNames, DriftlineError, editDistance } from '@driftline/core';

/** What `readTable` takes: the CSV delimiter and the column selection and forced types. */
export type ReadOptions = CsvOptions & {
  /** Most values one Parquet page may hold (default `MAX_PAGE_VALUES` of tables.ts; a lower one for tests). */
  readonly maxPageValues?: number;
};

/** The table options of `driftline drift` and `driftline reference`, for their --help. */
export const tableOptionsUsage = `  Formats: CSV (RFC 4180: header row, quoted fields with delimiters, line breaks and doubled
  quotes, CRLF, UTF-8 BOM), Arrow IPC (.arrow/.feather/.ipc, file or stream, uncompressed) and
  Parquet (.parquet; snappy, gzip, zstd, brotli, lz4), each optionally gzipped (.gz or gzip bytes).
  A numeric column is one whose every present cell is a decimal number as pandas reads one (12,
  -1.5e3, .5; not 0x1F, 1_000 or ١٢, which are text); inf, -inf and Infinity count as numbers and
  are then missing to every statistic. Empty cells and pandas' NA spellings (NA, N/A, #N/A, NaN,
  nan, null, NULL, None, …) are missing.
  --delimiter C          CSV field separator: one character, or tab (default ',', tab for .tsv)
  --columns a,b          read only these columns
  --ignore c,d           leave these columns out (each a column of a table read: a name no table has
                         is an input error naming the close ones)
  --categorical x,y      read these columns as categories even if every value is a number
  --numeric z            these columns must be numbers (a value that is not is an error naming its line)
  List options take comma-separated names and may be repeated. In a name a backslash keeps a
  comma (--ignore 'total\\, net'), a backslash, or a blank at either end of the name. A name given
  to both --columns and --ignore, or to both --categorical and --numeric, is a usage error.`;

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
  const out = values.flatMap(parseNameList);
  if (out.some((s) => s === '')) {
    throw new ConfigError(
      `--${option}`,
      `needs comma-separated column names (got ${JSON.stringify(values.join(','))}; \\, is a comma in a name)`,
    );
  }
  return out;
}

/** Options that contradict each other for one name: a usage error (2), before any file is read. */
function checkConflicts(options: ReadOptions): void {
  for (const [a, b] of [
    ['columns', 'ignore'],
    ['categorical', 'numeric'],
  ] as const) {
    const both = options[a]?.find((name) => options[b]?.includes(name));
    if (both !== undefined) {
      throw new ConfigError(
        `--${b}`,
        `column ${quotedName(both)} is also given to --${a} — give it to one of them (${suggestedOption(`--${a}`, both)} or ${suggestedOption(`--${b}`, both)})`,
      );
    }
  }
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
  checkConflicts(out);
  return out;
}

/** Header names an unknown name's error lists when none is close to it; the rest are counted. */
const LISTED_COLUMNS = 12;

/**
 * Refuses a name given to `option` (`--ignore`, `--exclude`) that no table read has: a typo left
 * the column in, silently. A name one of the tables has is fine — for `drift` it is the way to leave
 * out a column the other table lacks. An input error (3), as a `--columns` name the table lacks:
 * one line naming the name and the file(s), with the closest column names, else the columns.
 */
export function checkIgnoredNames(
  option: string,
  names: readonly string[] | undefined,
  tables: ReadonlyArray<{ readonly path: string; readonly header: readonly string[] }>,
): void {
  const known = new Set(tables.flatMap((t) => t.header));
  const unknown = names?.find((name) => !known.has(name));
  if (unknown === undefined) return;
  const files = tables.map((t) => t.path).join(' or ');
  // Close: at most a third of the name's characters off (closestNames alone offers 3 edits, so `id` got `age`).
  const near = closestNames(unknown, known).filter(
    (name) => editDistance(unknown, name) <= Math.max(1, Math.floor(unknown.length / 3)),
  );
  const all = [...known];
  const listed = all.slice(0, LISTED_COLUMNS).map(quotedName).join(', ');
  const more = all.length > LISTED_COLUMNS ? ` and ${all.length - LISTED_COLUMNS} more` : '';
  const hint =
    near.length > 0
      ? `did you mean ${near.map((name) => suggestedOption(option, name)).join(' or ')}?`
      : `the columns are ${listed}${more}`;
  throw new DriftlineError('BAD_REQUEST', `${files}: no column ${quotedName(unknown)} (given to ${option}) — ${hint}`);
}
