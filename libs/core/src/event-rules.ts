import { eventNameProblem, modelNameProblem } from './names.js';

/**
 * The rules on a prediction's and a label's fields that their consumers dead-letter by (the
 * label-joiner's edge check; the drift-monitor's model names) and that the SDK applies at the
 * publish call: one definition, so a producer is refused what a consumer would refuse, no more.
 * Event times are `eventTimeProblem`'s; view-level and task-level checks stay with their services.
 */

/** Longest `prediction_id` a prediction or label may carry: the join key, in every joined row. */
export const MAX_PREDICTION_ID_LENGTH = 512;

/** Why a `prediction_id` is refused (empty or too long), if it is. */
export function predictionIdProblem(id: string): string | undefined {
  return id.length === 0 || id.length > MAX_PREDICTION_ID_LENGTH
    ? `prediction_id must be 1..${MAX_PREDICTION_ID_LENGTH} characters (got ${id.length})`
    : undefined;
}

/**
 * The roles a version scores in: production and canary answered, shadow only logged. Joined rows
 * keep the role in a column of these three: any other value would be joined as if answered.
 */
export const PREDICTION_ROLES = ['production', 'canary', 'shadow'] as const;
export type PredictionRole = (typeof PREDICTION_ROLES)[number];

export function isPredictionRole(role: string): role is PredictionRole {
  return (PREDICTION_ROLES as readonly string[]).includes(role);
}

/** Why a prediction's `role` is refused, if it is; none (the schema's default) is production. */
export function predictionRoleProblem(role: string | undefined): string | undefined {
  return role === undefined || isPredictionRole(role)
    ? undefined
    : `role ${JSON.stringify(String(role).slice(0, 64))} is not ${PREDICTION_ROLES.slice(0, -1).join(', ')} or ${PREDICTION_ROLES.at(-1)}`;
}

/**
 * Largest magnitude of a prediction, label or label value the performance metrics take: they
 * square and sum them, and one label of 1e200 made a window's rmse Inf − Inf = NaN, stored as
 * null, so the window never alerted whatever the rest said.
 */
export const MAX_METRIC_MAGNITUDE = 1e100;

/** A finite number within ±MAX_METRIC_MAGNITUDE. */
export function isMeasurable(value: number): boolean {
  return Number.isFinite(value) && Math.abs(value) <= MAX_METRIC_MAGNITUDE;
}

/** Why `field`'s number cannot go into the metrics (not finite, or beyond ±MAX_METRIC_MAGNITUDE), if so. */
export function measureProblem(field: string, value: number): string | undefined {
  if (!Number.isFinite(value)) return `${field} is ${value}: not a finite number`;
  return isMeasurable(value) ? undefined : `${field} is ${value}: beyond ±${MAX_METRIC_MAGNITUDE}`;
}

/** The fields of a prediction these rules read (a PredictionEvent of @driftline/schemas has them). */
export interface PredictionFields {
  readonly prediction_id: string;
  readonly model: string;
  readonly model_version: string;
  readonly role?: string | undefined;
  readonly prediction: number;
  readonly scores?: Readonly<Record<string, number>> | null | undefined;
  readonly unscored?: Readonly<Record<string, string>> | null | undefined;
}

/**
 * Why a prediction is refused by its consumers, if it is: `prediction_id` 1..512 characters, model
 * and version 1..256 (`modelNameProblem`), a known role, `prediction` finite within
 * ±MAX_METRIC_MAGNITUDE, every score finite (a NaN score reached ClickHouse as null, read as 0: a
 * confident score in the paired comparison of versions), every `unscored` role a known one and
 * none of its versions in `scores` or the record's own `model_version`.
 */
export function predictionFieldsProblem(event: PredictionFields): string | undefined {
  const problem =
    predictionIdProblem(event.prediction_id) ??
    modelNameProblem(event.model, event.model_version) ??
    predictionRoleProblem(event.role) ??
    measureProblem('prediction', event.prediction);
  if (problem !== undefined) return problem;
  for (const [version, score] of Object.entries(event.scores ?? {})) {
    if (!Number.isFinite(score))
      return `scores[${JSON.stringify(version.slice(0, 64))}] is ${score}: not a finite number`;
  }
  // A version both scored and unscored would be paired with its score and with its worst answer.
  for (const [version, role] of Object.entries(event.unscored ?? {})) {
    const name = JSON.stringify(version.slice(0, 64));
    if (!isPredictionRole(role)) return `unscored[${name}]: ${predictionRoleProblem(role)}`;
    if (event.scores != null && Object.hasOwn(event.scores, version)) {
      return `unscored[${name}]: the version is in scores too`;
    }
    // The answered version scored the record: it cannot be charged as unscored on it.
    if (version === event.model_version) return `unscored[${name}]: the version that answered the record`;
  }
  return undefined;
}

/** The fields of a label these rules read (a LabelEvent of @driftline/schemas has them). */
export interface LabelFields {
  readonly prediction_id: string;
  readonly model: string;
  readonly label: number;
  readonly value?: number | null | undefined;
}

/**
 * Why a label is refused by the label-joiner whatever its model's task, if it is: `prediction_id`
 * 1..512 characters, a model 1..256 (the join is keyed by model and prediction id: a label without
 * one could join any model's prediction), `label` finite within ±MAX_METRIC_MAGNITUDE, and a finite
 * `value` within it too (one that is not finite counts as no value: the business outcome skips it).
 */
export function labelFieldsProblem(event: LabelFields): string | undefined {
  return (
    predictionIdProblem(event.prediction_id) ??
    eventNameProblem('model', event.model) ??
    measureProblem('label', event.label) ??
    (typeof event.value === 'number' && Number.isFinite(event.value) ? measureProblem('value', event.value) : undefined)
  );
}
