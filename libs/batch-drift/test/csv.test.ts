import { DriftlineError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { csvColumns } from '../src/index.js';

describe('csvColumns', () => {
  it('reads quoted cells, doubled quotes and CRLF', () => {
    const cols = csvColumns('a,b\r\n"x, y","say ""hi"""\r\nz,\r\n', 't.csv');
    expect(cols).toEqual([
      { name: 'a', kind: 'categorical', values: ['x, y', 'z'] },
      { name: 'b', kind: 'categorical', values: ['say "hi"', null] },
    ]);
  });

  it('types a column numeric when every present cell is a number; NA spellings and blanks are missing', () => {
    const cols = csvColumns(['x,c,n', '1.5,red,1', 'NA,null,None', ' ,  ,', '-2e3,blue,x'].join('\n'), 't.csv');
    expect(cols.map((c) => c.kind)).toEqual(['numeric', 'categorical', 'categorical']);
    expect(Array.from(cols[0]!.values as Float64Array)).toEqual([1.5, Number.NaN, Number.NaN, -2000]);
    expect(cols[1]!.values).toEqual(['red', null, null, 'blue']);
    expect(cols[2]!.values).toEqual(['1', null, null, 'x']);
  });

  it('a zero is a number, a blank cell is not', () => {
    const [x] = csvColumns('x\n0\n \n0.0\n', 't.csv');
    expect(Array.from(x!.values as Float64Array)).toEqual([0, Number.NaN, 0]);
  });

  it('short rows read as missing cells; empty lines are skipped', () => {
    const [, b] = csvColumns('a,b\n1,2\n\n3\n', 't.csv');
    expect(Array.from(b!.values as Float64Array)).toEqual([2, Number.NaN]);
  });

  it('an empty file is a BAD_REQUEST naming the source', () => {
    expect(() => csvColumns('', 'data/empty.csv')).toThrow(
      new DriftlineError('BAD_REQUEST', 'data/empty.csv: empty file'),
    );
  });

  it('an unterminated quote is a BAD_REQUEST naming the source and the row', () => {
    expect(() => csvColumns('a,b\n"x,1\n', 'bad.csv')).toThrow(/^bad\.csv: row \d+: /);
  });
});
