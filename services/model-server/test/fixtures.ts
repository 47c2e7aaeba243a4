import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PredictionEvent } from '@driftline/schemas';
import { syntheticModelJson } from '@driftline/scoring/bench';

/** Four double features f0..f3; f0, f1 in view `user`, f2 in view `account`, f3 only in requests. */
export const VIEWS_YAML = `views:
  - name: user
    entity: user_id
    ttl: 1d
    features:
      f0: double
      f1: double
      other: string
  - name: account
    entity: user_id
    ttl: 1d
    features:
      f2: double
`;

export const FEATURES = ['f0', 'f1', 'f2', 'f3'];

/** Writes `<dir>/<model>/<version>/{model,meta}.json` as the trainer's worker does; a seeded synthetic model. */
export function writeVersion(
  dir: string,
  model: string,
  version: string,
  seed: number,
  trees = 20,
  depth = 4,
): unknown {
  const at = join(dir, model, version);
  mkdirSync(at, { recursive: true });
  const json = syntheticModelJson(seed, trees, depth, FEATURES.length);
  writeFileSync(join(at, 'model.json'), JSON.stringify(json));
  writeFileSync(join(at, 'meta.json'), JSON.stringify({ features: FEATURES, categories: {} }));
  return json;
}

/** `trees` chain trees of `depth` levels each (a split per level, a leaf beside it) in XGBoost's JSON. */
export function chainModel(trees: number, depth: number): unknown {
  const j = syntheticModelJson(3, 1, 1, FEATURES.length) as {
    learner: { gradient_booster: { model: Record<string, unknown> } };
  };
  const tree = (id: number) => {
    const n = 2 * depth + 1;
    const left = Array<number>(n).fill(-1);
    const right = Array<number>(n).fill(-1);
    for (let k = 0; k < depth; k++) {
      left[2 * k] = 2 * k + 2;
      right[2 * k] = 2 * k + 1;
    }
    return {
      id,
      tree_param: { num_nodes: String(n), num_feature: String(FEATURES.length), size_leaf_vector: '1' },
      left_children: left,
      right_children: right,
      split_indices: left.map((_, i) => i % FEATURES.length),
      split_conditions: left.map((l) => (l === -1 ? 0.001 : -1e30)),
      default_left: left.map(() => 1),
      split_type: left.map(() => 0),
      categories: [],
      categories_nodes: [],
      categories_segments: [],
      categories_sizes: [],
    };
  };
  const m = j.learner.gradient_booster.model;
  m.trees = Array.from({ length: trees }, (_, i) => tree(i));
  m.tree_info = Array(trees).fill(0);
  m.gbtree_model_param = { num_parallel_tree: '1', num_trees: String(trees) };
  return j;
}

/** Prediction record `i` as the log's tests append it (ids `p-<i>`, event time rising with `i`). */
export const loggedPrediction = (i: number): PredictionEvent => ({
  prediction_id: `p-${i}`,
  model: 'fraud',
  model_version: 'v1',
  entity_id: `u${i % 97}`,
  event_time: 1_764_000_000_000 + i,
  features: { f0: i / 7, f1: null },
  prediction: (i % 100) / 100,
  predicted_class: null,
  role: 'production',
  scores: { v1: (i % 100) / 100 },
  // Some with a version that could not score (as the decoder reads it: null when none).
  unscored: i % 5 === 3 ? { v2: 'shadow' } : null,
});
