import { parseEnv } from '@driftline/core';
import type { RetrainRequest } from '@driftline/schemas';
import type { ModelVersionRow } from '@driftline/warehouse';
import { tableFromIPC } from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { toTrainerConfig, trainerEnvShape } from '../src/config.js';
import {
  buildDataset,
  COLUMNS,
  datasetToArrow,
  type LabeledRow,
  MAX_DATASET_CELLS,
  parseFeatures,
} from '../src/dataset.js';
import { decidePromotion, versionFor } from '../src/promotion.js';
import { referenceFromDataset } from '../src/reference.js';
import { modelEvents } from '../src/trainer.js';

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

  it('refuses a window whose feature names would make more than MAX_DATASET_CELLS cells, before building a column (found by a review)', () => {
    // 25,000 rows, one of which carries 20,000 keys (ids as names): 500,000,000 cells.
    const many = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`user_${i}`, 1]));
    const big = Array.from({ length: 25_000 }, (_, i) => ({ ...rows[i % rows.length]!, predictionId: `p${i}` }));
    big[7] = { ...big[7]!, features: many };
    expect(() => buildDataset(big, 0.2)).toThrow(
      expect.objectContaining({
        code: 'VALIDATION_FAILED',
        message: expect.stringContaining(
          `distinct feature names: 25000 × 20004 is more than ${MAX_DATASET_CELLS} cells`,
        ),
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
  it('promotes when the candidate beats the serving model by the margin', () => {
    const rule = { metric: 'roc_auc' as const, margin: 0.02 };
    expect(decidePromotion({ roc_auc: 0.9, current_roc_auc: 0.7 }, rule).promote).toBe(true);
    expect(decidePromotion({ roc_auc: 0.71, current_roc_auc: 0.7 }, rule).promote).toBe(false);
    expect(decidePromotion({ roc_auc: 0.72, current_roc_auc: 0.7 }, rule).promote).toBe(true); // exactly the margin
    expect(decidePromotion({ current_roc_auc: 0.7 }, rule).promote).toBe(false);
    expect(decidePromotion({ roc_auc: 0.6 }, rule).promote).toBe(true);
  });

  it('lower is better for log loss', () => {
    const rule = { metric: 'log_loss' as const, margin: 0.05 };
    expect(decidePromotion({ log_loss: 0.3, current_log_loss: 0.5 }, rule).promote).toBe(true);
    expect(decidePromotion({ log_loss: 0.48, current_log_loss: 0.5 }, rule).promote).toBe(false);
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

  it('takes the rollout from DRIFTLINE_TRAINER_ROLLOUT (default direct); a bad value names the variable', () => {
    expect(parseEnv(trainerEnvShape, {}).DRIFTLINE_TRAINER_ROLLOUT).toBe('direct');
    expect(toTrainerConfig(parseEnv(trainerEnvShape, { DRIFTLINE_TRAINER_ROLLOUT: 'staged' })).rollout).toBe('staged');
    expect(() => parseEnv(trainerEnvShape, { DRIFTLINE_TRAINER_ROLLOUT: 'fast' })).toThrow(/DRIFTLINE_TRAINER_ROLLOUT/);
  });
});
