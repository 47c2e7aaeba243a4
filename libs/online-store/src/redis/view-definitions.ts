import { type Logger, MAX_TIMER_MS } from '@driftline/core';
import { aggregateDefinition, aggregateDefinitionChanges, type FeatureViews } from '@driftline/features';
import { gauge, type Registry } from '@driftline/observability';
import type { RedisClient } from './client.js';

/** The hash of `aggregateDefinition` per view name, beside the state marker. */
export const viewDefinitionsKey = (keyPrefix: string): string => `${keyPrefix}:view-definitions:features`;

/** The hash of the harmful definition changes per view name, until their rows are right again. */
export const staleViewsKey = (keyPrefix: string): string => `${keyPrefix}:view-definitions:stale`;

/** A view whose rows are served wrong since a definition change, until `until`. */
export interface StaleView {
  readonly view: string;
  /** The changes that need a rebuild (aggregateDefinitionChanges' `rebuild`), oldest first. */
  readonly changes: readonly string[];
  /** When a start first found them (ms). */
  readonly seen: number;
  /** seen + ttl + the longest window (ms); null for `ttl: none` (until cleared by hand). */
  readonly until: number | null;
}

export interface CheckViewDefinitionsOptions {
  readonly keyPrefix: string;
  readonly views: FeatureViews;
  readonly logger: Logger;
  readonly registry: Registry;
  /** Clock (default Date.now). */
  readonly now?: () => number;
}

/**
 * Compares the views' aggregate definitions with those the store was written under, records the
 * current ones, and reports the views served wrong because of a change (found by reviews):
 * - a change that heals with each entity's next event (aggregateDefinitionChanges'
 *   `untilNextEvent`) is one warn line, at the start that finds it;
 * - one that needs a rebuild is kept in {@link staleViewsKey} with when it was seen: every start
 *   until seen + ttl + the longest window (by then every row was rewritten or expired, and the
 *   windows hold a full history) logs the error line again and sets
 *   `driftline_feature_view_definition_stale{view}` to 1, back to 0 at that time. With `ttl: none`
 *   an untouched row keeps the old value forever: kept until an operator clears it once the view is
 *   rebuilt (`HDEL <prefix>:view-definitions:stale <view>`; a rebuild into a new key prefix starts
 *   without it).
 * Nothing is refused (a rolling deploy would crash-loop). A view seen for the first time is recorded
 * without a report; a view no longer configured is forgotten, so re-adding it later is a first
 * sight again. Two instances starting at once may both log the same lines (harmless).
 */
export async function checkViewDefinitions(
  redis: RedisClient,
  options: CheckViewDefinitionsOptions,
): Promise<StaleView[]> {
  const staleGauge = gauge(
    options.registry,
    'driftline_feature_view_definition_stale',
    "1 while a view's aggregates are served wrong after a definition change that needs a rebuild (see the log line)",
    ['view'],
  );
  const now = (options.now ?? Date.now)();
  const definitionsKey = viewDefinitionsKey(options.keyPrefix);
  const staleKey = staleViewsKey(options.keyPrefix);
  const [stored, staleStored] = await Promise.all([redis.hgetall(definitionsKey), redis.hgetall(staleKey)]);
  const configured = new Set(options.views.views.map((v) => v.name));
  const updates: string[] = [];
  const staleUpdates: string[] = [];
  const forget = new Set<string>();
  const stale: StaleView[] = [];
  for (const view of options.views.views) {
    const current = aggregateDefinition(view);
    const before = stored[view.name];
    if (before !== current) updates.push(view.name, current);
    let entry = parseStale(view.name, staleStored[view.name]);
    if (before !== undefined && before !== current) {
      const { rebuild, untilNextEvent } = aggregateDefinitionChanges(before, view);
      if (untilNextEvent.length > 0) {
        options.logger.warn(
          { view: view.name, changes: untilNextEvent },
          `feature view "${view.name}": aggregates changed since its rows were written (${untilNextEvent.join('; ')}); ` +
            "stale or missing until each entity's next event, exact from then on",
        );
      }
      if (rebuild.length > 0) {
        const until = view.ttlMs > 0 ? now + view.ttlMs + view.horizonMs : null;
        const live = entry !== undefined && (entry.until === null || entry.until > now) ? entry : undefined;
        entry = {
          view: view.name,
          changes: [...(live?.changes ?? []), ...rebuild],
          seen: live?.seen ?? now,
          until:
            live === undefined ? until : live.until === null || until === null ? null : Math.max(live.until, until),
        };
        staleUpdates.push(view.name, JSON.stringify({ changes: entry.changes, seen: entry.seen, until: entry.until }));
      }
    }
    if (entry === undefined) continue;
    if (entry.until !== null && entry.until <= now) {
      forget.add(view.name);
      continue;
    }
    stale.push(entry);
  }
  for (const name of Object.keys(staleStored)) if (!configured.has(name)) forget.add(name);
  const removed = Object.keys(stored).filter((name) => !configured.has(name));
  if (updates.length > 0) await redis.hset(definitionsKey, ...updates);
  if (removed.length > 0) await redis.hdel(definitionsKey, ...removed);
  if (staleUpdates.length > 0) await redis.hset(staleKey, ...staleUpdates);
  if (forget.size > 0) await redis.hdel(staleKey, ...forget);
  for (const entry of stale) {
    staleGauge.set({ view: entry.view }, 1);
    if (entry.until !== null) at(entry.until, options.now ?? Date.now, () => staleGauge.set({ view: entry.view }, 0));
    options.logger.error(
      { view: entry.view, changes: entry.changes, seen: new Date(entry.seen).toISOString() },
      `feature view "${entry.view}": aggregates changed since its rows were written (${entry.changes.join('; ')}), ` +
        `first seen ${new Date(entry.seen).toISOString()}; windowed aggregates are served wrong ` +
        (entry.until === null
          ? `until the view is rebuilt (ttl none: then clear this with HDEL ${staleKey} ${entry.view}); `
          : `until ${new Date(entry.until).toISOString()} unless rebuilt; `) +
        'rebuild the view by replaying the features topic from now − (ttl + the longest window) into an empty key space with a new consumer group (libs/features README, "Changing a view")',
    );
  }
  return stale;
}

/** A stored stale entry; undefined when absent or unreadable (the start finding it again rewrites it). */
function parseStale(view: string, text: string | undefined): StaleView | undefined {
  if (text === undefined) return undefined;
  try {
    const parsed = JSON.parse(text) as { changes?: unknown; seen?: unknown; until?: unknown };
    if (!Array.isArray(parsed.changes) || typeof parsed.seen !== 'number') return undefined;
    if (parsed.until !== null && typeof parsed.until !== 'number') return undefined;
    return { view, changes: parsed.changes.map(String), seen: parsed.seen, until: parsed.until };
  } catch {
    return undefined;
  }
}

/** Calls `run` once the clock reaches `time`, in steps setTimeout accepts; never holds the process open. */
function at(time: number, clock: () => number, run: () => void): void {
  const left = time - clock();
  if (left <= 0) {
    run();
    return;
  }
  setTimeout(() => at(time, clock, run), Math.min(left, MAX_TIMER_MS)).unref();
}
