import { DEFAULT_EVENT_TIME_BOUNDS, eventTimeProblem } from '@driftline/core';
import { referenceSet } from '@driftline/drift';
import type { DecodedRecord } from '@driftline/kafka';
import type { PredictionEvent } from '@driftline/schemas';
import { buildNumericProfile } from '@driftline/stats';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { driftMetrics } from '../src/metrics.js';
import { ReferenceCache } from '../src/reference-cache.js';
import { AHEAD_WARNING_INTERVAL_MS, stageOneProcessor } from '../src/stage-one.js';
import { memoryProgress, memoryReferenceStore, warnings } from './support.js';

const T0 = Date.UTC(2026, 11, 7, 10, 0, 30);
const MINUTE = 60_000;

/** Stage one on 5-minute windows (the defaults' horizon, 1 min), its records stamped at `clock`. */
function setup() {
  const refs = [
    referenceSet('fraud', 'v1', new Map([['x', buildNumericProfile([1, 2, 3, 4, 5])]])),
    referenceSet('churn', 'v2', new Map([['x', buildNumericProfile([1, 2, 3, 4, 5])]])),
  ];
  const state = { clock: T0 };
  const { logger, lines } = warnings();
  const registry = new Registry();
  const metrics = driftMetrics(registry);
  const stageOne = stageOneProcessor({
    spec: { sizeMs: 5 * MINUTE, latenessMs: MINUTE },
    references: new ReferenceCache(memoryReferenceStore(refs).store, () => state.clock),
    progress: memoryProgress(),
    group: 'g',
    sourceTopic: 'p',
    sourcePartitions: 1,
    mergePartitions: 1,
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    now: () => state.clock,
    logger,
    metrics,
    decode: async () => {
      throw new Error('not used');
    },
    emit: async () => {},
  });
  let offset = 0;
  /** `n` predictions of (model, version) dated `leadMs` after their record's timestamp (the clock). */
  const run = (model: string, version: string, n: number, leadMs: number) => {
    const items: DecodedRecord<PredictionEvent>[] = Array.from({ length: n }, () => {
      const o = offset++;
      return {
        record: {
          topic: 'p',
          partition: 0,
          offset: String(o),
          key: null,
          value: null,
          headers: {},
          timestamp: state.clock,
        },
        value: {
          prediction_id: `p${o}`,
          model,
          model_version: version,
          entity_id: 'e',
          event_time: state.clock + leadMs,
          features: { x: 1 },
          prediction: 0,
          predicted_class: null,
        },
      };
    });
    return stageOne.process(items, { topic: 'p', partition: 0, highWatermark: String(offset) });
  };
  const ahead = async () =>
    (await registry.getSingleMetric('driftline_drift_events_total')!.get()).values.find(
      (v) => v.labels.outcome === 'ahead',
    )?.value ?? 0;
  return { state, lines, run, ahead };
}

describe('stage one: predictions dated past the horizon are warned of per (model, version), rate-limited', () => {
  it('a producer 10 minutes ahead (within the decoder’s hour): one warning naming the model, version, lead and DRIFTLINE_DRIFT_MAX_AHEAD', async () => {
    const { state, lines, run, ahead } = setup();
    // The decoder and the SDK accept it: only the drift horizon leaves it out.
    expect(eventTimeProblem(T0 + 10 * MINUTE, T0, DEFAULT_EVENT_TIME_BOUNDS)).toBeUndefined();
    await run('fraud', 'v1', 50, 10 * MINUTE);
    expect(await ahead()).toBe(50); // every one excluded (before: this counter was all there was)
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line.obj).toMatchObject({
      model: 'fraud',
      version: 'v1',
      aheadEvents: 50,
      leadMs: 10 * MINUTE,
      maxAheadMs: MINUTE,
      setting: 'DRIFTLINE_DRIFT_MAX_AHEAD',
    });
    expect(line.msg).toContain('10.0 min ahead');
    expect(line.msg).toContain('DRIFTLINE_DRIFT_MAX_AHEAD');
    expect(line.msg).toContain('not measured for drift');

    // Within the interval: no line, its events counted for the next; then one line with them.
    for (let m = 1; m <= 4; m++) {
      state.clock = T0 + m * MINUTE;
      await run('fraud', 'v1', 50, 10 * MINUTE);
    }
    expect(lines).toHaveLength(1);
    state.clock = T0 + AHEAD_WARNING_INTERVAL_MS;
    await run('fraud', 'v1', 10, 10 * MINUTE);
    expect(lines).toHaveLength(2);
    expect(lines[1]!.obj).toMatchObject({ model: 'fraud', version: 'v1', aheadEvents: 210 });
  });

  it('on time or within the horizon’s window: no warning; another (model, version) ahead gets its own line', async () => {
    const { lines, run, ahead } = setup();
    await run('fraud', 'v1', 20, 0);
    await run('fraud', 'v1', 20, 30_000); // 10:01:00, in the window of 10:01:30: counted
    expect(await ahead()).toBe(0);
    expect(lines).toHaveLength(0);
    await run('churn', 'v2', 5, 5 * MINUTE); // 10:05:30: the window of 10:05, past the horizon's (10:00)
    expect(await ahead()).toBe(5);
    expect(lines.map((l) => [l.obj.model, l.obj.version, l.obj.aheadEvents, l.obj.leadMs])).toEqual([
      ['churn', 'v2', 5, 5 * MINUTE],
    ]);
  });
});
