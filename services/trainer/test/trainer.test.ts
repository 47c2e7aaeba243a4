import { parseEnv } from '@driftline/core';
import { categoricalValue } from '@driftline/drift';
import type { RetrainRequest } from '@driftline/schemas';
import type { ModelVersionRow } from '@driftline/warehouse';
import { tableFromIPC } from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { toTrainerConfig, trainerEnvShape } from '../src/config.js';
import {
  buildDataset,
  COLUMNS,
  classCounts,
  DROPPED_EXAMPLES,
  datasetToArrow,
  type LabeledRow,
  MAX_DATASET_CELLS,
  MAX_FEATURES,
  MIN_FEATURE_ROWS,
  MIN_FEATURE_SHARE,
  parseFeatures,
} from '../src/dataset.js';
import { labelShortfall, labelWaitStep } from '../src/label-wait.js';
import { decidePromotion, type GateBaseline, noSkillValue, versionFor } from '../src/promotion.js';
import { referenceFromDataset } from '../src/reference.js';
import { modelEvents } from '../src/trainer.js';
import { defaultMaxCells } from '../src/training-source.js';

const rows: LabeledRow[] = Array.from({ length: 10 }, (_, i) => ({
  predictionId: `p${9 - i}`,
  time: 1_000 * (10 - i), // newest first on purpose: the split must sort by time
  features: {
    amount: i % 3 === 0 ? null : i * 1.5,
    country: i % 2 === 0 ? 'de' : 'fr',
    vip: i % 2 === 0,
    code: i === 4 ? 'x' : i,
  },
  prediction: i / 10,
  label: i % 2,
}));

describe('dataset', () => {
  it('sorts by time and holds out the newest rows', () => {
    const ds = buildDataset(rows, 0.2);
    expect(ds.rows).toBe(10);
    expect([...ds.time]).toEqual([...ds.time].sort((a, b) => a - b));
    expect([...ds.holdout]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
    expect(ds.trainRows).toBe(8);
    expect(ds.holdoutRows).toBe(2);
    // Every held-out row is later than every training row: no training on the future.
    const lastTrain = ds.time[ds.trainRows - 1]!;
    expect(ds.time[ds.trainRows]!).toBeGreaterThan(lastTrain);
  });

  it('types columns: numbers and booleans numeric, anything mixed categorical', () => {
    const ds = buildDataset(rows, 0.2);
    const kinds = Object.fromEntries(ds.features.map((f) => [f.name, f.kind]));
    expect(kinds).toEqual({ amount: 'numeric', code: 'categorical', country: 'categorical', vip: 'numeric' });
    const amount = ds.features.find((f) => f.name === 'amount')!.values as Float64Array;
    expect(amount.some((v) => Number.isNaN(v))).toBe(true);
  });

  it('keys booleans of a categorical column as live events do (found by a regression review of da5dfd1)', () => {
    const flags: Array<boolean | string> = Array.from({ length: 10 }, (_, i) => (i === 4 ? 'unknown' : i % 2 === 0));
    const mixed = rows.map((r, i) => ({ ...r, features: { ...r.features, flag: flags[i]! } }));
    const flag = buildDataset(mixed, 0.2).features.find((f) => f.name === 'flag')!;
    expect(flag.kind).toBe('categorical');
    // The dataset is in time order: `rows` reversed.
    expect(flag.values).toEqual(flags.map((v) => categoricalValue(v)).reverse());
  });

  it('keeps at least one row on each side of the split', () => {
    expect(buildDataset(rows.slice(0, 2), 0.01).holdoutRows).toBe(1);
    expect(buildDataset(rows.slice(0, 2), 0.99).trainRows).toBe(1);
  });

  it('writes an Arrow IPC file with the reserved columns and nulls for missing values', () => {
    const ds = buildDataset(rows, 0.2);
    const table = tableFromIPC(datasetToArrow(ds));
    expect(table.numRows).toBe(10);
    expect(table.schema.fields.map((f) => f.name)).toEqual([
      COLUMNS.time,
      COLUMNS.label,
      COLUMNS.currentScore,
      COLUMNS.holdout,
      'amount',
      'code',
      'country',
      'vip',
    ]);
    const amount = table.getChild('amount')!;
    expect(amount.nullCount).toBeGreaterThan(0);
    expect(String(table.getChild('country')!.type)).toBe('Utf8');
    expect(table.getChild(COLUMNS.holdout)!.get(9)).toBe(1);
  });

  it('round-trips every value through Arrow: numbers, nulls, text (unicode, empty)', () => {
    const texts = ['ü', null, '', 'x', '日本', null, 'a,b', 'z', '0', 'é'];
    const input = rows.map((r, i) => ({ ...r, features: { ...r.features, t: texts[i] ?? null } }));
    const ds = buildDataset(input, 0.2);
    const table = tableFromIPC(datasetToArrow(ds));
    for (const f of ds.features) {
      const column = table.getChild(f.name)!;
      const expected = Array.from(f.values as ArrayLike<number | string | null>, (v) =>
        typeof v === 'number' && Number.isNaN(v) ? null : v,
      );
      expect([...column], f.name).toEqual(expected);
    }
  });

  it.each(['amount[usd]', 'a]', 'x<0', 'emb[0]'])(
    'keeps the feature name %j that XGBoost refuses by name (the worker then names inputs by position)',
    (name) => {
      const set = buildDataset(
        rows.map((r) => ({ ...r, features: { ...r.features, [name]: 1 } })),
        0.2,
      );
      expect(set.features.map((f) => f.name)).toContain(name);
    },
  );

  it('refuses predictions that carry no feature at all, as a validation error (XGBoost cannot train on none)', () => {
    expect(() =>
      buildDataset(
        rows.map((r) => ({ ...r, features: {} })),
        0.2,
      ),
    ).toThrow(
      expect.objectContaining({
        code: 'VALIDATION_FAILED',
        retriable: false,
        message: expect.stringContaining('carries a feature: there is nothing to train on'),
      }),
    );
  });

  it('leaves out the names of one prediction carrying 20,000 keys (ids as names): rare names are no columns (found by a review)', () => {
    // 25,000 rows, one of which carries 20,000 keys: before, 25,000 × 20,004 cells refused the
    // retrain; in a smaller window, a model of 20,000 inputs the model-server refuses.
    const many = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`user_${i}`, 1]));
    const big = Array.from({ length: 25_000 }, (_, i) => ({ ...rows[i % rows.length]!, predictionId: `p${i}` }));
    big[7] = { ...big[7]!, features: { ...big[7]!.features, ...many } };
    const ds = buildDataset(big, 0.2);
    expect(ds.features.map((f) => f.name)).toEqual(['amount', 'code', 'country', 'vip']);
    expect(ds.dropped.counts).toEqual({ bad_name: 0, no_train_value: 0, rare: 20_000, over_limit: 0 });
    expect(ds.dropped.examples).toHaveLength(DROPPED_EXAMPLES);
    expect(ds.dropped.examples[0]).toBe('rare:"user_0"');
  });

  it('keeps a name present in MIN_FEATURE_ROWS rows of a large window, or in MIN_FEATURE_SHARE of a small one', () => {
    const n = 20_000;
    const big = Array.from({ length: n }, (_, i) => ({
      ...rows[i % rows.length]!,
      predictionId: `p${i}`,
      time: i,
      features: { x: i, ...(i % 200 === 0 ? { sparse: 1 } : {}), ...(i % 400 === 0 ? { rarer: 1 } : {}) },
    }));
    // 100 rows of 20,000 have `sparse` (0.5%): kept; 50 have `rarer`: left out.
    expect(buildDataset(big, 0.2).features.map((f) => f.name)).toEqual(['sparse', 'x']);
    // In 200 rows, 1% is 2 rows.
    const small = big
      .slice(0, 200)
      .map((r, i) => ({ ...r, features: { x: i, ...(i < 2 ? { two: 1 } : {}), ...(i === 5 ? { one: 1 } : {}) } }));
    expect(buildDataset(small, 0.2).features.map((f) => f.name)).toEqual(['two', 'x']);
    expect(MIN_FEATURE_ROWS).toBe(100);
    expect(MIN_FEATURE_SHARE).toBe(0.01);
  });

  it(`keeps the ${MAX_FEATURES} most frequent names (what the model-server serves), ties by name`, () => {
    const wide = Object.fromEntries(
      Array.from({ length: MAX_FEATURES + 4 }, (_, i) => [`f${String(i).padStart(5, '0')}`, 1]),
    );
    const input = Array.from({ length: 200 }, (_, i) => ({
      ...rows[i % rows.length]!,
      predictionId: `p${i}`,
      time: i,
      // Every name in 3 rows (above the 2 of 1%), `x` in all of them.
      features: i < 3 ? { x: i, ...wide } : { x: i },
    }));
    const ds = buildDataset(input, 0.2);
    expect(ds.features).toHaveLength(MAX_FEATURES);
    expect(ds.features.map((f) => f.name)).toContain('x');
    expect(ds.features.at(-2)!.name).toBe(`f${String(MAX_FEATURES - 2).padStart(5, '0')}`);
    expect(ds.dropped.counts.over_limit).toBe(5);
  });

  it('refuses a window whose kept columns would make more than MAX_DATASET_CELLS cells, before building a column', () => {
    // 10,000 names each in 100 rows of 25,001: all kept, 25,001 × 10,001 cells.
    const wide = Object.fromEntries(Array.from({ length: MAX_FEATURES - 1 }, (_, i) => [`f${i}`, 1]));
    const big = Array.from({ length: 25_001 }, (_, i) => ({
      ...rows[0]!,
      predictionId: `p${i}`,
      time: i,
      features: i < MIN_FEATURE_ROWS ? { ...wide, x: i } : { x: i },
    }));
    expect(() => buildDataset(big, 0.2)).toThrow(
      expect.objectContaining({
        code: 'VALIDATION_FAILED',
        message: expect.stringContaining(`25001 × 10000 is more than ${MAX_DATASET_CELLS} cells`),
      }),
    );
  });

  it('reads a number beyond float32 (|v| > 3.4028234663852886e38) as missing, and counts it (XGBoost refused the whole set)', () => {
    const big: Record<number, number> = { 1: 4e38, 2: -1e300, 3: 3.4028234663852886e38 };
    const input = rows.map((r, i) => ({ ...r, time: i, features: { ...r.features, amount: big[i] ?? i } }));
    const ds = buildDataset(input, 0.2);
    const amount = ds.features.find((f) => f.name === 'amount')!;
    expect(amount.kind).toBe('numeric');
    expect([...(amount.values as Float64Array)].slice(0, 5)).toEqual([
      0,
      Number.NaN,
      Number.NaN,
      3.4028234663852886e38,
      4,
    ]);
    expect(ds.outOfRange).toBe(2);
  });

  it.each(['__proto__', 'constructor', 'toString', 'valueOf', 'hasOwnProperty'])(
    'takes a feature named %s from the rows that have it, never from Object.prototype, through to the Arrow file',
    (name) => {
      // Half the rows carry the feature (parseFeatures keeps `__proto__` as an own key).
      const input = rows.map((r, i) => ({
        ...r,
        time: i,
        features: parseFeatures(i % 2 === 0 ? `{"x":${i},${JSON.stringify(name)}:${i}}` : `{"x":${i}}`, r.predictionId),
      }));
      const ds = buildDataset(input, 0.2);
      const column = ds.features.find((f) => f.name === name)!;
      expect(column.kind).toBe('numeric');
      const values = [...(column.values as Float64Array)];
      expect(values).toEqual(input.map((_, i) => (i % 2 === 0 ? i : Number.NaN)));
      const table = tableFromIPC(datasetToArrow(ds));
      expect(table.schema.fields.map((f) => f.name)).toEqual([
        COLUMNS.time,
        COLUMNS.label,
        COLUMNS.currentScore,
        COLUMNS.holdout,
        ...ds.features.map((f) => f.name),
      ]);
      expect([...table.getChild(name)!]).toEqual(values.map((v) => (Number.isNaN(v) ? null : v)));
    },
  );

  it('leaves out a feature with no value in the training split (null everywhere: typed numeric without categories, which the model-server refuses to serve)', () => {
    const input = rows.map((r, i) => ({
      ...r,
      time: i,
      features: { ...r.features, view_down: null, late: i >= 8 ? 'new' : null },
    }));
    const ds = buildDataset(input, 0.2);
    expect(ds.features.map((f) => f.name)).toEqual(['amount', 'code', 'country', 'vip']);
    expect(ds.dropped.counts.no_train_value).toBe(2);
  });

  it.each(['a\0b', '\0', 'x\uD800', '\uDC00y'])(
    'leaves out the feature name %j (XGBoost cuts it at the NUL; no UTF-8 for a lone surrogate)',
    (name) => {
      const ds = buildDataset(
        rows.map((r) => ({ ...r, features: { ...r.features, [name]: 1 } })),
        0.2,
      );
      expect(ds.features.map((f) => f.name)).toEqual(['amount', 'code', 'country', 'vip']);
      expect(ds.dropped.counts.bad_name).toBe(1);
    },
  );

  it('keeps names with other control characters, spaces, commas and non-Latin letters (XGBoost and the scorer take them)', () => {
    const names = ['a\nb', 'a\tb', 'a\u0001b', 'a b', 'a,b', '日本', ''];
    const ds = buildDataset(
      rows.map((r) => ({ ...r, features: { ...r.features, ...Object.fromEntries(names.map((n) => [n, 1])) } })),
      0.2,
    );
    expect(ds.features.map((f) => f.name)).toEqual(expect.arrayContaining(names));
  });

  it('refuses a window whose every feature is left out, naming why', () => {
    expect(() =>
      buildDataset(
        rows.map((r) => ({ ...r, features: { 'a\0': 1, none: null } })),
        0.2,
      ),
    ).toThrow(
      expect.objectContaining({
        code: 'VALIDATION_FAILED',
        message: expect.stringContaining('can train (dropped 1 bad_name, 1 no_train_value'),
      }),
    );
  });

  it('refuses reserved feature names and non-object features', () => {
    expect(() => buildDataset([{ ...rows[0]!, features: { __label__: 1 } }], 0.2)).toThrow(/reserved/);
    expect(() => parseFeatures('[1]', 'p1')).toThrow(/p1/);
    expect(parseFeatures('{"a":1,"b":"x","c":{"nested":1}}', 'p1')).toEqual({ a: 1, b: 'x', c: null });
    // A feature named __proto__ (a CSV column) is kept as a column, whatever its value (found by a review).
    for (const [text, value] of [
      ['{"__proto__":1.5,"y":2}', 1.5],
      ['{"__proto__":null,"y":2}', null],
    ] as const) {
      const row = parseFeatures(text, 'p1');
      expect(Object.keys(row)).toEqual(['__proto__', 'y']);
      expect(Object.getOwnPropertyDescriptor(row, '__proto__')?.value).toBe(value);
      expect(Object.getPrototypeOf(row)).toBe(Object.prototype);
    }
  });
});

describe('promotion', () => {
  // The request names its base version v1; 100 held-out rows, 30 labelled 1.
  const named: GateBaseline = { baseVersion: 'v1', holdoutRows: 100, holdoutPositives: 30 };
  const unnamed: GateBaseline = { ...named, baseVersion: '' };

  it('promotes when the candidate beats the serving model by the margin', () => {
    const rule = { metric: 'roc_auc' as const, margin: 0.02 };
    expect(decidePromotion({ roc_auc: 0.9, current_roc_auc: 0.7 }, rule, named).promote).toBe(true);
    expect(decidePromotion({ roc_auc: 0.71, current_roc_auc: 0.7 }, rule, named).promote).toBe(false);
    expect(decidePromotion({ roc_auc: 0.72, current_roc_auc: 0.7 }, rule, named).promote).toBe(true); // exactly the margin
    expect(decidePromotion({ current_roc_auc: 0.7 }, rule, named).promote).toBe(false);
  });

  it('compares on the held-out rows the base version scored: gate_* of the candidate against current_* (found by a review)', () => {
    const rule = { metric: 'roc_auc' as const, margin: 0.02 };
    // On the whole slice the candidate looks better; on the rows the base version scored, it is not.
    const metrics = { roc_auc: 0.9, gate_roc_auc: 0.71, current_roc_auc: 0.7, current_rows: 40 };
    const verdict = decidePromotion(metrics, rule, named);
    expect(verdict).toMatchObject({ promote: false, candidate: 0.71, current: 0.7 });
    expect(verdict.reason).toBe(
      'roc_auc 0.7100 vs current 0.7000 on the 40 held-out rows the base version scored: gain 0.0100 below margin 0.02',
    );
  });

  it('rejects when the base version the request names cannot be measured, however good the candidate (found by a review)', () => {
    const rule = { metric: 'roc_auc' as const, margin: 0.01 };
    // No held-out row carries the base version's score (a typo, a version rolled back since):
    // promoted before, whatever the candidate's value (0.31, worse than random, replaced production).
    for (const roc_auc of [0.31, 0.9]) {
      const verdict = decidePromotion({ roc_auc, log_loss: 0.9, accuracy: 0.5, current_rows: 0 }, rule, named);
      expect(verdict).toMatchObject({ promote: false, candidate: roc_auc, current: undefined });
      expect(verdict.reason).toBe(
        'no current roc_auc to compare with: no held-out row carries the score of the base version v1 (it did not serve the newest rows of the window: a typo, or a version rolled back or replaced since the request); rejected: a request naming a base version is gated against that version, never on the candidate alone',
      );
    }
    // The rows it scored are one class: no roc_auc of it (log loss and accuracy it has).
    const oneClass = { roc_auc: 0.8, current_rows: 12, current_log_loss: 0.4, current_accuracy: 1 };
    expect(decidePromotion(oneClass, rule, named)).toMatchObject({
      promote: false,
      reason: expect.stringContaining('the 12 held-out rows the base version v1 scored leave its roc_auc undefined'),
    });
    // Log loss too: 5.2 was promoted.
    const logLoss = { metric: 'log_loss' as const, margin: 0.01 };
    expect(decidePromotion({ log_loss: 5.2, current_rows: 0 }, logLoss, named).promote).toBe(false);
    expect(decidePromotion({ log_loss: 0.1, current_rows: 0 }, logLoss, named).promote).toBe(false);
  });

  it('with no baseline at all (no base version named, no score measured), gates against a predictor with no skill', () => {
    expect(noSkillValue('roc_auc', 100, 30)).toBe(0.5);
    expect(noSkillValue('accuracy', 100, 30)).toBeCloseTo(0.7, 12);
    expect(noSkillValue('accuracy', 100, 80)).toBeCloseTo(0.8, 12);
    // The class rate's entropy: the log loss of the constant 0.3.
    expect(noSkillValue('log_loss', 100, 30)).toBeCloseTo(-(0.3 * Math.log(0.3) + 0.7 * Math.log(0.7)), 12);
    expect(noSkillValue('log_loss', 100, 0)).toBe(0);

    const auc = { metric: 'roc_auc' as const, margin: 0.01 };
    expect(decidePromotion({ roc_auc: 0.479, current_rows: 0 }, auc, unnamed)).toMatchObject({
      promote: false,
      current: undefined,
      reason:
        'roc_auc 0.4790 vs no skill 0.5000 (no baseline: no base version named, no answered score measured; the floor on the 100 held-out rows, 30 labelled 1): gain -0.0210 below margin 0.01',
    });
    expect(decidePromotion({ roc_auc: 0.505, current_rows: 0 }, auc, unnamed).promote).toBe(false);
    expect(decidePromotion({ roc_auc: 0.51 }, auc, unnamed).promote).toBe(true); // exactly the margin
    expect(decidePromotion({ roc_auc: 0.6 }, auc, unnamed).promote).toBe(true);
    // Strictly above no skill even with a margin of 0.
    expect(decidePromotion({ roc_auc: 0.5 }, { metric: 'roc_auc', margin: 0 }, unnamed).promote).toBe(false);
    expect(decidePromotion({ roc_auc: 0.501 }, { metric: 'roc_auc', margin: 0 }, unnamed).promote).toBe(true);

    // Log loss: below the class rate's entropy (0.6109 at 30 %) by the margin.
    const logLoss = { metric: 'log_loss' as const, margin: 0.01 };
    expect(decidePromotion({ log_loss: 0.764 }, logLoss, unnamed).promote).toBe(false);
    expect(decidePromotion({ log_loss: 0.605 }, logLoss, unnamed).promote).toBe(false);
    expect(decidePromotion({ log_loss: 0.55 }, logLoss, unnamed).promote).toBe(true);
    // Accuracy: above the majority class's share (70 %) by the margin; 0.69 beats a coin, not the majority.
    const accuracy = { metric: 'accuracy' as const, margin: 0.01 };
    expect(decidePromotion({ accuracy: 0.69 }, accuracy, unnamed).promote).toBe(false);
    expect(decidePromotion({ accuracy: 0.75 }, accuracy, unnamed).promote).toBe(true);
    // A measured current value still decides when there is one.
    expect(decidePromotion({ roc_auc: 0.6, current_roc_auc: 0.7 }, auc, unnamed).promote).toBe(false);
  });

  it('lower is better for log loss', () => {
    const rule = { metric: 'log_loss' as const, margin: 0.05 };
    expect(decidePromotion({ log_loss: 0.3, current_log_loss: 0.5 }, rule, named).promote).toBe(true);
    expect(decidePromotion({ log_loss: 0.48, current_log_loss: 0.5 }, rule, named).promote).toBe(false);
  });

  it('derives the version from the request only', () => {
    const r: RetrainRequest = {
      request_id: 'abc',
      model: 'fraud',
      model_version: 'v1',
      reason: 'x',
      evidence: '{}',
      data_from: 0,
      data_to: Date.UTC(2024, 0, 2, 3, 4, 5),
      event_time: 1,
    };
    expect(versionFor(r)).toBe(versionFor({ ...r, event_time: 99, reason: 'y' }));
    expect(versionFor(r)).toMatch(/^r20240102t030405-[0-9a-f]{8}$/);
    expect(versionFor({ ...r, request_id: 'abd' })).not.toBe(versionFor(r));
  });
});

describe('reference and events', () => {
  it('profiles the training split, with the new scores as __prediction__', () => {
    const ds = buildDataset(rows, 0.2);
    const scores = Float64Array.from({ length: 10 }, (_, i) => i / 10);
    const set = referenceFromDataset('fraud', 'v2', ds, scores);
    expect(set.features).toEqual(['__prediction__', 'amount', 'code', 'country', 'vip']);
    expect(set.profiles[set.features.indexOf('country')]!.kind).toBe('categorical');
    expect(set.profiles[set.features.indexOf('amount')]!.kind).toBe('numeric');
    expect(referenceFromDataset('fraud', 'v2', ds, scores).referenceId).toBe(set.referenceId);
  });

  it('publishes TRAINED then the verdict', () => {
    const row = {
      model: 'm',
      version: 'v',
      request_id: 'r',
      status: 'REJECTED',
      metrics: { roc_auc: 0.5 },
      artifact_uri: 'file:///a',
      reference_uri: null,
    } as unknown as ModelVersionRow;
    expect(modelEvents(row, 5).map((e) => e.kind)).toEqual(['TRAINED', 'REJECTED']);
    expect(modelEvents({ ...row, status: 'PROMOTED' }, 5).map((e) => e.kind)).toEqual(['TRAINED', 'PROMOTED']);
  });
});

describe('config', () => {
  it('has defaults and parses durations', () => {
    const c = toTrainerConfig({
      DRIFTLINE_TRAINER_GROUP: 'g',
      DRIFTLINE_TRAINER_ARTIFACT_DIR: 'x',
      DRIFTLINE_TRAINER_DEVICE: 'auto',
      DRIFTLINE_TRAINER_PROMOTION_METRIC: 'roc_auc',
      DRIFTLINE_TRAINER_PROMOTION_MARGIN: 0.01,
      DRIFTLINE_TRAINER_HOLDOUT_FRACTION: 0.2,
      DRIFTLINE_TRAINER_MIN_ROWS: 200,
      DRIFTLINE_TRAINER_MIN_CLASS_ROWS: 1,
      DRIFTLINE_TRAINER_LABEL_WAIT: 3_600_000,
      DRIFTLINE_TRAINER_LABEL_POLL: 30_000,
      DRIFTLINE_TRAINER_MAX_ROWS: 1_000_000,
      DRIFTLINE_TRAINER_ROUNDS: 10,
      DRIFTLINE_TRAINER_MAX_DEPTH: 3,
      DRIFTLINE_TRAINER_TIMEOUT: 60_000,
      DRIFTLINE_TRAINER_SESSION_TIMEOUT: 120_000,
      DRIFTLINE_TRAINER_ROLLOUT: 'direct',
    });
    expect(c.artifactDir.startsWith('/')).toBe(true);
    expect(c.params).toMatchObject({ rounds: 10, max_depth: 3 });
  });

  it('waits 1 h for labels by default, polling every 30 s; 0 refuses at once; beyond 7 d is refused, naming the variable', () => {
    expect(toTrainerConfig(parseEnv(trainerEnvShape, {})).labelWait).toEqual({ waitMs: 3_600_000, pollMs: 30_000 });
    const set = { DRIFTLINE_TRAINER_LABEL_WAIT: '0', DRIFTLINE_TRAINER_LABEL_POLL: '500ms' };
    expect(toTrainerConfig(parseEnv(trainerEnvShape, set)).labelWait).toEqual({ waitMs: 0, pollMs: 500 });
    expect(() => parseEnv(trainerEnvShape, { DRIFTLINE_TRAINER_LABEL_WAIT: '8d' })).toThrow(
      /DRIFTLINE_TRAINER_LABEL_WAIT: must be at most 7d/,
    );
    expect(() => parseEnv(trainerEnvShape, { DRIFTLINE_TRAINER_LABEL_POLL: '10ms' })).toThrow(
      /DRIFTLINE_TRAINER_LABEL_POLL/,
    );
    expect(() => parseEnv(trainerEnvShape, { DRIFTLINE_TRAINER_LABEL_WAIT: 'soon' })).toThrow(
      /DRIFTLINE_TRAINER_LABEL_WAIT/,
    );
  });

  it('bounds the feature values held by DRIFTLINE_TRAINER_MAX_CELLS, by default from the heap limit', () => {
    expect(toTrainerConfig(parseEnv(trainerEnvShape, {})).maxCells).toBe(defaultMaxCells());
    const set = { DRIFTLINE_TRAINER_MAX_CELLS: '80000000' };
    expect(toTrainerConfig(parseEnv(trainerEnvShape, set)).maxCells).toBe(80_000_000);
    expect(() => parseEnv(trainerEnvShape, { DRIFTLINE_TRAINER_MAX_CELLS: '10' })).toThrow(
      /DRIFTLINE_TRAINER_MAX_CELLS/,
    );
  });

  it('takes the rollout from DRIFTLINE_TRAINER_ROLLOUT (default direct); a bad value names the variable', () => {
    expect(parseEnv(trainerEnvShape, {}).DRIFTLINE_TRAINER_ROLLOUT).toBe('direct');
    expect(toTrainerConfig(parseEnv(trainerEnvShape, { DRIFTLINE_TRAINER_ROLLOUT: 'staged' })).rollout).toBe('staged');
    expect(() => parseEnv(trainerEnvShape, { DRIFTLINE_TRAINER_ROLLOUT: 'fast' })).toThrow(/DRIFTLINE_TRAINER_ROLLOUT/);
  });

  it('refuses at start-up, naming the field, what no window could train or the model-server would refuse (found by a review)', () => {
    const start = (env: Record<string, string>) => () => toTrainerConfig(parseEnv(trainerEnvShape, env));
    expect(start({ DRIFTLINE_TRAINER_MIN_ROWS: '1000', DRIFTLINE_TRAINER_MAX_ROWS: '500' })).toThrow(
      'DRIFTLINE_TRAINER_MIN_ROWS: 1000 is more than DRIFTLINE_TRAINER_MAX_ROWS (500): no window could ever train',
    );
    expect(start({ DRIFTLINE_TRAINER_MIN_ROWS: '500', DRIFTLINE_TRAINER_MAX_ROWS: '500' })).not.toThrow();
    expect(start({ DRIFTLINE_TRAINER_MAX_ROWS: '1000', DRIFTLINE_TRAINER_MIN_CLASS_ROWS: '101' })).toThrow(
      /^DRIFTLINE_TRAINER_MIN_CLASS_ROWS: 101 of each class cannot fit the 200 rows/,
    );
    // 2,000 trees of depth 10 hold up to 4,094,000 nodes; the model-server loads 4,000,000.
    expect(start({ DRIFTLINE_TRAINER_ROUNDS: '2000', DRIFTLINE_TRAINER_MAX_DEPTH: '10' })).toThrow(
      /^DRIFTLINE_TRAINER_ROUNDS: 2000 trees of depth up to DRIFTLINE_TRAINER_MAX_DEPTH 10 can hold 4094000 nodes, more than the 4000000/,
    );
    expect(start({ DRIFTLINE_TRAINER_ROUNDS: '1000', DRIFTLINE_TRAINER_MAX_DEPTH: '10' })).not.toThrow();
    expect(start({ DRIFTLINE_TRAINER_ROUNDS: '1', DRIFTLINE_TRAINER_MAX_DEPTH: '20' })).toThrow(
      /^DRIFTLINE_TRAINER_MAX_DEPTH: a tree of depth 20 can hold 2097151 nodes/,
    );
    expect(start({ DRIFTLINE_TRAINER_ROUNDS: '100000', DRIFTLINE_TRAINER_MAX_DEPTH: '3' })).toThrow(
      /^DRIFTLINE_TRAINER_ROUNDS: 100000 trees × depth 3 \(DRIFTLINE_TRAINER_MAX_DEPTH\) is more than the 200000/,
    );
    // The session must outlast a heartbeat or two (every 3 s): 1 ms had been accepted.
    expect(() => parseEnv(trainerEnvShape, { DRIFTLINE_TRAINER_SESSION_TIMEOUT: '1ms' })).toThrow(
      /DRIFTLINE_TRAINER_SESSION_TIMEOUT: must be at least 6000 ms/,
    );
    expect(
      parseEnv(trainerEnvShape, { DRIFTLINE_TRAINER_SESSION_TIMEOUT: '6s' }).DRIFTLINE_TRAINER_SESSION_TIMEOUT,
    ).toBe(6_000);
    // Above the broker's group.max.session.timeout.ms the group join failed and nothing was consumed.
    expect(() => parseEnv(trainerEnvShape, { DRIFTLINE_TRAINER_SESSION_TIMEOUT: '2h' })).toThrow(
      /^DRIFTLINE_TRAINER_SESSION_TIMEOUT: must be at most 5m/,
    );
    expect(
      parseEnv(trainerEnvShape, { DRIFTLINE_TRAINER_SESSION_TIMEOUT: '5m' }).DRIFTLINE_TRAINER_SESSION_TIMEOUT,
    ).toBe(300_000);
    expect(toTrainerConfig(parseEnv(trainerEnvShape, {})).minClassRows).toBe(1);
  });
});

describe('label wait: rows, and both classes on both sides of the split', () => {
  // No base version named unless `base` gives it and its held-out classes.
  const counts = (
    train: [number, number],
    holdout: [number, number],
    base: { version: string; classes: [number, number] } = { version: '', classes: holdout },
  ) => ({
    rows: train[0] + train[1] + holdout[0] + holdout[1],
    train: { negative: train[0], positive: train[1] },
    holdout: { negative: holdout[0], positive: holdout[1] },
    base: { version: base.version, negative: base.classes[0], positive: base.classes[1] },
  });
  const needs = { minRows: 100, minClassRows: 5 };
  const policy = { waitMs: 60_000, pollMs: 10_000 };

  it('trains with enough rows of each class on each side; else waits, then refuses, saying what is missing', () => {
    expect(labelWaitStep(counts([60, 20], [15, 5]), needs, 0, 1_000, policy)).toEqual({ kind: 'train' });
    expect(labelWaitStep(counts([60, 20], [20, 0]), needs, 0, 1_000, policy)).toEqual({
      kind: 'wait',
      ms: 10_000,
      until: 60_000,
      shortfall:
        '0 of the 20 rows of the held-out slice labeled 1 — at least 5 of each class needed in the training split and in the held-out slice (DRIFTLINE_TRAINER_MIN_CLASS_ROWS)',
    });
    expect(labelWaitStep(counts([76, 4], [15, 5]), needs, 0, 60_000, policy)).toMatchObject({
      kind: 'refuse',
      shortfall: expect.stringMatching(/^4 of the 80 rows of the training split labeled 1/),
    });
    expect(labelShortfall(counts([40, 20], [15, 5]), needs)).toBe('80 labeled rows — at least 100 needed');
  });

  it('splits as the dataset does: the newest rows held out, by (time, id)', () => {
    const rows = Array.from({ length: 10 }, (_, i) => ({
      predictionId: `p${i}`,
      time: 9 - i,
      features: {},
      prediction: 0.5,
      label: i < 2 ? 1 : 0, // the two newest rows are the positives
    }));
    expect(classCounts(rows, 0.2, 'v1')).toEqual({
      rows: 10,
      train: { negative: 8, positive: 0 },
      holdout: { negative: 0, positive: 2 },
      base: { version: 'v1', negative: 0, positive: 2 },
    });
  });

  // An imbalanced model v7 answers most entities, a canary the rest: a canary's answer carries no
  // score of v7 (prediction NaN, training-source.ts). The few held-out positives went to the canary.
  const window = Array.from({ length: 100 }, (_, i) => ({
    predictionId: `p${String(i).padStart(3, '0')}`,
    time: i,
    features: { x: i },
    label: i % 10 === 3 ? 1 : 0,
    prediction: i >= 80 && i % 10 === 3 ? Number.NaN : 0.1,
  }));
  const one = { minRows: 50, minClassRows: 1 };

  it('with a base version named, counts the held-out classes on the rows it scored: the rows the gate measures it on (found by a review)', () => {
    expect(classCounts(window, 0.2, 'v7')).toEqual({
      rows: 100,
      train: { negative: 72, positive: 8 },
      holdout: { negative: 18, positive: 2 },
      base: { version: 'v7', negative: 18, positive: 0 },
    });
    // The wait let this window train, the gate then found v7's roc_auc undefined on its 18 rows
    // and registered the request REJECTED for good; now it waits for labels, then is refused.
    expect(labelWaitStep(classCounts(window, 0.2, 'v7'), one, 0, 1_000, policy)).toEqual({
      kind: 'wait',
      ms: 10_000,
      until: 60_000,
      shortfall:
        '0 of the 18 held-out rows the base version v7 scored labeled 1 — at least 1 of each class needed among them: the gate measures v7 on these rows alone (DRIFTLINE_TRAINER_MIN_CLASS_ROWS)',
    });
    expect(labelWaitStep(classCounts(window, 0.2, 'v7'), one, 0, 60_000, policy)).toMatchObject({ kind: 'refuse' });
    // One held-out positive scored by v7 is enough at MIN_CLASS_ROWS 1.
    const scored = window.map((r) => (r.time === 93 ? { ...r, prediction: 0.4 } : r));
    expect(labelWaitStep(classCounts(scored, 0.2, 'v7'), one, 0, 1_000, policy)).toEqual({ kind: 'train' });
    // No base version named: each row's answered score stands for it, the whole held-out slice counts.
    expect(labelWaitStep(classCounts(window, 0.2, ''), one, 0, 1_000, policy)).toEqual({ kind: 'train' });
  });

  it('a base version that scored no held-out row waits too, and says so', () => {
    const unscored = window.map((r) => (r.time >= 80 ? { ...r, prediction: Number.NaN } : r));
    expect(labelShortfall(classCounts(unscored, 0.2, 'v7'), one, 'of fraud in [a, b)')).toBe(
      "none of the held-out rows of fraud in [a, b) carries the score of the base version v7 (it served none of them: a version replaced before them, or not this model's) — at least 1 of each class needed among them: the gate measures v7 on these rows alone (DRIFTLINE_TRAINER_MIN_CLASS_ROWS)",
    );
    // A slice short of a class says that first.
    expect(labelShortfall(counts([40, 20], [50, 0], { version: 'v7', classes: [0, 0] }), one)).toMatch(
      /^0 of the 50 rows of the held-out slice labeled 1/,
    );
  });
});

describe('config: names and the training timeout (commit 25e952a)', () => {
  it('refuses a padded or blank group, artifact directory or interpreter, naming the variable', () => {
    const parsed = parseEnv(trainerEnvShape, {
      DRIFTLINE_TRAINER_GROUP: 'g 1',
      DRIFTLINE_TRAINER_PYTHON: '/usr/bin/python3',
    });
    expect(toTrainerConfig(parsed)).toMatchObject({ group: 'g 1', python: '/usr/bin/python3' });
    for (const name of ['DRIFTLINE_TRAINER_GROUP', 'DRIFTLINE_TRAINER_ARTIFACT_DIR', 'DRIFTLINE_TRAINER_PYTHON']) {
      for (const bad of [' x', 'x ', '\tx', '   '])
        expect(() => parseEnv(trainerEnvShape, { [name]: bad })).toThrow(new RegExp(`^${name}: `));
    }
  });

  it('gives a training run at least 10 s (DRIFTLINE_TRAINER_TIMEOUT): a bare 5 was 5 ms, and 1 s less than the worker takes to start (1.6 s; found by a review)', () => {
    const timeout = (v: string) =>
      toTrainerConfig(parseEnv(trainerEnvShape, { DRIFTLINE_TRAINER_TIMEOUT: v })).timeoutMs;
    expect(timeout('10s')).toBe(10_000);
    expect(timeout('30m')).toBe(1_800_000);
    for (const bad of ['5', '999ms', '1s', '9999ms'])
      expect(() => timeout(bad)).toThrow(/^DRIFTLINE_TRAINER_TIMEOUT: must be at least 10000 ms/);
  });
});
