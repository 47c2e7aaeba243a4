// How the controller reads each open comparison's pairs: one comparison at a time, its pairs
// dropped before the next read (memory), and with label_maturity only the mature ones.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { parseRolloutPolicy, tickModel, usableClock } from '@driftline/policy';
import { describe, expect, it } from 'vitest';
import { LABEL_DELAYS_REFRESH_MS, ModelController, type PairReader } from '../src/controller.js';
import type { Ownership } from '../src/ownership.js';
import {
  batch,
  type LabelledRow,
  labelledTable,
  type MemoryTransitions,
  productionWithShadows,
} from './memory-warehouse.js';

const T0 = Date.UTC(2026, 0, 1);
const D = 86_400_000;

/** v1 in production, `shadows` in shadow against it since T0 + 10. */
const store = (shadows: readonly string[]) => productionWithShadows(T0, shadows);

const controller = (transitions: MemoryTransitions, pairs: PairReader, policy: Record<string, unknown>, now: number) =>
  new ModelController({
    transitions,
    pairs,
    publish: async () => {},
    policies: parseRolloutPolicy(policy),
    maxPairs: 100_000,
    logger: silentLogger,
    registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
    now: () => now,
  });

describe('one comparison at a time (found by a review: every open comparison’s pairs held until the last was read)', () => {
  it('a plan’s pairs are unreachable when the next plan is read, and the decision is tickModel’s', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const shadows = ['v2', 'v3', 'v4', 'v5'];
    // 2,000 rows each scored by every version; v4 better than production (a promotion to decide).
    const quality = { ...Object.fromEntries(['v1', ...shadows].map((v) => [v, 0.5])), v4: 0.9 };
    const rows = batch('p', 'v1', 'production', T0 + 100, 2_000, quality);
    const { reader } = labelledTable(rows);
    const held: WeakRef<object>[] = [];
    const aliveAtRead: number[] = [];
    const watched: PairReader = {
      ...reader,
      readPairs: async (q) => {
        // Out of the microtask queue (WeakRefs read in this job are kept to its end), then a full GC.
        await new Promise((resolve) => setImmediate(resolve));
        gc();
        aliveAtRead.push(held.filter((w) => w.deref() !== undefined).length);
        const read = await reader.readPairs(q);
        for (const p of read.pairs) held.push(new WeakRef(p));
        return read;
      },
    };
    const now = T0 + 100 + 2_001_000;
    const transitions = store(shadows);
    // Pairs as they arrived (arrival_bucket: 0), as the pure tickModel below is given them.
    const inArrival = { defaults: { promotion: { min_labels: 50 }, arrival_bucket: 0 } };
    const tick = await controller(transitions, watched, inArrival, now).tick();
    expect(tick.failed).toBe(0);
    expect(aliveAtRead).toHaveLength(shadows.length);
    // Before: 0, 2000, 4000, 6000 (every earlier plan's pairs still held).
    expect(aliveAtRead).toEqual([0, 0, 0, 0]);
    // The same decision as the pure tickModel over every plan's pairs at once.
    const clock = usableClock(await reader.labelClock('fraud', now, now + 3_600_000), now + 3_600_000, 3_600_000);
    const history = await store(shadows).history('fraud');
    const policy = parseRolloutPolicy(inArrival).models['*']!;
    const all = new Map<string, Awaited<ReturnType<PairReader['readPairs']>>>();
    for (const v of shadows) {
      all.set(
        v,
        await reader.readPairs({
          model: 'fraud',
          incumbent: 'v1',
          challenger: v,
          from: T0 + 10,
          limit: 100_000,
          answeredBy: { version: 'v1', role: 'production' },
        }),
      );
    }
    expect(tick.transitions.map((t) => `${t.version}:${t.to_stage}`)).toEqual(['v4:canary']);
    const pure = tickModel(history, (plan) => all.get(plan.challenger)?.pairs ?? [], policy, clock);
    expect(tick.transitions.map((t) => `${t.version}:${t.to_stage}:${t.at}`)).toEqual(
      pure.transition === undefined
        ? []
        : [`${pure.transition.version}:${pure.transition.to_stage}:${pure.transition.at}`],
    );
  });
});

describe('more shadows than the model-server scores', () => {
  it('is said once per model while it lasts', async () => {
    const warned: string[] = [];
    const shadows = Array.from({ length: 9 }, (_, i) => `s${i}`);
    const c = new ModelController({
      transitions: store(shadows),
      pairs: labelledTable([]).reader,
      publish: async () => {},
      policies: parseRolloutPolicy({}),
      maxPairs: 100_000,
      logger: { ...silentLogger, warn: (o: object, msg?: string) => warned.push(`${JSON.stringify(o)} ${msg}`) },
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      now: () => T0 + D,
    });
    await c.tick();
    await c.tick();
    const said = warned.filter((w) => w.includes('more shadows open than the model-server scores'));
    expect(said).toHaveLength(1);
    expect(said[0]).toContain('"shadows":9,"max_shadows":8');
  });
});

describe('label_maturity: the read', () => {
  /** Positives labelled a day after the prediction, negatives 20 days after; v2 better on positives only. */
  const rows: LabelledRow[] = Array.from({ length: 3_000 }, (_, i): LabelledRow => {
    const label = i % 10 === 0 ? 1 : 0;
    const t = T0 + 100 + i * 60_000; // one a minute, about 2 days
    return {
      id: `p${String(i).padStart(5, '0')}`,
      answered: 'v1',
      role: 'production',
      predictionTime: t,
      labelTime: t + (label === 1 ? D : 20 * D),
      label,
      scores: { v1: label === 1 ? 0.5 : 0.1, v2: label === 1 ? 0.7 : 0.2 },
    };
  }).sort((a, b) => a.labelTime - b.labelTime);
  const policy = { defaults: { promotion: { min_labels: 50 }, label_maturity: '20d' } };

  it('reads nothing while no prediction is mature, then only up to the label clock − maturity, in prediction order', async () => {
    const queries: Array<{ matureUntil?: number }> = [];
    const arrived = (now: number) => {
      const { reader } = labelledTable(rows.filter((r) => r.labelTime <= now));
      return {
        ...reader,
        readPairs: async (q: Parameters<PairReader['readPairs']>[0]) => {
          queries.push({ ...(q.matureUntil === undefined ? {} : { matureUntil: q.matureUntil }) });
          return reader.readPairs(q);
        },
      } satisfies PairReader;
    };
    const transitions = store(['v2']);
    // Ten days in: every positive has its label, no negative; nothing is 20 days old.
    const early = T0 + 10 * D;
    const first = await controller(transitions, arrived(early), policy, early).tick();
    expect(queries).toEqual([]); // no read: the label clock − 20 d lies before the stage
    expect(first.transitions).toEqual([]);
    queries.length = 0;
    // Arrival order (no maturity) promotes v2 on the positives alone.
    const arrival = await controller(
      store(['v2']),
      arrived(early),
      { defaults: { promotion: { min_labels: 50 } } },
      early,
    ).tick();
    expect(arrival.transitions.map((t) => t.to_stage)).toEqual(['canary']);
    expect(queries).toEqual([{}]);
    queries.length = 0;
    // Every label in: the read is bounded by the label clock − 20 d, and v2 (worse) is rejected.
    const late = T0 + 23 * D;
    const last = await controller(transitions, arrived(late), policy, late).tick();
    const newestLabel = Math.max(...rows.map((r) => r.labelTime));
    expect(queries).toEqual([{ matureUntil: newestLabel - 20 * D }]);
    expect(last.transitions.map((t) => `${t.to_stage} ${t.reason}`)).toEqual(['rejected evidence']);
  });
});

describe('labels of one class much later than the other, without label_maturity', () => {
  /** Positives labelled a day after the prediction, negatives 20 days after (as above). */
  const rows: LabelledRow[] = Array.from({ length: 3_000 }, (_, i): LabelledRow => {
    const label = i % 10 === 0 ? 1 : 0;
    const t = T0 + 100 + i * 60_000;
    return {
      id: `p${String(i).padStart(5, '0')}`,
      answered: 'v1',
      role: 'production',
      predictionTime: t,
      labelTime: t + (label === 1 ? D : 20 * D),
      label,
      scores: { v1: 0.5, v2: 0.5 },
    };
  });
  const late = T0 + 23 * D;

  const run = async (policy: Record<string, unknown>, pairs: PairReader, ticks = 2) => {
    const warned: Array<{ obj: object; msg: string | undefined }> = [];
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const c = new ModelController({
      transitions: store(['v2']),
      pairs,
      publish: async () => {},
      policies: parseRolloutPolicy(policy),
      maxPairs: 100_000,
      logger: { ...silentLogger, warn: (obj: object, msg?: string) => warned.push({ obj, msg }) },
      registry,
      now: () => late,
    });
    const failed: number[] = [];
    for (let k = 0; k < ticks; k++) failed.push((await c.tick()).failed);
    const gauge = await registry.getSingleMetricAsString('driftline_model_controller_label_order_bias');
    return { warned: warned.filter((w) => w.msg?.includes('labels of one class arrive much later')), gauge, failed };
  };

  it('is said once, with both medians, and kept at 1 in driftline_model_controller_label_order_bias', async () => {
    const { warned, gauge, failed } = await run(
      { defaults: { promotion: { min_labels: 50 } } },
      labelledTable(rows).reader,
    );
    expect(failed).toEqual([0, 0]);
    expect(warned).toEqual([
      {
        obj: expect.objectContaining({
          model: 'fraud',
          positives: 300,
          negatives: 2_700,
          positive_median_delay_h: 24,
          negative_median_delay_h: 480,
        }),
        msg: expect.stringContaining('set label_maturity'),
      },
    ]);
    expect(gauge).toContain('driftline_model_controller_label_order_bias{model="fraud",service="test"} 1');
  });

  it('is not said with label_maturity set, nor when the delays are alike; a failed read fails no tick', async () => {
    const matured = await run(
      { defaults: { promotion: { min_labels: 50 }, label_maturity: '20d' } },
      labelledTable(rows).reader,
    );
    expect(matured.warned).toEqual([]);
    expect(matured.gauge).not.toContain('} 1');
    const alike = rows.map((r) => ({ ...r, labelTime: r.predictionTime + D }));
    const same = await run({ defaults: { promotion: { min_labels: 50 } } }, labelledTable(alike).reader);
    expect(same.warned).toEqual([]);
    expect(same.gauge).toContain('driftline_model_controller_label_order_bias{model="fraud",service="test"} 0');
    const failing: PairReader = {
      ...labelledTable(rows).reader,
      labelDelays: async () => {
        throw new Error('ClickHouse is down');
      },
    };
    const down = await run({ defaults: { promotion: { min_labels: 50 } } }, failing);
    expect(down.failed).toEqual([0, 0]);
    expect(down.warned).toEqual([]);
  });

  /**
   * A controller ticked by hand: `now` moves its wall clock, `own` what it may do with fraud;
   * `warned` counts the bias warnings, `readFailed` keeps the failed-read warnings.
   */
  const ticking = (pairs: PairReader) => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const state = { now: late, own: 'decide' as Ownership, warned: 0, readFailed: [] as object[] };
    const c = new ModelController({
      transitions: store(['v2']),
      pairs,
      publish: async () => {},
      policies: parseRolloutPolicy({ defaults: { promotion: { min_labels: 50 } } }),
      maxPairs: 100_000,
      logger: {
        ...silentLogger,
        warn: (obj: object, msg?: string) => {
          if (msg?.includes('labels of one class arrive much later')) state.warned++;
          if (msg?.includes('label delays could not be read')) state.readFailed.push(obj);
        },
      },
      registry,
      now: () => state.now,
      ownership: () => state.own,
    });
    const series = async (metric: string) =>
      (await registry.getSingleMetricAsString(metric)).split('\n').filter((l) => l.includes('model="fraud"'));
    const gauge = () => series('driftline_model_controller_label_order_bias');
    const failing = () => series('driftline_model_controller_label_delays_read_failing');
    return { c, state, gauge, failing };
  };
  const FAILING = 'driftline_model_controller_label_delays_read_failing{model="fraud",service="test"}';

  it('a failed read keeps the last verdict, is tried again only after LABEL_DELAYS_REFRESH_MS, and is said once (again after a read succeeded) and shown in label_delays_read_failing', async () => {
    // Found by a review: the read (a 90-day scan, which may time out after 30 s) was retried at every tick.
    const reader = labelledTable(rows).reader;
    let calls = 0;
    let down = false;
    const { c, state, gauge, failing } = ticking({
      ...reader,
      labelDelays: async (model, since) => {
        calls++;
        if (down) throw new Error('Timeout exceeded: elapsed 30000 ms');
        return (reader.labelDelays as NonNullable<PairReader['labelDelays']>)(model, since);
      },
    });
    await c.tick();
    expect(calls).toBe(1);
    expect(await failing()).toEqual([`${FAILING} 0`]);
    down = true;
    state.now += LABEL_DELAYS_REFRESH_MS;
    for (let k = 0; k < 60; k++) {
      expect((await c.tick()).failed).toBe(0);
      state.now += 10_000; // ten minutes of 10 s ticks
    }
    expect(calls).toBe(2);
    expect(await gauge()).toEqual(['driftline_model_controller_label_order_bias{model="fraud",service="test"} 1']);
    // Said once, with the reason (found by a review: a debug line only, nothing else showed it).
    expect(state.readFailed).toEqual([
      expect.objectContaining({ model: 'fraud', err: 'Timeout exceeded: elapsed 30000 ms', verdict: 'biased' }),
    ]);
    expect(await failing()).toEqual([`${FAILING} 1`]);
    state.now += LABEL_DELAYS_REFRESH_MS;
    await c.tick();
    expect(calls).toBe(3);
    expect(state.readFailed).toHaveLength(1); // not every hour
    expect(await failing()).toEqual([`${FAILING} 1`]);
    // Read again, then failing again: said again.
    down = false;
    state.now += LABEL_DELAYS_REFRESH_MS;
    await c.tick();
    expect(calls).toBe(4);
    expect(await failing()).toEqual([`${FAILING} 0`]);
    down = true;
    state.now += LABEL_DELAYS_REFRESH_MS;
    await c.tick();
    expect(state.readFailed).toHaveLength(2);
    expect(await failing()).toEqual([`${FAILING} 1`]);
    // Another controller's model: its series go, as the bias gauge's do.
    state.own = 'none';
    await c.tick();
    expect(await failing()).toEqual([]);
    // Failing from the start: no verdict, one read an hour.
    let first = 0;
    const never = ticking({
      ...reader,
      labelDelays: async () => {
        first++;
        throw new Error('Timeout exceeded: elapsed 30000 ms');
      },
    });
    for (let k = 0; k < 60; k++) {
      await never.c.tick();
      never.state.now += 10_000;
    }
    expect(first).toBe(1);
    expect(await never.gauge()).toEqual([]);
    // The check is off and its alert cannot fire: said, and shown for the alert.
    expect(never.state.readFailed).toEqual([
      expect.objectContaining({ model: 'fraud', err: 'Timeout exceeded: elapsed 30000 ms', verdict: 'none' }),
    ]);
    expect(await never.failing()).toEqual([`${FAILING} 1`]);
    never.state.now += LABEL_DELAYS_REFRESH_MS;
    await never.c.tick();
    expect(first).toBe(2);
    expect(never.state.readFailed).toHaveLength(1);
  });

  it('its gauge is removed when another controller takes the model (none, or publish only), and set again by its owner', async () => {
    // Found by a review: a 1 left behind kept the alert (max by service, model) firing after the fix.
    const { c, state, gauge } = ticking(labelledTable(rows).reader);
    await c.tick();
    expect(await gauge()).toEqual(['driftline_model_controller_label_order_bias{model="fraud",service="test"} 1']);
    expect(state.warned).toBe(1);
    state.own = 'none';
    await c.tick();
    expect(await gauge()).toEqual([]);
    state.own = 'decide';
    await c.tick();
    expect(await gauge()).toEqual(['driftline_model_controller_label_order_bias{model="fraud",service="test"} 1']);
    expect(state.warned).toBe(2); // said again by the owner it came back to
    state.own = 'publish';
    await c.tick();
    expect(await gauge()).toEqual([]);
  });
});
