import type { ModelEventKind } from '@driftline/schemas';
import { describe, expect, it } from 'vitest';
import {
  type DatedStageEvent,
  EMPTY_PRODUCTION_HISTORY,
  followProduction,
  MAX_ENDED,
  type ProductionHistory,
  type ProductionStep,
} from '../src/index.js';

const MAX_SPELLS = 64;

const ev = (
  kind: ModelEventKind,
  version: string,
  at: number,
  extra: Omit<Partial<DatedStageEvent>, 'kind' | 'version' | 'event_time'> = {},
): DatedStageEvent => ({ kind, version, event_time: at, ...extra });
const previous = (version: string) => ({ previous_version: version });

/** The history after `events` in topic order, and each event's step. */
function fold(events: readonly DatedStageEvent[], maxSpells = MAX_SPELLS, from = EMPTY_PRODUCTION_HISTORY) {
  const steps: ProductionStep[] = [];
  let history: ProductionHistory = from;
  for (const e of events) {
    const step = followProduction(history, e, maxSpells);
    steps.push(step);
    history = step.history;
  }
  return { history, steps, outcomes: steps.map((s) => s.outcome) };
}

const spells = (h: ProductionHistory) => h.spells.map((s) => [s.version, s.from]);
const serving = (h: ProductionHistory) => h.stages.production;

describe('followProduction: production over event time from models.v1, by the stages the model-server serves', () => {
  it('a rollback of the serving version starts a spell of the version serving instead; earlier spells stay', () => {
    const { history, outcomes } = fold([
      ev('PROMOTED', 'v1', 1_000),
      ev('PROMOTED', 'v2', 2_000),
      ev('ROLLED_BACK', 'v2', 3_000, previous('v1')),
    ]);
    expect(outcomes).toEqual(['swapped', 'swapped', 'swapped']);
    expect(spells(history)).toEqual([
      ['v1', 1_000],
      ['v2', 2_000],
      ['v1', 3_000],
    ]);
    expect(serving(history)).toBe('v1');
    expect(history.stages.watched).toEqual([]);
    expect(history.stages.ended).toEqual([{ version: 'v2', stage: 'rolled_back', at: 3_000 }]);
  });

  it('a rollback without previous_version restores the version the serving one replaced', () => {
    const { history } = fold([
      ev('PROMOTED', 'v1', 1_000),
      ev('PROMOTED', 'v2', 2_000),
      ev('ROLLED_BACK', 'v2', 3_000),
    ]);
    expect(serving(history)).toBe('v1');
    // Once the watch ended (the replaced version retired), nothing says what serves instead: ignored.
    const retired = fold([
      ev('PROMOTED', 'v1', 1_000),
      ev('PROMOTED', 'v2', 2_000),
      ev('RETIRED', 'v1', 2_500),
      ev('ROLLED_BACK', 'v2', 3_000),
    ]);
    expect(retired.outcomes.at(-1)).toBe('ignored');
    expect(retired.steps.at(-1)?.reason).toMatch(/no previous_version/);
    expect(serving(retired.history)).toBe('v2');
  });

  it('a rolled-back canary, a rejected or retired version leave production as it is; RETIRED of the serving version is ignored', () => {
    const { history, outcomes } = fold([
      ev('PROMOTED', 'v1', 1_000),
      ev('CANARY', 'v2', 2_000, { canary_share: 0.1 }),
      ev('ROLLED_BACK', 'v2', 3_000, previous('v1')),
      ev('REJECTED', 'v3', 3_500),
      ev('RETIRED', 'v1', 4_000),
    ]);
    expect(outcomes).toEqual(['swapped', 'kept', 'kept', 'kept', 'ignored']);
    expect(spells(history)).toEqual([['v1', 1_000]]);
    expect(history.stages.ended.map((e) => e.version)).toEqual(['v2', 'v3']);
  });

  it('the whole topic read again in order, or each event delivered twice, gives the same history', () => {
    const events = [
      ev('TRAINED', 'v1', 500),
      ev('PROMOTED', 'v1', 1_000),
      ev('SHADOW', 'v2', 1_500),
      ev('CANARY', 'v2', 1_800, { canary_share: 0.1 }),
      ev('PROMOTED', 'v2', 2_000, previous('v1')),
      ev('ROLLED_BACK', 'v2', 3_000, previous('v1')),
      ev('PROMOTED', 'v3', 4_000, previous('v1')),
      ev('RETIRED', 'v1', 5_000),
    ];
    const once = fold(events).history;
    expect(fold(events.flatMap((e) => [e, e])).history).toEqual(once);
    expect(fold([...events, ...events]).history).toEqual(once);
    expect(spells(once)).toEqual([
      ['v1', 1_000],
      ['v2', 2_000],
      ['v1', 3_000],
      ['v3', 4_000],
    ]);
  });

  it('a promotion re-published after the rollback of its version is stale; one dated after it serves again', () => {
    const rolledBack = [
      ev('PROMOTED', 'v1', 1_000),
      ev('PROMOTED', 'v2', 2_000),
      ev('ROLLED_BACK', 'v2', 3_000, previous('v1')),
    ];
    const stale = fold([...rolledBack, ev('PROMOTED', 'v2', 2_000), ev('PROMOTED', 'v2', 3_000)]);
    expect(stale.outcomes.slice(3)).toEqual(['ignored', 'ignored']);
    expect(stale.steps.at(-1)?.reason).toMatch(/v2 was rolled back at 3000; a PROMOTED dated 3000 is stale/);
    expect(serving(stale.history)).toBe('v1');
    const again = fold([...rolledBack, ev('PROMOTED', 'v2', 6_000)]);
    expect(spells(again.history).at(-1)).toEqual(['v2', 6_000]);
    expect(again.history.stages.watched).toEqual(['v1']);
  });

  it('a PROMOTED of the replaced (watched) version is stale; of an older one no longer watched it serves again', () => {
    const base = [ev('PROMOTED', 'v1', 1_000), ev('PROMOTED', 'v2', 2_000)];
    const watched = fold([...base, ev('PROMOTED', 'v1', 3_000)]);
    expect(watched.outcomes.at(-1)).toBe('ignored');
    expect(serving(watched.history)).toBe('v2');
    const older = fold([...base, ev('PROMOTED', 'v3', 3_000), ev('PROMOTED', 'v1', 4_000)]);
    expect(spells(older.history).slice(-2)).toEqual([
      ['v3', 3_000],
      ['v1', 4_000],
    ]);
    expect(older.history.stages.watched).toEqual(['v3']);
    // The watch ended by retiring the replaced version: promoted later, it serves again.
    const retired = fold([...base, ev('RETIRED', 'v1', 2_500), ev('PROMOTED', 'v1', 4_000)]);
    expect(serving(retired.history)).toBe('v1');
  });

  it('a PROMOTED dated before the last swap is stale: no spell; at the same time it swaps, in topic order', () => {
    const { history, outcomes, steps } = fold([
      ev('PROMOTED', 'v1', 1_000),
      ev('PROMOTED', 'v2', 3_000),
      ev('PROMOTED', 'v3', 2_500),
      ev('PROMOTED', 'v3', 3_000),
    ]);
    expect(outcomes).toEqual(['swapped', 'swapped', 'ignored', 'swapped']);
    expect(steps[2]?.reason).toMatch(/v2 is production since 3000; a PROMOTED of v3 dated 2500/);
    expect(spells(history)).toEqual([
      ['v1', 1_000],
      ['v2', 3_000],
      ['v3', 3_000],
    ]);
    expect(serving(history)).toBe('v3');
  });

  it('after a retention cut, the rollback to the production PROMOTED named starts its spell (found by a review)', () => {
    // models.v1 no longer holds PROMOTED v1 (1_000); the controller's start re-publishes it, then the rollback.
    const { history, outcomes } = fold([
      ev('PROMOTED', 'v2', 3_000, previous('v1')),
      ev('PROMOTED', 'v1', 1_000),
      ev('PROMOTED', 'v2', 3_000, previous('v1')),
      ev('ROLLED_BACK', 'v2', 4_000, previous('v1')),
    ]);
    expect(outcomes).toEqual(['swapped', 'ignored', 'kept', 'swapped']);
    expect(spells(history)).toEqual([
      ['v2', 3_000],
      ['v1', 4_000],
    ]);
  });

  it('a rollback dated before the promotion of its version, or to a version never production, changes no spell (found by a review)', () => {
    // Two controllers' contradicting views: the rollback was decided before v2 was promoted.
    const promoted = [ev('PROMOTED', 'v1', 50_000), ev('PROMOTED', 'v2', 100_000, previous('v1'))];
    const stale = fold([...promoted, ev('ROLLED_BACK', 'v2', 90_000, previous('v1')), ev('RETIRED', 'v1', 110_000)]);
    expect(stale.outcomes).toEqual(['swapped', 'swapped', 'ignored', 'kept']);
    expect(stale.steps[2]?.reason).toMatch(/v2 is production since 100000; a ROLLED_BACK dated 90000/);
    expect(spells(stale.history)).toEqual([
      ['v1', 50_000],
      ['v2', 100_000],
    ]);
    // The watch of v1 ended by its RETIRED, as the controller's view has it (it had been ignored as "v1 is production").
    expect(stale.history.stages.watched).toEqual([]);
    // A hand-written rollback to a version that never served production.
    const handWritten = fold([...promoted, ev('ROLLED_BACK', 'v2', 120_000, previous('old'))]);
    expect(handWritten.outcomes.at(-1)).toBe('ignored');
    expect(serving(handWritten.history)).toBe('v2');
  });

  it('keeps the newest spells within maxSpells, and the newest ended versions within the stages bound', () => {
    const events: DatedStageEvent[] = [];
    for (let i = 0; i < 10; i++) {
      events.push(ev('PROMOTED', `v${i}`, i * 1_000));
      events.push(ev('ROLLED_BACK', `c${i}`, i * 1_000 + 500)); // a canary rolled back
    }
    const { history } = fold(events, 3);
    expect(spells(history)).toEqual([
      ['v7', 7_000],
      ['v8', 8_000],
      ['v9', 9_000],
    ]);
    expect(history.stages.ended.map((e) => e.version)).toEqual(Array.from({ length: 10 }, (_, i) => `c${i}`));
    const canaries = Array.from({ length: MAX_ENDED + 2 }, (_, i) => ev('ROLLED_BACK', `c${i}`, i));
    const ended = fold(canaries).history.stages.ended;
    expect(ended).toHaveLength(MAX_ENDED);
    expect(ended[0]?.version).toBe('c2');
  });
});
