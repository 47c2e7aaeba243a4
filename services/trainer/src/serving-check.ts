import { loadXgboostModel, ModelFormatError, SERVED_MODEL_LIMITS, trainerFeatureEncoder } from '@driftline/scoring';

/**
 * Why the model-server would refuse the artifacts (model.json and meta.json, parsed), or undefined
 * when it loads them: the same loader, limits and encoder it uses (buildVersion), and one output per
 * row. What a feature view declares is checked only when serving (planServing): the trainer does not
 * know the views.
 */
export function servingProblem(modelJson: unknown, metaJson: unknown): string | undefined {
  try {
    const model = loadXgboostModel(modelJson, SERVED_MODEL_LIMITS);
    trainerFeatureEncoder(metaJson, model);
    if (model.numOutputs !== 1)
      return `${model.objective} has ${model.numOutputs} outputs per row; the model server answers one score`;
    return undefined;
  } catch (error) {
    if (error instanceof ModelFormatError) return error.message;
    throw error;
  }
}
