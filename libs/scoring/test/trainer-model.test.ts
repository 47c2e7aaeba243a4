import { describe, expect, it } from 'vitest';
import { loadXgboostModel, ModelFormatError, ScoringInputError, trainerFeatureEncoder } from '../src/index.js';
import { fixtureText, modelText } from './fixtures.js';

interface TrainerCase {
  readonly meta: { features: string[]; categories: Record<string, string[]> };
  readonly records: ReadonlyArray<Record<string, unknown>>;
  readonly scores: readonly number[];
}

// trainer.* was produced by services/trainer/worker/train.py itself (scripts/make_fixtures.py runs it
// on an Arrow file shaped like the trainer's dataset): model.json, meta.json and the worker's own
// scores of every row. The records are the raw feature maps a producer sends.
const c = JSON.parse(fixtureText('trainer.cases.json.gz')) as TrainerCase;

describe("models the trainer's worker writes", () => {
  it('score every record like the worker did (max |Δ| ≤ 1e-6), categories coded from meta.json', () => {
    const model = loadXgboostModel(modelText('trainer'));
    const enc = trainerFeatureEncoder(c.meta, model);
    expect(enc.features).toEqual(['amount', 'balance', 'color', 'is_new']);
    expect(model.objective).toBe('binary:logistic');
    const rows = new Float64Array(c.records.length * enc.features.length);
    c.records.forEach((r, i) => {
      enc.encode(r, rows, i * enc.features.length);
    });
    const got = model.predict(rows);
    let worst = 0;
    c.scores.forEach((s, i) => {
      worst = Math.max(worst, Math.abs(got[i]! - s));
    });
    console.info(`trainer model: ${c.records.length} records, max |Δ| vs the worker's scores ${worst}`);
    expect(worst).toBeLessThanOrEqual(1e-6);
    // The fixture covers what the encoding must get right: unseen and missing categories, booleans.
    expect(c.records.some((r) => r.color === 'violet')).toBe(true);
    expect(c.records.some((r) => !('color' in r))).toBe(true);
    expect(c.records.some((r) => !('amount' in r))).toBe(true);
  });

  it('encodes like the training set: booleans 0/1, String() for categories, unknown → missing', () => {
    const enc = trainerFeatureEncoder({ features: ['n', 'c'], categories: { c: ['1', 'a', 'true'] } });
    const out = new Float32Array(2);
    enc.encode({ n: true, c: 1 }, out);
    expect(Array.from(out)).toEqual([1, 0]);
    enc.encode({ n: false, c: true }, out);
    expect(Array.from(out)).toEqual([0, 2]);
    enc.encode({ n: null, c: 'zzz' }, out);
    expect(out.every(Number.isNaN)).toBe(true);
    enc.encode({}, out);
    expect(out.every(Number.isNaN)).toBe(true);
  });

  it('reads a number beyond float32 as missing, as the trainer does (it scored as ±Infinity)', () => {
    const enc = trainerFeatureEncoder({ features: ['n'] });
    const out = new Float32Array(1);
    for (const v of [4e38, -1e300, Number.POSITIVE_INFINITY]) {
      enc.encode({ n: v }, out);
      expect(out[0], String(v)).toBeNaN();
    }
    enc.encode({ n: 3.4e38 }, out);
    expect(out[0]).toBe(Math.fround(3.4e38));
  });

  it('refuses input the model cannot take, naming the feature', () => {
    const enc = trainerFeatureEncoder({ features: ['n', 'c'], categories: { c: ['a'] } });
    const out = new Float64Array(2);
    expect(() => enc.encode({ n: 'x' }, out)).toThrow(ScoringInputError);
    expect(() => enc.encode({ n: 'x' }, out)).toThrow('features.n: expected a number or boolean');
    expect(() => enc.encode({ c: { a: 1 } }, out)).toThrow('features.c: expected a number, string or boolean');
  });

  it('refuses a meta.json that does not match the model, naming the field', () => {
    const model = loadXgboostModel(modelText('trainer'));
    const swapped = { ...c.meta, features: ['balance', 'amount', 'color', 'is_new'] };
    expect(() => trainerFeatureEncoder(swapped, model)).toThrow(ModelFormatError);
    expect(() => trainerFeatureEncoder(swapped, model)).toThrow(/meta\.features: differ from the model/);
    expect(() => trainerFeatureEncoder({ features: ['a', 'b'] }, model)).toThrow(/meta\.features: lists 2 features/);
    expect(() => trainerFeatureEncoder({ features: 'a' })).toThrow(/meta\.features/);
    expect(() => trainerFeatureEncoder({ features: ['a'], categories: { b: [] } })).toThrow(/meta\.categories\.b/);
    expect(() => trainerFeatureEncoder('{')).toThrow(/meta: not JSON/);
  });
});
