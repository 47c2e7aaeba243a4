export * from './chi2.js';
export type { CountEncoding } from './codec.js';
export * from './distance.js';
export * from './exact-sum.js';
export { atFloatWidth, type NarrowFloatBits, narrowFloatValue, roundToFloatWidth } from './float-width.js';
export { chi2Sf, logGamma } from './gamma.js';
export { GridIndex } from './grid-index.js';
export { kstwoSf } from './kolmogorov.js';
export * from './ks.js';
export { type FloatBits, f16round, floatText, integerText } from './number-text.js';
export { CompensatedSum, compensatedSum, type MaybeNumber, sortedFinite } from './numeric.js';
export * from './profile.js';
export { ProfileGrid, profileGrid } from './profile-grid.js';
export * from './psi.js';
export * from './quality.js';
export * from './quantile.js';
export * from './summary.js';
export * from './summary-drift.js';
export * from './summary-quantile.js';
export {
  buildTailSketch,
  parseTailSketch,
  TAIL_SKETCH_MAX_BITS,
  type TailSketch,
  tailSketchHas,
} from './tail-sketch.js';
