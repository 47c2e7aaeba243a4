import type { FeatureValue } from '@driftline/schemas';
import { compareEventCopies, compareEventOrder, decodeValue, type ValidatedEvent } from './events.js';
import type { AggregateFunction, FeatureView } from './views.js';

/**
 * Sliding event-time windows, anchored at the entity's latest event time T (the last-write-wins
 * winner's time): an aggregate with window W covers the events with T − W < event_time ≤ T, each
 * event id counted once, as its greatest copy (compareEventCopies). Values are folded in (event_time, event_id) order so floating-point sums
 * are the same whatever the delivery order. Only the view's newest `maxWindowEvents` events (by
 * (event_time, event_id)) count. Count is 0 and sum 0 on an empty window; mean, min and max are null
 * there.
 */
export function aggregate(fn: AggregateFunction, values: readonly number[]): number | null {
  const n = values.length;
  if (fn === 'count') return n;
  let sum = 0;
  for (const v of values) sum += v;
  if (fn === 'sum') return sum;
  if (n === 0) return null;
  if (fn === 'mean') return sum / n;
  let best = values[0]!;
  for (const v of values) if (fn === 'min' ? v < best : v > best) best = v;
  return best;
}

/** Brute-force aggregates of a view for an entity's events, as of `anchor` (see {@link aggregate}). */
export function computeAggregates(
  view: FeatureView,
  anchor: number,
  events: readonly ValidatedEvent[],
): Record<string, FeatureValue> {
  // The online store keeps the newest maxWindowEvents events of an entity: so does the reference.
  const unique = dedupeByEventId(events).sort(compareEventOrder).slice(-view.maxWindowEvents);
  const out: Record<string, FeatureValue> = {};
  for (const spec of view.aggregates) {
    const index = view.featureIndex.get(spec.feature)!;
    const values: number[] = [];
    for (const e of unique) {
      if (e.eventTime <= anchor - spec.windowMs || e.eventTime > anchor) continue;
      const v = e.values[index];
      if (v !== undefined) values.push(Number(v));
    }
    out[spec.name] = aggregate(spec.function, values);
  }
  return out;
}

/**
 * One copy of every event id: its greatest (compareEventCopies: latest time, then greatest copy
 * digest), whatever the order of `events`, in the order the ids first appear.
 */
export function dedupeByEventId<T extends ValidatedEvent>(events: readonly T[]): T[] {
  const kept = new Map<string, T>();
  for (const e of events) {
    const copy = kept.get(e.eventId);
    if (copy === undefined || compareEventCopies(e, copy) > 0) kept.set(e.eventId, e);
  }
  return [...kept.values()];
}

/** The last-write-wins winner of a set of events: greatest (event_time, event_id, copy digest). */
export function lastWriteWins<T extends ValidatedEvent>(events: readonly T[]): T | undefined {
  let winner: T | undefined;
  for (const e of events) if (winner === undefined || compareEventCopies(e, winner) > 0) winner = e;
  return winner;
}

/**
 * The offline reference of the online store: what the row of one (view, entity) must hold after
 * any delivery (shuffled, duplicated, replayed) of these events. Row-level last-write-wins — the
 * winning event's features, null where it had none — plus the window aggregates as of its time.
 */
export function offlineRow(
  view: FeatureView,
  events: readonly ValidatedEvent[],
): { eventTime: number; eventId: string; features: Record<string, FeatureValue> } | undefined {
  const winner = lastWriteWins(events);
  if (winner === undefined) return undefined;
  const features: Record<string, FeatureValue> = {};
  for (const [i, f] of view.features.entries()) {
    features[f.name] = decodeValue(f.type, winner.values[i]);
  }
  Object.assign(features, computeAggregates(view, winner.eventTime, events));
  return { eventTime: winner.eventTime, eventId: winner.eventId, features };
}
