import { DriftlineError } from '@driftline/core';
import { PREDICTED_CLASS_FEATURE, PREDICTION_FEATURE } from '@driftline/drift';
import { describe, expect, it } from 'vitest';
import { profilesFromCsv } from '../src/index.js';

describe('reference profiles from CSV', () => {
  it('types columns (numeric when every present cell is a number), renames the prediction, excludes ids', () => {
    const csv = ['id,x,color,prediction', '1,0.5,red,0.1', '2,,blue,0.9', '3,2.5,red,0.4'].join('\n');
    const profiles = profilesFromCsv(csv, { exclude: ['id'] });
    expect([...profiles.keys()].sort()).toEqual([PREDICTION_FEATURE, 'color', 'x']);
    expect(profiles.get('x')!.kind).toBe('numeric');
    expect(profiles.get('x')!.missing).toBe(1);
    expect(profiles.get('color')!.kind).toBe('categorical');
  });

  it('a training column with one inf cell (as to_csv writes it) and pandas NA spellings stays numeric (found by a review)', () => {
    const values = Array.from({ length: 2000 }, (_, i) => Math.round(Math.sin(i) * 1e6) / 1e4);
    const cells = values.map((v, i) =>
      i === 7 ? 'inf' : i === 8 ? '-inf' : i === 9 ? '#N/A' : i === 10 ? 'N/A' : String(v),
    );
    const profile = profilesFromCsv(`amount\n${cells.join('\n')}\n`).get('amount')!;
    expect(profile.kind).toBe('numeric');
    if (profile.kind !== 'numeric') return;
    expect(profile.infinite).toBe(2);
    expect(profile.missing).toBe(2);
    expect(profile.n).toBe(1996);
  });

  it('renames custom prediction and predicted-class columns', () => {
    const csv = ['score,label_hat,x', '0.2,a,1', '0.7,b,2'].join('\n');
    const profiles = profilesFromCsv(csv, { predictionColumn: 'score', predictedClassColumn: 'label_hat' });
    expect([...profiles.keys()].sort()).toEqual([PREDICTED_CLASS_FEATURE, PREDICTION_FEATURE, 'x']);
    expect(profiles.get(PREDICTED_CLASS_FEATURE)!.kind).toBe('categorical');
  });

  it('reads NA spellings as missing, as `driftline drift` does (one CSV reader)', () => {
    const profiles = profilesFromCsv(['x,color', '1,red', 'NA,null', '2.5,', '3,blue'].join('\n'));
    expect(profiles.get('x')).toMatchObject({ kind: 'numeric', n: 3, missing: 1 });
    expect(profiles.get('color')).toMatchObject({ kind: 'categorical', missing: 2 });
  });

  it('needs a header and a row', () => {
    expect(() => profilesFromCsv('x,y\n')).toThrow(
      new DriftlineError('VALIDATION_FAILED', 'reference CSV: expected a header and at least one row'),
    );
  });

  it('refuses a prediction column the table lacks (prediction drift would be silently off)', () => {
    expect(() => profilesFromCsv('score,x\n0.2,1\n', { predictionColumn: 'scor' })).toThrow(
      new DriftlineError(
        'BAD_REQUEST',
        'reference CSV: no column "scor" (given as the prediction column) — name the column that holds it',
      ),
    );
    expect(() => profilesFromCsv('score,x\n0.2,1\n', { predictedClassColumn: 'label_hat' })).toThrow(
      /no column "label_hat" \(given as the predicted-class column\)/,
    );
  });

  it('refuses two columns profiled under one name (prediction and __prediction__)', () => {
    const csv = `prediction,${PREDICTION_FEATURE},x\n0.2,0.3,1\n`;
    expect(() => profilesFromCsv(csv)).toThrow(
      new DriftlineError(
        'BAD_REQUEST',
        `reference CSV: columns "prediction" and "${PREDICTION_FEATURE}" are both profiled as "${PREDICTION_FEATURE}" — leave one out (--exclude) or rename it`,
      ),
    );
    expect([...profilesFromCsv(csv, { exclude: [PREDICTION_FEATURE] }).keys()].sort()).toEqual([
      PREDICTION_FEATURE,
      'x',
    ]);
  });
});
