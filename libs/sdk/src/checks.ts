import { isWellFormed, MAX_ENTITY_LENGTH, MAX_EVENT_ID_LENGTH, MAX_STRING_FEATURE_LENGTH } from '@driftline/features';
import type { FeatureEvent, PredictionEvent } from '@driftline/schemas';

/** A prediction's problem the label-joiner would dead-letter it for: a score that is not a finite number. */
export function predictionEventProblem(event: PredictionEvent): string | undefined {
  if (!Number.isFinite(event.prediction)) return `prediction is ${event.prediction}: not a finite number`;
  for (const [version, score] of Object.entries(event.scores ?? {})) {
    if (!Number.isFinite(score)) return `scores["${version}"] is ${score}: not a finite number`;
  }
  return undefined;
}

/**
 * A feature event's problem that no view could accept (ids out of bounds, a value no feature type
 * holds): what the materializer would refuse into the dead-letter topic, found at the publish call
 * instead. View-level checks (a known view, each feature's declared type) stay with the
 * materializer, which holds the views.
 */
export function featureEventProblem(event: FeatureEvent): string | undefined {
  if (event.entity_id.length === 0 || event.entity_id.length > MAX_ENTITY_LENGTH) {
    return `entity_id must be 1..${MAX_ENTITY_LENGTH} characters`;
  }
  if (!isWellFormed(event.entity_id)) return 'entity_id is not well-formed Unicode';
  if (event.event_id.length === 0 || event.event_id.length > MAX_EVENT_ID_LENGTH || event.event_id.includes('\0')) {
    return `event_id must be 1..${MAX_EVENT_ID_LENGTH} characters without NUL`;
  }
  for (const [name, value] of Object.entries(event.features)) {
    if (typeof value === 'number' && !Number.isFinite(value))
      return `feature "${name}" is ${value}: not a finite number`;
    if (typeof value === 'string' && value.length > MAX_STRING_FEATURE_LENGTH) {
      return `feature "${name}" is ${value.length} characters, more than ${MAX_STRING_FEATURE_LENGTH}`;
    }
  }
  return undefined;
}
