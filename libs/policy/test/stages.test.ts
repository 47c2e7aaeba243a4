import { DriftlineError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import {
  applyDecision,
  canTransition,
  parsePromotionPolicy,
  registerVersion,
  STAGE_TRANSITIONS,
  type Stage,
  stageAfter,
  startComparison,
  stepComparison,
  transition,
  type VersionLifecycle,
} from '../src/index.js';

const T0 = Date.UTC(2024, 0, 1);
const policyDecider = { kind: 'policy', name: 'promotion' } as const;

function promotedDecision() {
  const policy = parsePromotionPolicy({ min_labels: 20 });
  let s = startComparison(policy, T0);
  for (let i = 1; s.decision === undefined; i++) {
    s = stepComparison(policy, s, { kind: 'pair', time_ms: T0 + i, label: 0, incumbent: 0.5, challenger: 0 }).state;
  }
  return s.decision!;
}

describe('version stages', () => {
  it('walks candidate → shadow → canary → production → retired, recording who decided and the evidence', () => {
    const trainer = { kind: 'trainer', name: 'offline_gate' } as const;
    let { lifecycle, record } = registerVersion('fraud', 'v2', {
      at_ms: T0,
      decided_by: trainer,
      reason: 'registered',
    });
    expect(record).toEqual({
      model: 'fraud',
      version: 'v2',
      from: null,
      to: 'candidate',
      at_ms: T0,
      decided_by: trainer,
      reason: 'registered',
      detail: '',
    });
    ({ lifecycle } = transition(lifecycle, 'shadow', {
      at_ms: T0 + 1,
      decided_by: trainer,
      reason: 'offline gate passed',
    }));
    const decision = promotedDecision();
    const toCanary = applyDecision(lifecycle, decision, T0 + 2, policyDecider);
    expect(toCanary.record).toMatchObject({
      from: 'shadow',
      to: 'canary',
      reason: 'evidence',
      decided_by: policyDecider,
    });
    expect(toCanary.record?.evidence).toEqual(decision.evidence);
    expect(toCanary.record?.detail).toBe(decision.detail);
    const toProd = applyDecision(toCanary.lifecycle, decision, T0 + 3, policyDecider);
    expect(toProd.lifecycle.stage).toBe('production');
    const retired = transition(toProd.lifecycle, 'retired', {
      at_ms: T0 + 4,
      decided_by: policyDecider,
      reason: 'replaced by v3',
    });
    expect(retired.lifecycle.history.map((r) => `${r.from}→${r.to}`)).toEqual([
      'null→candidate',
      'candidate→shadow',
      'shadow→canary',
      'canary→production',
      'production→retired',
    ]);
    // Plain JSON, stored as is.
    expect(JSON.parse(JSON.stringify(retired.lifecycle))).toEqual(retired.lifecycle);
  });

  it('refuses edges not in the graph, naming both stages; terminal stages have no exit', () => {
    const { lifecycle } = registerVersion('fraud', 'v2', { at_ms: T0, decided_by: policyDecider, reason: 'x' });
    expect(() => transition(lifecycle, 'production', { at_ms: T0, decided_by: policyDecider, reason: 'x' })).toThrow(
      /fraud v2: no transition candidate → production \(allowed: shadow, rejected\)/,
    );
    const rejected = transition(lifecycle, 'rejected', {
      at_ms: T0,
      decided_by: policyDecider,
      reason: 'gate',
    }).lifecycle;
    try {
      transition(rejected, 'shadow', { at_ms: T0, decided_by: policyDecider, reason: 'x' });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(DriftlineError);
      expect((error as DriftlineError).code).toBe('BAD_REQUEST');
      expect((error as Error).message).toMatch(/allowed: none, terminal/);
    }
    const all = Object.keys(STAGE_TRANSITIONS) as Stage[];
    for (const from of all)
      for (const to of all) expect(canTransition(from, to)).toBe(STAGE_TRANSITIONS[from].includes(to));
  });

  it('refuses a transition dated before the current stage began', () => {
    const { lifecycle } = registerVersion('fraud', 'v2', { at_ms: T0, decided_by: policyDecider, reason: 'x' });
    expect(() => transition(lifecycle, 'shadow', { at_ms: T0 - 1, decided_by: policyDecider, reason: 'x' })).toThrow(
      /before the current stage began/,
    );
  });

  it('maps decisions to stages by where the version is', () => {
    const promote = promotedDecision();
    const as = (action: 'reject' | 'rollback' | 'keep' | 'continue') => ({ ...promote, action });
    expect(stageAfter('shadow', promote)).toBe('canary');
    expect(stageAfter('canary', promote)).toBe('production');
    expect(stageAfter('production', promote)).toBeUndefined();
    expect(stageAfter('shadow', as('reject'))).toBe('rejected');
    expect(stageAfter('canary', as('reject'))).toBe('rolled_back');
    expect(stageAfter('production', as('rollback'))).toBe('rolled_back');
    expect(stageAfter('production', as('keep'))).toBeUndefined();
    expect(stageAfter('canary', as('continue'))).toBeUndefined();
    const lifecycle: VersionLifecycle = { model: 'm', version: 'v', stage: 'production', since_ms: T0, history: [] };
    const kept = applyDecision(lifecycle, as('keep'), T0 + 1, policyDecider);
    expect(kept.lifecycle).toBe(lifecycle);
    expect(kept.record).toBeUndefined();
  });
});
