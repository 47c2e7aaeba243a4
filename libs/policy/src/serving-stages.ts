import type { ModelEventKind } from '@driftline/schemas';
import type { Stage } from './stages.js';

/**
 * The stages of a model's versions on the serving path, reduced from its models.v1 events
 * ({@link applyStageEvent}). `stages.ts` is the stage graph one version's recorded transitions
 * follow (the controller writes them, then publishes each as a models.v1 event); this module is
 * what those events make the model serve, read by the model-server (which versions score) and the
 * drift-monitor (which version served production when, `production-history.ts`), so both follow
 * the same rules. It follows the graph: terminal stages end a version, no event moves one back.
 */

/** A canary of one model: the version and the share of entities it answers, in (0, 1]. */
export interface CanarySpec {
  readonly version: string;
  readonly share: number;
}

/** The part of a models.v1 event the stages follow. */
export interface StageEvent {
  readonly kind: ModelEventKind;
  readonly version: string;
  readonly canary_share?: number | null;
  readonly previous_version?: string | null;
  /**
   * The decision's event time (models.v1 `event_time`; the controller re-publishes a transition
   * with the same one). Absent only for a call made in-process: such an event is never taken as stale.
   */
  readonly event_time?: number;
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
  /**
   * Versions that ended (ROLLED_BACK, RETIRED, REJECTED: terminal stages), in the order they
   * ended, at most {@link MAX_ENDED}, with the event time of their end: a SHADOW, CANARY or
   * PROMOTED of one dated at or before it is a stale or re-delivered event, and is ignored.
   */
  readonly ended: readonly EndedVersion[];
  /**
   * When each version with a role above took it: the event time of the event that moved it there
   * (the replaced production: of the promotion that replaced it), for events that had one. A
   * ROLLED_BACK, RETIRED or REJECTED of it dated before is a decision made before it took that role
   * (a second controller's contradicting view, an old event re-published), and is ignored.
   */
  readonly entered: readonly EnteredRole[];
  /**
   * Versions that have been production by these events (promoted, restored by a rollback, or named
   * by a PROMOTED as the production it replaced), in the order they first were, at most
   * {@link MAX_PRODUCTIONS} (the newest): the versions a rollback may restore.
   */
  readonly productions: readonly string[];
}

/** A version with a role, and the event time of the event that gave it that role. */
export interface EnteredRole {
  readonly version: string;
  readonly at: number;
}

/** A version whose stage became terminal, and when (the event time of its newest end, when known). */
export interface EndedVersion {
  readonly version: string;
  readonly stage: Extract<Stage, 'rolled_back' | 'retired' | 'rejected'>;
  readonly at?: number;
}

export const EMPTY_STAGES: ModelStages = { shadows: [], watched: [], ended: [], entered: [], productions: [] };

/** Replaced production versions scored for the rollback watch: the one the current production replaced. */
export const MAX_WATCHED = 1;
/** Shadows from SHADOW events per model; a SHADOW beyond it is ignored (every shadow scores every instance). */
export const MAX_SHADOWS = 8;
/** Ended versions remembered per model (the newest); one older than these is taken as unknown. */
export const MAX_ENDED = 1000;
/** Versions remembered per model as having been production (the newest); a rollback to an older one is ignored. */
export const MAX_PRODUCTIONS = 1000;

export interface StageStep {
  readonly stages: ModelStages;
  /** `ignored`: the event would leave the model without production or breaks a bound; `reason` says why. */
  readonly outcome: 'applied' | 'unchanged' | 'ignored';
  readonly reason?: string;
}

const without = (list: readonly string[], v: string) => (list.includes(v) ? list.filter((x) => x !== v) : list);

/**
 * `list` with those of `versions` it lacks added as its newest entries, at most
 * {@link MAX_PRODUCTIONS}; `list` itself when it has them all. A version keeps the place it was
 * first added at: moving it to the end copied the whole list at every promotion and rollback.
 */
function remembered(list: readonly string[], ...versions: readonly (string | undefined)[]): readonly string[] {
  const added: string[] = [];
  for (const v of versions) if (v !== undefined && !list.includes(v) && !added.includes(v)) added.push(v);
  if (added.length === 0) return list;
  // concat allocates the exact length (a push grew the copy by half again: 4 KB more per model).
  const drop = list.length + added.length - MAX_PRODUCTIONS;
  return (drop > 0 ? list.slice(drop) : list).concat(added);
}

/** Removes `v` from every role but production. */
function stop(s: ModelStages, v: string): ModelStages {
  const canary = s.canary === undefined || s.canary.version === v ? undefined : s.canary;
  return {
    ...(s.production === undefined ? {} : { production: s.production }),
    ...(canary === undefined ? {} : { canary }),
    shadows: without(s.shadows, v),
    watched: without(s.watched, v),
    ended: s.ended,
    entered: s.entered,
    productions: s.productions,
  };
}

const endedOf = (s: ModelStages, v: string) => s.ended.find((e) => e.version === v);

/**
 * `v` stopped and remembered as ended at `at`. A version that ended before keeps its place, and
 * takes the newer end (a repeated event changes nothing).
 */
function end(s: ModelStages, v: string, stage: EndedVersion['stage'], at: number | undefined): ModelStages {
  const rest = stop(s, v);
  const record: EndedVersion = at === undefined ? { version: v, stage } : { version: v, stage, at };
  const known = endedOf(s, v);
  if (known === undefined) return { ...rest, ended: [...s.ended, record].slice(-MAX_ENDED) };
  if (at === undefined || (known.at !== undefined && known.at >= at)) return rest;
  return { ...rest, ended: s.ended.map((x) => (x === known ? record : x)) };
}

/**
 * Order of the serving stages along the stage graph (`STAGE_TRANSITIONS`: candidate → shadow → canary
 * → production, no edge back), by the event kind that moves a version there.
 */
const STAGE_ORDER = { SHADOW: 1, CANARY: 2, PROMOTED: 3 } as const;

/** The serving stage `v` is at now, or undefined when it has none. A watched version is still at production. */
function stageOf(s: ModelStages, v: string): { order: number; name: string } | undefined {
  if (v === s.production) return { order: STAGE_ORDER.PROMOTED, name: 'production' };
  if (s.watched.includes(v)) return { order: STAGE_ORDER.PROMOTED, name: 'the replaced production (watched)' };
  if (s.canary?.version === v) return { order: STAGE_ORDER.CANARY, name: 'canary' };
  if (s.shadows.includes(v)) return { order: STAGE_ORDER.SHADOW, name: 'shadow' };
  return undefined;
}

const enteredOf = (s: ModelStages, v: string) => s.entered.find((x) => x.version === v);

/**
 * `next` with the time each of its versions took its role: kept from the first of `earlier` in
 * which the version had that same role (a new share of a canary is no new role), else `at` (the
 * event that gave it the role), else unknown (an in-process call: never taken as stale).
 */
function withEntered(next: ModelStages, at: number | undefined, ...earlier: readonly ModelStages[]): ModelStages {
  const versions = [
    ...(next.production === undefined ? [] : [next.production]),
    ...(next.canary === undefined ? [] : [next.canary.version]),
    ...next.shadows,
    ...next.watched,
  ];
  const entered: EnteredRole[] = [];
  for (const v of new Set(versions)) {
    const role = stageOf(next, v)?.name;
    const from = earlier.find((s) => stageOf(s, v)?.name === role);
    const time = from === undefined ? at : enteredOf(from, v)?.at;
    if (time !== undefined) entered.push({ version: v, at: time });
  }
  return { ...next, entered };
}

/**
 * `next` with production and the watched versions replaced by what a server actually serves (the
 * production the events name did not load, so the one serving stays; a replaced version that never
 * served is not watched). Each version keeps the time it took that role in `next`, or else in
 * `before`; one that takes a role it had in neither has no time (its terminal events are not
 * taken as stale).
 */
export function withServing(
  next: ModelStages,
  before: ModelStages,
  serving: Pick<ModelStages, 'production' | 'watched'>,
): ModelStages {
  return withEntered({ ...next, ...serving }, undefined, next, before);
}

/**
 * Why a ROLLED_BACK, RETIRED or REJECTED `e` of a version is older than the role the version has,
 * or undefined: the event that gave it that role is dated after `e`, so `e` was decided before it
 * (another controller's view of the model, or an old event re-published). At equal times it
 * applies: ties go to the end, as the stale check of an ended version does, so both orders of the
 * two events end the version.
 */
function endBeforeRole(s: ModelStages, e: StageEvent): string | undefined {
  if (e.kind !== 'ROLLED_BACK' && e.kind !== 'RETIRED' && e.kind !== 'REJECTED') return undefined;
  const entered = enteredOf(s, e.version);
  if (entered === undefined || e.event_time === undefined || e.event_time >= entered.at) return undefined;
  return `${e.version} is ${stageOf(s, e.version)?.name} since ${entered.at}; a ${e.kind} dated ${e.event_time} was decided before that, so it is stale (a contradicting or re-published event)`;
}

/**
 * Why a PROMOTED `e` of another version than production is older than the production, or
 * undefined: production took its role after `e` was decided (a controller's start re-publishes
 * every version's newest transition, a PROMOTED of the version production replaced among them; on
 * a log retention cut, that version had no role left to refuse it, and it took production back).
 * At equal times it applies, in topic order.
 */
function promotedBeforeProduction(s: ModelStages, e: StageEvent): string | undefined {
  const production = s.production;
  const entered = production === undefined ? undefined : enteredOf(s, production);
  if (entered === undefined || e.event_time === undefined || e.event_time >= entered.at) return undefined;
  return `${production} is production since ${entered.at}; a PROMOTED of ${e.version} dated ${e.event_time} was decided before that, so it is stale (re-published or another controller's view)`;
}

/** What a number or missing value printed in a reason reads as (`JSON.stringify` printed NaN as null). */
const shown = (x: unknown) => (typeof x === 'number' ? String(x) : JSON.stringify(x ?? null));

/**
 * Why `e` is an old event of its version re-published or re-delivered, or undefined: it would move
 * the version back along the stage graph (SHADOW of a canary, CANARY or SHADOW of production), or
 * serve a replaced production again by PROMOTED (it returns only by a ROLLED_BACK naming it).
 * No edge of the graph does either, so no event time is compared: the trainer's and the
 * controller's clocks may differ.
 */
function backwardMove(s: ModelStages, e: StageEvent): string | undefined {
  if (e.kind !== 'SHADOW' && e.kind !== 'CANARY' && e.kind !== 'PROMOTED') return undefined;
  const held = stageOf(s, e.version);
  if (held === undefined) return undefined;
  const replaced = e.kind === 'PROMOTED' && s.watched.includes(e.version);
  if (STAGE_ORDER[e.kind] >= held.order && !replaced) return undefined;
  return `${e.version} is ${held.name} already; a ${e.kind} would move it back, so it is stale (re-published or re-delivered)`;
}

const ENDED_AS: Readonly<Record<EndedVersion['stage'], string>> = {
  rolled_back: 'rolled back',
  retired: 'retired',
  rejected: 'rejected',
};

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const same = (a: ModelStages, b: ModelStages) =>
  a.production === b.production &&
  a.canary?.version === b.canary?.version &&
  a.canary?.share === b.canary?.share &&
  sameList(a.shadows, b.shadows) &&
  sameList(a.watched, b.watched) &&
  a.ended.length === b.ended.length &&
  a.ended.every(
    (e, i) => e.version === b.ended[i]?.version && e.stage === b.ended[i]?.stage && e.at === b.ended[i]?.at,
  );

/**
 * One models.v1 event applied to a model's stages (pure):
 * - SHADOW(v): v is scored as a shadow;
 * - CANARY(v, share): v answers `share` of the entities, replacing any canary of the model;
 * - PROMOTED(v): production = v (it leaves canary/shadow); the replaced production is watched;
 * - ROLLED_BACK(v): if v is production, production = previous_version (or the watched version
 *   when absent), else v stops (a canary ends);
 * - REJECTED(v), RETIRED(v): v stops being scored;
 * - TRAINED: nothing.
 * ROLLED_BACK, REJECTED and RETIRED end v: its stage is terminal (the stage graph, `stages.ts`; the
 * operator command refuses to move it out too). A SHADOW, CANARY or PROMOTED of v whose event time
 * is at or before that end is a stale or re-delivered event (a second controller's re-publish, a
 * send retried) and is ignored, with the reason; one dated after it is a new decision and applies,
 * as does one without a time.
 * The other way round, a ROLLED_BACK, REJECTED or RETIRED of v dated before the event that gave v
 * its role (`entered`) was decided before v had it — two controllers' contradicting views
 * (PROMOTED v2 at 100, then ROLLED_BACK v2 at 90 had served v1 for good while the controller
 * watched v2 against v1) — and is ignored, with the reason; at the same time it applies. So is a
 * PROMOTED of another version dated before production took its role: a re-published promotion
 * of the version production replaced, which a log cut by retention no longer shows as watched.
 * A rollback serves only a version that has been production by these events (`productions`:
 * promoted, restored, or named by a PROMOTED as the production it replaced; the watched one among
 * them), even one that ended since — what the controller takes as production after it too; a
 * previous_version never production (written by hand, a canary's) is ignored, with the reason.
 * The stage graph has no edge back either: a SHADOW of a canary or production version, a CANARY
 * of production, a PROMOTED of the replaced (watched) production is an old event re-published (the
 * trainer's retried request, a second controller's start) and is ignored, with the reason,
 * whatever its event time (an in-process call, without one, is not: it is no re-publish).
 * An event that would leave the model without a production version (RETIRED/REJECTED/SHADOW/
 * CANARY of production, a rollback with nothing to roll back to) is ignored, with the reason.
 */
export function applyStageEvent(s: ModelStages, e: StageEvent): StageStep {
  const v = e.version;
  const at = e.event_time;
  const ignored = (reason: string): StageStep => ({ stages: s, outcome: 'ignored', reason });
  const result = (next: ModelStages): StageStep =>
    same(s, next) ? { stages: s, outcome: 'unchanged' } : { stages: withEntered(next, at, s), outcome: 'applied' };
  const ended = endedOf(s, v);
  if (
    ended?.at !== undefined &&
    at !== undefined &&
    at <= ended.at &&
    (e.kind === 'SHADOW' || e.kind === 'CANARY' || e.kind === 'PROMOTED')
  ) {
    return ignored(
      `${v} was ${ENDED_AS[ended.stage]} at ${ended.at}; a ${e.kind} dated ${at} is stale (re-published or re-delivered)`,
    );
  }
  const back = at === undefined ? undefined : backwardMove(s, e);
  if (back !== undefined) return ignored(back);
  const old = endBeforeRole(s, e);
  if (old !== undefined) return ignored(old);
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
        return ignored(`canary_share must be a number in (0, 1], got ${shown(share)}`);
      }
      if (v === s.production) return ignored(`${v} is production already`);
      return result({ ...stop(s, v), canary: { version: v, share } });
    }
    case 'PROMOTED': {
      if (v === s.production) return { stages: s, outcome: 'unchanged' };
      const stale = promotedBeforeProduction(s, e);
      if (stale !== undefined) return ignored(stale);
      const rest = stop(s, v);
      const replaced = s.production;
      const watched =
        replaced === undefined ? rest.watched : [...without(rest.watched, replaced), replaced].slice(-MAX_WATCHED);
      // The production it replaced, as the controller names it, has been production even when these
      // events do not say so (retention dropped its PROMOTED before this server started): a rollback
      // may restore it. It is not watched: it may be a version no server can load (the rules a first
      // version was gated against), which a server that read the whole log does not watch either.
      const named = e.previous_version && e.previous_version !== v ? e.previous_version : undefined;
      return result({ ...rest, production: v, watched, productions: remembered(rest.productions, named, v) });
    }
    case 'ROLLED_BACK': {
      if (v !== s.production) return result(end(s, v, 'rolled_back', at));
      const target = e.previous_version ?? s.watched.at(-1);
      if (target === undefined || target === '' || target === v) {
        return ignored(`${v} is production and no previous_version says what serves instead`);
      }
      if (!s.watched.includes(target) && !s.productions.includes(target)) {
        return ignored(
          `previous_version ${shown(target)} has never been production of this model (not promoted nor restored by its events); a rollback of ${v} serves only a version that was`,
        );
      }
      const restored = stop(s, target);
      return result({
        ...end({ ...restored, ended: restored.ended.filter((x) => x.version !== target) }, v, 'rolled_back', at),
        production: target,
        productions: remembered(restored.productions, target),
      });
    }
    case 'REJECTED':
    case 'RETIRED':
      if (v === s.production) return ignored(`${v} is production; promote or roll back to another version first`);
      return result(end(s, v, e.kind === 'RETIRED' ? 'retired' : 'rejected', at));
    default:
      return ignored(`unknown kind ${JSON.stringify(e.kind)}`);
  }
}

/** An event {@link reduceStages} ignored: its place in the list, and why. */
export interface IgnoredStageEvent {
  readonly index: number;
  readonly reason: string;
}

/**
 * `events` applied in order to `s` by {@link applyStageEvent} (pure): the stages they reduce to,
 * and the events ignored with why. A left fold: a list reduced in parts, each part from the stages
 * the parts before it reduced to, gives the stages of the list reduced whole. So a model's history
 * can be folded as it is read into stages bounded per model (at most {@link MAX_ENDED} ended and
 * {@link MAX_PRODUCTIONS} production versions, {@link MAX_SHADOWS} shadows, {@link MAX_WATCHED}
 * watched) rather than held event by event until the end: the model-server's start-up replay of
 * models.v1, which keeps every event of every model for good.
 */
export function reduceStages(
  s: ModelStages,
  events: readonly StageEvent[],
): { readonly stages: ModelStages; readonly ignored: readonly IgnoredStageEvent[] } {
  let stages = s;
  const ignored: IgnoredStageEvent[] = [];
  for (const [index, e] of events.entries()) {
    const step = applyStageEvent(stages, e);
    if (step.outcome === 'ignored') ignored.push({ index, reason: step.reason ?? 'ignored' });
    stages = step.stages;
  }
  return { stages, ignored };
}
