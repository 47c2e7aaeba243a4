import { DriftlineError } from '@driftline/core';
import { PREDICTED_CLASS_FEATURE, PREDICTION_FEATURE } from '@driftline/drift';
import { buildReferenceProfile, type ReferenceProfile } from '@driftline/stats';
import type { Column } from './columns.js';
import { csvColumns } from './csv.js';

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
  const out = new Map<string, ReferenceProfile>();
  for (const column of table) {
    if (exclude.has(column.name)) continue;
    try {
      out.set(rename.get(column.name) ?? column.name, buildReferenceProfile(column.values));
    } catch (error) {
      throw new DriftlineError(
        'VALIDATION_FAILED',
        `${source} column ${JSON.stringify(column.name)}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  return out;
}
