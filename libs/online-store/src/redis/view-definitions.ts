import type { Logger } from '@driftline/core';
import { aggregateDefinition, aggregateDefinitionChanges, type FeatureViews } from '@driftline/features';
import { counter, type Registry } from '@driftline/observability';
import type { RedisClient } from './client.js';

/** The hash of `aggregateDefinition` per view name, beside the state marker. */
export const viewDefinitionsKey = (keyPrefix: string): string => `${keyPrefix}:view-definitions:features`;

export interface ViewDefinitionChange {
  readonly view: string;
  /** One phrase per difference (aggregateDefinitionChanges). */
  readonly changes: readonly string[];
}

export interface CheckViewDefinitionsOptions {
  readonly keyPrefix: string;
  readonly views: FeatureViews;
  readonly logger: Logger;
  readonly registry: Registry;
}

/**
 * Compares the views' aggregate definitions with those the store was written under and records
 * the current ones. Rows keep each aggregate under its name and the window set only the history
 * of the definition it was written with: a lengthened window, a raised `max_events` or a name
 * redefined served the old values until each entity's next event, then values over truncated
 * history, silently (found by a review). A difference is one error line per view and
 * `driftline_feature_view_definition_changes_total{view}`; nothing is refused (a rolling deploy
 * would crash-loop) and only a replay repairs the rows. A view seen for the first time (a first
 * start, a new view) is recorded without a report. Reported once: the new definition is stored.
 */
export async function checkViewDefinitions(
  redis: RedisClient,
  options: CheckViewDefinitionsOptions,
): Promise<ViewDefinitionChange[]> {
  const changed = counter(
    options.registry,
    'driftline_feature_view_definition_changes_total',
    'Start-ups that found a view whose aggregates differ from those its stored rows were computed with',
    ['view'],
  );
  const key = viewDefinitionsKey(options.keyPrefix);
  const stored = await redis.hgetall(key);
  const found: ViewDefinitionChange[] = [];
  const updates: string[] = [];
  for (const view of options.views.views) {
    const current = aggregateDefinition(view);
    const before = stored[view.name];
    if (before === current) continue;
    updates.push(view.name, current);
    if (before === undefined) continue;
    const changes = aggregateDefinitionChanges(before, view);
    if (changes.length === 0) continue;
    found.push({ view: view.name, changes });
    changed.inc({ view: view.name });
    options.logger.error(
      { view: view.name, changes },
      `feature view "${view.name}": aggregates changed since its rows were written (${changes.join('; ')}); ` +
        "rows serve the old values until each entity's next event, then windows over the history kept under the old definition; " +
        'rebuild the view by replaying the features topic from now − (ttl + the longest window) into an empty key space with a new consumer group (libs/features README, "Changing a view")',
    );
  }
  if (updates.length > 0) await redis.hset(key, ...updates);
  return found;
}
