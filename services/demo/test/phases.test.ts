import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { rocAuc } from '@driftline/performance';
import { loadXgboostModel } from '@driftline/scoring';
import { describe, expect, it } from 'vitest';
import {
  invertedModel,
  liveAucByPhase,
  promotedAfter,
  stageLine,
  stageTimeline,
  storyProblems,
} from '../src/phases.js';

// A real XGBoost model (binary:logistic, made by XGBoost itself for libs/scoring's parity tests).
const fixture = (f: string) =>
  gunzipSync(readFileSync(join(import.meta.dirname, '../../../libs/scoring/test/fixtures', f))).toString('utf8');

describe('the deliberately bad candidate', () => {
  it('ranks every row the other way round: its ROC AUC is 1 − the original', () => {
    const text = fixture('binary-logistic.model.json.gz');
    const cases = JSON.parse(fixture('binary-logistic.cases.json.gz')) as { rows: (number | null)[][] };
    const rows = cases.rows.map((r) => r.map((v) => v ?? Number.NaN));
    const original = loadXgboostModel(JSON.parse(text));
    const inverted = loadXgboostModel(JSON.parse(invertedModel(text)));
    const p = rows.map((r) => original.predictOne(r));
    const q = rows.map((r) => inverted.predictOne(r));
    const labels = p.map((x) => (x > 0.5 ? 1 : 0));
    expect(rocAuc(labels, p)).toBe(1);
    expect(rocAuc(labels, q)).toBeLessThan(0.01);
    // Margins mirror around the base margin: logit(p) + logit(q) is the same for every row.
    const logit = (x: number) => Math.log(x / (1 - x));
    const sums = p.map((x, i) => logit(x) + logit(q[i]!));
    for (const s of sums) expect(s).toBeCloseTo(sums[0]!, 3);
  });
});

describe('live AUC per phase', () => {
  const phases = { start: 0, driftAt: 1_000, promotedAt: 2_000, settleMs: 100, end: 3_000 };
  // Scores that rank perfectly before the drift, inverted during it, perfectly after the promotion.
  const outcomes = Array.from({ length: 3_000 }, (_, t) => {
    const label = t % 2;
    const good = label === 1 ? 0.9 : 0.1;
    return { time: t, label, score: t >= 1_000 && t < 2_000 ? 1 - good : good };
  });

  it('splits answered outcomes by event time and leaves out the settling time after the promotion', () => {
    expect(liveAucByPhase(outcomes, phases)).toEqual({ before_drift: 1, during_drift: 0, after_promotion: 1 });
    // The settling window is excluded: poison it and after_promotion does not move.
    const poisoned = outcomes.map((o) => (o.time >= 2_000 && o.time < 2_100 ? { ...o, score: 1 - o.score } : o));
    expect(liveAucByPhase(poisoned, phases).after_promotion).toBe(1);
  });

  it('says null for a phase without enough labels, and after_promotion when nothing was promoted', () => {
    expect(liveAucByPhase(outcomes.slice(0, 10), phases).before_drift).toBeNull();
    const none = liveAucByPhase(outcomes, { ...phases, promotedAt: undefined });
    expect(none.after_promotion).toBeNull();
    expect(none.during_drift).toBeCloseTo(
      rocAuc(
        outcomes.slice(1_000).map((o) => o.label),
        outcomes.slice(1_000).map((o) => o.score),
      )!,
      12,
    );
  });
});

describe('the version timeline', () => {
  const t = (version: string, from: string, to: string, at: number) => ({
    version,
    from,
    to,
    at,
    decidedBy: 'policy:promotion',
    reason: 'evidence',
  });
  const history = [
    t('v2', 'canary', 'production', 30),
    t('v1', 'shadow', 'production', 10),
    t('v2', 'shadow', 'canary', 20),
  ];

  it('finds the first promotion of another version and orders the stages', () => {
    expect(promotedAfter(history, 'v1')?.at).toBe(30);
    expect(promotedAfter(history, 'v2')?.at).toBe(10);
    expect(stageTimeline(history).map((s) => `${s.version}:${s.to}`)).toEqual([
      'v1:production',
      'v2:canary',
      'v2:production',
    ]);
  });
});

describe('a transition as a progress line', () => {
  it('says a watch that ended kept the new production, instead of reading like a rollback', () => {
    const retired = {
      version: 'v0',
      from: 'production',
      to: 'retired',
      at: 5,
      decidedBy: 'policy:rollback',
      reason: 'too_few_labels',
      previous: 'v1',
    };
    expect(stageLine(retired)).toBe(
      'v0 production → retired (the rollback watch kept v1 in production: too_few_labels)',
    );
    expect(stageLine({ ...retired, to: 'rolled_back' })).toBe(
      'v0 production → rolled_back (policy:rollback: too_few_labels)',
    );
    expect(
      stageLine({ ...retired, from: '', to: 'candidate', decidedBy: 'trainer:offline_gate', reason: 'trained' }),
    ).toBe('v0 new → candidate (trainer:offline_gate: trained)');
  });
});

describe('the story check (the demo exited 0 whatever happened; found by a review)', () => {
  const told = {
    scenario: 'bad-candidate',
    retrain_requests: 1,
    first_version: 'v1',
    serving_version: 'v2',
    rejected: ['v1-inverted'],
    rollbacks: 0,
  };
  it('finds nothing missing when the story happened, and names each missing part', () => {
    expect(storyProblems(told)).toEqual([]);
    expect(storyProblems({ ...told, scenario: 'retrain', rejected: [] })).toEqual([]);
    expect(storyProblems({ ...told, retrain_requests: 0, serving_version: 'v1', rejected: [] })).toEqual([
      'no retrain was requested (the drift was not acted on)',
      'no retrained version reached production (v1 still serves)',
      'the bad candidate was neither rejected nor rolled back',
    ]);
    expect(storyProblems({ ...told, rejected: [], rollbacks: 1 })).toEqual([]);
  });
});
