import type { PredictionStore, TrainingRow } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import {
  defaultMaxCells,
  HEAP_BYTES_PER_CELL,
  WINDOW_HEAP_SHARE,
  warehouseTrainingSource,
} from '../src/training-source.js';

/** labeled_predictions of one model: 1,000 rows, two per millisecond (ties broken by id). */
const stored: TrainingRow[] = Array.from({ length: 1_000 }, (_, i) => ({
  predictionId: `p${String(i).padStart(4, '0')}`,
  time: Math.floor(i / 2),
  features: JSON.stringify({ x: i }),
  prediction: 0.5,
  baseScore: 0.5,
  label: i % 2,
}));

/** The store's paging contract over `stored`; records the size of every answer. */
function pagedStore() {
  const answers: number[] = [];
  const key = (r: { time: number; predictionId: string }) => [r.time, r.predictionId] as const;
  const older = (a: { time: number; predictionId: string }, b: { time: number; predictionId: string }) => {
    const [at, ai] = key(a);
    const [bt, bi] = key(b);
    return at < bt || (at === bt && ai < bi);
  };
  const store: Pick<PredictionStore, 'trainingPage'> & { trainingRows?: unknown } = {
    trainingPage: async (_model, from, to, limit, before) => {
      const page = stored
        .filter((r) => r.time >= from && r.time < to && (before === undefined || older(r, before)))
        .sort((a, b) => (older(a, b) ? 1 : -1))
        .slice(0, limit);
      answers.push(page.length);
      return page;
    },
    // What the trainer called before: the whole window in one answer.
    trainingRows: async () => {
      answers.push(stored.length);
      return stored;
    },
  };
  return { store, answers };
}

describe('the training window is read in pages and bounded', () => {
  it('keeps the newest maxRows rows, in time order, reading pages of pageRows', async () => {
    const { store, answers } = pagedStore();
    const window = await warehouseTrainingSource(store, 100).read('m', 0, 10_000, 250, 'v1');
    expect(window.truncated).toBe(true);
    expect(window.rows).toHaveLength(250);
    expect(window.rows.map((r) => r.predictionId)).toEqual(stored.slice(750).map((r) => r.predictionId));
    expect(window.rows[0]!.features).toEqual({ x: 750 });
    expect(Math.max(...answers)).toBeLessThanOrEqual(100);
  });

  it('reads a window smaller than the maximum whole, across page boundaries and ties', async () => {
    const { store, answers } = pagedStore();
    const window = await warehouseTrainingSource(store, 64).read('m', 100, 300, 10_000, 'v1');
    expect(window.truncated).toBe(false);
    expect(window.rows.map((r) => r.predictionId)).toEqual(stored.slice(200, 600).map((r) => r.predictionId));
    expect(answers.every((n) => n <= 64)).toBe(true);
  });

  it('is exactly at the maximum: not truncated', async () => {
    const { store } = pagedStore();
    const window = await warehouseTrainingSource(store, 300).read('m', 0, 10_000, 1_000, 'v1');
    expect(window.truncated).toBe(false);
    expect(window.rows).toHaveLength(1_000);
  });
});

describe('the feature values held are bounded while reading (found by a review: a wide window killed the trainer for memory, for ever)', () => {
  /** `features` numeric features per row: the rows of `stored` made wide. */
  function wideStore(features: number) {
    const { store, answers } = pagedStore();
    const wide: Pick<PredictionStore, 'trainingPage'> = {
      trainingPage: async (...args) =>
        (await store.trainingPage(...args)).map((r, i) => ({
          ...r,
          features: JSON.stringify(Object.fromEntries(Array.from({ length: features }, (_, f) => [`f${f}`, i + f]))),
        })),
    };
    return { store: wide, answers };
  }

  it('refuses the request as poison once the rows read hold more than maxCells values, without reading on', async () => {
    const { store, answers } = wideStore(10);
    // 1,000 rows × 10 features = 10,000 values; the bound is met within the third page of 100 rows.
    const error = await warehouseTrainingSource(store, 100, 2_500)
      .read('m', 0, 10_000, 10_000, 'v1')
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toMatchObject({ name: 'PoisonRecordError', code: 'VALIDATION_FAILED', retriable: false });
    expect((error as Error).message).toMatch(
      /newest 251 rows already hold 2510 feature values, more than DRIFTLINE_TRAINER_MAX_CELLS \(2500, .*\) before DRIFTLINE_TRAINER_MAX_ROWS \(10000\).*lower DRIFTLINE_TRAINER_MAX_ROWS.*--max-old-space-size/,
    );
    expect(answers).toEqual([100, 100, 100]);
    // Within the bound (MAX_ROWS cuts first), the window is read as before.
    const kept = await warehouseTrainingSource(store, 100, 2_500).read('m', 0, 10_000, 250, 'v1');
    expect([kept.rows.length, kept.truncated]).toEqual([250, true]);
    expect(Object.keys(kept.rows[0]!.features)).toHaveLength(10);
  });

  it('defaults to what fills half the heap at the measured bytes per value; the 500,000 × 100 window of the review does not fit a 4.1 GB heap', () => {
    const heap = 4_144 * 2 ** 20;
    const cells = defaultMaxCells(heap);
    expect(cells * HEAP_BYTES_PER_CELL).toBeLessThanOrEqual(heap * WINDOW_HEAP_SHARE);
    expect((cells + 1) * HEAP_BYTES_PER_CELL).toBeGreaterThan(heap * WINDOW_HEAP_SHARE);
    expect(500_000 * 100).toBeGreaterThan(cells);
    expect(defaultMaxCells()).toBeGreaterThan(0);
  });
});

describe('each row carries the base version’s score (the offline gate compares with it)', () => {
  it('asks the store for the base version and reads a row it did not score as NaN', async () => {
    const asked: Array<string | undefined> = [];
    const store: Pick<PredictionStore, 'trainingPage'> = {
      trainingPage: async (_model, _from, _to, _limit, before, baseVersion) => {
        asked.push(baseVersion);
        if (before !== undefined) return [];
        return [
          { ...stored[1]!, baseScore: null },
          { ...stored[0]!, baseScore: 0.25 },
        ];
      },
    };
    const window = await warehouseTrainingSource(store, 100).read('m', 0, 10, 100, 'v7');
    expect(asked).toEqual(['v7']);
    expect(window.rows.map((r) => r.prediction)).toEqual([0.25, Number.NaN]);
    // No serving version named: the store reads the answered score.
    await warehouseTrainingSource(store, 100).read('m', 0, 10, 100, '');
    expect(asked).toEqual(['v7', undefined]);
  });
});
