import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

/** The XGBoost-trained fixtures of scripts/make_fixtures.py. */
export const CASES = [
  'binary-logistic',
  'binary-logistic-unnamed',
  'reg-squarederror',
  'reg-logistic',
  'binary-logitraw',
  'multi-softprob',
  'categorical',
  'obj-count-poisson',
  'obj-reg-gamma',
  'obj-reg-tweedie',
  'obj-binary-hinge',
  'obj-multi-softmax',
  'obj-reg-absoluteerror',
  'obj-reg-pseudohubererror',
  'obj-reg-squaredlogerror',
] as const;

export interface Case {
  readonly xgboost: string;
  readonly objective: string;
  readonly note: string;
  readonly rows: ReadonlyArray<ReadonlyArray<number | null>>;
  readonly margin: ReadonlyArray<readonly number[]>;
  readonly predict: ReadonlyArray<readonly number[]>;
}

export function fixtureText(file: string): string {
  return gunzipSync(readFileSync(join(dir, file))).toString('utf8');
}

export function modelText(name: string): string {
  return fixtureText(`${name}.model.json.gz`);
}

export function caseOf(name: string): Case {
  return JSON.parse(fixtureText(`${name}.cases.json.gz`)) as Case;
}

/** Rows as one row-major Float64Array, null → NaN. */
export function rowMajor(rows: ReadonlyArray<ReadonlyArray<number | null>>): Float64Array {
  const width = rows[0]?.length ?? 0;
  const out = new Float64Array(rows.length * width);
  rows.forEach((r, i) => {
    r.forEach((v, j) => {
      out[i * width + j] = v ?? Number.NaN;
    });
  });
  return out;
}
