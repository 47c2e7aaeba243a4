import { describe, expect, it } from 'vitest';
import {
  compiledModelBuffers,
  compileXgboostModel,
  loadXgboostModel,
  ModelFormatError,
  ScoringInputError,
  xgboostModelOf,
} from '../src/index.js';
import { CASES, caseOf, modelText, rowMajor } from './fixtures.js';

interface TreeSpec {
  left: number[];
  right: number[];
  feature: number[];
  cond: number[];
  defaultLeft: number[];
  splitType?: number[];
  cats?: { nodes: number[]; segments: number[]; sizes: number[]; values: number[] };
}

/** A model in XGBoost's JSON layout (as save_model writes it), from compact tree specs. */
function doc(trees: TreeSpec[], opts: { objective?: string; numFeature?: number; baseScore?: string } = {}) {
  return {
    learner: {
      feature_names: [],
      feature_types: [],
      learner_model_param: {
        base_score: opts.baseScore ?? '[5E-1]',
        num_class: '0',
        num_feature: String(opts.numFeature ?? 2),
        num_target: '1',
      },
      objective: { name: opts.objective ?? 'reg:squarederror' },
      gradient_booster: {
        name: 'gbtree',
        model: {
          gbtree_model_param: { num_parallel_tree: '1', num_trees: String(trees.length) },
          tree_info: trees.map(() => 0),
          trees: trees.map((t, id) => ({
            id,
            tree_param: { num_nodes: String(t.left.length), num_feature: '2', size_leaf_vector: '1' },
            left_children: t.left,
            right_children: t.right,
            split_indices: t.feature,
            split_conditions: t.cond,
            default_left: t.defaultLeft,
            split_type: t.splitType ?? t.left.map(() => 0),
            categories: t.cats?.values ?? [],
            categories_nodes: t.cats?.nodes ?? [],
            categories_segments: t.cats?.segments ?? [],
            categories_sizes: t.cats?.sizes ?? [],
          })),
        },
      },
    },
    version: [3, 2, 0],
  };
}

/** One split on feature 0 at `cond`: leaf -1 on the left, +1 on the right, missing → left. */
const stump = (cond: number, defaultLeft = 1): TreeSpec => ({
  left: [1, -1, -1],
  right: [2, -1, -1],
  feature: [0, 0, 0],
  cond: [cond, -1, 1],
  defaultLeft: [defaultLeft, 0, 0],
});

describe('tree semantics', () => {
  it('compares in float32: a double below a float32 threshold that rounds onto it goes right', () => {
    // Threshold 0.1 as float32 is 0.100000001490116…; the double 0.1 is below it, but XGBoost reads
    // 0.1 as float32 (= the threshold), and `x < t` is false: right. A double comparison says left.
    const m = loadXgboostModel(doc([stump(0.1)]), {});
    expect(m.predictOne([0.1, 0])).toBe(0.5 + 1);
    expect(m.predictOne([0.09999999, 0])).toBe(0.5 - 1);
    expect(m.predictOne(new Float32Array([0.1, 0]))).toBe(1.5);
  });

  it('missing values (NaN) follow default_left, both ways', () => {
    expect(loadXgboostModel(doc([stump(0, 1)])).predictOne([Number.NaN, 0])).toBe(-0.5);
    expect(loadXgboostModel(doc([stump(0, 0)])).predictOne([Number.NaN, 0])).toBe(1.5);
  });

  it('null and undefined in a plain array are missing values, not 0', () => {
    const m = loadXgboostModel(doc([stump(0.5, 0)]));
    // default right (+1); 0 would go left (−1).
    expect(m.predictOne([null, 0] as unknown as number[])).toBe(1.5);
    expect(m.predict([undefined, 0, 0, 0] as unknown as number[])[0]).toBe(1.5);
  });

  it('a logistic base_score of 0 or 1 (one-class training) is clamped to [1e-6, 1 - 1e-6] as XGBoost does (found by a review)', () => {
    const leaf: TreeSpec = { left: [-1], right: [-1], feature: [0], cond: [0], defaultLeft: [0] };
    // XGBoost 3.2's margins for base_score [1E0] and [0E0] (the review's reference run).
    const margin = (baseScore: string) =>
      loadXgboostModel(doc([leaf], { objective: 'binary:logistic', baseScore })).predictMargin([0, 0])[0];
    expect(margin('[1E0]')).toBeCloseTo(13.745161, 5);
    expect(margin('[0E0]')).toBeCloseTo(-13.81551, 5);
  });

  it('refuses trees deeper in all than maxTotalDepth: every row walks them all (found by a review)', () => {
    const trees = [stump(0.1), stump(0.2), stump(0.3)]; // depth 1 each
    expect(() => loadXgboostModel(doc(trees), { maxTotalDepth: 2 })).toThrow(/3 levels deep in all, more than 2/);
    expect(loadXgboostModel(doc(trees), { maxTotalDepth: 3 }).predictOne([0, 0])).toBeTypeOf('number');
  });

  it('refuses a model whose margin could leave float32 (found by a review)', () => {
    // Every leaf alone is float32; 5 trees of them sum to Infinity: a 500 on every request.
    const big = (v: number): TreeSpec => ({ ...stump(0), cond: [0, v, v] });
    const over = doc(
      [1, 2, 3, 4, 5].map(() => big(3e38)),
      { baseScore: '[0E0]' },
    );
    expect(() => loadXgboostModel(over)).toThrow(ModelFormatError);
    expect(() => loadXgboostModel(over)).toThrow(/trees: the margin .* can reach 1\.5\d*e\+39, beyond float32's range/);
    // Negative as well; a large but finite worst case loads and scores it.
    expect(() => loadXgboostModel(doc([big(-3e38), big(-3e38)], { baseScore: '[0E0]' }))).toThrow(/-Infinity/);
    expect(loadXgboostModel(doc([big(1e38), big(1e38)], { baseScore: '[0E0]' })).predictOne([1, 0])).toBeCloseTo(
      2e38,
      -32,
    );
    // exp(margin) is not judged by the worst case: 1,000 trees of largest leaf 0.1 (a worst case of
    // 100, beyond exp's float32 end at 88.72) load; a row taking +0.1 and -0.1 in turn scores exp(0) (base score 1 is log(1) as a margin).
    const long = doc(
      Array.from({ length: 1_000 }, (_, i) => ({ ...stump(0), cond: i % 2 === 0 ? [0, -0.1, 0.1] : [0, 0.1, -0.1] })),
      { objective: 'count:poisson', baseScore: '[1E0]' },
    );
    expect(loadXgboostModel(long).predictOne([1, 0])).toBeCloseTo(1, 4);
  });

  it('reads a model.json that starts with a UTF-8 byte order mark', () => {
    const text = JSON.stringify(doc([stump(0.5)]));
    expect(loadXgboostModel(`\uFEFF${text}`).predictOne([1, 0])).toBe(loadXgboostModel(text).predictOne([1, 0]));
  });

  it('a one-leaf tree adds its leaf', () => {
    const leaf: TreeSpec = { left: [-1], right: [-1], feature: [0], cond: [0.25], defaultLeft: [0] };
    expect(loadXgboostModel(doc([leaf, leaf])).predictOne([3, 4])).toBe(1);
  });

  it('categorical splits: listed categories go right; others, negatives and huge codes left; codes truncate', () => {
    const cat: TreeSpec = {
      ...stump(0),
      splitType: [1, 0, 0],
      cats: { nodes: [0], segments: [0], sizes: [2], values: [3, 40] },
    };
    const m = loadXgboostModel(doc([cat]));
    const score = (v: number) => m.predictOne([v, 0]);
    expect([score(3), score(40), score(3.9), score(40.5)]).toEqual([1.5, 1.5, 1.5, 1.5]);
    expect([score(0), score(2), score(4), score(39), score(41), score(64), score(1e9), score(-1), score(-0.5)]).toEqual(
      Array(9).fill(-0.5),
    );
    expect(score(Number.NaN)).toBe(-0.5); // default_left
  });

  it('batch, margins and single rows agree; output buffers are reused', () => {
    const m = loadXgboostModel(doc([stump(0)], { objective: 'binary:logistic' }));
    const rows = new Float64Array([-1, 0, 1, 0, Number.NaN, 0]);
    const out = new Float64Array(3);
    expect(m.predict(rows, out)).toBe(out);
    expect(Array.from(m.predictMargin(rows))).toEqual([-1, 1, -1]); // base 0.5 → margin 0
    expect(out[1]).toBe(Math.fround(1 / (1 + Math.exp(-1))));
    expect(m.predictOne([1, 0])).toBe(out[1]);
  });

  it('scores batches larger than one block the same as row by row', () => {
    const m = loadXgboostModel(modelText('binary-logistic'));
    const n = 1000;
    const rows = new Float64Array(n * 10).map((_, i) => (i % 7 === 0 ? Number.NaN : Math.sin(i) * 3));
    const batch = m.predict(rows);
    for (let r = 0; r < n; r += 37) expect(m.predictOne(rows.subarray(r * 10, r * 10 + 10))).toBe(batch[r]);
  });

  it('every call size (1 to 70 rows: the interleaved and the remainder walks) gives the same margins', () => {
    for (const name of ['binary-logistic', 'multi-softprob', 'categorical']) {
      const m = loadXgboostModel(modelText(name));
      const f = m.numFeatures;
      const g = m.numGroups;
      const rows = new Float64Array(70 * f).map((_, i) => (i % 11 === 0 ? Number.NaN : Math.cos(i * 1.7) * 2));
      const all = m.predictMargin(rows);
      for (let size = 1; size <= 70; size++) {
        const part = m.predictMargin(rows.subarray(0, size * f));
        expect(Array.from(part), `${name}, ${size} rows`).toEqual(Array.from(all.subarray(0, size * g)));
      }
    }
  });
});

describe('input errors', () => {
  const m = loadXgboostModel(doc([stump(0)]));
  it('names the bad argument', () => {
    expect(() => m.predict([1, 2, 3])).toThrow(ScoringInputError);
    expect(() => m.predict([1, 2, 3])).toThrow('rows: expected a multiple of 2 values');
    expect(() => m.predictOne([1])).toThrow('row: expected 2 values, got 1');
    expect(() => m.predict([1, 2, 3, 4], new Float64Array(1))).toThrow('out: expected room for 2 values');
  });
});

describe('model validation names the field', () => {
  const cases: Array<[string, (d: ReturnType<typeof doc>) => unknown, RegExp]> = [
    ['not JSON', () => '{"learner":', /model \(document\): not JSON/],
    ['no learner', () => ({}), /model learner: expected an object, got undefined/],
    [
      'unsupported objective',
      (d) => ({ ...d, learner: { ...d.learner, objective: { name: 'rank:ndcg' } } }),
      /model learner\.objective\.name: objective "rank:ndcg" is not supported \(supported: binary:logistic/,
    ],
    [
      'dart booster',
      (d) => ({ ...d, learner: { ...d.learner, gradient_booster: { name: 'dart' } } }),
      /learner\.gradient_booster\.name: booster "dart" is not supported/,
    ],
    [
      'bad base_score',
      (d) => ({
        ...d,
        learner: { ...d.learner, learner_model_param: { ...d.learner.learner_model_param, base_score: 'abc' } },
      }),
      /learner\.learner_model_param\.base_score: expected a finite number, got "abc"/,
    ],
    [
      'logistic base_score out of [0, 1]',
      (d) => ({
        ...d,
        learner: {
          ...d.learner,
          objective: { name: 'binary:logistic' },
          learner_model_param: { ...d.learner.learner_model_param, base_score: '[1.5]' },
        },
      }),
      /base_score: objective binary:logistic needs a base_score in \[0, 1\]/,
    ],
    [
      'base_score beyond float32',
      (d) => ({
        ...d,
        learner: {
          ...d.learner,
          objective: { name: 'reg:squarederror' },
          learner_model_param: { ...d.learner.learner_model_param, base_score: '1e39' },
        },
      }),
      /base_score: 1e\+39 is outside float32's range/,
    ],
  ];
  for (const [what, mutate, message] of cases) {
    it(what, () => {
      const input = mutate(doc([stump(0)]));
      expect(() => loadXgboostModel(input)).toThrow(ModelFormatError);
      expect(() => loadXgboostModel(input)).toThrow(message);
    });
  }

  const treeCases: Array<[string, Partial<TreeSpec>, RegExp]> = [
    [
      'child out of range',
      { left: [5, -1, -1] },
      /trees\[0\]\.left_children\[0\]: expected an integer in \[-1, 2\], got 5/,
    ],
    [
      'a cycle',
      { left: [1, 0, -1], right: [2, -1, -1] },
      /trees\[0\]\.left_children\[1\]: node 1 has one child|reached twice/,
    ],
    [
      'a node reached twice',
      { left: [1, -1, -1], right: [1, -1, -1] },
      /trees\[0\]\.right_children\[0\]: node 1 is reached twice/,
    ],
    ['one child', { left: [1, -1, -1], right: [-1, -1, -1] }, /trees\[0\]\.left_children\[0\]: node 0 has one child/],
    [
      'feature out of range',
      { feature: [7, 0, 0] },
      /trees\[0\]\.split_indices\[0\]: feature 7 out of range \(the model has 2 features\)/,
    ],
    [
      'length mismatch',
      { cond: [0, 1] },
      /trees\[0\]\.split_conditions: expected 3 entries \(tree_param\.num_nodes\), got 2/,
    ],
    [
      'non-finite condition',
      { cond: [0, null as unknown as number, 1] },
      /trees\[0\]\.split_conditions\[1\]: expected a finite number, got null/,
    ],
    ['bad default_left', { defaultLeft: [2, 0, 0] }, /trees\[0\]\.default_left\[0\]: expected 0 or 1, got 2/],
    // Finite as doubles, ±Infinity as the float32 XGBoost keeps: the model would score ±Infinity.
    [
      'leaf beyond float32',
      { cond: [0, 1e39, 1] },
      /trees\[0\]\.split_conditions\[1\]: 1e\+39 is outside float32's range/,
    ],
    [
      'threshold beyond float32',
      { cond: [-1e39, 0, 1] },
      /trees\[0\]\.split_conditions\[0\]: -1e\+39 is outside float32's range/,
    ],
    [
      'categorical split without categories',
      { splitType: [1, 0, 0] },
      /trees\[0\]\.categories_nodes: categorical split at node 0 has no categories entry/,
    ],
    [
      'category beyond XGBoost range',
      { splitType: [1, 0, 0], cats: { nodes: [0], segments: [0], sizes: [1], values: [2 ** 24] } },
      /trees\[0\]\.categories\[0\]: expected an integer in \[0, 16777215\]/,
    ],
    [
      'segment outside categories',
      { splitType: [1, 0, 0], cats: { nodes: [0], segments: [1], sizes: [3], values: [1, 2] } },
      /trees\[0\]\.categories_segments\[0\]: segment \[1, 4\) lies outside categories \(2\)/,
    ],
    // Each node once and segments disjoint: else a small file copies one long segment per entry.
    [
      'a node listed twice in categories_nodes',
      { splitType: [1, 0, 0], cats: { nodes: [0, 0], segments: [0, 2], sizes: [2, 0], values: [1, 2] } },
      /trees\[0\]\.categories_nodes\[1\]: expected increasing node ids, got 0 after 0/,
    ],
    [
      'overlapping category segments',
      { splitType: [1, 0, 0], cats: { nodes: [0, 1], segments: [0, 0], sizes: [2, 2], values: [1, 2] } },
      /trees\[0\]\.categories_segments\[1\]: segment \[0, 2\) overlaps the one before \(ends at 2\)/,
    ],
  ];
  for (const [what, patch, message] of treeCases) {
    it(what, () => {
      const input = doc([{ ...stump(0), ...patch }]);
      expect(() => loadXgboostModel(input)).toThrow(message);
    });
  }

  it('tree_info and num_trees must agree with the trees', () => {
    const d = doc([stump(0)]);
    d.learner.gradient_booster.model.tree_info = [0, 0];
    expect(() => loadXgboostModel(d)).toThrow(/model\.tree_info: expected one entry per tree \(1\), got 2/);
    const e = doc([stump(0)]);
    e.learner.gradient_booster.model.gbtree_model_param.num_trees = '3';
    expect(() => loadXgboostModel(e)).toThrow(/num_trees: declares 3 trees but the model has 1/);
  });

  it('vector leaves (multi_strategy=multi_output_tree) are refused', () => {
    const d = doc([stump(0)]);
    d.learner.gradient_booster.model.trees[0]!.tree_param.size_leaf_vector = '3';
    expect(() => loadXgboostModel(d)).toThrow(
      /size_leaf_vector: vector leaves \(3, multi_strategy\) are not supported/,
    );
  });

  it('limits bound what a model may allocate', () => {
    expect(() => loadXgboostModel(doc([stump(0), stump(1)]), { maxTrees: 1 })).toThrow(
      /model learner\.gradient_booster\.model\.trees: 2 trees exceed the limit of 1/,
    );
    expect(() => loadXgboostModel(doc([stump(0)]), { maxNodesPerTree: 2 })).toThrow(
      /trees\[0\]\.tree_param\.num_nodes: expected an integer in \[1, 2\], got 3/,
    );
    expect(() => loadXgboostModel(doc([stump(0), stump(1)]), { maxTotalNodes: 5 })).toThrow(
      /trees\[1\]\.tree_param\.num_nodes: the model exceeds the limit on nodes over all trees/,
    );
    expect(() => loadXgboostModel(doc([stump(0)], { numFeature: 10 }), { maxFeatures: 5 })).toThrow(
      /num_feature: expected an integer in \[1, 5\], got 10/,
    );
    // A model of no feature loaded, then failed every request it scored (a shadow one included).
    expect(() => loadXgboostModel(doc([stump(0)], { numFeature: 0 }))).toThrow(
      /num_feature: expected an integer in \[1, \d+\], got 0/,
    );
  });
});

describe('a compiled model handed to another thread', () => {
  it('scores exactly as the model loaded in place, after a structured clone that transfers its arrays', () => {
    for (const name of CASES) {
      const text = modelText(name);
      const compiled = compileXgboostModel(text);
      const buffers = compiledModelBuffers(compiled);
      const moved = structuredClone(compiled, { transfer: buffers });
      // Transferred, not copied: the sender's arrays are detached.
      expect(buffers.every((b) => b.byteLength === 0)).toBe(true);
      const rows = rowMajor(caseOf(name).rows);
      const here = loadXgboostModel(text);
      const there = xgboostModelOf(moved);
      expect([there.objective, there.numOutputs, there.numTrees]).toEqual([
        here.objective,
        here.numOutputs,
        here.numTrees,
      ]);
      expect(there.predict(rows)).toEqual(here.predict(rows));
      expect(there.predictMargin(rows)).toEqual(here.predictMargin(rows));
    }
  });

  it('refuses data that is not what compileXgboostModel makes, naming what is wrong', () => {
    const fresh = () => compileXgboostModel(modelText('categorical'));
    const broken: Array<[string, (c: ReturnType<typeof fresh>) => unknown]> = [
      ['next[', (c) => ({ ...c, next: c.next.map((v, i) => (i === 5 ? c.feat.length : v)) })],
      ['feat[', (c) => ({ ...c, feat: c.feat.map((v, i) => (i === 0 ? -1 : v)) })],
      ['node arrays', (c) => ({ ...c, thr: c.thr.subarray(1) })],
      ['tree 0', (c) => ({ ...c, roots: c.roots.map((v, i) => (i === 0 ? c.feat.length : v)) })],
      ['baseMargins', (c) => ({ ...c, baseMargins: [] })],
      ['categorical[', (c) => ({ ...c, categorical: { ...c.categorical!, bits: new Uint32Array(0) } })],
    ];
    for (const [what, corrupt] of broken) {
      const attempt = () => xgboostModelOf(corrupt(fresh()) as ReturnType<typeof fresh>);
      expect(attempt, what).toThrow(ModelFormatError);
      expect(attempt, what).toThrow(what);
    }
    expect(() => xgboostModelOf({ ...fresh(), objective: 'rank:ndcg' })).toThrow('unsupported objective');
  });
});
