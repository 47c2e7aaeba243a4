import { DEFAULT_EVENT_TIME_BOUNDS, type Logger } from '@driftline/core';
import { type ClosedMessage, DEFAULT_THRESHOLDS, PARTIALS_FORMAT, type PartialsMessage } from '@driftline/drift';
import type { DecodedRecord } from '@driftline/kafka';
import { createMetricsRegistry } from '@driftline/observability';
import { describe, expect, it } from 'vitest';
import { mergeProcessor } from '../src/merge-stage.js';
import { driftMetrics } from '../src/metrics.js';
import { ReferenceCache } from '../src/reference-cache.js';
import { memoryProgress, memoryReferenceStore } from './support.js';

const W = 5_000;
const MIN = 60_000;

/** Source `partition`'s (of 2) empty marker for the window starting at `start`. */
function marker(partition: number, start: number, offset: number): DecodedRecord<PartialsMessage> {
  const value: ClosedMessage = {
    type: 'closed',
    format: PARTIALS_FORMAT,
    source: { topic: 'p', partition, partitions: 2 },
    windowStart: start,
    windowEnd: start + W,
    closedUntil: start + W,
    models: [],
  };
  return {
    record: { topic: 'parts', partition: 0, offset: String(offset), key: null, value: null, headers: {}, timestamp: 0 },
    value,
  };
}

describe('merge stage: windows held by a source partition that trails in event time', () => {
  it('driftline_drift_merge_held_seconds follows the wait; past window + idle timeout one warning names the slowest source', async () => {
    const warnings: Array<{ obj: Record<string, unknown>; msg: string }> = [];
    const logger: Logger = {
      debug: () => {},
      info: () => {},
      error: () => {},
      warn: (obj, msg) => void warnings.push({ obj: obj as Record<string, unknown>, msg: msg ?? '' }),
      child: () => logger,
    };
    const registry = createMetricsRegistry({ service: 'drift-monitor' });
    const metrics = driftMetrics(registry);
    const start = Date.now() - 10 * MIN;
    let clock = start + 20 * MIN;
    const merge = mergeProcessor({
      driftWindows: { insert: async () => {}, writtenReferences: async () => [] },
      quarantine: { insert: async () => {} },
      references: new ReferenceCache(memoryReferenceStore([]).store),
      progress: memoryProgress(),
      group: 'g-merge',
      idleTimeoutMs: 20_000,
      windowMs: W,
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      thresholds: DEFAULT_THRESHOLDS,
      primary: 'psi',
      alertShare: 0,
      alertMinEvents: 1,
      logger,
      metrics,
      now: () => clock,
      sendAlerts: async () => {},
    });
    const held = async () =>
      (await registry.getSingleMetric('driftline_drift_merge_held_seconds')?.get())?.values[0]?.value;
    await merge.tick();
    expect(await held()).toBe(0);

    // Source 0 live, source 1 (still sending every second) stamped 20 minutes behind.
    let offset = 0;
    for (let i = 0; i < 12; i++) {
      await merge.process([marker(0, start + i * W, offset++), marker(1, start - 20 * MIN + i * W, offset++)], {
        topic: 'parts',
        partition: 0,
        highWatermark: '0',
      });
      clock += 1000;
      await merge.tick();
    }
    // 11 windows past the oldest live one's end: 55 s, past window + idle timeout (25 s).
    expect(await held()).toBe((11 * W) / 1000);
    const lines = warnings.filter((w) => w.msg.startsWith('drift windows held'));
    expect(lines).toHaveLength(1); // once per interval, not per tick
    expect(lines[0]!.obj).toMatchObject({ slowestSource: 1, slowestLagSeconds: 20 * 60, windowStart: start });

    // Source 1 catches up: the windows complete, nothing is held.
    const caughtUp: DecodedRecord<PartialsMessage>[] = [];
    for (let i = 0; i < 12; i++) caughtUp.push(marker(1, start + i * W, offset++));
    await merge.process(caughtUp, { topic: 'parts', partition: 0, highWatermark: '0' });
    await merge.tick();
    expect(await held()).toBe(0);
  });
});
