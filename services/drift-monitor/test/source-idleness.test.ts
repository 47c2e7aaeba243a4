import { DEFAULT_EVENT_TIME_BOUNDS } from '@driftline/core';
import { decodePartials, MergeState, type ReferenceSet, referenceSet } from '@driftline/drift';
import type { DecodedRecord } from '@driftline/kafka';
import type { PredictionEvent } from '@driftline/schemas';
import { buildNumericProfile } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import { ReferenceCache } from '../src/reference-cache.js';
import { type StageOne, stageOneProcessor } from '../src/stage-one.js';
import { memoryProgress, storeOf } from './support.js';

const MINUTE = 60_000;
const ref: ReferenceSet = referenceSet('m', 'v1', new Map([['x', buildNumericProfile([1, 2, 3, 4, 5])]]));
const store = storeOf(ref);

const prediction = (partition: number, offset: number, t: number): DecodedRecord<PredictionEvent> => ({
  record: { topic: 'p', partition, offset: String(offset), key: null, value: null, headers: {}, timestamp: t },
  value: {
    prediction_id: `${partition}-${offset}`,
    model: 'm',
    model_version: 'v1',
    entity_id: 'e',
    event_time: t,
    features: { x: 3 },
    prediction: 0,
    predicted_class: null,
  },
});

interface Traffic {
  /** Source partitions, and for each, when its events are written (ms after the start, ascending). */
  readonly schedule: readonly (readonly number[])[];
  readonly durationMs: number;
  readonly sourceIdleMs: number;
  /**
   * A broker outage [from, to): nothing can be read, and producers buffer the events of it and
   * write them `flushDelayMs` after it ends (with their own event times).
   */
  readonly outage?: { readonly from: number; readonly to: number; readonly flushDelayMs: number };
}

/**
 * Stage one and the merge state of one partials partition on a simulated clock: every record is
 * read the moment it is written (so every partition is read to its end between records), the
 * idleness check runs every 5 s, the merge completes windows at the README's defaults (5-minute
 * windows, 1-minute lateness, 10-minute idle timeout). Returns the events in completed windows and
 * those left out.
 */
async function simulate({ schedule, durationMs, sourceIdleMs, outage }: Traffic) {
  const start = Date.UTC(2026, 0, 1);
  let now = start;
  const merge = new MergeState({ idleTimeoutMs: 10 * MINUTE }, now);
  let mergeOffset = 0;
  let merged = 0;
  let excluded = 0;
  /** Per completed window: processing time from its end to its completion. */
  const delays: number[] = [];
  const stageOne: StageOne = stageOneProcessor({
    spec: { sizeMs: 5 * MINUTE, latenessMs: MINUTE },
    references: new ReferenceCache(store),
    progress: memoryProgress(),
    group: 'g',
    sourceTopic: 'p',
    sourcePartitions: schedule.length,
    mergePartitions: 1,
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    now: () => now,
    sourceIdleMs,
    decode: async () => {
      throw new Error('not used');
    },
    emit: async (messages) => {
      for (const m of messages) {
        const message = decodePartials(m.value);
        const result = merge.add(message, mergeOffset++, now);
        if (result === 'after_completion' && message.type === 'partial') excluded += message.events;
      }
    },
  });
  const complete = () => {
    const { complete: done } = merge.ready(now);
    for (const w of done) {
      delays.push(now - w.windowEnd);
      for (const g of w.groups) merged += g.events;
    }
    merge.markDone(done);
  };
  const next = schedule.map(() => 0);
  let written = 0;
  for (let t = 0; t <= durationMs; t += 1_000) {
    now = start + t;
    const down = outage !== undefined && t >= outage.from && t < outage.to + outage.flushDelayMs;
    for (let p = 0; p < schedule.length && !down; p++) {
      const times = schedule[p]!;
      while (next[p]! < times.length && times[next[p]!]! <= t) {
        const offset = next[p]!;
        next[p] = offset + 1;
        written++;
        const item = prediction(p, offset, now);
        await stageOne.process([{ ...item, value: { ...item.value, event_time: start + times[offset]! } }], {
          topic: 'p',
          partition: p,
          highWatermark: '0',
        });
      }
    }
    if (t % 5_000 === 0) {
      const broker = outage === undefined || t < outage.from || t >= outage.to;
      await stageOne
        .advanceIdle(async () => {
          if (!broker) throw new Error('broker down');
          return schedule.map((_, p) => p);
        })
        .catch(() => {});
      complete();
    }
  }
  // Windows of the last 20 minutes may still be open: only those that completed count.
  return { written, merged, excluded, delays };
}

/** Seeded exponential gaps (mean `meanMs`) on each of 6 partitions for `durationMs`. */
function poisson(meanMs: number, durationMs: number, seed = 1): number[][] {
  let state = seed;
  const random = () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return (state + 1) / (2 ** 31 + 1);
  };
  return Array.from({ length: 6 }, () => {
    const out: number[] = [];
    for (let t = -Math.log(random()) * meanMs; t < durationMs; t += -Math.log(random()) * meanMs)
      out.push(Math.round(t));
    return out;
  });
}

describe('stage one: source idleness', () => {
  it('low traffic (an event every 10 minutes per partition, at random) loses no event to the merge idle timeout', async () => {
    // 4 hours of traffic, then 20 minutes of silence.
    const traffic = { schedule: poisson(10 * MINUTE, 240 * MINUTE), durationMs: 260 * MINUTE };
    const without = await simulate({ ...traffic, sourceIdleMs: 0 });
    const withIdleness = await simulate({ ...traffic, sourceIdleMs: 30_000 });
    // Without it: a partition closes a window only at its next event, after the merge gave up on
    // it (a third of the events excluded), and the windows before the silence never close.
    expect(without.excluded / without.written).toBeGreaterThan(0.2);
    expect(without.merged + without.excluded).toBeLessThan(without.written);
    expect(withIdleness.excluded).toBe(0);
    expect(withIdleness.merged).toBe(withIdleness.written);
    // A window completes the allowed lateness plus the idle time plus a check (5 s) after its end, typically.
    const delays = [...withIdleness.delays].sort((x, y) => x - y);
    expect(delays[delays.length >> 1]).toBeGreaterThanOrEqual(90_000);
    expect(delays[delays.length >> 1]).toBeLessThanOrEqual(95_000);
  });

  it('steady traffic is unchanged by it', async () => {
    const traffic = { schedule: poisson(5_000, 60 * MINUTE), durationMs: 60 * MINUTE };
    const without = await simulate({ ...traffic, sourceIdleMs: 0 });
    const withIdleness = await simulate({ ...traffic, sourceIdleMs: 30_000 });
    expect(withIdleness.excluded).toBe(0);
    expect(withIdleness.delays.slice(0, without.delays.length)).toEqual(without.delays);
  });

  it('a broker outage is not silence: what producers buffered through it is not late', async () => {
    // An event every 10 s per partition; the broker is down for 8 minutes; producers write what
    // they held 20 s after it is back.
    const traffic = {
      schedule: poisson(10_000, 30 * MINUTE),
      durationMs: 45 * MINUTE,
      outage: { from: 10 * MINUTE, to: 18 * MINUTE, flushDelayMs: 20_000 },
    };
    const out = await simulate({ ...traffic, sourceIdleMs: 30_000 });
    expect(out.excluded).toBe(0);
    expect(out.merged).toBe(out.written);
  });

  it('a partition no record reaches no longer holds every window for the idle timeout', async () => {
    // Partition 5 gets nothing; the others one event every 10 s.
    const schedule = Array.from({ length: 6 }, (_, p) =>
      p === 5 ? [] : Array.from({ length: 360 }, (_, i) => i * 10_000 + p * 1_000),
    );
    const without = await simulate({ schedule, durationMs: 30 * MINUTE, sourceIdleMs: 0 });
    const withIdleness = await simulate({ schedule, durationMs: 30 * MINUTE, sourceIdleMs: 30_000 });
    // 30 minutes of traffic, 5-minute windows: 6 windows; lateness 1 min, so windows up to the one
    // ending at 25 minutes close with the last events. Without idleness, each waits 10 more minutes.
    expect(withIdleness.merged).toBeGreaterThan(without.merged);
    expect(withIdleness.excluded).toBe(0);
    expect(withIdleness.merged).toBe(5 * 30 * 5); // 5 windows × 30 events × 5 partitions
  });
});
