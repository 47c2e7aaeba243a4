import { DriftlineError, labelFieldsProblem, predictionFieldsProblem } from '@driftline/core';
import { isWellFormed, MAX_ENTITY_LENGTH, MAX_EVENT_ID_LENGTH, MAX_STRING_FEATURE_LENGTH } from '@driftline/features';
import type { FeatureEvent, LabelEvent, PredictionEvent } from '@driftline/schemas';

/** What a value is, for messages to untyped callers: `null`, `a string`, `an array`, `a Date`. */
function kindOf(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a Date';
  const type = typeof value;
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

/**
 * The events of a publish call: one event object or an array of them. Anything else (null,
 * undefined, a string: untyped callers) is refused with VALIDATION_FAILED naming what it is; it
 * was a bare TypeError thrown synchronously by the call.
 */
export function eventsOf<T>(input: T | readonly T[]): readonly T[] {
  const events: readonly unknown[] = Array.isArray(input) ? input : [input];
  for (const [i, event] of events.entries()) {
    if (typeof event !== 'object' || event === null || Array.isArray(event)) {
      const where = events.length > 1 ? `event [${i}]: ` : '';
      throw new DriftlineError('VALIDATION_FAILED', `${where}an event must be an object, got ${kindOf(event)}`);
    }
  }
  return events as readonly T[];
}

/** Why an event time is not even a number (a string, a BigInt, a Date), or undefined. */
export function eventTimeTypeProblem(value: unknown): string | undefined {
  if (typeof value === 'number') return undefined;
  const hint = value instanceof Date ? ' (use its getTime())' : '';
  return `event_time must be a number of epoch milliseconds, got ${kindOf(value)}${hint}`;
}

const ILL_FORMED = "is not well-formed Unicode (a lone surrogate, which Avro's UTF-8 would replace)";

/**
 * A string with a lone surrogate has no UTF-8 encoding: Avro writes U+FFFD in its place, so
 * `"e\uD800"` and `"e\uD801"` arrive as one id (and the materializer dropped one as a duplicate).
 */
function textProblem(name: string, text: unknown): string | undefined {
  return typeof text === 'string' && !isWellFormed(text) ? `${name} ${ILL_FORMED}` : undefined;
}

/** The same for a map's keys and string values (`what` names an entry: `feature "age"`). */
function mapTextProblem(what: string, map: unknown): string | undefined {
  if (typeof map !== 'object' || map === null) return undefined;
  for (const [key, value] of Object.entries(map)) {
    // JSON.stringify escapes the lone surrogate: the message itself stays well-formed.
    const name = `${what} ${JSON.stringify(key)}`;
    if (!isWellFormed(key)) return `the name of ${name} ${ILL_FORMED}`;
    const problem = textProblem(name, value);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/** The first of `fields` (name, value) whose text is not well-formed. */
function firstTextProblem(fields: ReadonlyArray<readonly [string, unknown]>): string | undefined {
  for (const [name, value] of fields) {
    const problem = textProblem(name, value);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/** Why an entity id is out of the bounds of the online store's keys (empty, over 1,024 characters). */
function entityIdProblem(entity: string): string | undefined {
  return entity.length === 0 || entity.length > MAX_ENTITY_LENGTH
    ? `entity_id must be 1..${MAX_ENTITY_LENGTH} characters`
    : undefined;
}

/**
 * A prediction's problem the services would dead-letter it for: text that is not well-formed
 * Unicode, then the consumers' own rules (`predictionFieldsProblem` of @driftline/core:
 * prediction_id 1..512 characters, model and model_version 1..256, a role of production, canary
 * or shadow, a prediction finite within ±1e100, finite scores, `unscored` roles known and apart
 * from scores). An entity_id the online store
 * cannot key (empty, over 1,024 characters) is accepted: the label-joiner and the drift monitor
 * need none (batch scoring has no entity); only the skew-monitor dead-letters such a prediction,
 * when it samples it. Refusing it here lost the prediction for every consumer (and the whole call).
 */
export function predictionEventProblem(event: PredictionEvent): string | undefined {
  return (
    firstTextProblem([
      ['prediction_id', event.prediction_id],
      ['model', event.model],
      ['model_version', event.model_version],
      ['entity_id', event.entity_id],
      ['predicted_class', event.predicted_class],
      ['role', event.role],
    ]) ??
    mapTextProblem('feature', event.features) ??
    mapTextProblem('score', event.scores) ??
    mapTextProblem('unscored', event.unscored) ??
    predictionFieldsProblem(event)
  );
}

/**
 * A label's problem the label-joiner would dead-letter it for whatever its model's task: ids that
 * are not well-formed Unicode (it joins on prediction_id), then its own rules
 * (`labelFieldsProblem` of @driftline/core: prediction_id 1..512 characters, model 1..256, a label
 * finite within ±1e100, a finite value within it too). A classification model's label that is not
 * 0 or 1 is refused there, by the model's task, which the SDK does not know.
 */
export function labelEventProblem(event: LabelEvent): string | undefined {
  return (
    firstTextProblem([
      ['prediction_id', event.prediction_id],
      ['model', event.model],
    ]) ?? labelFieldsProblem(event)
  );
}

/**
 * A feature event's problem that no view could accept (ids out of bounds, text that is not
 * well-formed Unicode, a value no feature type holds): what the materializer would refuse into
 * the dead-letter topic, found at the publish call instead. View-level checks (a known view, each
 * feature's declared type) stay with the materializer, which holds the views.
 */
export function featureEventProblem(event: FeatureEvent): string | undefined {
  const entity = entityIdProblem(event.entity_id);
  if (entity !== undefined) return entity;
  if (event.event_id.length === 0 || event.event_id.length > MAX_EVENT_ID_LENGTH || event.event_id.includes('\0')) {
    return `event_id must be 1..${MAX_EVENT_ID_LENGTH} characters without NUL`;
  }
  const text =
    firstTextProblem([
      ['entity_id', event.entity_id],
      ['event_id', event.event_id],
      ['view', event.view],
    ]) ?? mapTextProblem('feature', event.features);
  if (text !== undefined) return text;
  for (const [name, value] of Object.entries(event.features)) {
    if (typeof value === 'number' && !Number.isFinite(value))
      return `feature "${name}" is ${value}: not a finite number`;
    if (typeof value === 'string' && value.length > MAX_STRING_FEATURE_LENGTH) {
      return `feature "${name}" is ${value.length} characters, more than ${MAX_STRING_FEATURE_LENGTH}`;
    }
  }
  return undefined;
}
