import type { PredictionStore } from '@driftline/warehouse';
import { type LabeledRow, parseFeatures } from './dataset.js';

/** Where training data comes from: the joined rows of the model in [from, to). */
export interface TrainingSource {
  read(model: string, from: number, to: number): Promise<LabeledRow[]>;
}

/** Training rows from the warehouse's labeled_predictions, features parsed as stored at prediction time. */
export function warehouseTrainingSource(predictions: Pick<PredictionStore, 'trainingRows'>): TrainingSource {
  return {
    async read(model, from, to) {
      const rows = await predictions.trainingRows(model, from, to);
      return rows.map((r) => ({
        predictionId: r.predictionId,
        time: r.time,
        features: parseFeatures(r.features, r.predictionId),
        prediction: r.prediction,
        label: r.label,
      }));
    },
  };
}
