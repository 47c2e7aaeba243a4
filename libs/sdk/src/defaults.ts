import type { FeatureEvent, LabelEvent, PredictionEvent } from '@driftline/schemas';

/** A feature event as producers write it: the event id and time default to a UUID and now. */
export type FeatureEventInput = Omit<FeatureEvent, 'event_id' | 'event_time'> &
  Partial<Pick<FeatureEvent, 'event_id' | 'event_time'>>;
export type PredictionEventInput = Omit<PredictionEvent, 'event_time' | 'predicted_class'> &
  Partial<Pick<PredictionEvent, 'event_time' | 'predicted_class'>>;
export type LabelEventInput = Omit<LabelEvent, 'event_time'> & Partial<Pick<LabelEvent, 'event_time'>>;

/** Where the defaults come from (the clock and the id source, given by tests). */
export interface DefaultSources {
  readonly now: () => number;
  readonly newId: () => string;
}

// Copies, never the caller's objects: the events a call returns (and names in its error) are the
// ones to publish again, so a retry carries the same event ids and times and is deduplicated
// downstream, where a retry of the caller's own objects drew new ones and counted twice. The maps
// (`features`, `scores`, `unscored`) are copied too: shared, a caller reusing its map for the next event changed
// the returned one, and a retry sent other values under the same event id.

/** A copy of an event's map; what is not an object is left for the checks to refuse. */
function copyOf<T>(map: T): T {
  return map !== null && typeof map === 'object' && !Array.isArray(map) ? { ...map } : map;
}

/** The feature events as published: a missing `event_id` gets a new UUID, a missing `event_time` now. */
export function featuresWithDefaults(events: readonly FeatureEventInput[], sources: DefaultSources): FeatureEvent[] {
  return events.map((e) => ({
    ...e,
    features: copyOf(e.features),
    event_id: e.event_id ?? sources.newId(),
    event_time: e.event_time ?? sources.now(),
  }));
}

/** The prediction events as published: a missing `event_time` is now, a missing `predicted_class` null. */
export function predictionsWithDefaults(
  events: readonly PredictionEventInput[],
  sources: DefaultSources,
): PredictionEvent[] {
  return events.map((e) => ({
    ...e,
    features: copyOf(e.features),
    ...(e.scores == null ? {} : { scores: copyOf(e.scores) }),
    ...(e.unscored == null ? {} : { unscored: copyOf(e.unscored) }),
    event_time: e.event_time ?? sources.now(),
    predicted_class: e.predicted_class ?? null,
  }));
}

/** The label events as published: a missing `event_time` is now. */
export function labelsWithDefaults(events: readonly LabelEventInput[], sources: DefaultSources): LabelEvent[] {
  return events.map((e) => ({ ...e, event_time: e.event_time ?? sources.now() }));
}
