import { getHeapStatistics } from 'node:v8';
import { PoisonRecordError } from '@driftline/core';
import type { PredictionStore } from '@driftline/warehouse';
import { type LabeledRow, parseFeatures } from './dataset.js';

/** Rows of one page read from the warehouse (each page is one bounded query). */
export const TRAINING_PAGE_ROWS = 50_000;

/**
 * Heap bytes one feature value of the window costs while held as parsed rows: measured 79.5 on
 * Node 20 (20,000 rows × 100 numeric features: 152 MB).
 */
export const HEAP_BYTES_PER_CELL = 80;

/** Share of the heap the held window may take; the rest is for the page being read, the dataset's bookkeeping, the service. */
export const WINDOW_HEAP_SHARE = 0.5;

/**
 * Default of DRIFTLINE_TRAINER_MAX_CELLS: the feature values that fill WINDOW_HEAP_SHARE of a heap
 * of `heapLimit` bytes (V8's limit; NODE_OPTIONS=--max-old-space-size raises it): 27 M for a 4.1 GB heap.
 */
export function defaultMaxCells(heapLimit: number = getHeapStatistics().heap_size_limit): number {
  return Math.max(1, Math.floor((heapLimit * WINDOW_HEAP_SHARE) / HEAP_BYTES_PER_CELL));
}

/** The training window as read: the newest rows, at most the maximum, and whether older ones were left out. */
export interface TrainingWindow {
  /** In time order ((time, prediction id) ascending). */
  readonly rows: LabeledRow[];
  /** True when the window holds more than `maxRows` rows: the oldest ones were not read. */
  readonly truncated: boolean;
}

/**
 * Where training data comes from: the joined rows of the model in [from, to), the newest `maxRows`
 * of them, each row's `prediction` being `baseVersion`'s score (NaN where it has none; the answered
 * score when `baseVersion` is empty: no serving version named).
 */
export interface TrainingSource {
  read(model: string, from: number, to: number, maxRows: number, baseVersion: string): Promise<TrainingWindow>;
}

/**
 * Training rows from the warehouse's labeled_predictions, features parsed as stored at prediction
 * time. Read newest first in pages of `pageRows` (keyset paging) and stopped at `maxRows`: a window
 * larger than that keeps its most recent rows (the ones closest to what the model will serve), never
 * a random sample, so the time split and the held-out slice stay what they are.
 *
 * The feature values held are counted as they are read: past `maxCells`
 * (DRIFTLINE_TRAINER_MAX_CELLS) the request is refused as poison, before the heap runs out. At the
 * defaults 500,000 rows × 100 features took about 4 GB: V8 killed the trainer, the request was
 * redelivered and killed it again, its partition stuck for good (found by a review).
 */
export function warehouseTrainingSource(
  predictions: Pick<PredictionStore, 'trainingPage'>,
  pageRows = TRAINING_PAGE_ROWS,
  maxCells = defaultMaxCells(),
): TrainingSource {
  return {
    async read(model, from, to, maxRows, baseVersion) {
      const newestFirst: LabeledRow[] = [];
      let cells = 0;
      let before: { time: number; predictionId: string } | undefined;
      for (;;) {
        // One row beyond the maximum tells whether the window was cut.
        const want = Math.min(pageRows, maxRows + 1 - newestFirst.length);
        const page = await predictions.trainingPage(
          model,
          from,
          to,
          want,
          before,
          baseVersion === '' ? undefined : baseVersion,
        );
        for (const r of page) {
          const features = parseFeatures(r.features, r.predictionId);
          // The row beyond maxRows only tells that the window was cut: it is not kept.
          if (newestFirst.length < maxRows) cells += Object.keys(features).length;
          if (cells > maxCells) {
            throw new PoisonRecordError(
              'VALIDATION_FAILED',
              `training window of ${model} in [${new Date(from).toISOString()}, ${new Date(to).toISOString()}): its newest ${newestFirst.length + 1} rows already hold ${cells} feature values, more than DRIFTLINE_TRAINER_MAX_CELLS (${maxCells}, about ${Math.round((maxCells * HEAP_BYTES_PER_CELL) / 2 ** 20)} MB of heap) before DRIFTLINE_TRAINER_MAX_ROWS (${maxRows}) was reached: lower DRIFTLINE_TRAINER_MAX_ROWS, or give the trainer more heap (NODE_OPTIONS=--max-old-space-size; the default of DRIFTLINE_TRAINER_MAX_CELLS follows it)`,
            );
          }
          newestFirst.push({
            predictionId: r.predictionId,
            time: r.time,
            features,
            prediction: r.baseScore ?? Number.NaN,
            label: r.label,
          });
        }
        const last = page.at(-1);
        if (page.length < want || last === undefined || newestFirst.length > maxRows) break;
        before = { time: last.time, predictionId: last.predictionId };
      }
      const truncated = newestFirst.length > maxRows;
      return { rows: newestFirst.slice(0, maxRows).reverse(), truncated };
    },
  };
}
