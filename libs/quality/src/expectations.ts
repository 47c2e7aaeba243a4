import { createHash } from 'node:crypto';
import { z } from 'zod';

/** The value types a feature may declare (those of feature views). */
export type ValueType = 'double' | 'string' | 'boolean';

/** Most categories one `categories.allowed` list may hold. */
export const MAX_ALLOWED_CATEGORIES = 10_000;
/** Longest allowed category. */
export const MAX_CATEGORY_LENGTH = 1_000;
/** Largest cardinality bound (the sketch stays accurate far beyond it; see sketch.ts). */
export const MAX_CARDINALITY_BOUND = 100_000_000;
/** Most features with expectations in one set (the size of one partial's quality section). */
export const MAX_EXPECTED_FEATURES = 10_000;

/** The expectations of one feature, with defaults applied. */
export interface FeatureExpectations {
  readonly feature: string;
  readonly type: ValueType;
  /** Share of present values of another type allowed (default 0). Always evaluated. */
  readonly maxTypeMismatch: number;
  /** Share of events where the feature is null or absent allowed. */
  readonly maxNullRate?: number;
  /** Doubles: [min, max] (either side optional, ±Infinity) and the share of values outside allowed. */
  readonly range?: { readonly min: number; readonly max: number; readonly maxShareOutside: number };
  /** Strings: the allowed categories and the share of other values allowed. */
  readonly categories?: { readonly allowed: readonly string[]; readonly maxShareUnseen: number };
  /** Distinct present values allowed in a window (HyperLogLog estimate, ±3.25% standard error). */
  readonly maxCardinality?: number;
}

/** The expectations a monitor applies, one entry per feature, sorted; `id` fingerprints the content. */
export interface ExpectationSet {
  readonly id: string;
  readonly features: readonly FeatureExpectations[];
}

const share = z.number().min(0, 'must be a share from 0 to 1').max(1, 'must be a share from 0 to 1');

/**
 * The `expect` block of a feature (beside its type in the feature view file). Unknown keys are
 * refused; shares are in [0, 1].
 */
export const expectationSchema = z.strictObject({
  max_null_rate: share.optional(),
  max_type_mismatch: share.default(0),
  range: z
    .strictObject({
      min: z.number().optional(),
      max: z.number().optional(),
      max_share_outside: share.default(0),
    })
    .refine((r) => r.min !== undefined || r.max !== undefined, 'needs min, max or both')
    .refine((r) => r.min === undefined || r.max === undefined || r.min <= r.max, 'min must not exceed max')
    .optional(),
  categories: z
    .strictObject({
      allowed: z
        .array(z.string().max(MAX_CATEGORY_LENGTH, `at most ${MAX_CATEGORY_LENGTH} characters`))
        .min(1, 'must list at least one category')
        .max(MAX_ALLOWED_CATEGORIES, `at most ${MAX_ALLOWED_CATEGORIES} categories`),
      max_share_unseen: share.default(0),
    })
    .optional(),
  max_cardinality: z
    .number()
    .int('must be an integer')
    .min(1, 'must be at least 1')
    .max(MAX_CARDINALITY_BOUND, `must be at most ${MAX_CARDINALITY_BOUND}`)
    .optional(),
});

export type ExpectationInput = z.output<typeof expectationSchema>;

/**
 * Checks an `expect` block against the feature's type; returns the problem as [field, message]
 * (field relative to the block) or the expectations.
 */
export function toFeatureExpectations(
  feature: string,
  type: ValueType,
  raw: ExpectationInput,
): FeatureExpectations | readonly [string, string] {
  if (raw.range !== undefined && type !== 'double')
    return ['range', `only double features have a range; this one is ${type}`];
  if (raw.categories !== undefined && type !== 'string') {
    return ['categories', `only string features have categories; this one is ${type}`];
  }
  return {
    feature,
    type,
    maxTypeMismatch: raw.max_type_mismatch,
    ...(raw.max_null_rate === undefined ? {} : { maxNullRate: raw.max_null_rate }),
    ...(raw.range === undefined
      ? {}
      : {
          range: {
            min: raw.range.min ?? Number.NEGATIVE_INFINITY,
            max: raw.range.max ?? Number.POSITIVE_INFINITY,
            maxShareOutside: raw.range.max_share_outside,
          },
        }),
    ...(raw.categories === undefined
      ? {}
      : {
          categories: {
            allowed: [...new Set(raw.categories.allowed)].sort(),
            maxShareUnseen: raw.categories.max_share_unseen,
          },
        }),
    ...(raw.max_cardinality === undefined ? {} : { maxCardinality: raw.max_cardinality }),
  };
}

/** Sorts the features and derives the id from the content (equal expectations, equal id). */
export function expectationSet(features: readonly FeatureExpectations[]): ExpectationSet {
  const sorted = [...features].sort((a, b) => (a.feature < b.feature ? -1 : a.feature > b.feature ? 1 : 0));
  // Infinity is not JSON: spell the open sides of a range out so the id still tells them apart.
  const text = JSON.stringify(sorted, (_k, v: unknown) =>
    typeof v === 'number' && !Number.isFinite(v) ? String(v) : v,
  );
  const id = createHash('sha256').update(text).digest('hex').slice(0, 16);
  return { id, features: sorted };
}

export const EMPTY_EXPECTATIONS: ExpectationSet = expectationSet([]);
