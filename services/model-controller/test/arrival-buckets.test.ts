import { silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { ARRIVAL_GRACE_MS, parseRolloutPolicy, rolloutPolicyFor } from '@driftline/policy';
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import { LATE_ARRIVALS_LOG_INTERVAL_MS, ModelController } from '../src/controller.js';
import { type LabelledRow, labelledTable, MemoryTransitions, transitionRow } from './memory-warehouse.js';

// Without label_maturity the pairs are read by closed arrival bucket (arrival_bucket, default 1h):
// by bucket of joined_at, in each bucket by a hash of the prediction id, and only from buckets that
// closed. In plain arrival order (joined_at, then id), a daily label file sorted by outcome reached
// the test as "positives, then negatives" (the label-joiner stamps one joined_at per Kafka batch),
// and a more aggressive, worse candidate was promoted to canary 16 times in 20, silently (found by
// a review).

const T0 = Date.UTC(2026, 5, 1);
const H = 3_600_000;
const D = 24 * H;

const gauss = (r: SeededRandom) => {
  let u = 0;
  while (u === 0) u = r.uniform();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r.uniform());
};
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** v1 in production, v2 in shadow against it since T0. */
function shadowOfV2(): MemoryTransitions {
  const store = new MemoryTransitions([]);
  for (const r of [
    transitionRow('v1', 'canary', 'production', T0 - D),
    transitionRow('v2', null, 'candidate', T0),
    transitionRow('v2', 'candidate', 'shadow', T0, 'v1'),
  ])
    store.rows.set(`fraud/${r.version}/${r.to_stage}`, r);
  return store;
}

/**
 * The review's world: 2,000 predictions a day, ~10 % positive; v2 scores higher than v1 on every
 * request (better on the positives, worse overall). Each day's outcomes come in one file 31 days
 * later (labels dated prediction + 30 d), `sorted` by outcome (positives first) or not, joined in
 * Kafka batches of 500 (one joined_at each, a millisecond apart); the controller ticks an hour and
 * ten minutes after each file, for 14 days. What v2's shadow became: `canary`, `rejected` or
 * `undecided`.
 */
async function dailyFiles(seed: number, sorted: boolean, arrivalBucket?: string | number): Promise<string> {
  const r = new SeededRandom(seed);
  const store = shadowOfV2();
  const rows: LabelledRow[] = [];
  let now = T0;
  const controller = new ModelController({
    transitions: store,
    pairs: labelledTable(rows).reader,
    publish: async () => {},
    policies: parseRolloutPolicy(
      arrivalBucket === undefined ? undefined : { defaults: { arrival_bucket: arrivalBucket } },
    ),
    maxPairs: 100_000,
    logger: silentLogger,
    registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
    now: () => now,
  });
  for (let day = 0; day < 14; day++) {
    const file: LabelledRow[] = [];
    for (let i = 0; i < 2_000; i++) {
      const z = gauss(r);
      const label = r.uniform() < sigmoid(1.8 * z - 2.6) ? 1 : 0;
      const predictionTime = T0 + day * D + Math.floor((i / 2_000) * D);
      file.push({
        id: Math.floor(r.uniform() * 1e12)
          .toString(16)
          .padStart(12, '0'),
        answered: 'v1',
        role: 'production',
        predictionTime,
        labelTime: predictionTime + 30 * D,
        label,
        scores: {
          v1: sigmoid(1.8 * (z + 0.5 * gauss(r)) - 2.6),
          v2: sigmoid(1.8 * (z + 0.5 * gauss(r)) - 2.6 + 0.45),
        },
      });
    }
    if (sorted) file.sort((a, b) => b.label - a.label);
    const arrives = T0 + (day + 31) * D + H;
    for (let b = 0; b < file.length; b += 500) {
      const batch = file.slice(b, b + 500).sort((x, y) => (x.id < y.id ? -1 : 1));
      for (const row of batch) rows.push({ ...row, joinedAt: arrives + b / 500 });
    }
    now = arrives + 70 * 60_000;
    await controller.tick();
    const stage = ['canary', 'rejected'].find((s) => store.rows.has(`fraud/v2/${s}`));
    if (stage !== undefined) return stage;
  }
  return 'undecided';
}

async function outcomes(sorted: boolean, arrivalBucket?: string | number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let seed = 0; seed < 20; seed++) {
    const stage = await dailyFiles(5_000 + seed, sorted, arrivalBucket);
    out[stage] = (out[stage] ?? 0) + 1;
  }
  return out;
}

describe('closed arrival buckets: the order within a bucket depends on no label', () => {
  it('a daily label file sorted by outcome no longer promotes a worse candidate (the default bucket); as it arrived, it did', async () => {
    const sorted = await outcomes(true);
    console.log(`[arrival buckets] sorted files, by closed bucket: ${JSON.stringify(sorted)}`);
    expect(sorted.canary ?? 0).toBeLessThanOrEqual(1);
    expect(sorted.rejected ?? 0).toBeGreaterThanOrEqual(18);
    const shuffled = await outcomes(false);
    console.log(`[arrival buckets] shuffled files, by closed bucket: ${JSON.stringify(shuffled)}`);
    expect(shuffled.canary ?? 0).toBe(0);
    expect(shuffled.rejected ?? 0).toBeGreaterThanOrEqual(18);
    // What the buckets are for: in plain arrival order the sorted files promote it (16 of 20 at HEAD).
    const asArrived = await outcomes(true, 0);
    console.log(`[arrival buckets] sorted files, as they arrived: ${JSON.stringify(asArrived)}`);
    expect(asArrived.canary ?? 0).toBeGreaterThanOrEqual(10);
  }, 240_000); // ~20 s on an idle 2-core machine

  it('a bucket is read once closed (its end + the grace, wall clock); max_time does not run past its pairs meanwhile; a fresh controller later decides the same', async () => {
    const store = shadowOfV2();
    const r = new SeededRandom(7);
    // 200 labelled requests predicted over the 25 min after T0, v2 far better, labelled a second
    // later; then 20 that v2 did not score (no pair), predicted 50 min on: they move the model's
    // label clock past the shadow's max_time (30 min). All joined 1 h 10 min after T0 (in the
    // bucket [T0 + 1 h, T0 + 2 h)).
    const joined = T0 + H + 10 * 60_000;
    const rows: LabelledRow[] = Array.from({ length: 220 }, (_, i) => {
      const label = r.uniform() < 0.4 ? 1 : 0;
      const predictionTime = i < 200 ? T0 + i * 7_500 : T0 + 50 * 60_000 + i * 1_000;
      return {
        id: `p${String(i).padStart(4, '0')}`,
        answered: 'v1',
        role: 'production',
        predictionTime,
        labelTime: predictionTime + 1_000,
        joinedAt: joined,
        label,
        scores: i < 200 ? { v1: 0.5, v2: label === 1 ? 0.9 : 0.1 } : { v1: 0.5 },
      };
    });
    const policies = parseRolloutPolicy({ defaults: { promotion: { min_labels: 50, max_time: '30m' } } });
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    let now = joined + 60_000;
    const deps = {
      transitions: store,
      pairs: labelledTable(rows).reader,
      publish: async () => {},
      policies,
      maxPairs: 100_000,
      logger: silentLogger,
      registry,
      now: () => now,
    };
    const controller = new ModelController(deps);
    // The label clock is past since + max_time, but every pair waits for its bucket: no pair read,
    // and no rejection on max_time (the closing tick stops at the first waiting pair's prediction).
    for (now = joined + 60_000; now < T0 + 2 * H + ARRIVAL_GRACE_MS; now += 10 * 60_000) {
      expect((await controller.tick()).transitions).toEqual([]);
      const labels = (await registry.getSingleMetric('driftline_model_controller_comparison_labels')?.get())?.values;
      expect(labels?.[0]?.value).toBe(0);
    }
    now = T0 + 2 * H + ARRIVAL_GRACE_MS;
    const [decided] = (await controller.tick()).transitions;
    expect(decided).toMatchObject({ version: 'v2', from_stage: 'shadow', to_stage: 'canary', reason: 'evidence' });
    // A fresh controller (a restart, another owner) a day later, over the same rows and the
    // history before the decision: the same transition, at the same event time.
    const again = shadowOfV2();
    now = T0 + 26 * H;
    const [replayed] = (await new ModelController({ ...deps, transitions: again }).tick()).transitions;
    expect(replayed).toMatchObject({ version: 'v2', to_stage: 'canary', at: decided!.at, evidence: decided!.evidence });
  });
});

describe('closed arrival buckets: what the read by bucket cannot see is still told', () => {
  /** `n` labelled production answers, v1 and v2 alike, predicted from `from` a second apart, joined at `joinedAt`. */
  const answers = (prefix: string, from: number, n: number, joinedAt: number): LabelledRow[] =>
    Array.from({ length: n }, (_, i) => ({
      id: `${prefix}${String(i).padStart(3, '0')}`,
      answered: 'v1',
      role: 'production',
      predictionTime: from + i * 1_000,
      labelTime: from + i * 1_000 + 500,
      joinedAt,
      label: i % 2,
      scores: { v1: 0.5, v2: 0.5 },
    }));

  it("under the default arrival_bucket, a label-joiner's clock ahead of this host's is warned about: the newest arrival of every pair, those waiting for their bucket included", async () => {
    // Every pair read by closed bucket was joined before the wall clock − 30 s, so the pairs read
    // alone never showed a joiner ahead: with the default bucket the warning never fired (found by
    // a regression review; with arrival_bucket 0 it did).
    for (const [aheadMs, said] of [
      [2 * H, 1],
      [0, 0],
    ] as const) {
      const joinedAt = T0 + 3 * H + 60_000;
      const rows = answers('p', T0, 50, joinedAt);
      const warnings: Array<Record<string, unknown>> = [];
      let now = joinedAt - aheadMs + 1_000;
      const controller = new ModelController({
        transitions: shadowOfV2(),
        pairs: labelledTable(rows).reader,
        publish: async () => {},
        policies: parseRolloutPolicy({ defaults: { promotion: { min_labels: 50 } } }),
        maxPairs: 100_000,
        logger: {
          ...silentLogger,
          warn: (o: object, msg?: string) => {
            if (msg?.startsWith("paired rows joined after this host's clock")) warnings.push({ ...o });
          },
        },
        registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
        now: () => now,
      });
      expect(rolloutPolicyFor(parseRolloutPolicy(undefined), 'fraud')?.arrivalBucketMs).toBe(H);
      await controller.tick();
      now += 60_000;
      await controller.tick();
      expect(warnings).toHaveLength(said);
      if (said > 0) expect(warnings[0]).toMatchObject({ model: 'fraud', behind_ms: aheadMs - 1_000 });
    }
  });

  it('pairs inserted into a bucket already read (a joiner or ClickHouse outage across its end) are counted in late_arrivals_total and said at most once an hour; a fresh controller counts none at its first tick', async () => {
    const rows: LabelledRow[] = answers('a', T0, 10, T0 + H + 60_000);
    const warnings: Array<Record<string, unknown>> = [];
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    let now = T0 + 2 * H + ARRIVAL_GRACE_MS;
    const deps = {
      transitions: shadowOfV2(),
      pairs: labelledTable(rows).reader,
      publish: async () => {},
      policies: parseRolloutPolicy({ defaults: { promotion: { min_labels: 500, max_time: '7d' } } }),
      maxPairs: 100_000,
      logger: {
        ...silentLogger,
        warn: (o: object, msg?: string) => {
          if (msg?.startsWith('pairs were inserted into arrival buckets')) warnings.push({ ...o });
        },
      },
      registry,
      now: () => now,
    };
    const controller = new ModelController(deps);
    const late = async () =>
      (await registry.getSingleMetric('driftline_model_controller_late_arrivals_total')?.get())?.values.find(
        (v) => v.labels.model === 'fraud',
      )?.value ?? 0;
    const labels = async () =>
      (await registry.getSingleMetric('driftline_model_controller_comparison_labels')?.get())?.values[0]?.value;
    await controller.tick(); // the bucket [T0 + 1 h, T0 + 2 h) read: 10 pairs
    expect(await labels()).toBe(10);
    // 4 rows joined in that bucket's last seconds, inserted after it closed and was read.
    rows.push(...answers('late', T0 + 100_000, 4, T0 + 2 * H - 5_000));
    now += 10 * 60_000;
    await controller.tick();
    expect(await labels()).toBe(14);
    expect(await late()).toBe(4);
    expect(warnings).toEqual([{ model: 'fraud', late_pairs: 4, arrival_bucket_ms: H }]);
    expect(LATE_ARRIVALS_LOG_INTERVAL_MS).toBe(H);
    // Counted once: the next tick reads the same 14.
    now += 10 * 60_000;
    await controller.tick();
    expect(await late()).toBe(4);
    // 2 more, and 3 in the bucket still open (not late): counted, said again only an hour on.
    rows.push(...answers('later', T0 + 200_000, 2, T0 + H + 1_000), ...answers('open', T0 + 300_000, 3, now - 1_000));
    now += 10 * 60_000;
    await controller.tick();
    expect(await late()).toBe(6);
    expect(warnings).toHaveLength(1);
    // A fresh controller (a restart) has no last read: nothing counted at its first tick.
    const fresh = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    await new ModelController({ ...deps, registry: fresh }).tick();
    expect(
      (await fresh.getSingleMetric('driftline_model_controller_late_arrivals_total')?.get())?.values.length ?? 0,
    ).toBe(0);
  });
});
