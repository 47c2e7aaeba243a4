import type { ExpectationSet, FeatureExpectations } from './expectations.js';
import { HLL_RELATIVE_ERROR } from './sketch.js';
import { type FeatureQuality, mergeQuality, type QualityPartial, qualityFromJSON } from './state.js';

export type ExpectationKind = 'type' | 'null_rate' | 'range' | 'categories' | 'cardinality';

/** One row of `data_quality_windows`: one expectation of one feature in one window. */
export interface ExpectationResult {
  readonly feature: string;
  readonly expectation: ExpectationKind;
  /** Share (type, null_rate, range, categories) or estimated distinct values (cardinality). */
  readonly observed: number;
  /** The largest observed value that passes. */
  readonly bound: number;
  readonly passed: boolean;
  /** Denominator of the share (or the present values counted by the sketch). */
  readonly count: number;
  /** The expectation's parameters and the raw counts, as JSON text. */
  readonly detail: string;
}

export type MergeOutcome =
  | { readonly status: 'merged'; readonly states: ReadonlyMap<string, FeatureQuality> }
  /** The partials were built against other expectations (a config change mid-window): not evaluated. */
  | { readonly status: 'mismatch'; readonly ids: readonly string[] }
  | { readonly status: 'empty' };

/**
 * Merges the quality sections of one (model, version, window)'s partials, in any order (the merge
 * is exact). Sections built against another expectation set are not mixed in: the window is
 * reported as a mismatch and not evaluated, rather than evaluated on counts of different rules.
 * Throws a PoisonRecordError on a malformed section.
 */
export function mergeSections(
  sections: ReadonlyArray<QualityPartial | undefined>,
  expectations: ExpectationSet,
): MergeOutcome {
  const present = sections.filter((s): s is QualityPartial => s !== undefined);
  if (present.length === 0 || expectations.features.length === 0) return { status: 'empty' };
  const ids = [...new Set(present.map((s) => s.id))].sort();
  if (ids.length !== 1 || ids[0] !== expectations.id) return { status: 'mismatch', ids };
  const states = new Map<string, FeatureQuality>();
  for (const s of present) {
    for (const e of expectations.features) {
      const json = s.features[e.feature];
      if (json === undefined) continue;
      const q = qualityFromJSON(json, `quality.features.${e.feature}`);
      const prev = states.get(e.feature);
      states.set(e.feature, prev === undefined ? q : mergeQuality(prev, q));
    }
  }
  return { status: 'merged', states };
}

function share(
  feature: string,
  expectation: ExpectationKind,
  part: number,
  whole: number,
  bound: number,
  detail: Record<string, unknown>,
): ExpectationResult | undefined {
  if (whole === 0) return undefined; // nothing to measure: no row, no alert
  const observed = part / whole;
  return {
    feature,
    expectation,
    observed,
    bound,
    passed: observed <= bound,
    count: whole,
    detail: JSON.stringify({ ...detail, part, whole }),
  };
}

const side = (v: number): number | string => (Number.isFinite(v) ? v : String(v));

/** Every expectation of one feature that can be measured on its merged state. */
export function evaluateFeature(e: FeatureExpectations, q: FeatureQuality): ExpectationResult[] {
  const out: Array<ExpectationResult | undefined> = [];
  const present = q.events - q.nulls;
  out.push(share(e.feature, 'type', q.mismatched, present, e.maxTypeMismatch, { type: e.type }));
  if (e.maxNullRate !== undefined) out.push(share(e.feature, 'null_rate', q.nulls, q.events, e.maxNullRate, {}));
  if (e.range !== undefined) {
    out.push(
      share(e.feature, 'range', q.outside, q.numbers, e.range.maxShareOutside, {
        min: side(e.range.min),
        max: side(e.range.max),
      }),
    );
  }
  if (e.categories !== undefined) {
    out.push(
      share(e.feature, 'categories', q.unseen, q.strings, e.categories.maxShareUnseen, {
        allowed: e.categories.allowed.length,
      }),
    );
  }
  if (e.maxCardinality !== undefined && q.sketch !== undefined && present - q.mismatched > 0) {
    const counted = present - q.mismatched;
    // Never more distinct values than values: the HyperLogLog can overshoot a tiny window.
    const estimate = Math.min(Math.round(q.sketch.estimate()), counted);
    out.push({
      feature: e.feature,
      expectation: 'cardinality',
      observed: estimate,
      bound: e.maxCardinality,
      passed: estimate <= e.maxCardinality,
      count: counted,
      detail: JSON.stringify(
        q.sketch.exact ? { exact: true } : { exact: false, relative_standard_error: HLL_RELATIVE_ERROR },
      ),
    });
  }
  return out.filter((r): r is ExpectationResult => r !== undefined);
}

/** Rows of every feature with a merged state, in the set's (sorted) feature order. */
export function evaluateWindow(
  expectations: ExpectationSet,
  states: ReadonlyMap<string, FeatureQuality>,
): ExpectationResult[] {
  const out: ExpectationResult[] = [];
  for (const e of expectations.features) {
    const q = states.get(e.feature);
    if (q !== undefined) out.push(...evaluateFeature(e, q));
  }
  return out;
}
