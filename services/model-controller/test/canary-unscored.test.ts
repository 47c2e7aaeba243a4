import { silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { parseRolloutPolicy } from '@driftline/policy';
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import { ModelController } from '../src/controller.js';
import { type LabelledRow, labelledTable, productionWithShadows, transitionRow } from './memory-warehouse.js';

// A canary that could not answer part of its share (a value it cannot take, a score that is not
// finite, its scorer failing) had production answer those requests, and the rows carried no
// canary score: the paired test saw only what the canary could answer. Failing on the hard cases,
// it was compared on the easy ones and promoted (found by a review of the canary path). The model
// server now names it in the answered record's `unscored`, and the controller charges it its worst
// answer on those requests.

const T0 = Date.UTC(2026, 0, 1);
const MIN = 60_000;

/** v2 in canary against production v1 since T0 + 20. */
function canaryOfV2() {
  const store = productionWithShadows(T0, ['v2']);
  const canary = transitionRow('v2', 'shadow', 'canary', T0 + 20, 'v1');
  store.rows.set(`fraud/v2/canary`, { ...canary, canary_share: 0.2 });
  return store;
}

/**
 * The canary's share, 1,500 requests a minute apart, 20 % positive: v2 scores a positive ~0.75
 * and a negative ~0.1 where v1 scores ~0.6 and ~0.2 — better on every request it answers — but it
 * could not answer half of the positives (the hard cases), which production answered. Charged its
 * worst answer there, it is worse overall (mean d ≈ −0.05); on its own answers it is better (≈ +0.04).
 */
function canaryShare(seed: number): LabelledRow[] {
  const r = new SeededRandom(seed);
  const clip = (x: number) => Math.min(1, Math.max(0, x));
  return Array.from({ length: 1_500 }, (_, i): LabelledRow => {
    const label = r.uniform() < 0.2 ? 1 : 0;
    const v1 = clip((label ? 0.6 : 0.2) + (r.uniform() - 0.5) * 0.2);
    const v2 = clip((label ? 0.75 : 0.1) + (r.uniform() - 0.5) * 0.2);
    const predictionTime = T0 + 100 + i * MIN;
    const row = { id: `p${String(i).padStart(5, '0')}`, predictionTime, labelTime: predictionTime + MIN, label };
    const hard = r.uniform() < 0.5 && label === 1;
    return hard
      ? { ...row, answered: 'v1', role: 'production', scores: { v1 }, unscored: { v2: 'canary' } }
      : { ...row, answered: 'v2', role: 'canary', scores: { v1, v2 } };
  });
}

async function decide(rows: LabelledRow[]): Promise<string[]> {
  const store = canaryOfV2();
  const last = rows.at(-1)!;
  const controller = new ModelController({
    transitions: store,
    pairs: labelledTable(rows).reader,
    publish: async () => {},
    policies: parseRolloutPolicy({ defaults: { promotion: { min_labels: 200, max_labels: 5_000, max_time: '30d' } } }),
    maxPairs: 100_000,
    logger: silentLogger,
    registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
    now: () => last.labelTime + MIN,
  });
  const tick = await controller.tick();
  return tick.transitions.map((t) => `${t.version}:${t.from_stage}>${t.to_stage}`);
}

describe('a canary that could not answer part of its share', () => {
  it('is charged those requests: rolled back, where its own answers alone promoted it', async () => {
    for (const seed of [1, 2, 3]) {
      const rows = canaryShare(seed);
      const failed = rows.filter((r) => r.unscored !== undefined).length;
      expect(failed).toBeGreaterThan(20);
      expect(await decide(rows)).toEqual(['v2:canary>rolled_back']);
      // What the controller compared before: the rows without the canary's score were no pair.
      expect(await decide(rows.filter((r) => r.unscored === undefined))).toEqual(['v2:canary>production']);
    }
  });
});
