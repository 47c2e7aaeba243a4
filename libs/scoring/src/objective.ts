// XGBoost's objectives as far as prediction goes: how the stored base_score becomes a margin
// (ObjFunction::ProbToMargin) and how margins become predictions (PredTransform). XGBoost computes
// both in float32; each step here is rounded with Math.fround the same way, so results agree to the
// last float32 bit except where expf/logf and a correctly rounded Math.exp/Math.log differ (≤ 1 ulp).

const f32 = Math.fround;

/** How a stored base_score becomes a margin. */
type BaseScoreLink = 'identity' | 'logit' | 'log';

/** How margins become predictions. */
type Transform = 'identity' | 'sigmoid' | 'exp' | 'hinge' | 'softprob' | 'softmax';

export interface ObjectiveSpec {
  readonly link: BaseScoreLink;
  readonly transform: Transform;
  /** Whether the model holds one output group per class. */
  readonly multiclass: boolean;
}

const OBJECTIVES: Readonly<Record<string, ObjectiveSpec>> = {
  'binary:logistic': { link: 'logit', transform: 'sigmoid', multiclass: false },
  'reg:logistic': { link: 'logit', transform: 'sigmoid', multiclass: false },
  // XGBoost 3 stores logitraw's base_score as a margin already (checked on the fixture: the logit
  // link is off by logit(p) − p).
  'binary:logitraw': { link: 'identity', transform: 'identity', multiclass: false },
  'binary:hinge': { link: 'identity', transform: 'hinge', multiclass: false },
  'reg:squarederror': { link: 'identity', transform: 'identity', multiclass: false },
  'reg:squaredlogerror': { link: 'identity', transform: 'identity', multiclass: false },
  'reg:pseudohubererror': { link: 'identity', transform: 'identity', multiclass: false },
  'reg:absoluteerror': { link: 'identity', transform: 'identity', multiclass: false },
  'count:poisson': { link: 'log', transform: 'exp', multiclass: false },
  'reg:gamma': { link: 'log', transform: 'exp', multiclass: false },
  'reg:tweedie': { link: 'log', transform: 'exp', multiclass: false },
  'multi:softprob': { link: 'identity', transform: 'softprob', multiclass: true },
  'multi:softmax': { link: 'identity', transform: 'softmax', multiclass: true },
};

/** The objectives this lib evaluates (each checked against XGBoost on a fixture). */
export const SUPPORTED_OBJECTIVES: readonly string[] = Object.keys(OBJECTIVES);

export function objectiveSpec(name: string): ObjectiveSpec | undefined {
  return Object.hasOwn(OBJECTIVES, name) ? OBJECTIVES[name] : undefined;
}

/** base_score (as stored) → margin, in float32 like XGBoost's ProbToMargin. */
export function baseScoreToMargin(link: BaseScoreLink, stored: number): number {
  const p = f32(stored);
  switch (link) {
    case 'identity':
      return p;
    case 'logit': {
      // -logf(1.0f / base_score - 1.0f), base_score clamped to [1e-6, 1 - 1e-6] first as XGBoost
      // does: it writes 0 or 1 for a model trained on one class (margins -13.81551 / 13.745161).
      const q = f32(Math.min(Math.max(p, 1e-6), 1 - 1e-6));
      return f32(-Math.log(f32(f32(1 / q) - 1)));
    }
    case 'log':
      return f32(Math.log(p));
  }
}

/** XGBoost's common::Sigmoid, float32 step by step. */
function sigmoid(x: number): number {
  const e = f32(Math.exp(Math.min(-x, 88.69999694824219))); // 88.7f
  return f32(1 / f32(e + 1));
}

/**
 * Transforms the margins of `rows` rows (`groups` per row, row-major) into `out`
 * (`outputs` per row): outputs = groups, except softmax (the class index, one per row).
 */
export function transformMargins(
  transform: Transform,
  margins: Float32Array,
  rows: number,
  groups: number,
  out: Float64Array,
  outOffset: number,
): void {
  switch (transform) {
    case 'identity':
      for (let i = 0; i < rows * groups; i++) out[outOffset + i] = margins[i]!;
      return;
    case 'sigmoid':
      for (let i = 0; i < rows * groups; i++) out[outOffset + i] = sigmoid(margins[i]!);
      return;
    case 'exp':
      for (let i = 0; i < rows * groups; i++) out[outOffset + i] = f32(Math.exp(margins[i]!));
      return;
    case 'hinge':
      for (let i = 0; i < rows * groups; i++) out[outOffset + i] = margins[i]! > 0 ? 1 : 0;
      return;
    case 'softprob':
      for (let r = 0; r < rows; r++) softmaxRow(margins, r * groups, groups, out, outOffset + r * groups);
      return;
    case 'softmax':
      for (let r = 0; r < rows; r++) {
        let best = 0;
        let max = margins[r * groups]!;
        for (let g = 1; g < groups; g++) {
          const m = margins[r * groups + g]!;
          if (m > max) {
            max = m;
            best = g;
          }
        }
        out[outOffset + r] = best;
      }
      return;
  }
}

/** common::Softmax: float32 exps of (m − max), summed in double, divided by the float32 sum. */
function softmaxRow(m: Float32Array, at: number, n: number, out: Float64Array, outAt: number): void {
  let max = m[at]!;
  for (let g = 1; g < n; g++) max = Math.max(max, m[at + g]!);
  let sum = 0;
  for (let g = 0; g < n; g++) {
    const e = f32(Math.exp(f32(m[at + g]! - max)));
    out[outAt + g] = e;
    sum += e;
  }
  const s = f32(sum);
  for (let g = 0; g < n; g++) out[outAt + g] = f32(out[outAt + g]! / s);
}
