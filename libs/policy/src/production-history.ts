import { applyStageEvent, EMPTY_STAGES, type ModelStages, type StageEvent } from './serving-stages.js';

/** A models.v1 event with its event time (every event on the topic has one). */
export interface DatedStageEvent extends StageEvent {
  readonly event_time: number;
}

/** A version serving production from `from` (event time) until the next spell's `from`. */
export interface ProductionSpell {
  readonly version: string;
  readonly from: number;
}

/**
 * One model's production over event time: its stages ({@link applyStageEvent}, what the
 * model-server serves now) and the spells of the versions that served production.
 */
export interface ProductionHistory {
  readonly stages: ModelStages;
  /** Oldest first, `from` non-decreasing; the last one is `stages.production`. The newest `maxSpells`. */
  readonly spells: readonly ProductionSpell[];
}

export const EMPTY_PRODUCTION_HISTORY: ProductionHistory = { stages: EMPTY_STAGES, spells: [] };

export interface ProductionStep {
  readonly history: ProductionHistory;
  /**
   * `swapped`: another version serves production from the new spell on; `kept`: production
   * stays; `ignored`: the stages ignore the event too, `reason` says why.
   */
  readonly outcome: 'swapped' | 'kept' | 'ignored';
  readonly reason?: string;
}

/**
 * One models.v1 event of a model, in topic order, applied to its production history (pure): the
 * stages step by {@link applyStageEvent}, and when that changes production, a spell of the new
 * production version begins at the event's time — or at the last spell's start when the event is
 * dated before it: the model-server applied it after that swap (another writer's clock), so it
 * never reaches back past it. At most `maxSpells` (≥ 1) spells, the newest.
 */
export function followProduction(history: ProductionHistory, e: DatedStageEvent, maxSpells: number): ProductionStep {
  const step = applyStageEvent(history.stages, e);
  if (step.outcome === 'ignored')
    return { history, outcome: 'ignored', ...(step.reason === undefined ? {} : { reason: step.reason }) };
  if (step.outcome === 'unchanged') return { history, outcome: 'kept' };
  const version = step.stages.production;
  if (version === undefined || version === history.stages.production)
    return { history: { stages: step.stages, spells: history.spells }, outcome: 'kept' };
  const last = history.spells.at(-1);
  const from = last === undefined ? e.event_time : Math.max(e.event_time, last.from);
  const spells = [...history.spells, { version, from }].slice(-maxSpells);
  return { history: { stages: step.stages, spells }, outcome: 'swapped' };
}
