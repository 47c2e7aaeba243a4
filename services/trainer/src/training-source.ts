import type { PredictionStore } from '@driftline/warehouse';
import { type LabeledRow, parseFeatures } from './dataset.js';

/** Rows of one page read from the warehouse (each page is one bounded query). */
export const TRAINING_PAGE_ROWS = 50_000;

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
 */
export function warehouseTrainingSource(
  predictions: Pick<PredictionStore, 'trainingPage'>,
  pageRows = TRAINING_PAGE_ROWS,
): TrainingSource {
  return {
    async read(model, from, to, maxRows, baseVersion) {
      const newestFirst: LabeledRow[] = [];
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
          newestFirst.push({
            predictionId: r.predictionId,
            time: r.time,
            features: parseFeatures(r.features, r.predictionId),
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
