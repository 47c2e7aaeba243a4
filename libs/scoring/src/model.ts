import { maxOf } from '@driftline/core';
import { ModelFormatError, ScoringInputError } from './errors.js';
import { type ObjectiveSpec, objectiveSpec, transformMargins } from './objective.js';
import { DEFAULT_MODEL_LIMITS, type ModelLimits, parseModel } from './parse.js';

/** Rows scored per block: bounds the scratch memory of a call and keeps a block's margins in L1. */
const BLOCK_ROWS = 64;

/** A compiled XGBoost model: immutable, safe to share between requests. */
export interface XgboostModel {
  /** learner.objective.name, e.g. `binary:logistic`. */
  readonly objective: string;
  /** Values per input row (learner_model_param.num_feature). */
  readonly numFeatures: number;
  /** Margins per row: num_class for multi-class objectives, else 1. */
  readonly numGroups: number;
  /** Predictions per row: numGroups, except multi:softmax (the class index) and 1-group models. */
  readonly numOutputs: number;
  readonly featureNames: readonly string[] | undefined;
  /** XGBoost's feature_types (`q` numeric, `c` categorical, `int`, `float`, `i`), when saved. */
  readonly featureTypes: readonly string[] | undefined;
  readonly numTrees: number;
  /** Depths summed over all trees: the steps every row walks (what scoring a row costs). */
  readonly totalDepth: number;
  /** The margin every row starts from, per group (base_score through the objective's link). */
  readonly baseMargins: readonly number[];
  /** XGBoost version that wrote the model (`version` of the file), when present. */
  readonly xgboostVersion: string | undefined;
  /** Index of a feature by name, or -1. */
  featureIndex(name: string): number;
  /**
   * Predictions of a row-major batch (`numFeatures` values per row; NaN = missing), `numOutputs`
   * per row — what XGBoost's `Booster.predict` returns. A Float32Array is read in place; other
   * inputs are rounded to float32 as XGBoost's DMatrix does, null and undefined read as missing.
   */
  predict(rows: ArrayLike<number>, out?: Float64Array): Float64Array;
  /** Raw margins (`output_margin=True`), `numGroups` per row. */
  predictMargin(rows: ArrayLike<number>, out?: Float64Array): Float64Array;
  /** The prediction of one row, for models with one output per row. */
  predictOne(row: ArrayLike<number>): number;
}

/**
 * A compiled model as plain data: typed arrays and a few names and numbers. It survives a
 * structured clone, and its arrays can be transferred (`compiledModelBuffers`), so a large model
 * can be parsed and compiled on another thread and handed to the serving one without a copy.
 *
 * Trees are flattened into typed arrays: every reachable node of every tree, tree after tree
 * (structure of arrays). `next[4i..4i+3]` holds node i's left, right, missing, missing child, so a
 * step is `next[4i + (x ≥ t) + 2·isNaN(x)]` with no branch; a leaf points to itself four times and a
 * walk of the tree's depth ends on the row's leaf. XGBoost goes left when `fvalue < split_condition`
 * with both in float32: thresholds are a Float32Array and rows are read as float32, so the
 * comparison (in double, on exact float32 values) is XGBoost's.
 */
export interface CompiledXgboostModel {
  readonly objective: string;
  readonly numFeatures: number;
  readonly numGroups: number;
  readonly featureNames: readonly string[] | undefined;
  readonly featureTypes: readonly string[] | undefined;
  readonly baseMargins: readonly number[];
  readonly xgboostVersion: string | undefined;
  readonly feat: Int32Array;
  readonly thr: Float32Array;
  readonly next: Int32Array;
  readonly value: Float32Array;
  readonly roots: Int32Array;
  readonly depth: Int32Array;
  readonly groupOf: Int32Array;
  /** Categorical splits, when the model has any. */
  readonly categorical:
    | {
        /** Per node: -1 numeric split or leaf, else the first word of its category bitset in `bits`. */
        readonly at: Int32Array;
        readonly words: Int32Array;
        readonly bits: Uint32Array;
      }
    | undefined;
}

/**
 * Parses, validates and compiles an XGBoost JSON model (`Booster.save_model('m.json')`); `input` is
 * the file's text or its parsed JSON. Throws `ModelFormatError` naming the field when the model is
 * malformed, unsupported or beyond `limits`.
 */
export function loadXgboostModel(input: unknown, limits: Partial<ModelLimits> = {}): XgboostModel {
  return xgboostModelOf(compileXgboostModel(input, limits));
}

/** `loadXgboostModel` up to the plain data: the part worth running on another thread. */
export function compileXgboostModel(input: unknown, limits: Partial<ModelLimits> = {}): CompiledXgboostModel {
  const m = parseModel(input, { ...DEFAULT_MODEL_LIMITS, ...limits });
  const wordsOf = (c: readonly number[]): number => (c.length === 0 ? 0 : maxOf(c) >>> 5) + 1;
  let nodes = 0;
  let words = 0;
  for (const t of m.trees) {
    nodes += t.feature.length;
    for (const c of t.categories) if (c !== undefined) words += wordsOf(c);
  }
  const feat = new Int32Array(nodes);
  const thr = new Float32Array(nodes);
  const next = new Int32Array(4 * nodes);
  const value = new Float32Array(nodes);
  const roots = new Int32Array(m.trees.length);
  const depth = new Int32Array(m.trees.length);
  const groupOf = new Int32Array(m.trees.length);
  const categorical = m.hasCategorical
    ? { at: new Int32Array(nodes).fill(-1), words: new Int32Array(nodes), bits: new Uint32Array(words) }
    : undefined;
  let at = 0;
  let wordAt = 0;
  m.trees.forEach((t, ti) => {
    roots[ti] = at;
    depth[ti] = t.depth;
    groupOf[ti] = t.group;
    for (let i = 0; i < t.feature.length; i++) {
      const g = at + i;
      feat[g] = t.feature[i]!;
      thr[g] = t.threshold[i]!;
      value[g] = t.value[i]!;
      next[4 * g] = at + t.left[i]!;
      next[4 * g + 1] = at + t.right[i]!;
      next[4 * g + 2] = next[4 * g + 3] = at + t.missing[i]!;
      const cats = t.categories[i];
      if (cats !== undefined && categorical !== undefined) {
        const { bits } = categorical;
        categorical.at[g] = wordAt;
        categorical.words[g] = wordsOf(cats);
        for (const c of cats) bits[wordAt + (c >>> 5)] = bits[wordAt + (c >>> 5)]! | (1 << (c & 31));
        wordAt += categorical.words[g]!;
      }
    }
    at += t.feature.length;
  });
  return {
    objective: m.objective,
    numFeatures: m.numFeatures,
    numGroups: m.numGroups,
    featureNames: m.featureNames,
    featureTypes: m.featureTypes,
    baseMargins: m.baseMargins,
    xgboostVersion: m.xgboostVersion,
    feat,
    thr,
    next,
    value,
    roots,
    depth,
    groupOf,
    categorical,
  };
}

/** The buffers of a compiled model, to pass as postMessage's transfer list. */
export function compiledModelBuffers(c: CompiledXgboostModel): ArrayBuffer[] {
  const arrays: ArrayBufferView[] = [c.feat, c.thr, c.next, c.value, c.roots, c.depth, c.groupOf];
  if (c.categorical !== undefined) arrays.push(c.categorical.at, c.categorical.words, c.categorical.bits);
  return [...new Set(arrays.map((a) => a.buffer as ArrayBuffer))];
}

/**
 * The scorer of a compiled model. The data may come from another thread: the shapes a walk relies
 * on (array lengths, child and root indices in range) are checked, so a corrupted hand-off throws
 * here instead of reading out of bounds (which typed arrays answer with `undefined`, a NaN score).
 */
export function xgboostModelOf(compiled: CompiledXgboostModel): XgboostModel {
  return new CompiledModel(compiled);
}

/** The invariants of `compileXgboostModel`'s output that a walk relies on. */
function checkShapes(c: CompiledXgboostModel): void {
  const bad = (what: string): never => {
    throw new ModelFormatError('compiled', `${what}: not the output of compileXgboostModel`);
  };
  const nodes = c.feat.length;
  const trees = c.roots.length;
  if (!(Number.isInteger(c.numFeatures) && c.numFeatures >= 0 && Number.isInteger(c.numGroups) && c.numGroups >= 1))
    bad('numFeatures or numGroups');
  if (c.baseMargins.length !== c.numGroups) bad('baseMargins');
  if (c.thr.length !== nodes || c.value.length !== nodes || c.next.length !== 4 * nodes) bad('node arrays');
  if (c.depth.length !== trees || c.groupOf.length !== trees) bad('tree arrays');
  for (let i = 0; i < c.next.length; i++) if (!(c.next[i]! >= 0 && c.next[i]! < nodes)) bad(`next[${i}]`);
  for (let i = 0; i < nodes; i++) if (!(c.feat[i]! >= 0 && c.feat[i]! < Math.max(1, c.numFeatures))) bad(`feat[${i}]`);
  for (let t = 0; t < trees; t++) {
    if (
      !(
        c.roots[t]! >= 0 &&
        c.roots[t]! < nodes &&
        c.depth[t]! >= 0 &&
        c.groupOf[t]! >= 0 &&
        c.groupOf[t]! < c.numGroups
      )
    )
      bad(`tree ${t}`);
  }
  const cat = c.categorical;
  if (cat === undefined) return;
  if (cat.at.length !== nodes || cat.words.length !== nodes) bad('categorical arrays');
  for (let i = 0; i < nodes; i++) {
    const at = cat.at[i]!;
    if (at !== -1 && !(at >= 0 && cat.words[i]! >= 0 && at + cat.words[i]! <= cat.bits.length))
      bad(`categorical[${i}]`);
  }
}

class CompiledModel implements XgboostModel {
  readonly objective: string;
  readonly numFeatures: number;
  readonly numGroups: number;
  readonly numOutputs: number;
  readonly featureNames: readonly string[] | undefined;
  readonly featureTypes: readonly string[] | undefined;
  readonly numTrees: number;
  readonly totalDepth: number;
  readonly baseMargins: readonly number[];
  readonly xgboostVersion: string | undefined;

  private readonly transform: ObjectiveSpec['transform'];
  private readonly names: ReadonlyMap<string, number>;
  private readonly feat: Int32Array;
  private readonly thr: Float32Array;
  private readonly next: Int32Array;
  private readonly value: Float32Array;
  /** Per node: -1 numeric split or leaf, else the first word of its category bitset in `bits`. */
  private readonly catAt: Int32Array | undefined;
  private readonly catWords: Int32Array | undefined;
  private readonly bits: Uint32Array | undefined;
  private readonly roots: Int32Array;
  private readonly depth: Int32Array;
  private readonly groupOf: Int32Array;
  private readonly base: Float32Array;
  private readonly rowScratch: Float32Array;
  private readonly marginScratch: Float32Array;
  private readonly oneOut = new Float64Array(1);

  constructor(c: CompiledXgboostModel) {
    const spec = objectiveSpec(c.objective);
    if (spec === undefined)
      throw new ModelFormatError('learner.objective.name', `unsupported objective "${c.objective}"`);
    checkShapes(c);
    this.objective = c.objective;
    this.numFeatures = c.numFeatures;
    this.numGroups = c.numGroups;
    this.transform = spec.transform;
    this.numOutputs = spec.transform === 'softmax' ? 1 : c.numGroups;
    this.featureNames = c.featureNames;
    this.featureTypes = c.featureTypes;
    this.numTrees = c.roots.length;
    let totalDepth = 0;
    for (let t = 0; t < c.depth.length; t++) totalDepth += c.depth[t]!;
    this.totalDepth = totalDepth;
    this.baseMargins = c.baseMargins;
    this.xgboostVersion = c.xgboostVersion;
    this.names = new Map((c.featureNames ?? []).map((n, i) => [n, i]));
    this.base = Float32Array.from(c.baseMargins);
    this.feat = c.feat;
    this.thr = c.thr;
    this.next = c.next;
    this.value = c.value;
    this.roots = c.roots;
    this.depth = c.depth;
    this.groupOf = c.groupOf;
    this.catAt = c.categorical?.at;
    this.catWords = c.categorical?.words;
    this.bits = c.categorical?.bits;
    this.rowScratch = new Float32Array(BLOCK_ROWS * Math.max(1, c.numFeatures));
    this.marginScratch = new Float32Array(BLOCK_ROWS * c.numGroups);
  }

  featureIndex(name: string): number {
    return this.names.get(name) ?? -1;
  }

  predict(rows: ArrayLike<number>, out?: Float64Array): Float64Array {
    return this.run(rows, out, true);
  }

  predictMargin(rows: ArrayLike<number>, out?: Float64Array): Float64Array {
    return this.run(rows, out, false);
  }

  predictOne(row: ArrayLike<number>): number {
    if (this.numOutputs !== 1)
      throw new ScoringInputError('row', `the model has ${this.numOutputs} outputs per row: use predict()`);
    if (row.length !== this.numFeatures)
      throw new ScoringInputError('row', `expected ${this.numFeatures} values, got ${row.length}`);
    return this.run(row, this.oneOut, true)[0]!;
  }

  private run(rows: ArrayLike<number>, out: Float64Array | undefined, transformed: boolean): Float64Array {
    const f = this.numFeatures;
    const n = f === 0 ? 0 : rows.length / f;
    if (f === 0 || !Number.isInteger(n))
      throw new ScoringInputError('rows', `expected a multiple of ${f} values (features per row), got ${rows.length}`);
    const width = transformed ? this.numOutputs : this.numGroups;
    const result = out ?? new Float64Array(n * width);
    if (result.length < n * width)
      throw new ScoringInputError('out', `expected room for ${n * width} values, got ${result.length}`);
    const direct = rows instanceof Float32Array;
    const g = this.numGroups;
    const margins = this.marginScratch;
    for (let r0 = 0; r0 < n; r0 += BLOCK_ROWS) {
      const count = Math.min(BLOCK_ROWS, n - r0);
      let x: Float32Array;
      let off: number;
      if (direct) {
        x = rows;
        off = r0 * f;
      } else {
        x = this.rowScratch;
        off = 0;
        // Float32Array stores round to nearest float32: XGBoost's static_cast<float> of the input.
        // null/undefined (a JSON array with holes) is missing, never 0 as a bare store would make it.
        for (let i = 0, s = r0 * f, e = count * f; i < e; i++) x[i] = rows[s + i] ?? Number.NaN;
      }
      for (let r = 0; r < count; r++) for (let k = 0; k < g; k++) margins[r * g + k] = this.base[k]!;
      if (this.catAt === undefined) this.sumNumeric(x, off, count, margins);
      else this.sumCategorical(x, off, count, margins);
      if (transformed) transformMargins(this.transform, margins, count, g, result, r0 * width);
      else for (let i = 0; i < count * g; i++) result[r0 * g + i] = margins[i]!;
    }
    return result;
  }

  /**
   * Adds every tree's leaf to the margins of `count` rows, trees in XGBoost's order, each addition
   * rounded to float32 by the Float32Array store (XGBoost accumulates in float32). Several walks run
   * interleaved — rows of one tree in a batch, trees of one row for a single row — so the CPU
   * overlaps their dependent loads; with branch-free steps that is where the speed comes from.
   */
  private sumNumeric(x: Float32Array, off: number, count: number, margins: Float32Array): void {
    const { feat, thr, next, value, roots, depth, groupOf } = this;
    const f = this.numFeatures;
    const g = this.numGroups;
    const trees = roots.length;
    if (count < 4) {
      for (let r = 0, ro = off; r < count; r++, ro += f) {
        const m = r * g;
        let t = 0;
        for (; t + 4 <= trees; t += 4) {
          let a = roots[t]!;
          let b = roots[t + 1]!;
          let c = roots[t + 2]!;
          let d = roots[t + 3]!;
          const steps = Math.max(depth[t]!, depth[t + 1]!, depth[t + 2]!, depth[t + 3]!);
          for (let k = 0; k < steps; k++) {
            let v = x[ro + feat[a]!]!;
            a = next[(a << 2) | +(v >= thr[a]!) | (+Number.isNaN(v) << 1)]!;
            v = x[ro + feat[b]!]!;
            b = next[(b << 2) | +(v >= thr[b]!) | (+Number.isNaN(v) << 1)]!;
            v = x[ro + feat[c]!]!;
            c = next[(c << 2) | +(v >= thr[c]!) | (+Number.isNaN(v) << 1)]!;
            v = x[ro + feat[d]!]!;
            d = next[(d << 2) | +(v >= thr[d]!) | (+Number.isNaN(v) << 1)]!;
          }
          margins[m + groupOf[t]!] = margins[m + groupOf[t]!]! + value[a]!;
          margins[m + groupOf[t + 1]!] = margins[m + groupOf[t + 1]!]! + value[b]!;
          margins[m + groupOf[t + 2]!] = margins[m + groupOf[t + 2]!]! + value[c]!;
          margins[m + groupOf[t + 3]!] = margins[m + groupOf[t + 3]!]! + value[d]!;
        }
        for (; t < trees; t++) {
          let a = roots[t]!;
          for (let k = depth[t]!; k > 0; k--) {
            const v = x[ro + feat[a]!]!;
            a = next[(a << 2) | +(v >= thr[a]!) | (+Number.isNaN(v) << 1)]!;
          }
          margins[m + groupOf[t]!] = margins[m + groupOf[t]!]! + value[a]!;
        }
      }
      return;
    }
    for (let t = 0; t < trees; t++) {
      const root = roots[t]!;
      const steps = depth[t]!;
      const grp = groupOf[t]!;
      let r = 0;
      let ro = off;
      for (; r + 8 <= count; r += 8, ro += 8 * f) {
        let a = root;
        let b = root;
        let c = root;
        let d = root;
        let e = root;
        let h = root;
        let i = root;
        let j = root;
        const r1 = ro + f;
        const r2 = r1 + f;
        const r3 = r2 + f;
        const r4 = r3 + f;
        const r5 = r4 + f;
        const r6 = r5 + f;
        const r7 = r6 + f;
        for (let k = 0; k < steps; k++) {
          let v = x[ro + feat[a]!]!;
          a = next[(a << 2) | +(v >= thr[a]!) | (+Number.isNaN(v) << 1)]!;
          v = x[r1 + feat[b]!]!;
          b = next[(b << 2) | +(v >= thr[b]!) | (+Number.isNaN(v) << 1)]!;
          v = x[r2 + feat[c]!]!;
          c = next[(c << 2) | +(v >= thr[c]!) | (+Number.isNaN(v) << 1)]!;
          v = x[r3 + feat[d]!]!;
          d = next[(d << 2) | +(v >= thr[d]!) | (+Number.isNaN(v) << 1)]!;
          v = x[r4 + feat[e]!]!;
          e = next[(e << 2) | +(v >= thr[e]!) | (+Number.isNaN(v) << 1)]!;
          v = x[r5 + feat[h]!]!;
          h = next[(h << 2) | +(v >= thr[h]!) | (+Number.isNaN(v) << 1)]!;
          v = x[r6 + feat[i]!]!;
          i = next[(i << 2) | +(v >= thr[i]!) | (+Number.isNaN(v) << 1)]!;
          v = x[r7 + feat[j]!]!;
          j = next[(j << 2) | +(v >= thr[j]!) | (+Number.isNaN(v) << 1)]!;
        }
        const m = r * g + grp;
        margins[m] = margins[m]! + value[a]!;
        margins[m + g] = margins[m + g]! + value[b]!;
        margins[m + 2 * g] = margins[m + 2 * g]! + value[c]!;
        margins[m + 3 * g] = margins[m + 3 * g]! + value[d]!;
        margins[m + 4 * g] = margins[m + 4 * g]! + value[e]!;
        margins[m + 5 * g] = margins[m + 5 * g]! + value[h]!;
        margins[m + 6 * g] = margins[m + 6 * g]! + value[i]!;
        margins[m + 7 * g] = margins[m + 7 * g]! + value[j]!;
      }
      for (; r + 4 <= count; r += 4, ro += 4 * f) {
        let a = root;
        let b = root;
        let c = root;
        let d = root;
        const r1 = ro + f;
        const r2 = r1 + f;
        const r3 = r2 + f;
        for (let k = 0; k < steps; k++) {
          let v = x[ro + feat[a]!]!;
          a = next[(a << 2) | +(v >= thr[a]!) | (+Number.isNaN(v) << 1)]!;
          v = x[r1 + feat[b]!]!;
          b = next[(b << 2) | +(v >= thr[b]!) | (+Number.isNaN(v) << 1)]!;
          v = x[r2 + feat[c]!]!;
          c = next[(c << 2) | +(v >= thr[c]!) | (+Number.isNaN(v) << 1)]!;
          v = x[r3 + feat[d]!]!;
          d = next[(d << 2) | +(v >= thr[d]!) | (+Number.isNaN(v) << 1)]!;
        }
        const m = r * g + grp;
        margins[m] = margins[m]! + value[a]!;
        margins[m + g] = margins[m + g]! + value[b]!;
        margins[m + 2 * g] = margins[m + 2 * g]! + value[c]!;
        margins[m + 3 * g] = margins[m + 3 * g]! + value[d]!;
      }
      for (; r < count; r++, ro += f) {
        let a = root;
        for (let k = 0; k < steps; k++) {
          const v = x[ro + feat[a]!]!;
          a = next[(a << 2) | +(v >= thr[a]!) | (+Number.isNaN(v) << 1)]!;
        }
        margins[r * g + grp] = margins[r * g + grp]! + value[a]!;
      }
    }
  }

  private sumCategorical(x: Float32Array, off: number, count: number, margins: Float32Array): void {
    const { feat, thr, next, value, roots, depth, groupOf } = this;
    const catAt = this.catAt!;
    const catWords = this.catWords!;
    const bits = this.bits!;
    const f = this.numFeatures;
    const g = this.numGroups;
    for (let t = 0; t < roots.length; t++) {
      const root = roots[t]!;
      const steps = depth[t]!;
      const grp = groupOf[t]!;
      for (let r = 0, ro = off; r < count; r++, ro += f) {
        let c = root;
        for (let k = 0; k < steps; k++) {
          const v = x[ro + feat[c]!]!;
          const at = catAt[c]!;
          if (at < 0 || Number.isNaN(v)) {
            c = next[(c << 2) | +(v >= thr[c]!) | (+Number.isNaN(v) << 1)]!;
            continue;
          }
          // common::Decision: listed categories go right; anything else — a category not listed, a
          // negative or too large value — goes left. Codes are truncated toward zero (AsCat).
          let right = 0;
          if (v >= 0 && v < 16_777_216) {
            const cat = Math.trunc(v);
            const w = cat >>> 5;
            right = w < catWords[c]! && (bits[at + w]! & (1 << (cat & 31))) !== 0 ? 1 : 0;
          }
          c = next[(c << 2) | right]!;
        }
        margins[r * g + grp] = margins[r * g + grp]! + value[c]!;
      }
    }
  }
}
