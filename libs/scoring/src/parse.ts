// Validation of XGBoost's JSON model (Booster.save_model('m.json'), schema in XGBoost's
// doc/model.schema): every value the scorer reads is checked here, once, with the JSON path of the
// offending field in the error. What the scorer does not read (loss_changes, sum_hessian, …) is ignored.
import { maxOf } from '@driftline/core';
import { ModelFormatError } from './errors.js';
import { baseScoreToMargin, type ObjectiveSpec, objectiveSpec, SUPPORTED_OBJECTIVES } from './objective.js';

/** Bounds on what a model may ask of memory; a model beyond them is refused, naming the field. */
export interface ModelLimits {
  /** Trees in the model (all classes and parallel trees). Default 100,000. */
  readonly maxTrees: number;
  /** Nodes of one tree. Default 1,048,576 (depth 19 at most when full). */
  readonly maxNodesPerTree: number;
  /** Nodes over all trees. Default 20,000,000. */
  readonly maxTotalNodes: number;
  /** Features (num_feature). Default 1,000,000. */
  readonly maxFeatures: number;
  /** Classes of a multi-class model. Default 10,000. */
  readonly maxClasses: number;
  /** 32-bit words over all categorical splits' bitsets. Default 8,388,608 (32 MiB). */
  readonly maxCategoryWords: number;
  /**
   * Depths summed over all trees: the steps every row walks. Default 10,000,000. A chain tree of
   * a million nodes was a million steps per row (10 ms a row on a 16.7 MB model).
   */
  readonly maxTotalDepth: number;
}

export const DEFAULT_MODEL_LIMITS: ModelLimits = {
  maxTrees: 100_000,
  maxNodesPerTree: 1 << 20,
  maxTotalNodes: 20_000_000,
  maxFeatures: 1_000_000,
  maxClasses: 10_000,
  maxCategoryWords: 1 << 23,
  maxTotalDepth: 10_000_000,
};

/**
 * What a served model may ask (the defaults above are for offline use); the model-server loads
 * with these and the trainer holds its output to them, so a version the server refuses is never
 * promoted. Features: each request allocates instances × features and logs every one (a model of
 * 1,000,000 features cost 11 s and 1.5 GB for 20 instances). Nodes: what the server's largest
 * artifact file of XGBoost's JSON holds (about 65 bytes a node). Depth: the steps each row walks
 * over all trees (100 trees of depth 6 is 600).
 */
export const SERVED_MODEL_LIMITS = {
  maxFeatures: 10_000,
  maxTotalNodes: 4_000_000,
  maxTotalDepth: 200_000,
} as const satisfies Partial<ModelLimits>;

/** XGBoost's OutOfRangeCat(): categories are integers in [0, 2^24). */
const MAX_CATEGORY = 1 << 24;

/**
 * One tree, its reachable nodes renumbered breadth-first (the root is 0). A leaf has itself as left,
 * right and missing child, so a walk of `depth` steps from the root ends on the row's leaf whatever
 * path it takes: the scorer needs no leaf test.
 */
export interface ParsedTree {
  readonly feature: readonly number[];
  readonly threshold: readonly number[];
  readonly left: readonly number[];
  readonly right: readonly number[];
  readonly missing: readonly number[];
  /** Leaf value (0 for internal nodes). */
  readonly value: readonly number[];
  /** Per node: undefined for a numeric split or a leaf, else the categories that go right. */
  readonly categories: ReadonlyArray<readonly number[] | undefined>;
  /** Edges on the longest root-to-leaf path. */
  readonly depth: number;
  readonly group: number;
}

export interface ParsedModel {
  readonly objective: string;
  readonly spec: ObjectiveSpec;
  readonly numFeatures: number;
  readonly numGroups: number;
  readonly baseMargins: readonly number[];
  readonly featureNames: readonly string[] | undefined;
  readonly featureTypes: readonly string[] | undefined;
  readonly trees: readonly ParsedTree[];
  readonly hasCategorical: boolean;
  readonly xgboostVersion: string | undefined;
}

type Json = Record<string, unknown>;

function fail(field: string, message: string): never {
  throw new ModelFormatError(field, message);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `"${value.length > 40 ? `${value.slice(0, 40)}…` : value}"`;
  return typeof value === 'object' ? 'an object' : String(value);
}

function object(value: unknown, field: string): Json {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    fail(field, `expected an object, got ${describe(value)}`);
  return value as Json;
}

function array(value: unknown, field: string, length?: number): readonly unknown[] {
  if (!Array.isArray(value)) fail(field, `expected an array, got ${describe(value)}`);
  if (length !== undefined && value.length !== length)
    fail(field, `expected ${length} entries (tree_param.num_nodes), got ${value.length}`);
  return value;
}

/** XGBoost stores parameters as strings ("4", "5E-1"); values inside arrays as numbers. */
function number(value: unknown, field: string): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n)) fail(field, `expected a finite number, got ${describe(value)}`);
  return n;
}

function integer(value: unknown, field: string, min: number, max: number): number {
  const n = number(value, field);
  if (!Number.isInteger(n) || n < min || n > max) fail(field, `expected an integer in [${min}, ${max}], got ${n}`);
  return n;
}

function integers(value: unknown, field: string, length: number | undefined, min: number, max: number): number[] {
  const a = array(value, field, length);
  const out = new Array<number>(a.length);
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      fail(`${field}[${i}]`, `expected an integer in [${min}, ${max}], got ${describe(v)}`);
    out[i] = v;
  }
  return out;
}

function numbers(value: unknown, field: string, length: number): number[] {
  const a = array(value, field, length);
  const out = new Array<number>(a.length);
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    if (typeof v !== 'number' || !Number.isFinite(v))
      fail(`${field}[${i}]`, `expected a finite number, got ${describe(v)}`);
    out[i] = v;
  }
  return out;
}

/** "[4.2666668E-1]" (XGBoost ≥ 3.1, one per output group), "5E-1" (earlier) or a number. */
function baseScores(value: unknown, field: string): number[] {
  if (typeof value === 'string' && value.trim().startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      fail(field, `expected a number or a list of numbers, got ${describe(value)}`);
    }
    const list = array(parsed, field);
    if (list.length === 0) fail(field, 'expected at least one value');
    return list.map((v, i) => number(v, `${field}[${i}]`));
  }
  return [number(value, field)];
}

function optionalStrings(value: unknown, field: string, length: number): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  const a = array(value, field);
  if (a.length === 0) return undefined;
  if (a.length !== length) fail(field, `expected ${length} entries (num_feature), got ${a.length}`);
  return a.map((v, i) => {
    if (typeof v !== 'string') fail(`${field}[${i}]`, `expected a string, got ${describe(v)}`);
    return v;
  });
}

/** A value XGBoost keeps as float32: one beyond its range would score ±Infinity. */
function float32(value: number, field: string): number {
  const f = Math.fround(value);
  if (!Number.isFinite(f)) fail(field, `${value} is outside float32's range (XGBoost stores float32)`);
  return f;
}

/** Parses and validates a model; `input` is the file's text or its JSON.parse result. */
export function parseModel(input: unknown, limits: ModelLimits = DEFAULT_MODEL_LIMITS): ParsedModel {
  let doc: unknown = input;
  if (typeof input === 'string') {
    try {
      // A leading byte order mark (an editor's UTF-8 with BOM) is not JSON: refused, the message
      // named an invisible character.
      doc = JSON.parse(input.charCodeAt(0) === 0xfeff ? input.slice(1) : input);
    } catch (error) {
      throw new ModelFormatError('(document)', `not JSON: ${(error as Error).message}`, { cause: error });
    }
  }
  const root = object(doc, '(document)');
  const versionField = root.version;
  const xgboostVersion = Array.isArray(versionField) ? versionField.join('.') : undefined;
  const learner = object(root.learner, 'learner');

  const objective = object(learner.objective, 'learner.objective');
  const name = objective.name;
  if (typeof name !== 'string') fail('learner.objective.name', `expected a string, got ${describe(name)}`);
  const spec = objectiveSpec(name);
  if (spec === undefined)
    fail(
      'learner.objective.name',
      `objective "${name}" is not supported (supported: ${SUPPORTED_OBJECTIVES.join(', ')})`,
    );

  const param = object(learner.learner_model_param, 'learner.learner_model_param');
  // A model of no feature cannot score a row (XGBoost cannot train one either).
  const numFeatures = integer(param.num_feature, 'learner.learner_model_param.num_feature', 1, limits.maxFeatures);
  const numClass = integer(param.num_class ?? '0', 'learner.learner_model_param.num_class', 0, limits.maxClasses);
  if (param.num_target !== undefined) {
    const numTarget = integer(param.num_target, 'learner.learner_model_param.num_target', 0, limits.maxClasses);
    if (numTarget > 1)
      fail('learner.learner_model_param.num_target', `multi-target models (${numTarget} targets) are not supported`);
  }
  let numGroups = 1;
  if (spec.multiclass) {
    if (numClass < 2)
      fail('learner.learner_model_param.num_class', `objective ${name} needs num_class ≥ 2, got ${numClass}`);
    numGroups = numClass;
  } else if (numClass > 1) {
    fail('learner.learner_model_param.num_class', `objective ${name} is not multi-class but num_class is ${numClass}`);
  }
  const stored = baseScores(param.base_score ?? '0.5', 'learner.learner_model_param.base_score');
  if (stored.length !== 1 && stored.length !== numGroups)
    fail(
      'learner.learner_model_param.base_score',
      `expected 1 or ${numGroups} values (one per output group), got ${stored.length}`,
    );
  if (spec.link === 'logit' && stored.some((p) => !(p >= 0 && p <= 1)))
    fail('learner.learner_model_param.base_score', `objective ${name} needs a base_score in [0, 1], got ${stored}`);
  if (spec.link === 'log' && stored.some((p) => !(p > 0)))
    fail('learner.learner_model_param.base_score', `objective ${name} needs a base_score > 0, got ${stored}`);
  const baseMargins = Array.from({ length: numGroups }, (_, g) =>
    baseScoreToMargin(spec.link, stored.length === 1 ? stored[0]! : stored[g]!),
  );
  if (baseMargins.some((m) => !Number.isFinite(m)))
    fail('learner.learner_model_param.base_score', `${stored} is outside float32's range (XGBoost stores float32)`);

  const featureNames = optionalStrings(learner.feature_names, 'learner.feature_names', numFeatures);
  const featureTypes = optionalStrings(learner.feature_types, 'learner.feature_types', numFeatures);

  const booster = object(learner.gradient_booster, 'learner.gradient_booster');
  if (booster.name !== 'gbtree')
    fail(
      'learner.gradient_booster.name',
      `booster ${describe(booster.name)} is not supported (only "gbtree"; dart and gblinear are not)`,
    );
  const at = 'learner.gradient_booster.model';
  const model = object(booster.model, at);
  const treesJson = array(model.trees, `${at}.trees`);
  if (treesJson.length > limits.maxTrees)
    fail(`${at}.trees`, `${treesJson.length} trees exceed the limit of ${limits.maxTrees}`);
  if (model.gbtree_model_param !== undefined) {
    const p = object(model.gbtree_model_param, `${at}.gbtree_model_param`);
    const declared = integer(p.num_trees, `${at}.gbtree_model_param.num_trees`, 0, limits.maxTrees);
    if (declared !== treesJson.length)
      fail(`${at}.gbtree_model_param.num_trees`, `declares ${declared} trees but the model has ${treesJson.length}`);
  }
  const treeInfo = integers(model.tree_info, `${at}.tree_info`, undefined, 0, numGroups - 1);
  if (treeInfo.length !== treesJson.length)
    fail(`${at}.tree_info`, `expected one entry per tree (${treesJson.length}), got ${treeInfo.length}`);

  const budget = { nodes: limits.maxTotalNodes, words: limits.maxCategoryWords };
  const trees = treesJson.map((t, i) =>
    parseTree(t, `${at}.trees[${i}]`, treeInfo[i]!, numFeatures, limits.maxNodesPerTree, budget),
  );
  let totalDepth = 0;
  for (const t of trees) totalDepth += t.depth;
  if (totalDepth > limits.maxTotalDepth)
    fail(
      `${at}.trees`,
      `the trees are ${totalDepth} levels deep in all, more than ${limits.maxTotalDepth}: every row walks them all`,
    );
  checkMarginRange(baseMargins, trees, `${at}.trees`);
  const hasCategorical = trees.some((t) => t.categories.some((c) => c !== undefined));
  return {
    objective: name,
    spec,
    numFeatures,
    numGroups,
    baseMargins,
    featureNames,
    featureTypes,
    trees,
    hasCategorical,
    xgboostVersion,
  };
}

/**
 * Refuses a model some row could score as ±Infinity: its margins, accumulated in float32 as XGBoost
 * does, could leave float32's range (base margin plus, tree after tree, the largest or smallest
 * leaf of each tree of the group). Each leaf was checked alone: 5 trees of leaves 3e38 loaded, were
 * promoted, and every request was a 500. A worst case over all leaves, reachable or not, so only a
 * bound that is infinite is refused: a real model's margins are far from it. Not applied to
 * exp(margin): its float32 end (a margin of 88.72) is within reach of a long model's worst case.
 */
function checkMarginRange(baseMargins: readonly number[], trees: readonly ParsedTree[], field: string): void {
  const hi = [...baseMargins];
  const lo = [...baseMargins];
  const highest = [...baseMargins];
  const lowest = [...baseMargins];
  for (const t of trees) {
    let max = Number.NEGATIVE_INFINITY;
    let min = Number.POSITIVE_INFINITY;
    for (let i = 0; i < t.left.length; i++) {
      if (t.left[i] !== i) continue; // not a leaf
      const v = t.value[i]!;
      if (v > max) max = v;
      if (v < min) min = v;
    }
    const g = t.group;
    hi[g] = hi[g]! + max;
    lo[g] = lo[g]! + min;
    if (hi[g]! > highest[g]!) highest[g] = hi[g]!;
    if (lo[g]! < lowest[g]!) lowest[g] = lo[g]!;
  }
  for (let g = 0; g < baseMargins.length; g++) {
    const group = baseMargins.length > 1 ? ` of output group ${g}` : '';
    for (const m of [highest[g]!, lowest[g]!]) {
      if (!Number.isFinite(Math.fround(m)))
        fail(
          field,
          `the margin${group} (base score plus each tree's leaf) can reach ${m}, beyond float32's range: a row could score ${m > 0 ? '' : '-'}Infinity`,
        );
    }
  }
}

function parseTree(
  value: unknown,
  at: string,
  group: number,
  numFeatures: number,
  maxNodes: number,
  budget: { nodes: number; words: number },
): ParsedTree {
  const tree = object(value, at);
  const tp = object(tree.tree_param, `${at}.tree_param`);
  const n = integer(tp.num_nodes, `${at}.tree_param.num_nodes`, 1, maxNodes);
  budget.nodes -= n;
  if (budget.nodes < 0) fail(`${at}.tree_param.num_nodes`, 'the model exceeds the limit on nodes over all trees');
  if (tp.size_leaf_vector !== undefined) {
    const s = integer(tp.size_leaf_vector, `${at}.tree_param.size_leaf_vector`, 0, Number.MAX_SAFE_INTEGER);
    if (s > 1) fail(`${at}.tree_param.size_leaf_vector`, `vector leaves (${s}, multi_strategy) are not supported`);
  }
  const left = integers(tree.left_children, `${at}.left_children`, n, -1, n - 1);
  const right = integers(tree.right_children, `${at}.right_children`, n, -1, n - 1);
  const splitIndex = integers(tree.split_indices, `${at}.split_indices`, n, 0, 2 ** 31 - 1);
  const cond = numbers(tree.split_conditions, `${at}.split_conditions`, n);
  const defaultLeft = array(tree.default_left, `${at}.default_left`, n);
  const splitType = tree.split_type === undefined ? undefined : integers(tree.split_type, `${at}.split_type`, n, 0, 1);

  // Categorical splits: node → the categories that go right.
  const catsOf = new Map<number, number[]>();
  if (splitType?.includes(1)) {
    const nodes = integers(tree.categories_nodes, `${at}.categories_nodes`, undefined, 0, n - 1);
    const segments = integers(tree.categories_segments, `${at}.categories_segments`, nodes.length, 0, 2 ** 31 - 1);
    const sizes = integers(tree.categories_sizes, `${at}.categories_sizes`, nodes.length, 0, 2 ** 31 - 1);
    const all = integers(tree.categories, `${at}.categories`, undefined, 0, MAX_CATEGORY - 1);
    // As XGBoost writes them: nodes in increasing order (so each once, at most num_nodes), their
    // segments in order and disjoint. Overlapping segments let a small file copy one long segment
    // for every node (a 629 KB model exhausted a 2 GB heap); disjoint ones copy each category once.
    let segmentEnd = 0;
    for (let k = 0; k < nodes.length; k++) {
      if (k > 0 && nodes[k]! <= nodes[k - 1]!)
        fail(`${at}.categories_nodes[${k}]`, `expected increasing node ids, got ${nodes[k]} after ${nodes[k - 1]}`);
      const begin = segments[k]!;
      const end = begin + sizes[k]!;
      if (end > all.length)
        fail(`${at}.categories_segments[${k}]`, `segment [${begin}, ${end}) lies outside categories (${all.length})`);
      if (begin < segmentEnd)
        fail(
          `${at}.categories_segments[${k}]`,
          `segment [${begin}, ${end}) overlaps the one before (ends at ${segmentEnd})`,
        );
      segmentEnd = end;
      const cats = all.slice(begin, end);
      const words = (cats.length === 0 ? 0 : maxOf(cats) >>> 5) + 1; // a loop: a spread of 200,000 overflowed the stack
      budget.words -= words;
      if (budget.words < 0) fail(`${at}.categories`, 'the model exceeds the limit on categorical bitset size');
      catsOf.set(nodes[k]!, cats);
    }
  }

  // Breadth-first from the root: proves the arrays form a tree (every child in range, reached once,
  // so a walk terminates) and renumbers the reachable nodes densely.
  const id = new Int32Array(n).fill(-1);
  const level: number[] = [0];
  const order: number[] = [0];
  id[0] = 0;
  let depth = 0;
  for (let q = 0; q < order.length; q++) {
    const nid = order[q]!;
    const l = left[nid]!;
    const r = right[nid]!;
    if (l === -1 || r === -1) {
      if (l !== r) fail(`${at}.left_children[${nid}]`, `node ${nid} has one child (left ${l}, right ${r})`);
      continue;
    }
    for (const [child, side] of [
      [l, 'left_children'],
      [r, 'right_children'],
    ] as const) {
      if (id[child] !== -1) fail(`${at}.${side}[${nid}]`, `node ${child} is reached twice (not a tree)`);
      id[child] = order.length;
      order.push(child);
      level.push(level[q]! + 1);
      depth = Math.max(depth, level[q]! + 1);
    }
  }
  const size = order.length;
  const feature = new Array<number>(size).fill(0);
  const threshold = new Array<number>(size).fill(0);
  const leftOut = new Array<number>(size);
  const rightOut = new Array<number>(size);
  const missing = new Array<number>(size);
  const valueOut = new Array<number>(size).fill(0);
  const categories = new Array<number[] | undefined>(size).fill(undefined);
  for (let i = 0; i < size; i++) {
    const nid = order[i]!;
    if (left[nid] === -1) {
      leftOut[i] = rightOut[i] = missing[i] = i;
      valueOut[i] = float32(cond[nid]!, `${at}.split_conditions[${nid}]`); // a leaf's value is stored there
      continue;
    }
    const f = splitIndex[nid]!;
    if (f >= numFeatures)
      fail(`${at}.split_indices[${nid}]`, `feature ${f} out of range (the model has ${numFeatures} features)`);
    const dl = defaultLeft[nid];
    if (dl !== 0 && dl !== 1 && dl !== true && dl !== false)
      fail(`${at}.default_left[${nid}]`, `expected 0 or 1, got ${describe(dl)}`);
    feature[i] = f;
    threshold[i] = float32(cond[nid]!, `${at}.split_conditions[${nid}]`);
    leftOut[i] = id[left[nid]!]!;
    rightOut[i] = id[right[nid]!]!;
    missing[i] = dl === 1 || dl === true ? leftOut[i]! : rightOut[i]!;
    if (splitType !== undefined && splitType[nid] === 1) {
      const cats = catsOf.get(nid);
      if (cats === undefined)
        fail(`${at}.categories_nodes`, `categorical split at node ${nid} has no categories entry`);
      categories[i] = cats;
    }
  }
  return {
    feature,
    threshold,
    left: leftOut,
    right: rightOut,
    missing,
    value: valueOut,
    categories,
    depth,
    group,
  };
}
