import {
  applyStageEvent,
  EMPTY_STAGES,
  MAX_PRODUCTIONS,
  MAX_SHADOWS,
  type ModelStages,
  type StageEvent,
} from '@driftline/policy';
import type { ModelEventKind } from '@driftline/schemas';
import { describe, expect, it } from 'vitest';
import { hiddenCanary, servedSet } from '../src/stages.js';

const ev = (kind: ModelEventKind, version: string, extra: Partial<StageEvent> = {}): StageEvent => ({
  kind,
  version,
  ...extra,
});

/** Folds events from the empty state; the outcome of each step in order. */
function fold(events: readonly StageEvent[], from: ModelStages = EMPTY_STAGES) {
  let s = from;
  const outcomes: string[] = [];
  for (const e of events) {
    const step = applyStageEvent(s, e);
    outcomes.push(step.outcome);
    s = step.stages;
  }
  return { stages: s, outcomes, served: servedSet(s) };
}

describe('stage following: models.v1 events → what a model serves', () => {
  it('nothing is served before the first promotion; SHADOW and CANARY wait for it', () => {
    const r = fold([ev('TRAINED', 'v1'), ev('SHADOW', 'v1')]);
    expect(r.served).toBeUndefined();
    expect(r.stages.shadows).toEqual(['v1']);
    expect(fold([ev('PROMOTED', 'v0'), ev('SHADOW', 'v1')]).served).toEqual({ production: 'v0', shadows: ['v1'] });
  });

  it('the happy path: shadow → canary → production; the replaced production is watched until retired', () => {
    const steps = [
      ev('PROMOTED', 'v1'),
      ev('TRAINED', 'v2'),
      ev('SHADOW', 'v2'),
      ev('CANARY', 'v2', { canary_share: 0.1 }),
      ev('CANARY', 'v2', { canary_share: 0.25 }),
      ev('PROMOTED', 'v2', { previous_version: 'v1' }),
      ev('RETIRED', 'v1'),
    ];
    const served: unknown[] = [];
    let s = EMPTY_STAGES;
    for (const e of steps) {
      s = applyStageEvent(s, e).stages;
      served.push(servedSet(s));
    }
    expect(served).toEqual([
      { production: 'v1', shadows: [] },
      { production: 'v1', shadows: [] },
      { production: 'v1', shadows: ['v2'] },
      { production: 'v1', canary: { version: 'v2', share: 0.1 }, shadows: [] },
      { production: 'v1', canary: { version: 'v2', share: 0.25 }, shadows: [] },
      { production: 'v2', shadows: ['v1'] },
      { production: 'v2', shadows: [] },
    ]);
  });

  it('ROLLED_BACK of production serves previous_version (or the watched one) again; the bad version stops', () => {
    const promoted = [ev('PROMOTED', 'v1'), ev('PROMOTED', 'v2', { previous_version: 'v1' })];
    expect(fold([...promoted, ev('ROLLED_BACK', 'v2', { previous_version: 'v1' })]).served).toEqual({
      production: 'v1',
      shadows: [],
    });
    // No previous_version: the watched (replaced) version.
    expect(fold([...promoted, ev('ROLLED_BACK', 'v2')]).served).toEqual({ production: 'v1', shadows: [] });
    // previous_version retired since, after it served production: it is loaded again.
    expect(
      fold([...promoted, ev('RETIRED', 'v1'), ev('ROLLED_BACK', 'v2', { previous_version: 'v1' })]).served,
    ).toEqual({ production: 'v1', shadows: [] });
    // Nothing to roll back to: ignored, production keeps serving.
    const r = fold([ev('PROMOTED', 'v1'), ev('ROLLED_BACK', 'v1')]);
    expect(r.outcomes).toEqual(['applied', 'ignored']);
    expect(r.served).toEqual({ production: 'v1', shadows: [] });
  });

  it('ROLLED_BACK or REJECTED of a canary ends it; REJECTED/RETIRED of a shadow stops it', () => {
    const base = [ev('PROMOTED', 'v1'), ev('SHADOW', 'v3'), ev('CANARY', 'v2', { canary_share: 0.5 })];
    expect(fold([...base, ev('ROLLED_BACK', 'v2', { previous_version: 'v1' })]).served).toEqual({
      production: 'v1',
      shadows: ['v3'],
    });
    expect(fold([...base, ev('REJECTED', 'v2')]).served).toEqual({ production: 'v1', shadows: ['v3'] });
    expect(fold([...base, ev('REJECTED', 'v3')]).served).toEqual({
      production: 'v1',
      canary: { version: 'v2', share: 0.5 },
      shadows: [],
    });
  });

  it('ignores what would leave no production or breaks a bound, with the reason', () => {
    const p = fold([ev('PROMOTED', 'v1')]).stages;
    for (const e of [
      ev('RETIRED', 'v1'),
      ev('REJECTED', 'v1'),
      ev('SHADOW', 'v1'),
      ev('CANARY', 'v1', { canary_share: 0.2 }),
      ev('CANARY', 'v2'),
      ev('CANARY', 'v2', { canary_share: 0 }),
      ev('CANARY', 'v2', { canary_share: 1.5 }),
    ]) {
      const step = applyStageEvent(p, e);
      expect([step.outcome, step.stages]).toEqual(['ignored', p]);
      expect(step.reason).toMatch(/production|canary_share/);
    }
    const full = fold(
      Array.from({ length: MAX_SHADOWS }, (_, i) => ev('SHADOW', `s${i}`)),
      p,
    ).stages;
    expect(applyStageEvent(full, ev('SHADOW', 'one-more')).reason).toMatch(/8 shadows already/);
    // Re-announcing a shadow it has is no change, not a refusal.
    expect(applyStageEvent(full, ev('SHADOW', 's0')).outcome).toBe('unchanged');
  });

  it('a replayed topic gives the same state; duplicates change nothing', () => {
    const log = [
      ev('PROMOTED', 'v1'),
      ev('SHADOW', 'v2'),
      ev('CANARY', 'v2', { canary_share: 0.2 }),
      ev('PROMOTED', 'v2'),
      ev('SHADOW', 'v3'),
      ev('REJECTED', 'v3'),
    ];
    const once = fold(log);
    expect(fold([...log, ...log]).served).toEqual(once.served);
    expect(fold(log).stages).toEqual(once.stages);
    expect(applyStageEvent(once.stages, ev('PROMOTED', 'v2')).outcome).toBe('unchanged');
  });

  it('a version that ended (rolled back, retired, rejected) does not come back by a stale re-published event', () => {
    // Events as models.v1 carries them: the controller re-publishes a transition with its own event_time.
    const at = (kind: ModelEventKind, version: string, t: number, extra: Partial<StageEvent> = {}) =>
      ev(kind, version, { event_time: t, ...extra });
    const promoted = [at('PROMOTED', 'v1', 10), at('PROMOTED', 'v2', 20, { previous_version: 'v1' })];
    const rollback = at('ROLLED_BACK', 'v2', 30, { previous_version: 'v1' });
    // PROMOTED v2 re-published (a second controller, a retried send) after ROLLED_BACK v2.
    const late = fold([...promoted, rollback, promoted[1]!]);
    expect(late.outcomes).toEqual(['applied', 'applied', 'applied', 'ignored']);
    expect(late.served).toEqual({ production: 'v1', shadows: [] });
    const rolledBack = fold([...promoted, rollback]).stages;
    const step = applyStageEvent(rolledBack, promoted[1]!);
    expect([step.outcome, step.stages]).toEqual(['ignored', rolledBack]);
    expect(step.reason).toMatch(/v2 was rolled back at 30; a PROMOTED dated 20 is stale/);
    // The same for a retired production, and a rejected or rolled-back shadow or canary.
    const retired = fold([...promoted, at('RETIRED', 'v1', 40)]).stages;
    for (const e of [at('PROMOTED', 'v1', 10), at('SHADOW', 'v1', 5), at('CANARY', 'v1', 40, { canary_share: 0.1 })]) {
      expect(applyStageEvent(retired, e), e.kind).toMatchObject({ outcome: 'ignored', stages: retired });
    }
    const ended = fold([
      at('PROMOTED', 'v1', 10),
      at('SHADOW', 'v3', 20),
      at('REJECTED', 'v3', 30),
      at('SHADOW', 'v4', 40),
      at('CANARY', 'v4', 50, { canary_share: 0.2 }),
      at('ROLLED_BACK', 'v4', 60, { previous_version: 'v1' }),
      at('SHADOW', 'v3', 20),
      at('CANARY', 'v4', 50, { canary_share: 0.2 }),
      at('SHADOW', 'v4', 40),
    ]);
    expect(ended.outcomes.slice(6)).toEqual(['ignored', 'ignored', 'ignored']);
    expect(ended.served).toEqual({ production: 'v1', shadows: [] });
    // Repeating the terminal event itself is no change.
    expect(applyStageEvent(rolledBack, rollback).outcome).toBe('unchanged');
    expect(applyStageEvent(retired, at('RETIRED', 'v1', 40)).outcome).toBe('unchanged');
    // A decision dated after the end is a new one (the stage graph has none today): it applies.
    expect(fold([at('PROMOTED', 'v2', 31)], rolledBack).served).toEqual({ production: 'v2', shadows: ['v1'] });
    // A rollback names what serves instead: it restores that version even after its RETIRED.
    const restored = fold([
      ...promoted,
      at('RETIRED', 'v1', 40),
      at('ROLLED_BACK', 'v2', 50, { previous_version: 'v1' }),
    ]);
    expect(restored.served).toEqual({ production: 'v1', shadows: [] });
    // The whole topic replayed (a restart) ends in the same state as the first pass.
    const log = [...promoted, rollback, promoted[1]!];
    expect(fold([...log, ...log]).stages).toEqual(fold(log).stages);
  });

  it('an event that would move a version back along the stage graph is stale, whatever its time (found by a review)', () => {
    const at = (kind: ModelEventKind, version: string, t: number, extra: Partial<StageEvent> = {}) =>
      ev(kind, version, { event_time: t, ...extra });
    const canary = fold([
      at('PROMOTED', 'v1', 0),
      at('SHADOW', 'v2', 1_000),
      at('CANARY', 'v2', 9_000, { canary_share: 0.1 }),
    ]).stages;
    // The trainer's (or a second controller's) re-publish of the gate's SHADOW: the canary stays.
    const shadowAgain = applyStageEvent(canary, at('SHADOW', 'v2', 1_000));
    expect([shadowAgain.outcome, shadowAgain.stages]).toEqual(['ignored', canary]);
    expect(shadowAgain.reason).toMatch(/v2 is canary already; a SHADOW would move it back/);
    // Dated later (another host's clock ahead): no edge goes back, so it is stale all the same.
    expect(applyStageEvent(canary, at('SHADOW', 'v2', 20_000)).outcome).toBe('ignored');
    expect(servedSet(canary)).toEqual({ production: 'v1', canary: { version: 'v2', share: 0.1 }, shadows: [] });
    // TRAINED re-published is no change.
    expect(applyStageEvent(canary, at('TRAINED', 'v2', 1_000)).outcome).toBe('unchanged');

    // Production: a re-published SHADOW or CANARY of it changes nothing.
    const promoted = fold([at('PROMOTED', 'v2', 10_000, { previous_version: 'v1' })], canary).stages;
    for (const e of [at('SHADOW', 'v2', 1_000), at('CANARY', 'v2', 9_000, { canary_share: 0.1 })]) {
      expect(applyStageEvent(promoted, e), e.kind).toMatchObject({ outcome: 'ignored', stages: promoted });
    }
    // The replaced production (watched) is not served again by its old PROMOTED, nor moved to canary.
    for (const e of [at('PROMOTED', 'v1', 0), at('CANARY', 'v1', 1, { canary_share: 0.5 }), at('SHADOW', 'v1', 1)]) {
      const step = applyStageEvent(promoted, e);
      expect([step.outcome, step.stages], e.kind).toEqual(['ignored', promoted]);
      expect(step.reason).toMatch(/v1 is the replaced production \(watched\) already/);
    }
    expect(servedSet(promoted)).toEqual({ production: 'v2', shadows: ['v1'] });

    // Moves forward and the legitimate repeats still apply: a canary's new share, a rollback to the watched version.
    expect(applyStageEvent(canary, at('CANARY', 'v2', 9_500, { canary_share: 0.3 })).stages.canary).toEqual({
      version: 'v2',
      share: 0.3,
    });
    expect(fold([at('ROLLED_BACK', 'v2', 11_000, { previous_version: 'v1' })], promoted).served).toEqual({
      production: 'v1',
      shadows: [],
    });
    const forward = fold([
      at('PROMOTED', 'v1', 0),
      at('TRAINED', 'v3', 100),
      at('SHADOW', 'v3', 100),
      at('CANARY', 'v3', 200, { canary_share: 0.1 }),
      at('PROMOTED', 'v3', 300, { previous_version: 'v1' }),
    ]);
    expect(forward.outcomes).toEqual(['applied', 'unchanged', 'applied', 'applied', 'applied']);
    // A whole log re-published after its end (a controller's start) leaves the stages as they are.
    const log = [
      at('PROMOTED', 'v1', 0),
      at('SHADOW', 'v2', 1_000),
      at('CANARY', 'v2', 9_000, { canary_share: 0.1 }),
      at('PROMOTED', 'v2', 10_000, { previous_version: 'v1' }),
    ];
    expect(fold([...log, ...log]).stages).toEqual(fold(log).stages);
  });

  it('an end dated before the event that gave the version its role is stale: two controllers cannot make the server diverge (found by a review)', () => {
    const at = (kind: ModelEventKind, version: string, t: number, extra: Partial<StageEvent> = {}) =>
      ev(kind, version, { event_time: t, ...extra });
    // The review's case: the rollback was decided before v2's promotion (a rolling deploy's two
    // controllers). It served v1 while the controller watched v2 against v1, and RETIRED v1 was
    // then ignored ("v1 is production"): diverged for good.
    const promoted = [at('PROMOTED', 'v1', 50_000), at('PROMOTED', 'v2', 100_000, { previous_version: 'v1' })];
    const stale = fold([...promoted, at('ROLLED_BACK', 'v2', 90_000, { previous_version: 'v1' })]);
    expect(stale.outcomes).toEqual(['applied', 'applied', 'ignored']);
    expect(stale.served).toEqual({ production: 'v2', shadows: ['v1'] });
    const step = applyStageEvent(fold(promoted).stages, at('ROLLED_BACK', 'v2', 90_000, { previous_version: 'v1' }));
    expect(step.reason).toMatch(/v2 is production since 100000; a ROLLED_BACK dated 90000 was decided before that/);
    expect(fold([at('RETIRED', 'v1', 110_000)], stale.stages).served).toEqual({ production: 'v2', shadows: [] });
    // At the same time the rollback applies: in either order the two events end v2.
    expect(fold([...promoted, at('ROLLED_BACK', 'v2', 100_000, { previous_version: 'v1' })]).served).toEqual({
      production: 'v1',
      shadows: [],
    });
    expect(
      fold([
        at('PROMOTED', 'v1', 50_000),
        at('CANARY', 'v2', 60_000, { canary_share: 0.1 }),
        at('ROLLED_BACK', 'v2', 100_000, { previous_version: 'v1' }),
        at('PROMOTED', 'v2', 100_000, { previous_version: 'v1' }),
      ]).served,
    ).toEqual({ production: 'v1', shadows: [] });
    // The watched version took its role with the promotion that replaced it: an older RETIRED is stale.
    expect(fold([at('RETIRED', 'v1', 99_999)], fold(promoted).stages).outcomes).toEqual(['ignored']);
    // Canary and shadow: an end dated before their SHADOW or CANARY is stale; a new share is no new role.
    const staged = fold([
      at('PROMOTED', 'v1', 0),
      at('SHADOW', 'v3', 200),
      at('CANARY', 'v4', 300, { canary_share: 0.1 }),
      at('CANARY', 'v4', 500, { canary_share: 0.2 }),
    ]).stages;
    for (const e of [at('REJECTED', 'v3', 199), at('RETIRED', 'v3', 150), at('ROLLED_BACK', 'v4', 299)]) {
      expect(applyStageEvent(staged, e), `${e.kind} ${e.version}`).toMatchObject({
        outcome: 'ignored',
        stages: staged,
      });
    }
    expect(servedSet(fold([at('ROLLED_BACK', 'v4', 400), at('REJECTED', 'v3', 200)], staged).stages)).toEqual({
      production: 'v1',
      shadows: [],
    });
    // The version a rollback restored took production with it: an end dated before is stale.
    const restored = fold([at('ROLLED_BACK', 'v2', 120_000, { previous_version: 'v1' })], stale.stages).stages;
    expect(applyStageEvent(restored, at('ROLLED_BACK', 'v1', 110_000)).reason).toMatch(/v1 is production since 120000/);
    // In-process calls have no event time: never taken as stale, as before.
    expect(fold([ev('PROMOTED', 'v1'), ev('PROMOTED', 'v2'), at('ROLLED_BACK', 'v2', 1)]).served).toEqual({
      production: 'v1',
      shadows: [],
    });
    expect(fold([...promoted, ev('ROLLED_BACK', 'v2')]).served).toEqual({ production: 'v1', shadows: [] });
    // The whole topic replayed ends as the first pass did.
    const log = [
      ...promoted,
      at('ROLLED_BACK', 'v2', 90_000, { previous_version: 'v1' }),
      at('RETIRED', 'v1', 110_000),
    ];
    expect(fold([...log, ...log]).stages).toEqual(fold(log).stages);
  });

  it('a rollback serves only a version that has been production; a hand-written previous_version is ignored (found by a review)', () => {
    // `previous_version: "old"`, a version never promoted: it was served, with one info line.
    const handWritten = fold([ev('PROMOTED', 'v1'), ev('ROLLED_BACK', 'v1', { previous_version: 'old' })]);
    expect(handWritten.outcomes).toEqual(['applied', 'ignored']);
    expect(handWritten.served).toEqual({ production: 'v1', shadows: [] });
    expect(
      applyStageEvent(fold([ev('PROMOTED', 'v1')]).stages, ev('ROLLED_BACK', 'v1', { previous_version: 'old' })).reason,
    ).toMatch(/previous_version "old" has never been production of this model/);
    // A rolled-back canary or a shadow never served production either.
    const canary = fold([
      ev('PROMOTED', 'v1'),
      ev('CANARY', 'v2', { canary_share: 0.1 }),
      ev('ROLLED_BACK', 'v2', { previous_version: 'v1' }),
      ev('SHADOW', 'v4'),
      ev('PROMOTED', 'v3', { previous_version: 'v1' }),
    ]).stages;
    for (const target of ['v2', 'v4']) {
      const step = applyStageEvent(canary, ev('ROLLED_BACK', 'v3', { previous_version: target }));
      expect([step.outcome, step.stages], target).toEqual(['ignored', canary]);
    }
    // Versions that were production stay eligible: ended since, or no longer watched.
    expect(
      fold([
        ev('PROMOTED', 'v1'),
        ev('PROMOTED', 'v2'),
        ev('PROMOTED', 'v3'),
        ev('ROLLED_BACK', 'v3', { previous_version: 'v1' }),
      ]).served,
    ).toEqual({ production: 'v1', shadows: ['v2'] });
    const rolledBackTo = fold([
      ev('PROMOTED', 'v1'),
      ev('PROMOTED', 'v2'),
      ev('ROLLED_BACK', 'v2', { previous_version: 'v1' }),
      ev('PROMOTED', 'v3'),
      ev('ROLLED_BACK', 'v3', { previous_version: 'v2' }),
    ]);
    expect(rolledBackTo.served).toEqual({ production: 'v2', shadows: ['v1'] });
    // Remembered: the newest MAX_PRODUCTIONS.
    const many = fold(Array.from({ length: MAX_PRODUCTIONS + 1 }, (_, i) => ev('PROMOTED', `p${i}`))).stages;
    expect(many.productions).toHaveLength(MAX_PRODUCTIONS);
    expect(applyStageEvent(many, ev('ROLLED_BACK', `p${MAX_PRODUCTIONS}`, { previous_version: 'p0' })).outcome).toBe(
      'ignored',
    );
    expect(applyStageEvent(many, ev('ROLLED_BACK', `p${MAX_PRODUCTIONS}`, { previous_version: 'p1' })).outcome).toBe(
      'applied',
    );
  });

  it('after a retention cut of models.v1, a restarted server follows the rollback to the production PROMOTED named (found by a review)', () => {
    const at = (kind: ModelEventKind, version: string, t: number, extra: Partial<StageEvent> = {}) =>
      ev(kind, version, { event_time: t, ...extra });
    const P1 = 1_000_000;
    const P2 = P1 + 9 * 86_400_000;
    const full = [at('PROMOTED', 'v1', P1), at('PROMOTED', 'v2', P2, { previous_version: 'v1' })];
    // Retention dropped PROMOTED v1: a server started since reads only PROMOTED v2.
    const cut = full.slice(1);
    const rollback = at('ROLLED_BACK', 'v2', P2 + 3_600_000, { previous_version: 'v1' });
    // It was ignored ("previous_version v1 has never been production") and v2 served for good,
    // while a server up since before the cut served v1.
    const restarted = fold([...cut, rollback]);
    expect(restarted.outcomes).toEqual(['applied', 'applied']);
    expect(restarted.served).toEqual({ production: 'v1', shadows: [] });
    // It serves the production a server up since before the cut serves, whatever comes next (the
    // controller's restart re-publishing PROMOTED v1 included, and later rollbacks to v1).
    const later = [
      at('PROMOTED', 'v1', P1),
      rollback,
      at('PROMOTED', 'v3', P2 + 7_200_000, { previous_version: 'v1' }),
      at('ROLLED_BACK', 'v3', P2 + 9_000_000, { previous_version: 'v1' }),
    ];
    for (let n = 0; n <= later.length; n++) {
      expect(fold([...cut, ...later.slice(0, n)]).served?.production, `after ${n}`).toBe(
        fold([...full, ...later.slice(0, n)]).served?.production,
      );
    }
    expect(fold([...cut, ...later]).served).toEqual({ production: 'v1', shadows: [] });
    // The named version is not watched: it may be one no server loads (the rules a first version
    // was gated against), which a server that read the whole log does not watch either.
    expect(fold(cut).served).toEqual({ production: 'v2', shadows: [] });
    // A version never named nor promoted is still refused.
    expect(applyStageEvent(fold(cut).stages, at('ROLLED_BACK', 'v2', P2 + 1, { previous_version: 'v0' })).outcome).toBe(
      'ignored',
    );
  });

  it("a PROMOTED dated before production took its role is stale: a controller's start after a retention cut does not serve the replaced version (found by a review)", () => {
    const at = (kind: ModelEventKind, version: string, t: number, extra: Partial<StageEvent> = {}) =>
      ev(kind, version, { event_time: t, ...extra });
    // The log after the cut holds PROMOTED v2; the controller's start re-publishes the newest
    // transition of every version: PROMOTED v1 (still watched), then PROMOTED v2. v1 took
    // production back, and the re-published v2 was then ignored as the replaced production:
    // servers served v1 while the controller said v2.
    const cut = [at('PROMOTED', 'v2', 2_000, { previous_version: 'v1' })];
    const republished = [at('PROMOTED', 'v1', 1_000), at('PROMOTED', 'v2', 2_000, { previous_version: 'v1' })];
    const r = fold([...cut, ...republished]);
    expect(r.outcomes).toEqual(['applied', 'ignored', 'unchanged']);
    expect(r.served).toEqual({ production: 'v2', shadows: [] });
    // With no previous_version (a direct rollout's events), nothing but the time tells it is old.
    const direct = fold([at('PROMOTED', 'v2', 2_000)]).stages;
    const step = applyStageEvent(direct, at('PROMOTED', 'v1', 1_000));
    expect([step.outcome, step.stages]).toEqual(['ignored', direct]);
    expect(step.reason).toMatch(/v2 is production since 2000; a PROMOTED of v1 dated 1000 was decided before that/);
    // Legitimate sequences apply: a promotion after production took its role, or at the same time
    // (topic order), one without a time (in-process), and the re-published PROMOTED of a version a
    // rollback restored is no change (no warning at every controller start).
    expect(fold([at('PROMOTED', 'v1', 2_000)], direct).outcomes).toEqual(['applied']);
    expect(fold([at('PROMOTED', 'v1', 2_001)], direct).outcomes).toEqual(['applied']);
    expect(fold([ev('PROMOTED', 'v1')], direct).outcomes).toEqual(['applied']);
    const restored = fold([
      at('PROMOTED', 'v1', 1_000),
      at('PROMOTED', 'v2', 2_000, { previous_version: 'v1' }),
      at('ROLLED_BACK', 'v2', 3_000, { previous_version: 'v1' }),
      at('PROMOTED', 'v1', 1_000),
      at('SHADOW', 'v3', 2_500),
      at('CANARY', 'v3', 3_001, { canary_share: 0.1 }),
      at('PROMOTED', 'v3', 3_002, { previous_version: 'v1' }),
    ]);
    expect(restored.outcomes).toEqual(['applied', 'applied', 'applied', 'unchanged', 'applied', 'applied', 'applied']);
    expect(restored.served).toEqual({ production: 'v3', shadows: ['v1'] });
  });

  it('a CANARY whose share is NaN says NaN in its reason (JSON printed it as null)', () => {
    const p = fold([ev('PROMOTED', 'v1')]).stages;
    expect(applyStageEvent(p, ev('CANARY', 'v2', { canary_share: Number.NaN })).reason).toMatch(/got NaN$/);
    expect(applyStageEvent(p, ev('CANARY', 'v2', { canary_share: Number.POSITIVE_INFINITY })).reason).toMatch(
      /got Infinity$/,
    );
    expect(applyStageEvent(p, ev('CANARY', 'v2')).reason).toMatch(/got null$/);
  });

  it('watches one replaced version: a third promotion stops the oldest', () => {
    const r = fold([ev('PROMOTED', 'v1'), ev('PROMOTED', 'v2'), ev('PROMOTED', 'v3')]);
    expect(r.served).toEqual({ production: 'v3', shadows: ['v2'] });
  });

  it('operator overrides: a static canary replaces the staged one, static shadows add to the staged ones', () => {
    const s = fold([ev('PROMOTED', 'v1'), ev('SHADOW', 'v2'), ev('CANARY', 'v3', { canary_share: 0.1 })]).stages;
    expect(servedSet(s, { canary: { version: 'v4', share: 0.3 }, shadows: ['v5', 'v2', 'v1'] })).toEqual({
      production: 'v1',
      canary: { version: 'v4', share: 0.3 },
      shadows: ['v2', 'v5'],
    });
    // The static canary promoted: it is production, no canary of its own any more, so the staged
    // one serves (it was kept from serving by an override naming production: no canary at all).
    const promoted = applyStageEvent(s, ev('PROMOTED', 'v4')).stages;
    expect(servedSet(promoted, { canary: { version: 'v4', share: 0.3 } })).toEqual({
      production: 'v4',
      canary: { version: 'v3', share: 0.1 },
      shadows: ['v2', 'v1'],
    });
    expect(hiddenCanary(promoted, { canary: { version: 'v4', share: 0.3 } })).toBeUndefined();
  });

  it('hiddenCanary: the staged canary an operator canary keeps from serving, and only that', () => {
    const staged = fold([ev('PROMOTED', 'v1'), ev('SHADOW', 'v3'), ev('CANARY', 'v3', { canary_share: 0.1 })]).stages;
    const v9 = { canary: { version: 'v9', share: 0.05 } };
    expect(servedSet(staged, v9)).toEqual({ production: 'v1', canary: { version: 'v9', share: 0.05 }, shadows: [] });
    expect(hiddenCanary(staged, v9)).toEqual({ version: 'v3', share: 0.1 });
    // No override, or one naming the staged version (another share): nothing hidden.
    expect(hiddenCanary(staged)).toBeUndefined();
    expect(hiddenCanary(staged, { canary: { version: 'v3', share: 0.5 } })).toBeUndefined();
    // No staged canary, or none promoted yet: nothing hidden.
    expect(hiddenCanary(fold([ev('PROMOTED', 'v1')]).stages, v9)).toBeUndefined();
    expect(
      hiddenCanary(fold([ev('SHADOW', 'v3'), ev('CANARY', 'v3', { canary_share: 0.1 })]).stages, v9),
    ).toBeUndefined();
  });
});
