import type { ModelEventKind } from '@driftline/schemas';
import { seededUniform } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import {
  applyStageEvent,
  EMPTY_STAGES,
  MAX_ENDED,
  MAX_PRODUCTIONS,
  type ModelStages,
  reduceStages,
  type StageEvent,
} from '../src/index.js';

const KINDS: ModelEventKind[] = ['TRAINED', 'SHADOW', 'CANARY', 'PROMOTED', 'ROLLED_BACK', 'RETIRED', 'REJECTED'];

/** A seeded history of one model: any kind on any of `versions` versions, mostly forward in time. */
function history(seed: number, n: number, versions: number): StageEvent[] {
  const u = seededUniform(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(u() * xs.length)]!;
  const names = Array.from({ length: versions }, (_, i) => `v${i + 1}`);
  let t = 1_700_000_000_000;
  return Array.from({ length: n }, () => {
    t += Math.floor(u() * 25) - 4;
    const kind = pick(KINDS);
    return {
      kind,
      version: pick(names),
      event_time: t,
      ...(kind === 'CANARY' ? { canary_share: pick([0.1, 0.5, 1, 0]) } : {}),
      ...(u() < 0.5 ? { previous_version: pick(names) } : {}),
    };
  });
}

describe('reduceStages (the fold of a model-server start-up replay)', () => {
  it('is applyStageEvent in order, with the ignored events by place and reason', () => {
    const events = history(7, 300, 6);
    let s: ModelStages = EMPTY_STAGES;
    const ignored: Array<{ index: number; reason: string | undefined }> = [];
    for (const [index, e] of events.entries()) {
      const step = applyStageEvent(s, e);
      if (step.outcome === 'ignored') ignored.push({ index, reason: step.reason });
      s = step.stages;
    }
    const reduced = reduceStages(EMPTY_STAGES, events);
    expect(reduced.stages).toEqual(s);
    expect(reduced.ignored).toEqual(ignored);
    expect(ignored.length).toBeGreaterThan(0);
  });

  it('reduced in parts, each from the stages of the parts before, gives the stages reduced whole', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const events = history(seed, 200, 1 + (seed % 8));
      const u = seededUniform(1_000 + seed);
      let s: ModelStages = EMPTY_STAGES;
      for (let i = 0; i < events.length; ) {
        const n = 1 + Math.floor(u() * 40);
        s = reduceStages(s, events.slice(i, i + n)).stages;
        i += n;
      }
      expect(s, `seed ${seed}`).toEqual(reduceStages(EMPTY_STAGES, events).stages);
    }
  });

  it('holds bounded stages however long the history: 3,000 versions promoted and retired in turn', () => {
    const events: StageEvent[] = [];
    let t = 1_700_000_000_000;
    for (let v = 1; v <= 3_000; v++) {
      events.push({ kind: 'TRAINED', version: `v${v}`, event_time: t++ });
      events.push({ kind: 'CANARY', version: `v${v}`, canary_share: 0.1, event_time: t++ });
      events.push({
        kind: 'PROMOTED',
        version: `v${v}`,
        event_time: t++,
        ...(v > 1 ? { previous_version: `v${v - 1}` } : {}),
      });
      if (v > 1) events.push({ kind: 'RETIRED', version: `v${v - 1}`, event_time: t++ });
    }
    const { stages, ignored } = reduceStages(EMPTY_STAGES, events);
    expect(ignored).toEqual([]);
    expect(stages).toMatchObject({ production: 'v3000', watched: [], shadows: [] });
    expect(stages.ended).toHaveLength(MAX_ENDED);
    expect(stages.productions).toHaveLength(MAX_PRODUCTIONS);
    expect(stages.ended.at(-1)).toMatchObject({ version: 'v2999', stage: 'retired' });
  });
});
