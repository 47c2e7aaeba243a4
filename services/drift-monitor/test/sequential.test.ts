import { ConfigError, DriftlineError, parseEnv } from '@driftline/core';
import { referenceSet } from '@driftline/drift';
import type { DriftAlert } from '@driftline/schemas';
import { buildNumericProfile } from '@driftline/stats';
import { SeededRandom } from '@driftline/test-support/random';
import type { SequentialDetectionRow, SequentialDetectionStore } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { driftEnvShape, toDriftConfig } from '../src/config.js';
import { sequentialMonitor } from '../src/sequential.js';

describe('sequential detector config', () => {
  const parse = (env: Record<string, string>) => toDriftConfig(parseEnv(driftEnvShape, env)).sequential;

  it('is off by default and takes its defaults when on', () => {
    expect(parse({})).toBeUndefined();
    expect(parse({ DRIFTLINE_SEQUENTIAL: 'true' })).toMatchObject({ ert: 100_000, window: 200, every: 10, bins: 32 });
  });

  it('names the variable in every error', () => {
    expect(() => parse({ DRIFTLINE_SEQUENTIAL: 'true', DRIFTLINE_SEQUENTIAL_WINDOW: '2' })).toThrow(
      /DRIFTLINE_SEQUENTIAL_WINDOW/,
    );
    expect(() => parse({ DRIFTLINE_SEQUENTIAL: 'true', DRIFTLINE_SEQUENTIAL_STATISTIC: 'mmd' })).toThrow(
      /DRIFTLINE_SEQUENTIAL_STATISTIC/,
    );
    expect(() => parse({ DRIFTLINE_SEQUENTIAL: 'true', DRIFTLINE_SEQUENTIAL_ERT: '300' })).toThrow(
      /DRIFTLINE_SEQUENTIAL_ERT: must exceed twice/,
    );
    // ERT 10^7 with 1,000 streams: too few exceedances to fit the stationary threshold.
    expect(() => parse({ DRIFTLINE_SEQUENTIAL: 'true', DRIFTLINE_SEQUENTIAL_ERT: '10000000' })).toThrow(ConfigError);
    expect(() => parse({ DRIFTLINE_SEQUENTIAL: 'true', DRIFTLINE_SEQUENTIAL_ERT: '10000000' })).toThrow(
      /DRIFTLINE_SEQUENTIAL_BOOTSTRAPS/,
    );
  });
});

describe('sequential hook of stage one', () => {
  const r = new SeededRandom(1);
  const ref = referenceSet(
    'm',
    'v1',
    new Map([['x', buildNumericProfile(Array.from({ length: 2000 }, () => r.normal()))]]),
  );
  const config = {
    statistic: 'cvm',
    window: 20,
    every: 5,
    ert: 1000,
    bins: 8,
    bootstraps: 300,
    maxStreams: 10,
    maxCalibrations: 10,
  } as const;

  it('writes rows then alerts before the commit; a failed write keeps them for the retry', async () => {
    const rows: SequentialDetectionRow[] = [];
    const alerts: DriftAlert[] = [];
    let down = true;
    const store: SequentialDetectionStore = {
      insert: async (r) => {
        if (down) throw new DriftlineError('SINK_UNAVAILABLE', 'ClickHouse down', { retriable: true });
        rows.push(...r);
      },
      list: async () => rows,
    };
    const hook = sequentialMonitor({
      config,
      windowMs: 1000,
      resolve: (m, v) => (m === 'm' && v === 'v1' ? ref : undefined),
      store,
      sendAlerts: async (a) => {
        alerts.push(...a);
      },
    });
    const events = Array.from({ length: 40 }, (_, i) => ({
      model: 'm',
      model_version: 'v1',
      event_time: 5000 + i,
      features: { x: 6 },
      prediction: 0.5,
    }));
    await hook.prepare(events);
    expect(hook.calibrations.size).toBe(1);
    for (const [i, e] of events.entries()) hook.observe(4, e, 100 + i);
    hook.observe(4, { ...events[0]!, model: 'unknown' }, 200); // unreferenced: ignored
    await expect(hook.flush('predictions', 4)).rejects.toThrow(/down/);
    expect(alerts).toHaveLength(0);
    down = false;
    await hook.flush('predictions', 4);
    expect(rows).toHaveLength(1); // one per (feature, window): the later alarms of window 5000 suppressed
    expect(rows[0]).toMatchObject({ feature: 'x', source_partition: 4, source_offset: 119, t: 20, run_length: 1 });
    expect(alerts.map((a) => a.kind)).toEqual(['SEQUENTIAL_DRIFT']);
    await hook.flush('predictions', 4);
    expect(rows).toHaveLength(1); // nothing twice
  });

  it('calibrates at most its budget per batch, at least one feature, and watches a feature once calibrated', async () => {
    const two = referenceSet(
      'm',
      'v1',
      new Map([
        ['x', buildNumericProfile(Array.from({ length: 500 }, () => r.normal()))],
        ['y', buildNumericProfile(Array.from({ length: 500 }, () => r.normal() + 1))],
      ]),
    );
    let clock = 0;
    const hook = sequentialMonitor({
      config,
      windowMs: 1000,
      resolve: () => two,
      store: { insert: async () => {}, list: async () => [] },
      sendAlerts: async () => {},
      now: () => (clock += 10),
      calibrationBudgetMs: 5,
    });
    const e = { model: 'm', model_version: 'v1', event_time: 0, features: { x: 0, y: 1 }, prediction: 0.5 };
    await hook.prepare([e]);
    expect(hook.calibrations.size).toBe(1);
    await hook.prepare([e]);
    expect(hook.calibrations.size).toBe(2);
    await hook.prepare([e]);
    expect(hook.calibrations.computed).toBe(2);
  });
});
