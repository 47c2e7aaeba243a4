import { silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { parseRolloutPolicy } from '@driftline/policy';
import { SeededRandom } from '@driftline/test-support/random';
import type { TransitionRow } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { ModelController } from '../src/controller.js';
import { type LabelledRow, labelledTable, MemoryTransitions } from './memory-warehouse.js';

// The controller keeps no state: every tick replays the sequential test from the first pair. Its
// guarantee (false promotion ≤ α at any stopping time) is for ONE sequence looked at as it grows.
// Ordered by label time, a label that arrived after labels dated later was slotted into the
// middle, and each tick tested another ordering (found by a review). The pairs now come in the
// order they arrived (the warehouse's joined_at; here, the order rows are appended).

const T0 = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;

function shadowOfV2(): MemoryTransitions {
  const store = new MemoryTransitions([]);
  const base = {
    model: 'fraud',
    version: 'v2',
    at: T0,
    decided_by: 'trainer:offline_gate',
    reason: 'offline_gate',
    detail: '',
    evidence: '',
    canary_share: null,
    recorded_at: T0,
  };
  store.rows.set('fraud/v2/candidate', {
    ...base,
    from_stage: null,
    to_stage: 'candidate',
    previous_version: null,
  } satisfies TransitionRow);
  store.rows.set('fraud/v2/shadow', {
    ...base,
    from_stage: 'candidate',
    to_stage: 'shadow',
    previous_version: 'v1',
  } satisfies TransitionRow);
  return store;
}

/**
 * A controller over `arrived` (the rows in the order they arrived), its wall clock read from `wall`;
 * `arrivalBucket`: the policy's (default 0: every pair as it arrived, the order these tests are about).
 */
function controllerOver(
  arrived: LabelledRow[],
  wall: () => number,
  alpha: number,
  minLabels: number,
  arrivalBucket: string | number = 0,
) {
  const store = shadowOfV2();
  const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
  const controller = new ModelController({
    transitions: store,
    pairs: labelledTable(arrived).reader,
    publish: async () => {},
    policies: parseRolloutPolicy({
      defaults: {
        promotion: { alpha, min_labels: minLabels, max_time: '365d', max_labels: 100_000 },
        arrival_bucket: arrivalBucket,
      },
    }),
    maxPairs: 100_000,
    logger: silentLogger,
    registry,
    now: wall,
  });
  /** The pairs the open comparison used at the last tick. */
  const used = async () =>
    (await registry.getSingleMetric('driftline_model_controller_comparison_labels')?.get())?.values[0]?.value;
  return { controller, store, used };
}

/** A labelled request answered by v1 (production) and shadow-scored by v2; label 1, so d = (1 − v1)² − (1 − v2)². */
const pairRow = (id: string, labelTime: number, v1: number, v2: number): LabelledRow => ({
  id,
  answered: 'v1',
  role: 'production',
  predictionTime: labelTime - 1_000,
  labelTime,
  label: 1,
  scores: { v1, v2 },
});

/** 95% Wilson score upper bound of k successes in n trials. */
function wilsonUpper(k: number, n: number): number {
  const z = 1.96;
  const p = k / n;
  const centre = p + (z * z) / (2 * n);
  const spread = z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n));
  return (centre + spread) / (1 + (z * z) / n);
}

describe('pairs in arrival order: each tick extends the path the last tick tested', () => {
  it('labels that arrive late, dated before the others, are appended: they do not reorder what the test already looked at', async () => {
    const rows: LabelledRow[] = [];
    let wall = T0 + DAY;
    const { controller, store } = controllerOver(rows, () => wall, 0.05, 50);
    // Tick 1: 400 labels an hour on, alternating v2 better and v1 better by the same Brier 0.25:
    // mean 0, nothing to decide.
    for (let i = 0; i < 400; i++) {
      const up = i % 2 === 0;
      rows.push(pairRow(`a${String(i).padStart(4, '0')}`, T0 + 3_600_000 + i * 1_000, up ? 0.5 : 1, up ? 1 : 0.5));
    }
    expect((await controller.tick()).transitions).toEqual([]);
    // Tick 2: 60 labels arrive late, dated before all of those, each with v2 better by 0.25.
    // Ordered by label time, they came first: the test looked at a path it had never extended
    // (60 wins, then the 400 it had already seen) and promoted v2 after 50 labels. Appended to the
    // path it had tested (400 at mean 0, then 60), the interval still contains 0.
    wall += 60_000;
    for (let i = 0; i < 60; i++) rows.push(pairRow(`b${String(i).padStart(4, '0')}`, T0 + 1_000 + i * 1_000, 0.5, 1));
    expect((await controller.tick()).transitions).toEqual([]);
    expect(store.rows.has('fraud/v2/canary')).toBe(false);
  });

  it('a row labelled beyond its arrival + the allowed future is left out for good: the path never shrinks as the wall clock passes it (found by a review)', async () => {
    // One prediction every 30 s, labelled 10 min later and joined a second after; the 21st's label
    // is dated 90 min ahead (its source's clock), beyond its arrival + the 1 h bound; the 41st's
    // 50 min ahead, within it: it waits for the clock, which reaches it once the wall clock does.
    const MIN = 60_000;
    const world = Array.from({ length: 400 }, (_, i) => {
      const arrived = T0 + i * 30_000 + 10 * MIN;
      const up = i % 2 === 0;
      const row = pairRow(`p${String(i).padStart(4, '0')}`, arrived, up ? 0.5 : 1, up ? 1 : 0.5);
      const ahead = i === 20 ? 90 * MIN : i === 40 ? 50 * MIN : 0;
      return { ...row, labelTime: arrived + ahead, joinedAt: arrived + 1_000 };
    });
    const rows: LabelledRow[] = [];
    let wall = T0;
    const { controller, used } = controllerOver(rows, () => wall, 0.05, 100_000);
    const path: number[] = [];
    const held = world[40]!;
    for (wall = T0 + 15 * MIN; wall <= T0 + 3 * 60 * MIN; wall += 5 * MIN) {
      while (rows.length < world.length && world[rows.length]!.joinedAt <= wall) rows.push(world[rows.length]!);
      await controller.tick();
      const n = (await used()) ?? 0;
      path.push(n);
      // Held (39 pairs: the 21st is out) until the wall clock reaches its label, then released.
      if (wall >= held.joinedAt && wall < held.labelTime) expect(n).toBe(39);
      // Every row that arrived, but the one left out.
      if (wall >= held.labelTime) expect(n).toBe(rows.length - 1);
    }
    // Bounded by the wall clock, the 21st was left out, then came back at its arrival once within
    // the bound and held back every pair after it: 69 pairs used, then 20.
    for (let i = 1; i < path.length; i++) expect(path[i]).toBeGreaterThanOrEqual(path[i - 1]!);
  });

  it.each([
    ['as they arrived (arrival_bucket: 0)', 0],
    ['by closed arrival bucket (the default, 1h)', '1h'],
  ])(
    'an equal candidate, labels delayed up to 10 days over a day of predictions, ticked as they arrive, %s: false promotions ≤ α (the 95% Wilson upper bound)',
    async (mode, arrivalBucket) => {
      // The null world of the review (reshuffle-real): d = +0.1 with probability 0.9, −0.9 with 0.1
      // (mean 0). Ordered by label time: 16% of 300 runs promoted (95% CI up to 0.21); one path
      // (arrival order): 7%. The review's larger world (1,500 labels, 300 ticks, 1,000 runs): 0.283
      // against α = 0.2, and 0.075 on one path. 150 runs (300 before; seeded: the same count every
      // time): the Wilson bound keeps its 95% at any count, so a true rate at α passes 2% of seed
      // sets at 150 runs as at 300 (it passes at k ≤ 20 of 150, k ≤ 46 of 300); fewer runs only
      // widen the bound: here 10 of 150 promoted (upper 0.118; 21 of 300 before, upper 0.105), and
      // pairs sorted by label time promote 31 of 150 (upper 0.28: the test fails).
      const alpha = 0.2;
      const runs = 150;
      const labels = 400;
      const ticks = 60;
      const delaySpans = 10;
      let promoted = 0;
      for (let run = 0; run < runs; run++) {
        const random = new SeededRandom(1_000 + run);
        const world = Array.from({ length: labels }, (_, i) => {
          const labelTime = T0 + Math.floor(random.uniform() * DAY);
          const [v1, v2] = random.uniform() < 0.9 ? [1 - Math.sqrt(0.1), 1] : [1, 1 - Math.sqrt(0.9)];
          const arrives = labelTime + Math.floor(random.uniform() * delaySpans * DAY);
          // joined_at: when it arrives (the order rows are appended in, too).
          return {
            row: { ...pairRow(`p${String(i).padStart(6, '0')}`, labelTime, v1, v2), joinedAt: arrives },
            arrives,
          };
        });
        world.sort((a, b) => a.arrives - b.arrives || a.row.id.localeCompare(b.row.id));
        const rows: LabelledRow[] = [];
        let wall = T0;
        const { controller, store } = controllerOver(rows, () => wall, alpha, 100, arrivalBucket);
        const end = T0 + DAY * (1 + delaySpans);
        let next = 0;
        for (let tick = 1; tick <= ticks && store.rows.size === 2; tick++) {
          wall = T0 + Math.floor(((end - T0) * tick) / ticks);
          while (next < world.length && world[next]!.arrives <= wall) rows.push(world[next++]!.row);
          await controller.tick();
        }
        if (store.rows.has('fraud/v2/canary')) promoted++;
      }
      console.log(
        `[${mode}] false promotion ${promoted}/${runs} = ${promoted / runs}, 95% upper ${wilsonUpper(promoted, runs).toFixed(3)} (α ${alpha})`,
      );
      expect(wilsonUpper(promoted, runs)).toBeLessThanOrEqual(alpha);
    },
    120_000,
  ); // a limit for a hung run: ~12 s on an idle 2-core machine (half of 300 runs' 25 s)
});
