import type { ModelEventKind } from '@driftline/schemas';

/** The fields of a models.v1 event that decide which version of its model serves production. */
export interface StageChange {
  readonly kind: ModelEventKind;
  readonly version: string;
  readonly event_time: number;
  /** ROLLED_BACK: the version that serves instead (absent: the one the rolled-back version replaced). */
  readonly previous_version?: string | null;
}

/** A version serving production from `from` (event time) until the next spell's `from`. */
export interface ProductionSpell {
  readonly version: string;
  readonly from: number;
}

/** A version whose stage became terminal (ROLLED_BACK, RETIRED, REJECTED) and its latest end's event time. */
export interface VersionEnd {
  readonly version: string;
  readonly at: number;
}

/**
 * One model's production over event time, folded from its models.v1 events in topic order
 * ({@link followStageChange}) by the model-server's rules, so it names the version that served.
 */
export interface ProductionHistory {
  /** Oldest first, `from` non-decreasing; the last one serves now. The newest `maxSpells`. */
  readonly spells: readonly ProductionSpell[];
  /**
   * The production version the current one replaced: what a ROLLED_BACK without
   * `previous_version` restores, until it ends or the next promotion replaces it.
   */
  readonly watched?: string;
  /** In the order they ended, the newest `maxEnded`: a PROMOTED dated at or before its end is stale. */
  readonly ended: readonly VersionEnd[];
}

export const EMPTY_PRODUCTION_HISTORY: ProductionHistory = { spells: [], ended: [] };

export interface ProductionLimits {
  readonly maxSpells: number;
  readonly maxEnded: number;
}

export interface ProductionStep {
  readonly history: ProductionHistory;
  /** `swapped`: another version serves from the new spell on; `ignored`: `reason` says why (the model-server ignores it too). */
  readonly outcome: 'swapped' | 'kept' | 'ignored';
  readonly reason?: string;
}

/** The version serving now (the last spell), if any was ever promoted. */
export function servingNow(history: ProductionHistory): string | undefined {
  return history.spells.at(-1)?.version;
}

/** `version` ended at `at` (ROLLED_BACK, RETIRED, REJECTED). */
function end(history: ProductionHistory, version: string, at: number, limits: ProductionLimits): ProductionHistory {
  // The watch ends with the watched version.
  const { watched, ...unwatched } = history;
  const rest = watched === version ? unwatched : history;
  const known = history.ended.find((e) => e.version === version);
  // A version that ended before keeps its place and takes the newer end (a repeat changes nothing).
  if (known !== undefined && known.at >= at) return rest;
  const ended =
    known === undefined
      ? [...history.ended, { version, at }].slice(-limits.maxEnded)
      : history.ended.map((e) => (e === known ? { version, at } : e));
  return { ...rest, ended };
}

/**
 * A spell of `version` from `at`, or from the last spell's start when `at` is before it: events
 * apply in topic order, as the model-server applies them, so one dated before a swap it follows
 * (another writer's clock) never reaches back past it.
 */
function swap(
  history: ProductionHistory,
  version: string,
  at: number,
  watched: string | undefined,
  limits: ProductionLimits,
): ProductionStep {
  const last = history.spells.at(-1);
  const spell = { version, from: last === undefined ? at : Math.max(at, last.from) };
  const spells = [...history.spells, spell].slice(-limits.maxSpells);
  const next = { spells, ended: history.ended };
  return { history: watched === undefined ? next : { ...next, watched }, outcome: 'swapped' };
}

/**
 * One models.v1 event applied to a model's production history (pure), by the rules of the
 * model-server's stages (services/model-server `applyStageEvent`), which decide what serves:
 * - PROMOTED(v): v serves; the version it replaced is watched. Ignored when v ended at or after
 *   the event's time (a stale re-publish) or v is the watched version (it returns only by a
 *   rollback naming it; a PROMOTED of an older version that is neither serves again).
 * - ROLLED_BACK(v) of the serving version: `previous_version` (else the watched one) serves, v
 *   ends; ignored when neither names another version. Of any other version (a canary): v ends.
 * - RETIRED(v), REJECTED(v): v ends (the watch with it); ignored for the serving version.
 * - TRAINED, SHADOW, CANARY: production and the watch stay.
 */
export function followStageChange(
  history: ProductionHistory,
  e: StageChange,
  limits: ProductionLimits,
): ProductionStep {
  const v = e.version;
  const at = e.event_time;
  const serving = servingNow(history);
  const ignored = (reason: string): ProductionStep => ({ history, outcome: 'ignored', reason });
  const kept = (next: ProductionHistory): ProductionStep => ({ history: next, outcome: 'kept' });
  switch (e.kind) {
    case 'PROMOTED': {
      const ended = history.ended.find((x) => x.version === v);
      if (ended !== undefined && at <= ended.at)
        return ignored(`${v} ended at ${ended.at}; a PROMOTED dated ${at} is stale (re-published or re-delivered)`);
      if (v === history.watched)
        return ignored(`${v} is the production ${serving} replaced; a PROMOTED would move it back, so it is stale`);
      if (v === serving) return kept(history);
      return swap(history, v, at, serving, limits);
    }
    case 'ROLLED_BACK': {
      if (v !== serving) return kept(end(history, v, at, limits));
      const target = e.previous_version ?? history.watched;
      if (target === undefined || target === '' || target === v)
        return ignored(`${v} serves and no previous_version says what serves instead`);
      const restored = { ...history, ended: history.ended.filter((x) => x.version !== target) };
      const after = end(restored, v, at, limits);
      const watched = after.watched === target ? undefined : after.watched;
      return swap(after, target, at, watched, limits);
    }
    case 'RETIRED':
    case 'REJECTED':
      if (v === serving) return ignored(`${v} serves; promote or roll back to another version first`);
      return kept(end(history, v, at, limits));
    default:
      return kept(history);
  }
}
