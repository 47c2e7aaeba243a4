import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { SeededRandom } from '@driftline/test-support/random';
import { loadXgboostModel, type XgboostModel } from '../src/index.js';

/**
 * Scoring throughput on one core (`make bench`, issue 12's anchor): 100 trees of depth 6 on 10 float
 * features. The trees are complete (64 leaves each, every row makes 6 comparisons per tree): the
 * most work a depth-6 model can ask for; models trained on real data are usually sparser. The model
 * goes through the real loading path (XGBoost's JSON layout), rows have 5% missing values.
 * - scoring.rows_per_s: rows per second in calls of 100 rows (the model-server's batch), Float64 rows;
 * - scoring.single_rows_per_s: rows per second with one predictOne call per row;
 * - scoring.large_batch_rows_per_s: calls of 10,000 rows.
 * Medians of several runs, measured in a child process of its own (forked with this process'
 * execArgv, so tsx applies): the CPU time of the `make bench` process also counts its other work
 * (the stack lease, other benches' leftovers), which read 15–30 % slower here.
 */

export interface ScoringBenchOptions {
  readonly runs?: number;
  readonly rowsPerRun?: number;
}

const FEATURES = 10;
const DEPTH = 6;
const TREES = 100;

/** A complete binary:logistic tree model in XGBoost's JSON layout, seeded. */
export function syntheticModelJson(seed = 7, trees = TREES, depth = DEPTH, features = FEATURES): unknown {
  const rng = new SeededRandom(seed);
  const nodes = 2 ** (depth + 1) - 1;
  const internal = 2 ** depth - 1;
  const tree = (id: number) => {
    const left: number[] = [];
    const right: number[] = [];
    const split: number[] = [];
    const cond: number[] = [];
    const dflt: number[] = [];
    for (let n = 0; n < nodes; n++) {
      const inner = n < internal;
      left.push(inner ? 2 * n + 1 : -1);
      right.push(inner ? 2 * n + 2 : -1);
      split.push(inner ? rng.int(features) : 0);
      cond.push(Math.fround(inner ? rng.normal() : (rng.uniform() - 0.5) * 0.2));
      dflt.push(rng.int(2));
    }
    return {
      id,
      tree_param: { num_nodes: String(nodes), num_feature: String(features), size_leaf_vector: '1' },
      left_children: left,
      right_children: right,
      split_indices: split,
      split_conditions: cond,
      default_left: dflt,
      // Not read by the scorer. XGBoost 3.2 needs more than these to load the model (attributes,
      // cats, iteration_indptr, float arrays): bench/model-server/xgboost-model.py completes it.
      base_weights: cond.map((c, n) => (n < internal ? 0 : c)),
      loss_changes: Array(nodes).fill(0),
      sum_hessian: Array(nodes).fill(1),
      parents: Array.from({ length: nodes }, (_, n) => (n === 0 ? 2147483647 : (n - 1) >> 1)),
      split_type: Array(nodes).fill(0),
      categories: [],
      categories_nodes: [],
      categories_segments: [],
      categories_sizes: [],
    };
  };
  return {
    learner: {
      feature_names: Array.from({ length: features }, (_, i) => `f${i}`),
      feature_types: Array(features).fill('float'),
      learner_model_param: { base_score: '[5E-1]', num_class: '0', num_feature: String(features), num_target: '1' },
      objective: { name: 'binary:logistic' },
      gradient_booster: {
        name: 'gbtree',
        model: {
          gbtree_model_param: { num_parallel_tree: '1', num_trees: String(trees) },
          tree_info: Array(trees).fill(0),
          trees: Array.from({ length: trees }, (_, i) => tree(i)),
        },
      },
    },
    version: [3, 2, 0],
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function rows(n: number, seed: number): Float64Array {
  const rng = new SeededRandom(seed);
  const out = new Float64Array(n * FEATURES);
  for (let i = 0; i < out.length; i++) out[i] = rng.uniform() < 0.05 ? Number.NaN : rng.normal();
  return out;
}

/**
 * Rows per CPU-second scoring `data` in calls of `batch` rows (1 = predictOne). CPU time of the
 * process, not wall time: on a shared machine the wall clock counts other processes' turns, and
 * "per core" is what issue 12 asks for. Scoring allocates nothing, so GC threads add ~nothing.
 */
function throughput(model: XgboostModel, data: Float64Array, batch: number): number {
  const n = data.length / FEATURES;
  let sink = 0;
  const c0 = process.cpuUsage();
  if (batch === 1) {
    for (let r = 0; r < n; r++) sink += model.predictOne(data.subarray(r * FEATURES, (r + 1) * FEATURES));
  } else {
    const out = new Float64Array(batch);
    for (let r = 0; r + batch <= n; r += batch) {
      model.predict(data.subarray(r * FEATURES, (r + batch) * FEATURES), out);
      sink += out[0]!;
    }
  }
  const used = process.cpuUsage(c0);
  const seconds = (used.user + used.system) / 1e6;
  if (Number.isNaN(sink)) throw new Error('scoring produced NaN');
  return (Math.floor(n / batch) * batch) / seconds;
}

const CHILD_FLAG = '--scoring-bench-child';

export async function benchScoring(options: ScoringBenchOptions = {}): Promise<Record<string, number>> {
  const child = fork(fileURLToPath(import.meta.url), [CHILD_FLAG, JSON.stringify(options)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const [result] = (await once(child, 'message')) as [Record<string, number>];
  await once(child, 'exit');
  return result;
}

async function measure(options: ScoringBenchOptions): Promise<Record<string, number>> {
  const runs = options.runs ?? 7;
  const n = options.rowsPerRun ?? 100_000;
  const model = loadXgboostModel(syntheticModelJson());
  const data = rows(n, 11);
  // Warm-up: let the JIT settle on every path before measuring.
  throughput(model, data.subarray(0, 20_000 * FEATURES), 100);
  throughput(model, data.subarray(0, 20_000 * FEATURES), 1);
  throughput(model, data.subarray(0, 20_000 * FEATURES), 10_000);
  const batch: number[] = [];
  const single: number[] = [];
  const large: number[] = [];
  for (let i = 0; i < runs; i++) {
    batch.push(throughput(model, data, 100));
    single.push(throughput(model, data, 1));
    large.push(throughput(model, data, 10_000));
    await new Promise((resolve) => setImmediate(resolve));
  }
  return {
    'scoring.rows_per_s': Math.round(median(batch)),
    'scoring.single_rows_per_s': Math.round(median(single)),
    'scoring.large_batch_rows_per_s': Math.round(median(large)),
  };
}

if (process.argv[2] === CHILD_FLAG) {
  const result = await measure(JSON.parse(process.argv[3] ?? '{}') as ScoringBenchOptions);
  process.send?.(result, () => process.disconnect());
}
