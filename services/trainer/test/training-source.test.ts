import type { PredictionStore, TrainingRow } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { warehouseTrainingSource } from '../src/training-source.js';

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
