import { DriftlineError } from '@driftline/core';
import Papa from 'papaparse';
import { type Column, typeColumns } from './columns.js';

/**
 * Parses CSV text (header row; RFC 4180 quotes, doubled quotes, CRLF) and types its columns with
 * `typeColumns`. The one CSV reader of driftline: `driftline drift` and `driftline reference` both
 * read files through it, so a file gets the same column types and missing values in both.
 * `source` names the file in errors.
 */
export function csvColumns(text: string, source: string): Column[] {
  // A fixed delimiter: auto-detection fails on a one-column file. fastMode skips quote handling,
  // valid only when the text has no quotes at all.
  const parsed = Papa.parse<string[]>(text, { delimiter: ',', skipEmptyLines: true, fastMode: !text.includes('"') });
  if (parsed.errors.length > 0) {
    const e = parsed.errors[0]!;
    throw new DriftlineError('BAD_REQUEST', `${source}: row ${e.row ?? '?'}: ${e.message}`);
  }
  const [header, ...rows] = parsed.data;
  if (header === undefined) throw new DriftlineError('BAD_REQUEST', `${source}: empty file`);
  return typeColumns(header, rows);
}
