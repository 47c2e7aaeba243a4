import type { ModelEventKind } from '@driftline/schemas';
import type { CanarySpec } from './specs.js';

/** The part of a models.v1 event the server acts on. */
export interface StageEvent {
  readonly kind: ModelEventKind;
  readonly version: string;
  readonly canary_share?: number | null;
  readonly previous_version?: string | null;
}

/**
 * What models.v1 says one model's versions do on the serving path. Plain data; the reducer
 * {@link applyStageEvent} builds it from the model's events in order, so replaying the topic
 * from the start gives the same state.
 */
export interface ModelStages {
  readonly production?: string;
  readonly canary?: CanarySpec;
  /** Versions moved to shadow (SHADOW events), oldest first. */
  readonly shadows: readonly string[];
  /**
   * The production version the current one replaced, scored as a shadow for the rollback watch
   * until it is retired, rolled back or rejected, or until the next promotion replaces it (at most
   * {@link MAX_WATCHED}: each costs one scoring per instance).
   */
  readonly watched: readonly string[];
}

export const EMPTY_STAGES: ModelStages = { shadows: [], watched: [] };

/** Replaced production versions scored for the rollback watch: the one the current production replaced. */
export const MAX_WATCHED = 1;
/** Shadows from SHADOW events per model; a SHADOW beyond it is ignored (every shadow scores every instance). */
export const MAX_SHADOWS = 8;

export interface StageStep {
  readonly stages: ModelStages;
  /** `ignored`: the event would leave the model without production or breaks a bound; `reason` says why. */
  readonly outcome: 'applied' | 'unchanged' | 'ignored';
  readonly reason?: string;
}

const without = (list: readonly string[], v: string) => (list.includes(v) ? list.filter((x) => x !== v) : list);

/** Removes `v` from every role but production. */
function stop(s: ModelStages, v: string): ModelStages {
  const canary = s.canary === undefined || s.canary.version === v ? undefined : s.canary;
  return {
    ...(s.production === undefined ? {} : { production: s.production }),
    ...(canary === undefined ? {} : { canary }),
    shadows: without(s.shadows, v),
    watched: without(s.watched, v),
  };
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const same = (a: ModelStages, b: ModelStages) =>
  a.production === b.production &&
  a.canary?.version === b.canary?.version &&
  a.canary?.share === b.canary?.share &&
  sameList(a.shadows, b.shadows) &&
  sameList(a.watched, b.watched);

/**
 * One models.v1 event applied to a model's stages (pure):
 * - SHADOW(v): v is scored as a shadow (it leaves canary if it was there);
 * - CANARY(v, share): v answers `share` of the entities, replacing any canary of the model;
 * - PROMOTED(v): production = v (it leaves canary/shadow); the replaced production is watched;
 * - ROLLED_BACK(v): if v is production, production = previous_version (or the watched version
 *   when absent), else v stops (a canary ends);
 * - REJECTED(v), RETIRED(v): v stops being scored;
 * - TRAINED: nothing.
 * An event that would leave the model without a production version (RETIRED/REJECTED/SHADOW/
 * CANARY of production, a rollback with nothing to roll back to) is ignored, with the reason.
 */
export function applyStageEvent(s: ModelStages, e: StageEvent): StageStep {
  const v = e.version;
  const ignored = (reason: string): StageStep => ({ stages: s, outcome: 'ignored', reason });
  const result = (next: ModelStages): StageStep =>
    same(s, next) ? { stages: s, outcome: 'unchanged' } : { stages: next, outcome: 'applied' };
  switch (e.kind) {
    case 'TRAINED':
      return { stages: s, outcome: 'unchanged' };
    case 'SHADOW': {
      if (v === s.production) return ignored(`${v} is production; promote another version first`);
      if (s.shadows.includes(v)) return { stages: s, outcome: 'unchanged' };
      const rest = stop(s, v);
      if (rest.shadows.length >= MAX_SHADOWS) {
        return ignored(`${MAX_SHADOWS} shadows already (${s.shadows.join(', ')}); reject or retire one first`);
      }
      return result({ ...rest, shadows: [...rest.shadows, v] });
    }
    case 'CANARY': {
      const share = e.canary_share;
      if (typeof share !== 'number' || !(share > 0 && share <= 1)) {
        return ignored(`canary_share must be a number in (0, 1], got ${JSON.stringify(share ?? null)}`);
      }
      if (v === s.production) return ignored(`${v} is production already`);
      return result({ ...stop(s, v), canary: { version: v, share } });
    }
    case 'PROMOTED': {
      if (v === s.production) return { stages: s, outcome: 'unchanged' };
      const rest = stop(s, v);
      const replaced = s.production;
      const watched =
        replaced === undefined ? rest.watched : [...without(rest.watched, replaced), replaced].slice(-MAX_WATCHED);
      return result({ ...rest, production: v, watched });
    }
    case 'ROLLED_BACK': {
      if (v !== s.production) return result(stop(s, v));
      const target = e.previous_version ?? s.watched.at(-1);
      if (target === undefined || target === '' || target === v) {
        return ignored(`${v} is production and no previous_version says what serves instead`);
      }
      return result({ ...stop(stop(s, target), v), production: target });
    }
    case 'REJECTED':
    case 'RETIRED':
      if (v === s.production) return ignored(`${v} is production; promote or roll back to another version first`);
      return result(stop(s, v));
    default:
      return ignored(`unknown kind ${JSON.stringify(e.kind)}`);
  }
}

/** What one model serves: the production version, the canary and the shadows (operator overrides applied). */
export interface ServedSet {
  readonly production: string;
  readonly canary?: CanarySpec;
  readonly shadows: readonly string[];
}

export interface StageOverrides {
  /** DRIFTLINE_MODEL_SERVER_CANARY of the model: replaces the canary of models.v1. */
  readonly canary?: CanarySpec;
  /** DRIFTLINE_MODEL_SERVER_SHADOW of the model: scored in addition to the shadows of models.v1. */
  readonly shadows?: readonly string[];
}

/**
 * The versions a model serves (pure), or undefined before its first promotion. A static canary
 * (operator override) replaces the staged one; static shadows add to the staged ones and the watched
 * version. A version is served in one role only: production, then canary, then shadow.
 */
export function servedSet(s: ModelStages, overrides: StageOverrides = {}): ServedSet | undefined {
  const production = s.production;
  if (production === undefined) return undefined;
  const c = overrides.canary ?? s.canary;
  const canary = c === undefined || c.version === production ? undefined : c;
  const shadows: string[] = [];
  for (const v of [...s.shadows, ...s.watched, ...(overrides.shadows ?? [])]) {
    if (v !== production && v !== canary?.version && !shadows.includes(v)) shadows.push(v);
  }
  return { production, ...(canary === undefined ? {} : { canary }), shadows };
}
