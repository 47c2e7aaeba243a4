import { readFile } from 'node:fs/promises';
import type { ClickHouse } from '@driftline/clickhouse';
import { DriftlineError } from '@driftline/core';
import { PREDICTED_CLASS_FEATURE, PREDICTION_FEATURE, type ReferenceSet, referenceSet } from '@driftline/drift';
import { buildReferenceProfile, type ReferenceProfile } from '@driftline/stats';
import { ClickHouseReferenceStore } from './reference-store.js';

/** Splits CSV text (RFC 4180: quotes, doubled quotes, CRLF) into rows of cells. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  if (cell !== '' || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  return rows.filter((r) => !(r.length === 1 && r[0] === ''));
}

export interface ReferenceColumns {
  /** Column holding the model's prediction (profiled as `__prediction__`); default `prediction`. */
  readonly predictionColumn?: string;
  /** Column holding the predicted class (profiled as `__predicted_class__`); default `predicted_class`. */
  readonly predictedClassColumn?: string;
  /** Columns to leave out (ids, labels, timestamps). */
  readonly exclude?: readonly string[];
}

/**
 * Profiles every column of a table: a column whose present cells all parse as finite numbers is
 * numeric, any other is categorical; empty cells are missing.
 */
export function profilesFromCsv(text: string, columns: ReferenceColumns = {}): Map<string, ReferenceProfile> {
  const [header, ...rows] = parseCsv(text);
  if (header === undefined || rows.length === 0) {
    throw new DriftlineError('VALIDATION_FAILED', 'reference CSV: expected a header and at least one row');
  }
  const exclude = new Set(columns.exclude ?? []);
  const rename = new Map([
    [columns.predictionColumn ?? 'prediction', PREDICTION_FEATURE],
    [columns.predictedClassColumn ?? 'predicted_class', PREDICTED_CLASS_FEATURE],
  ]);
  const out = new Map<string, ReferenceProfile>();
  header.forEach((name, c) => {
    if (exclude.has(name)) return;
    const cells = rows.map((r) => r[c] ?? '');
    const numeric = cells.every((v) => v === '' || Number.isFinite(Number(v)));
    const values = numeric ? cells.map((v) => (v === '' ? null : Number(v))) : cells.map((v) => (v === '' ? null : v));
    try {
      out.set(rename.get(name) ?? name, buildReferenceProfile(values));
    } catch (error) {
      throw new DriftlineError(
        'VALIDATION_FAILED',
        `reference CSV column ${JSON.stringify(name)}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  });
  return out;
}

/** Builds the profiles of a CSV training table and stores them as the reference of (model, version). */
export async function buildAndStoreReference(options: {
  ch: ClickHouse;
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
  await new ClickHouseReferenceStore(options.ch).save(set);
  return set;
}
