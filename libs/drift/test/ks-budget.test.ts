import { buildNumericProfile, KsExactBudget, ksAsymptoticPValue, ksPValue, NumericSummary } from '@driftline/stats';
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import { DEFAULT_THRESHOLDS, featureResults } from '../src/index.js';

describe('featureResults and the exact KS budget of a window', () => {
  it('takes the asymptotic p-value once the shared budget is spent', () => {
    const rng = new SeededRandom(7);
    const profile = buildNumericProfile(Array.from({ length: 3000 }, () => rng.normal()));
    const summary = new NumericSummary(profile);
    for (let i = 0; i < 2000; i++) summary.add(rng.normal() + 0.1);
    const ks = (budget?: KsExactBudget) =>
      featureResults('x', profile, summary, DEFAULT_THRESHOLDS, budget).find((r) => r.method === 'ks')!;
    const alone = ks();
    expect(alone.pValue).toBe(ksPValue(alone.statistic, 3000, 2000).pValue);
    expect(ksPValue(alone.statistic, 3000, 2000).method).toBe('exact');
    expect(ks(new KsExactBudget(0)).pValue).toBe(ksAsymptoticPValue(alone.statistic, 3000, 2000));
  });
});
