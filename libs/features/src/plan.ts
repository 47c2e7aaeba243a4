import { compareEventCopies, type ValidatedEvent } from './events.js';
import type { FeatureView } from './views.js';

/** One store write: everything a batch holds for one (view, entity). */
export interface EntityWrite {
  readonly view: FeatureView;
  readonly entity: string;
  /** The batch's last-write-wins candidate; the store applies it only if it beats the stored row. */
  readonly winner: ValidatedEvent;
  /**
   * Every distinct event id of the batch for this entity, as its greatest copy (compareEventCopies),
   * when the view has window aggregates.
   */
  readonly windowEvents: readonly ValidatedEvent[];
}

/**
 * Groups a batch by (view, entity). Last-write-wins is a maximum over a total order, so reducing
 * the batch to its winner first and comparing that one with the stored row is exactly the same as
 * applying every event in turn — with one store call per entity instead of one per event.
 */
export function planWrites(events: readonly ValidatedEvent[]): EntityWrite[] {
  const groups = new Map<
    string,
    { view: FeatureView; entity: string; winner: ValidatedEvent; window: Map<string, ValidatedEvent> | undefined }
  >();
  for (const e of events) {
    const key = `${e.view.name}\u0000${e.entity}`;
    const group = groups.get(key);
    if (group === undefined) {
      const window = e.view.aggregates.length > 0 ? new Map([[e.eventId, e]]) : undefined;
      groups.set(key, { view: e.view, entity: e.entity, winner: e, window });
      continue;
    }
    if (compareEventCopies(e, group.winner) > 0) group.winner = e;
    if (group.window === undefined) continue;
    const copy = group.window.get(e.eventId);
    if (copy === undefined || compareEventCopies(e, copy) > 0) group.window.set(e.eventId, e);
  }
  return [...groups.values()].map((g) => ({
    view: g.view,
    entity: g.entity,
    winner: g.winner,
    windowEvents: g.window === undefined ? [] : [...g.window.values()],
  }));
}
