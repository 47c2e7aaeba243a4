import { DriftlineError } from '@driftline/core';
import { PREDICTED_CLASS_FEATURE, PREDICTION_FEATURE } from '@driftline/drift';
import { buildReferenceProfile, type ReferenceProfile } from '@driftline/stats';
import { type Column, quotedName, suggestedOption } from './columns.js';
import { csvColumns } from './csv.js';
import { atMarkedWidth, markedWidth } from './narrow-float.js';

export interface ReferenceColumns {
  /** Column holding the model's prediction (profiled as `__prediction__`); default `prediction`. */
  readonly predictionColumn?: string;
  /** Column holding the predicted class (profiled as `__predicted_class__`); default `predicted_class`. */
  readonly predictedClassColumn?: string;
  /** Columns to leave out (ids, labels, timestamps). */
  readonly exclude?: readonly string[];
}

/**
 * Profiles every column of a CSV table, typed by the one CSV reader (`csvColumns`, as
 * `driftline drift` reads it): numeric when every present cell is a number, categorical otherwise;
 * empty and blank cells and the usual NA spellings are missing.
 */
export function profilesFromCsv(text: string, columns: ReferenceColumns = {}): Map<string, ReferenceProfile> {
  return profilesFromColumns(csvColumns(text, 'reference CSV'), columns, 'reference CSV');
}

/**
 * Profiles typed columns (any table `driftline drift` reads: CSV, Arrow, Parquet) as `profilesFromCsv`
 * does; `source` names the table in errors.
 */
export function profilesFromColumns(
  table: readonly Column[],
  columns: ReferenceColumns = {},
  source = 'reference table',
): Map<string, ReferenceProfile> {
  if (table[0] === undefined || table[0].values.length === 0) {
    throw new DriftlineError('VALIDATION_FAILED', `${source}: expected a header and at least one row`);
  }
  const exclude = new Set(columns.exclude ?? []);
  const rename = new Map([
    [columns.predictionColumn ?? 'prediction', PREDICTION_FEATURE],
    [columns.predictedClassColumn ?? 'predicted_class', PREDICTED_CLASS_FEATURE],
  ]);
  const names = new Set(table.map((c) => c.name));
  for (const [option, given] of [
    ['prediction column', columns.predictionColumn],
    ['predicted-class column', columns.predictedClassColumn],
  ] as const) {
    // A prediction column the table lacks would silently turn prediction drift off.
    if (given !== undefined && (!names.has(given) || exclude.has(given))) {
      throw new DriftlineError(
        'BAD_REQUEST',
        `${source}: no column ${quotedName(given)} (given as the ${option}) — name the column that holds it`,
      );
    }
  }
  const out = new Map<string, ReferenceProfile>();
  const profiledFrom = new Map<string, string>();
  for (const column of table) {
    if (exclude.has(column.name)) continue;
    const feature = rename.get(column.name) ?? column.name;
    const other = profiledFrom.get(feature);
    if (other !== undefined) {
      // `prediction` and a column already named `__prediction__`: one profile would overwrite the other.
      throw new DriftlineError(
        'BAD_REQUEST',
        `${source}: columns ${quotedName(other)} and ${quotedName(column.name)} are both profiled as ${quotedName(feature)} — leave one out (--exclude) or rename it`,
      );
    }
    profiledFrom.set(feature, column.name);
    const present =
      column.kind === 'numeric' ? column.values.some((x) => !Number.isNaN(x)) : column.values.some((v) => v !== null);
    if (!present) {
      throw new DriftlineError(
        'VALIDATION_FAILED',
        `${source} column ${quotedName(column.name)}: every cell is missing — nothing to profile; leave it out with ${suggestedOption('--exclude', column.name)}`,
      );
    }
    try {
      // A float32/16 column at its shortest digits: the Parquet and its CSV give one profile. A
      // float64 column as it is: read at float32 digits, its widened float32 values (a pandas
      // upcast) no longer matched the same doubles sent live (PSI 6.04 on identical data; a review).
      // The width goes with the profile: live values are read at it too (a widened float32 sent
      // live is the reference's shortest digits, not drift).
      const floatBits = markedWidth(column);
      out.set(
        feature,
        buildReferenceProfile(atMarkedWidth(column).values, floatBits === undefined ? {} : { floatBits }),
      );
    } catch (error) {
      throw new DriftlineError(
        'VALIDATION_FAILED',
        `${source} column ${quotedName(column.name)}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  return out;
}
