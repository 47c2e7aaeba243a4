import { parseFeatureViewsText } from '@driftline/features';
import { InMemoryOnlineStore } from '@driftline/online-store';
import { syntheticModelJson } from '@driftline/scoring/bench';
import { describe, expect, it } from 'vitest';
import { answering, scoreInstances } from '../src/predictor.js';
import type { Instance } from '../src/request.js';
import { buildVersion, planServing } from '../src/version.js';
import { FEATURES, VIEWS_YAML } from './fixtures.js';

const views = parseFeatureViewsText(VIEWS_YAML);
const version = (v: string, seed: number, categories: Record<string, string[]> = {}) =>
  buildVersion('m', v, syntheticModelJson(seed, 30, 6, FEATURES.length), { features: FEATURES, categories });
// Production reads f3 as a category; the shadow takes f3 as a number, so a string f3 is a value
// only the shadow cannot take.
const production = version('v1', 1, { f3: ['a', 'b'] });
const canary = version('v2', 2, { f3: ['a', 'b'] });
const shadow = version('v3', 3);
const plan = planServing(views, { production, canary: { loaded: canary, share: 0.5 }, shadows: [shadow] });

const instance = (i: number, f3: number | string): Instance => ({
  entityId: `e${i}`,
  features: { f0: i / 10 - 1, f1: (i * 7) % 5, f2: i % 3 === 0 ? null : -i / 4, f3 },
  eventTime: undefined,
});

/** The score of one instance by one version, through the single-row path. */
function oneByOne(v: typeof production, inst: Instance): number {
  const row = new Float32Array(FEATURES.length);
  v.encoder.encode(inst.features!, row);
  return v.scorer.predictOne(row);
}

describe('scoreInstances (one batch call per version)', () => {
  it('answers and logs every version exactly as scoring row by row; a version that cannot take a value only counts a failure', async () => {
    const instances = Array.from({ length: 40 }, (_, i) => instance(i, i % 4 === 1 ? 'a' : i % 2));
    let n = 0;
    const scored = await scoreInstances(
      plan,
      instances,
      new InMemoryOnlineStore(),
      1_764_000_000_000,
      () => `id${n++}`,
    );
    const strings = instances.filter((x) => typeof x.features!.f3 === 'string').length;
    expect(scored.shadowFailures).toBe(strings);
    expect(scored.predictions).toHaveLength(40);
    // One answered record per instance, and one shadow record per instance the shadow could take.
    expect(scored.events).toHaveLength(40 + 40 - strings);
    const byId = new Map(scored.events.map((e) => [e.prediction_id, e]));
    instances.forEach((inst, i) => {
      const p = scored.predictions[i]!;
      const answer = answering(plan, inst.entityId);
      expect(p.entity_id).toBe(inst.entityId);
      expect(p.version).toBe(answer.loaded.version);
      expect(p.score).toBe(oneByOne(answer.loaded, inst));
      const logged = byId.get(p.prediction_id)!;
      const expected: Record<string, number> = { [p.version]: p.score };
      if (answer.role === 'canary') expected.v1 = oneByOne(production, inst);
      const shadowTakes = typeof inst.features!.f3 !== 'string';
      if (shadowTakes) expected.v3 = oneByOne(shadow, inst);
      expect(logged.scores).toEqual(expected);
      const shadowRecord = byId.get(`${p.prediction_id}.shadow.v3`);
      if (shadowTakes) expect(shadowRecord?.prediction).toBe(expected.v3);
      else expect(shadowRecord).toBeUndefined();
    });
    // Both answering versions served part of the batch.
    expect(new Set(scored.predictions.map((p) => p.version))).toEqual(new Set(['v1', 'v2']));
  });

  it('a value the answering version cannot take is a 400 naming the instance', async () => {
    const onlyNumeric = planServing(views, { production: shadow, shadows: [] });
    await expect(
      scoreInstances(onlyNumeric, [instance(0, 1), instance(1, 'a')], new InMemoryOnlineStore(), 0),
    ).rejects.toThrow(/instances\[1\]\.features\.f3: expected a number or boolean/);
  });
});
