import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { profilesFromCsv } from '@driftline/batch-drift';
import { describe, expect, it } from 'vitest';
import { readTable } from '../src/tables.js';

/** Missing cells of a typed column: NaN (numeric) or null (categorical). */
function missingOf(values: Float64Array | ReadonlyArray<string | null>): number {
  let n = 0;
  for (const v of values) if (v === null || (typeof v === 'number' && Number.isNaN(v))) n++;
  return n;
}

describe('one CSV reader for `driftline drift` and `driftline reference`', () => {
  // Every missing-value spelling the readers used to disagree on, plus quoting and CRLF.
  const csv = [
    'amount,country,score,note',
    '12.5,FR,0.1,"a, quoted"',
    'NA,null,0.9,',
    ',DE,NaN,plain',
    ' ,None,0.4,"say ""hi"""',
    '7,NULL,0.2,x',
  ].join('\r\n');
  const file = join(mkdtempSync(join(tmpdir(), 'driftline-csv-')), 'train.csv');
  writeFileSync(file, csv);

  it('gives the same file the same column types and missing counts in both paths', async () => {
    const drift = await readTable(file); // `driftline drift --reference train.csv`
    const reference = profilesFromCsv(readFileSync(file, 'utf8')); // `driftline reference --file train.csv`
    const fromDrift = drift.map((c) => [c.name, c.kind, missingOf(c.values)]);
    const fromReference = [...reference].map(([name, p]) => [name, p.kind, p.missing]);
    expect(fromReference).toEqual(fromDrift);
    expect(fromDrift).toEqual([
      ['amount', 'numeric', 3],
      ['country', 'categorical', 3],
      ['score', 'numeric', 1],
      ['note', 'categorical', 1],
    ]);
  });
});
