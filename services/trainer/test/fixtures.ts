import { type TrainerConfig, type TrainerEnv, toTrainerConfig } from '../src/config.js';

/**
 * model.json of a binary:logistic model in XGBoost's layout (as train.py's save_model writes it):
 * `trees` stumps on the first feature, named `names` (or by position when `named` is false).
 */
export function modelJson(names: readonly string[], opts: { trees?: number; named?: boolean } = {}): string {
  const trees = opts.trees ?? 2;
  return JSON.stringify({
    learner: {
      feature_names: opts.named === false ? [] : names,
      feature_types: opts.named === false ? [] : names.map(() => 'float'),
      learner_model_param: {
        base_score: '[5E-1]',
        num_class: '0',
        num_feature: String(names.length),
        num_target: '1',
      },
      objective: { name: 'binary:logistic', reg_loss_param: { scale_pos_weight: '1' } },
      gradient_booster: {
        name: 'gbtree',
        model: {
          gbtree_model_param: { num_parallel_tree: '1', num_trees: String(trees) },
          tree_info: Array.from({ length: trees }, () => 0),
          trees: Array.from({ length: trees }, (_, id) => ({
            id,
            tree_param: { num_nodes: '3', num_feature: String(names.length), size_leaf_vector: '1' },
            left_children: [1, -1, -1],
            right_children: [2, -1, -1],
            split_indices: [0, 0, 0],
            split_conditions: [0.5, -0.1, 0.1],
            default_left: [1, 0, 0],
            split_type: [0, 0, 0],
            categories: [],
            categories_nodes: [],
            categories_segments: [],
            categories_sizes: [],
          })),
        },
      },
    },
    version: [3, 2, 0],
  });
}

/** meta.json as train.py writes it. */
export function metaJson(
  names: readonly string[],
  categories: Readonly<Record<string, readonly string[]>> = {},
): string {
  return JSON.stringify({ features: names, categories, params: {}, rounds: 2, xgboost: '3.2.0', python: '3.11' });
}

/**
 * The unit tests' trainer configuration: small (1,000 rows, depth 2, 5 rounds, a 10 s worker
 * timeout), on the CPU, promoted directly; `vars` override it.
 */
export function unitTrainerConfig(artifactDir: string, vars: Partial<TrainerEnv> = {}): TrainerConfig {
  return toTrainerConfig({
    DRIFTLINE_TRAINER_GROUP: 'g',
    DRIFTLINE_TRAINER_ARTIFACT_DIR: artifactDir,
    DRIFTLINE_TRAINER_DEVICE: 'cpu',
    DRIFTLINE_TRAINER_PROMOTION_METRIC: 'roc_auc',
    DRIFTLINE_TRAINER_PROMOTION_MARGIN: 0.01,
    DRIFTLINE_TRAINER_HOLDOUT_FRACTION: 0.2,
    DRIFTLINE_TRAINER_MIN_ROWS: 20,
    DRIFTLINE_TRAINER_MIN_CLASS_ROWS: 1,
    DRIFTLINE_TRAINER_LABEL_WAIT: 0,
    DRIFTLINE_TRAINER_LABEL_POLL: 1_000,
    DRIFTLINE_TRAINER_MAX_ROWS: 1_000,
    DRIFTLINE_TRAINER_ROUNDS: 5,
    DRIFTLINE_TRAINER_MAX_DEPTH: 2,
    DRIFTLINE_TRAINER_TIMEOUT: 10_000,
    DRIFTLINE_TRAINER_SESSION_TIMEOUT: 60_000,
    DRIFTLINE_TRAINER_ROLLOUT: 'direct',
    ...vars,
  });
}
