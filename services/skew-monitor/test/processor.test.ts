import {
  DEFAULT_EVENT_TIME_BOUNDS,
  eventTimeProblem,
  type Logger,
  PoisonRecordError,
  SinkUnavailableError,
  silentLogger,
  windowTimeProblem,
} from '@driftline/core';
import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import type { BatchContext, DecodedRecord, InboundRecord } from '@driftline/kafka';
import { createMetricsRegistry, type Registry } from '@driftline/observability';
import { InMemoryOnlineStore } from '@driftline/online-store';
import type { DriftAlert, FeatureEvent, PredictionEvent } from '@driftline/schemas';
import {
  emptyCounts,
  featureSources,
  isSampled,
  mergeInto,
  releaseCatchUpMs,
  type SkewCounts,
  samplingKey,
  type WrittenWindow,
} from '@driftline/skew';
import type { SkewPartialRow, SkewTotalsRow, SkewWindowKey, SkewWindowStore } from '@driftline/warehouse';

type SkewLog = Awaited<ReturnType<SkewWindowStore['latestLog']>>;

import { describe, expect, it } from 'vitest';
import { type SkewRecord, skewProcessor } from '../src/processor.js';
import { recordingLogger } from './fixtures/logger.js';

const views = parseFeatureViewsText(`
views:
  - name: profile
    entity: user_id
    features: { age: double, country: string }
  - name: spend
    entity: user_id
    features: { amount: double }
`);
const T0 = Date.parse('2026-01-01T00:00:00Z');
const WINDOW = 60_000;
const TOPIC = 'predictions.v1';

/**
 * skew_windows' semantics in memory: ReplacingMergeTree(through_offset) keyed by window start,
 * feature, source partition and log epoch (not window_end); partials and totals of windows of one
 * length only; totals summed over partitions and epochs. (The real tables: the
 * integration test.)
 */
class MemorySkewStore implements SkewWindowStore {
  readonly rows = new Map<string, SkewPartialRow>();
  writes = 0;
  failNext = 0;
  async write(rows: readonly SkewPartialRow[]): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new SinkUnavailableError('clickhouse down');
    }
    this.writes++;
    for (const r of rows) {
      const id = JSON.stringify([r.model, r.version, r.windowStart, r.feature, r.topic, r.partition, r.logEpoch]);
      const old = this.rows.get(id);
      if (old === undefined || old.throughOffset <= r.throughOffset) this.rows.set(id, structuredClone(r));
    }
  }
  /** The latest epoch's start as its rows carry it (written in order: the first such row is its starter's). */
  async latestLog(topic: string, partition: number): Promise<SkewLog> {
    let latest: SkewPartialRow | undefined;
    for (const r of this.rows.values()) {
      if (r.topic === topic && r.partition === partition && r.logEpoch > (latest?.logEpoch ?? 0)) latest = r;
    }
    if (latest === undefined) return { epoch: 0 };
    return latest.logStart === undefined
      ? { epoch: latest.logEpoch }
      : { epoch: latest.logEpoch, start: latest.logStart };
  }
  async partials(
    topic: string,
    partition: number,
    logEpoch: number,
    keys: readonly SkewWindowKey[],
    windowMs: number,
  ): Promise<SkewPartialRow[]> {
    return [...this.rows.values()].filter(
      (r) =>
        r.topic === topic &&
        r.partition === partition &&
        r.logEpoch === logEpoch &&
        r.windowEnd - r.windowStart === windowMs &&
        keys.some((k) => same(k, r)),
    );
  }
  async totals(topic: string, keys: readonly SkewWindowKey[], windowMs: number): Promise<SkewTotalsRow[]> {
    const out = new Map<string, SkewTotalsRow & { counts: SkewCounts }>();
    for (const r of this.rows.values()) {
      if (r.topic !== topic || r.windowEnd - r.windowStart !== windowMs || !keys.some((k) => same(k, r))) continue;
      const id = JSON.stringify([r.model, r.version, r.windowStart, r.feature]);
      const t = out.get(id) ?? { ...r, counts: emptyCounts() };
      mergeInto(t.counts, { ...r.counts, stalenessHist: [...r.counts.stalenessHist] });
      out.set(id, t);
    }
    return [...out.values()];
  }
  failWindowsNext = 0;
  async windowsEnding(
    topic: string,
    after: SkewWindowKey & { windowEnd: number },
    upTo: number,
    windowMs: number,
    limit: number,
  ): Promise<WrittenWindow[]> {
    if (this.failWindowsNext > 0) {
      this.failWindowsNext--;
      throw new SinkUnavailableError('clickhouse down');
    }
    const order = (w: SkewWindowKey & { windowEnd: number }) =>
      [w.windowEnd, w.model, w.version, w.windowStart] as const;
    const later = (a: readonly (number | string)[], b: readonly (number | string)[]): boolean => {
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! > b[i]!;
      return false;
    };
    const windows = new Map<string, WrittenWindow>();
    for (const r of this.rows.values()) {
      if (r.topic !== topic || r.windowStart < after.windowEnd - windowMs || r.windowEnd > upTo) continue;
      const id = JSON.stringify([r.model, r.version, r.windowStart]);
      const w = windows.get(id);
      const lastWrittenAt = Math.max(w?.lastWrittenAt ?? 0, r.updatedAt);
      windows.set(id, {
        model: r.model,
        version: r.version,
        windowStart: r.windowStart,
        windowEnd: r.windowEnd,
        lastWrittenAt,
      });
    }
    return [...windows.values()]
      .filter((w) => later(order(w), order(after)))
      .sort((a, b) => (later(order(a), order(b)) ? 1 : -1))
      .slice(0, limit);
  }
  counts(feature: string): SkewCounts {
    const total = emptyCounts();
    for (const r of this.rows.values()) {
      if (r.feature === feature) mergeInto(total, { ...r.counts, stalenessHist: [...r.counts.stalenessHist] });
    }
    return total;
  }
}
const same = (k: SkewWindowKey, r: SkewWindowKey) =>
  k.model === r.model && k.version === r.version && k.windowStart === r.windowStart;

/** The online store of `onlineStore()` whose batch reads fail retriably while `redis.down`. */
async function storeGoingDown(): Promise<{ store: InMemoryOnlineStore; redis: { down: boolean } }> {
  const store = await onlineStore();
  const redis = { down: true };
  const readBatch = store.readBatch.bind(store);
  store.readBatch = async (requests) => {
    if (redis.down) throw new SinkUnavailableError('redis down');
    return readBatch(requests);
  };
  return { store, redis };
}

async function onlineStore(): Promise<InMemoryOnlineStore> {
  const store = new InMemoryOnlineStore();
  const events: FeatureEvent[] = [];
  for (let u = 0; u < 20; u++) {
    events.push({
      event_id: `p${u}`,
      view: 'profile',
      entity_id: `u${u}`,
      event_time: T0 - 1_000,
      features: { age: 20 + u, country: 'fr' },
    });
    events.push({
      event_id: `s${u}`,
      view: 'spend',
      entity_id: `u${u}`,
      event_time: T0 - 5_000,
      features: { amount: 10 + u / 4 },
    });
  }
  await store.write(planWrites(events.map((e) => validateFeatureEvent(views, e))));
  return store;
}

/** Predictions of entity u(i % 20), one per second from T0: `amount` sent in cents (a unit change). */
function predictions(n: number, from = 0): PredictionEvent[] {
  return Array.from({ length: n }, (_, k) => {
    const i = from + k;
    const u = i % 20;
    return {
      prediction_id: `pred-${i}`,
      model: 'fraud',
      model_version: 'v1',
      entity_id: `u${u}`,
      event_time: T0 + i * 1_000,
      features: { age: 20 + u, country: 'fr', amount: (10 + u / 4) * 100, request_only: 1 },
      prediction: 0.5,
      predicted_class: null,
      role: 'production',
      scores: null,
    };
  });
}

const record = (e: PredictionEvent, offset: number, partition = 0): InboundRecord => ({
  topic: TOPIC,
  partition,
  offset: String(offset),
  key: Buffer.from(e.prediction_id),
  value: Buffer.from(JSON.stringify(e)),
  headers: {},
  timestamp: 0,
});
/** A batch's context; the high watermark past every offset the tests use unless given (a log's end). */
const context = (partition = 0, highWatermark = 1_000_000): BatchContext => ({
  topic: TOPIC,
  partition,
  highWatermark: String(highWatermark),
});

function setup(
  skew: MemorySkewStore,
  store: InMemoryOnlineStore,
  sampleRate = 1,
  options: {
    windowMs?: number;
    now?: () => number;
    eventTime?: { maxFutureMs: number; minMs: number };
    registry?: Registry;
    logger?: Logger;
    decode?: (v: Buffer | null) => Promise<PredictionEvent>;
    logEnd?: (topic: string, partition: number) => Promise<number>;
    recentIds?: number;
    heapLimit?: number;
  } = {},
) {
  const published: DriftAlert[] = [];
  const processor = skewProcessor({
    store,
    skew,
    sources: featureSources(views),
    windowMs: options.windowMs ?? WINDOW,
    sampleRate,
    tolerance: { relative: 1e-9, absolute: 0 },
    rule: { maxShareMismatched: 0.1, minCompared: 5 },
    decode: options.decode ?? (async (v) => JSON.parse(v!.toString()) as PredictionEvent),
    publish: async (alerts) => {
      published.push(...alerts);
    },
    eventTime: options.eventTime ?? { maxFutureMs: 86_400_000, minMs: 0 },
    now: options.now ?? (() => T0 + 3_600_000),
    ...(options.registry === undefined ? {} : { registry: options.registry }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.logEnd === undefined ? {} : { logEnd: options.logEnd }),
    ...(options.recentIds === undefined ? {} : { recentIds: options.recentIds }),
    ...(options.heapLimit === undefined ? {} : { heapLimit: options.heapLimit }),
  });
  return { processor, published };
}

async function decodeAll(
  processor: ReturnType<typeof setup>['processor'],
  events: readonly PredictionEvent[],
  first = 0,
): Promise<Array<DecodedRecord<SkewRecord>>> {
  const out: Array<DecodedRecord<SkewRecord>> = [];
  for (const [i, e] of events.entries()) {
    const r = record(e, first + i);
    out.push({ record: r, value: await processor.decode(r) });
  }
  return out;
}

describe('skew processor', () => {
  it('counts a unit-changed feature as mismatched, the others as equal, and alerts once per window', async () => {
    const skew = new MemorySkewStore();
    const { processor, published } = setup(skew, await onlineStore());
    const events = predictions(90); // windows T0, T0+60s
    const items = await decodeAll(processor, events);
    await processor.process(items.slice(0, 40), context());
    await processor.process(items.slice(40), context());
    expect(skew.counts('amount')).toMatchObject({ sampled: 90, compared: 90, mismatched: 90, numericCompared: 90 });
    expect(skew.counts('age')).toMatchObject({ sampled: 90, compared: 90, mismatched: 0, absDiffSum: 0 });
    expect(skew.counts('country')).toMatchObject({ compared: 90, mismatched: 0, numericCompared: 0 });
    expect(skew.counts('request_only').sampled).toBe(0); // no view declares it
    const expectedDiff = events.reduce((s, e) => s + Math.abs((e.features.amount as number) * (1 - 1 / 100)), 0);
    expect(skew.counts('amount').absDiffSum).toBeCloseTo(expectedDiff, 6);
    // Staleness: 1 s before T0 for the profile rows, 5 s for spend, plus the prediction's offset in time.
    expect(published.map((a) => [a.feature, a.window_start])).toEqual([
      ['amount', T0],
      ['amount', T0 + WINDOW],
    ]);
    expect(published[0]).toMatchObject({ kind: 'TRAINING_SERVING_SKEW', statistic: 1, model_version: 'v1' });
  });

  it('never counts a prediction twice: a retried batch, a replay after a crash, a new owner', async () => {
    const skew = new MemorySkewStore();
    const store = await onlineStore();
    const first = setup(skew, store);
    const items = await decodeAll(first.processor, predictions(50));
    await first.processor.process(items.slice(0, 30), context());
    // The write of the next batch fails: nothing is remembered, the retry counts it once.
    skew.failNext = 1;
    await expect(first.processor.process(items.slice(30), context())).rejects.toThrow(SinkUnavailableError);
    await first.processor.process(items.slice(30), context());
    const once = skew.counts('amount');
    expect(once.sampled).toBe(50);
    // The commit was lost: the same batch again, on this instance and on a fresh one (state from the store).
    await first.processor.process(items.slice(20), context());
    const second = setup(skew, store);
    await second.processor.process(items, context());
    expect(skew.counts('amount')).toEqual(once);
    // The fresh instance re-raises the window's alert under the same id (consumers deduplicate).
    expect(second.published.map((a) => a.alert_id)).toEqual(first.published.map((a) => a.alert_id));
  });

  describe('a prediction its producer sent again (the same prediction_id at a later offset)', () => {
    /** Records of `events` from offset `first`, decoded. */
    const batch = (
      processor: ReturnType<typeof setup>['processor'],
      events: readonly PredictionEvent[],
      first: number,
    ) => decodeAll(processor, events, first);
    const duplicates = async (registry: Registry) =>
      (await registry.getMetricsAsJSON())
        .find((m) => m.name === 'driftline_skew_predictions_total')!
        .values.find((v) => v.labels.outcome === 'duplicate')?.value ?? 0;

    it('is counted once: twice in one batch (the first wins), and again in a later batch (found by a review)', async () => {
      const skew = new MemorySkewStore();
      const registry = createMetricsRegistry({ service: 'skew-test', defaultMetrics: false });
      const { processor } = setup(skew, await onlineStore(), 1, { registry });
      const events = predictions(10);
      const resent = events[3]!;
      // Offsets 0 … 9, then pred-3 again at 10. Before: 11 counted, `amount` mismatched 11 times.
      await processor.process(await batch(processor, [...events, resent], 0), context());
      expect(skew.counts('amount')).toMatchObject({ sampled: 10, compared: 10, mismatched: 10 });
      // A later batch: pred-3 once more (offset 11) and a new prediction (offset 12).
      await processor.process(await batch(processor, [resent, ...predictions(1, 10)], 11), context());
      expect(skew.counts('amount')).toMatchObject({ sampled: 11, compared: 11, mismatched: 11 });
      expect(skew.counts('age')).toMatchObject({ sampled: 11, compared: 11, mismatched: 0 });
      expect(await duplicates(registry)).toBe(2);
    });

    it('predictions merely sharing an id (a producer reusing "0") are all counted, an exact re-send of one still once (found by a review)', async () => {
      const store = await onlineStore();
      // 60 entities, amount in euros in the store; every prediction sends it in cents under id "0".
      await store.write(
        planWrites(
          Array.from({ length: 60 }, (_, u) =>
            validateFeatureEvent(views, {
              event_id: `reuse-${u}`,
              view: 'spend',
              entity_id: `r${u}`,
              event_time: T0 - 5_000,
              features: { amount: 10 + u },
            }),
          ),
        ),
      );
      const events = Array.from(
        { length: 60 },
        (_, u): PredictionEvent => ({
          ...predictions(1, u)[0]!,
          prediction_id: '0',
          entity_id: `r${u}`,
          features: { amount: (10 + u) * 100 },
        }),
      );
      const skew = new MemorySkewStore();
      const registry = createMetricsRegistry({ service: 'skew-test', defaultMetrics: false });
      const { logger, lines } = recordingLogger();
      const { processor, published } = setup(skew, store, 1, { registry, logger });
      // One window (T0 … T0 + 60 s). Before: the first counted, the other 59 taken for re-sends.
      await processor.process(await batch(processor, events.slice(0, 30), 0), context());
      // The second half, then an exact re-send of the 10th (a call retried whole): counted once.
      await processor.process(await batch(processor, [...events.slice(30), events[9]!], 30), context());
      expect(skew.counts('amount')).toMatchObject({ sampled: 60, compared: 60, mismatched: 60 });
      expect(await duplicates(registry)).toBe(1);
      expect(published.map((a) => [a.feature, a.window_start])).toEqual([['amount', T0]]);
      // A re-send with another event time in the same window (a call retried with its input) too.
      await processor.process(await batch(processor, [{ ...events[5]!, event_time: T0 + 59_000 }], 61), context());
      expect(skew.counts('amount').sampled).toBe(60);
      expect(lines.filter((l) => l.level === 'warn' && l.msg?.includes('re-send'))).toEqual([]);
    });

    it('warns, once per partition and interval, when most of a batch was taken for re-sends', async () => {
      const skew = new MemorySkewStore();
      const { logger, lines } = recordingLogger();
      let clock = T0 + 3_600_000;
      const { processor } = setup(skew, await onlineStore(), 1, { logger, now: () => clock });
      const events = predictions(20);
      await processor.process(await batch(processor, events, 0), context());
      const warned = () => lines.filter((l) => l.level === 'warn' && l.msg?.includes('taken for re-sends'));
      // 20 re-sends and 2 new predictions: most of the batch.
      await processor.process(await batch(processor, [...events, ...predictions(2, 20)], 20), context());
      expect(warned()).toHaveLength(1);
      expect(warned()[0]!.fields).toMatchObject({ partition: 0, duplicates: 20, sampled: 22, model: 'fraud' });
      expect(warned()[0]!.msg).toContain('reuse prediction_id');
      // Again within the interval: left out; 5 minutes on, written with the count left out.
      await processor.process(await batch(processor, events, 42), context());
      expect(warned()).toHaveLength(1);
      clock += 5 * 60_000;
      await processor.process(await batch(processor, events, 62), context());
      expect(warned()).toHaveLength(2);
      expect(warned()[1]!.fields).toMatchObject({ duplicates: 20, duplicatesUnlogged: 20 });
      // A few re-sends among new predictions: no line.
      clock += 5 * 60_000;
      await processor.process(await batch(processor, [...events.slice(0, 5), ...predictions(10, 22)], 82), context());
      expect(warned()).toHaveLength(2);
    });

    it('is known by model, version and window with its id; an empty id is never a re-send (found by a review)', async () => {
      const skew = new MemorySkewStore();
      const registry = createMetricsRegistry({ service: 'skew-test', defaultMetrics: false });
      const { processor } = setup(skew, await onlineStore(), 1, { registry });
      const [p] = predictions(1);
      // Another version (or model) scoring the same request under the same id; a copy with a later
      // event time in another window (a call retried with its input); producers that set no id.
      const other = { ...p!, model_version: 'v2' };
      const later = { ...p!, event_time: p!.event_time + WINDOW };
      const blank = predictions(3, 1).map((e) => ({ ...e, prediction_id: '' }));
      await processor.process(await batch(processor, [p!, other, later, ...blank, p!], 0), context());
      expect(skew.counts('amount')).toMatchObject({ sampled: 6, compared: 6 });
      expect(await duplicates(registry)).toBe(1);
    });

    it('after a restart: a re-send already skipped stays skipped, one of a prediction read again is caught, one of a committed prediction counts twice', async () => {
      const skew = new MemorySkewStore();
      const store = await onlineStore();
      const events = predictions(10);
      const first = setup(skew, store);
      await first.processor.process(await batch(first.processor, events, 0), context());
      // A batch of nothing but a re-send (offset 10): not counted, yet its window's row goes through 10.
      await first.processor.process(await batch(first.processor, [events[4]!], 10), context());
      expect(skew.counts('amount').sampled).toBe(10);
      // Offsets 0 … 9 committed, 10 not: a new owner (no ids in memory) reads 10 again, a replay.
      const second = setup(skew, store);
      await second.processor.process(await batch(second.processor, [events[4]!], 10), context());
      expect(skew.counts('amount').sampled).toBe(10);
      // Nothing committed: a new owner reads 0 … 11, pred-2 re-sent at 11. The originals, skipped
      // as replays, are remembered first: pred-2 is a repeat.
      const third = setup(skew, store);
      await third.processor.process(await batch(third.processor, [...events, events[4]!, events[2]!], 0), context());
      expect(skew.counts('amount').sampled).toBe(10);
      // The limit: 0 … 11 committed, pred-2 sent a third time (12) is counted by a new owner.
      const fourth = setup(skew, store);
      await fourth.processor.process(await batch(fourth.processor, [events[2]!], 12), context());
      expect(skew.counts('amount').sampled).toBe(11);
    });

    it('a failed write or store read leaves the retry to count the batch, once', async () => {
      const skew = new MemorySkewStore();
      const { store, redis } = await storeGoingDown();
      const { processor } = setup(skew, store);
      const events = predictions(10);
      const items = await batch(processor, [...events, events[0]!], 0);
      await expect(processor.process(items, context())).rejects.toThrow(SinkUnavailableError);
      redis.down = false;
      skew.failNext = 1;
      await expect(processor.process(items, context())).rejects.toThrow(SinkUnavailableError);
      expect(skew.writes).toBe(0);
      // Their ids were taken by the failed attempts: still counted by the retry, the re-send not.
      await processor.process(items, context());
      expect(skew.counts('amount').sampled).toBe(10);
      // Split as the loop bisects a refused batch: each half counted, the re-send still a repeat.
      const other = new MemorySkewStore();
      const bisected = setup(other, store);
      const more = await batch(bisected.processor, [...predictions(6, 20), predictions(1, 20)[0]!], 0);
      other.failNext = 1;
      await expect(bisected.processor.process(more, context())).rejects.toThrow(SinkUnavailableError);
      await bisected.processor.process(more.slice(0, 3), context());
      await bisected.processor.process(more.slice(3), context());
      expect(other.counts('amount').sampled).toBe(6);
    });

    it('is counted again further apart than DRIFTLINE_SKEW_RECENT_IDS sampled ids, and always with 0', async () => {
      const events = predictions(5);
      for (const [recentIds, counted] of [
        [5, 5], // pred-0 is the fifth id back at its re-send: remembered
        [4, 6], // forgotten
        [0, 6], // off
      ] as const) {
        const skew = new MemorySkewStore();
        const { processor } = setup(skew, await onlineStore(), 1, { recentIds });
        for (const [i, e] of [...events, events[0]!].entries()) {
          await processor.process(await batch(processor, [e], i), context());
        }
        expect([recentIds, skew.counts('amount').sampled]).toEqual([recentIds, counted]);
      }
      // Off is off within a batch too (found by a review: the batch's own check still dropped the copy).
      const skew = new MemorySkewStore();
      const { processor } = setup(skew, await onlineStore(), 1, { recentIds: 0 });
      await processor.process(await batch(processor, [...events, events[0]!], 0), context());
      expect(skew.counts('amount').sampled).toBe(6);
    });

    it('the outcomes are counted once the rows are written: a failed attempt and its retry count once (found by a review)', async () => {
      const skew = new MemorySkewStore();
      const registry = createMetricsRegistry({ service: 'skew-test', defaultMetrics: false });
      const { processor } = setup(skew, await onlineStore(), 1, { registry });
      const events = predictions(4);
      const items = await batch(processor, [...events, events[0]!], 0);
      skew.failNext = 1;
      await expect(processor.process(items, context())).rejects.toThrow(SinkUnavailableError);
      await processor.process(items, context());
      const outcomes = Object.fromEntries(
        (await registry.getMetricsAsJSON())
          .find((m) => m.name === 'driftline_skew_predictions_total')!
          .values.map((v) => [String(v.labels.outcome), v.value]),
      );
      expect(outcomes).toMatchObject({ sampled: 4, duplicate: 1 });
      // Unsampled records too (they were counted before the write: once more per retry).
      const half = new MemorySkewStore();
      const registry2 = createMetricsRegistry({ service: 'skew-test', defaultMetrics: false });
      const sampledHalf = setup(half, await onlineStore(), 0.5, { registry: registry2 });
      const forty = await batch(sampledHalf.processor, predictions(40), 0);
      half.failNext = 1;
      await expect(sampledHalf.processor.process(forty, context())).rejects.toThrow(SinkUnavailableError);
      await sampledHalf.processor.process(forty, context());
      const counted = (await registry2.getMetricsAsJSON())
        .find((m) => m.name === 'driftline_skew_predictions_total')!
        .values.reduce((n, v) => n + v.value, 0);
      expect(counted).toBe(40);
    });

    it('across a recreation of the topic is still the prediction the old log counted: not counted again, the old rows being summed', async () => {
      const skew = new MemorySkewStore();
      const registry = createMetricsRegistry({ service: 'skew-test', defaultMetrics: false });
      const { processor } = setup(skew, await onlineStore(), 1, { registry });
      const events = predictions(30); // one window, offsets 0 … 29 of the old log
      await processor.process(await batch(processor, events, 0), context());
      processor.logRestarted?.(TOPIC, 0);
      // The new log from offset 0: the old log's last 10 sent again (a producer's send retried
      // across the recreation, a backfill of what was counted), then 5 new predictions.
      await processor.process(await batch(processor, [...events.slice(20), ...predictions(5, 30)], 0), context());
      // Epoch 0's rows still count the 10 in this window's totals: counting them in epoch 1 too
      // would make 45 comparisons of 35 predictions.
      expect(skew.counts('amount')).toMatchObject({ sampled: 35, compared: 35, mismatched: 35 });
      expect(await duplicates(registry)).toBe(10);
      const newLog = [...skew.rows.values()].filter((r) => r.logEpoch === 1 && r.feature === 'amount');
      expect(newLog.map((r) => [r.counts.sampled, r.throughOffset])).toEqual([[5, 14]]);
    });

    it('is remembered per source partition, and forgotten when the partition is revoked', async () => {
      const skew = new MemorySkewStore();
      const { processor } = setup(skew, await onlineStore());
      const events = predictions(3);
      await processor.process(await batch(processor, events, 0), context());
      // Another partition's ids are its own.
      await processor.process(
        (await batch(processor, [events[1]!], 0)).map((i) => ({ ...i, record: { ...i.record, partition: 1 } })),
        context(1),
      );
      expect(skew.counts('amount').sampled).toBe(4);
      processor.revoked?.([{ topic: TOPIC, partition: 0 }]);
      // Owned again, its originals not read again (committed): the ids counted before are forgotten.
      await processor.process(await batch(processor, [events[1]!], 3), context());
      expect(skew.counts('amount').sampled).toBe(5);
    });
  });

  it("counts a restarted log's predictions (logRestarted: the topic recreated), not as replays", async () => {
    const skew = new MemorySkewStore();
    const { processor } = setup(skew, await onlineStore());
    // One window (T0 … T0+60 s): the old log's offsets 0 … 29.
    await processor.process(await decodeAll(processor, predictions(30)), context());
    expect(skew.counts('amount').sampled).toBe(30);
    processor.logRestarted?.(TOPIC, 0);
    // The new log from offset 0 again, other predictions of the same window. Before: the 30 at
    // offsets up to 29 passed for replays (metric `replayed`), only the last 10 counted.
    await processor.process(
      await decodeAll(
        processor,
        predictions(40, 100).map((e, i) => ({ ...e, event_time: T0 + i * 1_000 })),
      ),
      context(),
    );
    expect(skew.counts('amount').sampled).toBe(70);
    // Another partition's offsets are untouched: its replays are still skipped.
    await processor.process(
      await decodeAll(processor, predictions(5)).then((items) =>
        items.map((i) => ({ ...i, record: { ...i.record, partition: 1 } })),
      ),
      context(1),
    );
    await processor.process(
      await decodeAll(processor, predictions(5)).then((items) =>
        items.map((i) => ({ ...i, record: { ...i.record, partition: 1 } })),
      ),
      context(1),
    );
    expect(skew.counts('amount').sampled).toBe(75);
  });

  describe('a source topic recreated: each log of a partition has rows of its own, summed', () => {
    /** Predictions of window T0 only (one a second from T0 + from s), as a log from `offset`. */
    const inWindow = (n: number, from: number) =>
      predictions(n, 1_000 + from).map((e, i) => ({ ...e, event_time: T0 + (from + i) * 1_000 }));
    const OLD = 50; // the old log: offsets 0 … 49
    async function oldLog(skew: MemorySkewStore) {
      const first = setup(skew, await onlineStore());
      await first.processor.process(await decodeAll(first.processor, predictions(OLD)), context(0, OLD));
      expect(skew.counts('amount').sampled).toBe(OLD);
      return first;
    }

    it('a window spanning the recreation counts both logs, the new one below the old offsets too', async () => {
      const skew = new MemorySkewStore();
      const { processor } = await oldLog(skew);
      processor.logRestarted?.(TOPIC, 0);
      // The new log, offsets 0 … 19. Before: written as the old counts plus these through offset
      // 19, the row lost to the old one (through 49): still 50.
      const newLog = await decodeAll(processor, inWindow(20, 0));
      await processor.process(newLog, context(0, 20));
      expect(skew.counts('amount').sampled).toBe(OLD + 20);
      // A new owner takes up the new log's rows: a replay is skipped, later records are counted.
      const next = setup(skew, await onlineStore());
      await next.processor.process(await decodeAll(next.processor, inWindow(30, 0)), context(0, 30));
      expect(skew.counts('amount').sampled).toBe(OLD + 30);
      await next.processor.process(await decodeAll(next.processor, inWindow(30, 0)), context(0, 30));
      expect(skew.counts('amount').sampled).toBe(OLD + 30);
    });

    it('a new owner finds a recreation no process saw: rows read back name offsets past the log end', async () => {
      const skew = new MemorySkewStore();
      await oldLog(skew);
      // A monitor started after the recreation, the new log 20 records long. Before: offsets ≤ 49
      // were taken for replays of the old row, nothing counted.
      const next = setup(skew, await onlineStore(), 1, { logEnd: async () => 20 });
      await next.processor.process(await decodeAll(next.processor, inWindow(20, 0)), context(0, 20));
      expect(skew.counts('amount').sampled).toBe(OLD + 20);
      // The next owner resumes in the new log's epoch: a replay counts nothing, no third epoch.
      const third = setup(skew, await onlineStore(), 1, { logEnd: async () => 20 });
      await third.processor.process(await decodeAll(third.processor, inWindow(20, 0)), context(0, 20));
      expect(skew.counts('amount').sampled).toBe(OLD + 20);
      expect(new Set([...skew.rows.values()].map((r) => r.logEpoch))).toEqual(new Set([0, 1]));
    });

    it('a high watermark behind the rows is no recreation when a fresh read of the log end disagrees', async () => {
      const skew = new MemorySkewStore();
      await oldLog(skew);
      // A leader just elected reports 20 for a moment; the log ends at 50: the same log replayed.
      const next = setup(skew, await onlineStore(), 1, { logEnd: async () => OLD });
      await next.processor.process(await decodeAll(next.processor, predictions(20)), context(0, 20));
      expect(skew.counts('amount').sampled).toBe(OLD);
      expect([...skew.rows.values()].every((r) => r.logEpoch === 0)).toBe(true);
    });

    it("a restart the consumer reports before the partition's first batch here starts a new epoch", async () => {
      const skew = new MemorySkewStore();
      await oldLog(skew);
      const next = setup(skew, await onlineStore());
      // Told before any state is held (revoked while the topic was gone, assigned back). Before:
      // ignored, the old row's offset 49 skipped the new log's records as replays.
      next.processor.logRestarted?.(TOPIC, 0);
      await next.processor.process(await decodeAll(next.processor, inWindow(20, 0)), context(0, 60));
      expect(skew.counts('amount').sampled).toBe(OLD + 20);
    });

    const epochs = (skew: MemorySkewStore) => new Set([...skew.rows.values()].map((r) => r.logEpoch));

    it('a restart reported again by the next owner, the new log counted in epoch 1 by the first whose commit was lost, is that epoch: counted once (found by a review)', async () => {
      const skew = new MemorySkewStore();
      const first = await oldLog(skew);
      // The owner sees the restart and counts the new log (offsets 0 … 19) in epoch 1; its commit is lost.
      first.processor.logRestarted?.(TOPIC, 0);
      await first.processor.process(await decodeAll(first.processor, inWindow(20, 0)), context(0, 20));
      expect(skew.counts('amount').sampled).toBe(OLD + 20);
      // The next owner's consumer knew the old log's commit: it reports the same restart and reads
      // the new log from its start. Before: epoch 2, the 20 counted again (90, epochs 0, 1, 2).
      const { logger, lines } = recordingLogger();
      const next = setup(skew, await onlineStore(), 1, { logger });
      next.processor.logRestarted?.(TOPIC, 0);
      await next.processor.process(await decodeAll(next.processor, inWindow(20, 0)), context(0, 20));
      expect(skew.counts('amount').sampled).toBe(OLD + 20);
      expect(epochs(skew)).toEqual(new Set([0, 1]));
      // The take-up says which epoch and why.
      expect(lines.filter((l) => l.msg?.startsWith('source partition taken up'))).toEqual([
        {
          level: 'info',
          fields: { topic: TOPIC, partition: 0, logEpoch: 1, restartReported: true },
          msg: 'source partition taken up in log epoch 1: the consumer reported a restart of the log, and its record at offset 0 is the one epoch 1 began with: that log, already counted in it (a commit lost)',
        },
      ]);
      // Its later records are counted in epoch 1 too.
      await next.processor.process(await decodeAll(next.processor, inWindow(30, 0)), context(0, 30));
      expect(skew.counts('amount').sampled).toBe(OLD + 30);

      // The topic recreated again: a third log from offset 0, other records. Reported at the take-up
      // of a third owner, its record at offset 0 is not the one epoch 1 began with: epoch 2.
      const third = setup(skew, await onlineStore());
      third.processor.logRestarted?.(TOPIC, 0);
      await third.processor.process(await decodeAll(third.processor, inWindow(10, 40)), context(0, 10));
      expect(skew.counts('amount').sampled).toBe(OLD + 30 + 10);
      expect(epochs(skew)).toEqual(new Set([0, 1, 2]));
    });

    it('a restart reported at take-up, the batch not holding the record the epoch began with (retention moved the start): the epoch goes on, rows past the log end decide', async () => {
      const skew = new MemorySkewStore();
      const first = await oldLog(skew);
      first.processor.logRestarted?.(TOPIC, 0);
      await first.processor.process(await decodeAll(first.processor, inWindow(20, 0)), context(0, 20));
      // The next owner reads the new log from its start, now offset 5: its records up to 19 are
      // replays of epoch 1, the later ones new. Before: epoch 2, offsets 5 … 19 counted again.
      const next = setup(skew, await onlineStore(), 1, { logEnd: async () => 30 });
      next.processor.logRestarted?.(TOPIC, 0);
      await next.processor.process(await decodeAll(next.processor, inWindow(25, 5), 5), context(0, 30));
      expect(skew.counts('amount').sampled).toBe(OLD + 30);
      expect(epochs(skew)).toEqual(new Set([0, 1]));
      // A third log (recreated again) whose start moved past offset 0 as well, ending below the
      // rows of epoch 1 (through 29): those rows name offsets past its end, a new epoch.
      const third = setup(skew, await onlineStore(), 1, { logEnd: async () => 10 });
      third.processor.logRestarted?.(TOPIC, 0);
      await third.processor.process(await decodeAll(third.processor, inWindow(8, 42), 2), context(0, 10));
      expect(skew.counts('amount').sampled).toBe(OLD + 30 + 8);
      expect(epochs(skew)).toEqual(new Set([0, 1, 2]));
    });
  });

  it('after a change of DRIFTLINE_SKEW_WINDOW, a window starting where an old one did is counted afresh (found by a review)', async () => {
    const skew = new MemorySkewStore();
    const store = await onlineStore();
    // One prediction every 6 s over T0 … T0 + 10 min: offsets 0 … 99 counted in 10-minute windows,
    // then, restarted with 5-minute windows, offsets 100 … 199 over the same 10 minutes.
    const events = (from: number) => predictions(100, from).map((e, i) => ({ ...e, event_time: T0 + i * 6_000 }));
    const tenMinutes = setup(skew, store, 1, { windowMs: 10 * WINDOW });
    await tenMinutes.processor.process(await decodeAll(tenMinutes.processor, events(0), 0), context());
    const fiveMinutes = setup(skew, store, 1, { windowMs: 5 * WINDOW });
    await fiveMinutes.processor.process(await decodeAll(fiveMinutes.processor, events(100), 100), context());
    // Before: the 5-minute window at T0 read the 10-minute row back as its state (window_end is in
    // neither the table's key nor the filter) and counted 150 predictions of 10 minutes.
    const amount = [...skew.rows.values()]
      .filter((r) => r.feature === 'amount')
      .map((r) => [r.windowStart - T0, r.windowEnd - T0, r.counts.sampled, r.throughOffset]);
    expect(amount).toEqual([
      [0, 5 * WINDOW, 50, 149],
      [5 * WINDOW, 10 * WINDOW, 50, 199],
    ]);
    // Its alert (share 1 of 50) rests on the 5-minute window's own counts.
    expect(
      fiveMinutes.published
        .filter((a) => a.feature === 'amount')
        .map((a) => [a.window_start, a.window_end, (JSON.parse(a.evidence!) as { compared: number }).compared]),
    ).toEqual([
      [T0, T0 + 5 * WINDOW, 50],
      [T0 + 5 * WINDOW, T0 + 10 * WINDOW, 50],
    ]);
  });

  it('an online store outage is retriable and writes nothing', async () => {
    const skew = new MemorySkewStore();
    const { store, redis } = await storeGoingDown();
    const { processor } = setup(skew, store);
    const items = await decodeAll(processor, predictions(10));
    const error = await processor.process(items, context()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SinkUnavailableError);
    expect((error as SinkUnavailableError).retriable).toBe(true);
    expect(skew.writes).toBe(0);
    redis.down = false;
    await processor.process(items, context());
    expect(skew.counts('age').sampled).toBe(10);
  });

  it('keeps partitions apart and sums them', async () => {
    const skew = new MemorySkewStore();
    const { processor } = setup(skew, await onlineStore());
    const events = predictions(40);
    const p0: Array<DecodedRecord<SkewRecord>> = [];
    const p1: Array<DecodedRecord<SkewRecord>> = [];
    for (const [i, e] of events.entries()) {
      const partition = i % 2;
      const r = record(e, Math.floor(i / 2), partition);
      (partition === 0 ? p0 : p1).push({ record: r, value: await processor.decode(r) });
    }
    await processor.process(p0, context(0));
    await processor.process(p1, context(1));
    expect(skew.counts('age').sampled).toBe(40);
    expect(new Set([...skew.rows.values()].map((r) => r.partition))).toEqual(new Set([0, 1]));
  });

  it('warns once, naming DRIFTLINE_SKEW_RECENT_IDS, when the partitions held can outgrow half the heap', async () => {
    const warnings: Array<[unknown, string]> = [];
    const logger = { ...silentLogger, warn: (fields: unknown, message: string) => warnings.push([fields, message]) };
    // 100,000 ids × 40 B = 4 MB a partition: the second partition crosses half of a 12 MB heap.
    const { processor } = setup(new MemorySkewStore(), await onlineStore(), 1, {
      logger,
      recentIds: 100_000,
      heapLimit: 12 * 1_048_576,
    });
    for (const partition of [0, 1, 2]) {
      const r = record(predictions(1)[0]!, 0, partition);
      await processor.process([{ record: r, value: await processor.decode(r) }], context(partition));
      expect(warnings).toHaveLength(partition === 0 ? 0 : 1);
    }
    expect(warnings[0]![0]).toEqual({ partitions: 2, recentIds: 100_000 });
    expect(warnings[0]![1]).toContain('lower DRIFTLINE_SKEW_RECENT_IDS');
  });

  it('counts rows written after the prediction apart, and entities without a row as missing', async () => {
    const skew = new MemorySkewStore();
    const { processor } = setup(skew, await onlineStore());
    const early = predictions(3).map((e, i) => ({ ...e, event_time: T0 - 3_000, entity_id: `u${i}` }));
    const unknown = predictions(2).map((e, i) => ({ ...e, prediction_id: `x${i}`, entity_id: 'nobody' }));
    await processor.process(await decodeAll(processor, [...early, ...unknown]), context());
    // profile rows (T0 − 1 s) are newer than a prediction at T0 − 3 s; spend rows (T0 − 5 s) are not.
    expect(skew.counts('age')).toMatchObject({ sampled: 5, newerRow: 3, missingInStore: 2, compared: 0 });
    expect(skew.counts('amount')).toMatchObject({ sampled: 5, compared: 3, missingInStore: 2 });
  });

  it("tells rows dated after the read (a feature producer's clock ahead) apart, with a warning naming the view (found by a review)", async () => {
    // The review's scenario: 50 entities, a feature event every 2 min stamped 5 min ahead, a
    // prediction every minute serving `amount` in cents (a real unit skew), read at once.
    let clock = T0;
    const store = new InMemoryOnlineStore({ now: () => clock });
    const skew = new MemorySkewStore();
    const registry = createMetricsRegistry({ service: 'skew-test', defaultMetrics: false });
    const { logger, lines } = recordingLogger();
    const { processor } = setup(skew, store, 1, { registry, logger, now: () => clock, recentIds: 0 });
    let offset = 0;
    for (let minute = 0; minute < 30; minute++) {
      clock += 60_000;
      if (minute % 2 === 0) {
        await store.write(
          planWrites(
            Array.from({ length: 50 }, (_, u) =>
              validateFeatureEvent(views, {
                event_id: `f${minute}-${u}`,
                view: 'spend',
                entity_id: `a${u}`,
                event_time: clock + 5 * 60_000,
                features: { amount: 12.5 },
              }),
            ),
          ),
        );
      }
      const events = Array.from(
        { length: 50 },
        (_, u): PredictionEvent => ({
          ...predictions(1)[0]!,
          prediction_id: `m${minute}-${u}`,
          entity_id: `a${u}`,
          event_time: clock,
          features: { amount: 1250 },
        }),
      );
      await processor.process(await decodeAll(processor, events, offset), context());
      offset += 50;
    }
    // Still not compared (the store keeps no write time: such a row may have been written after
    // the prediction), but no longer silent: 1,500 future rows counted, one line per view per 5 min.
    expect(skew.counts('amount')).toMatchObject({ sampled: 1_500, compared: 0, newerRow: 1_500 });
    const values = (await registry.getMetricsAsJSON()).find((m) => m.name === 'driftline_skew_values_total')!;
    expect(values.values.find((v) => v.labels.outcome === 'future_row')?.value).toBe(1_500);
    const warned = lines.filter((l) => l.level === 'warn' && l.msg?.includes('dated after the skew-monitor read it'));
    expect(warned).toHaveLength(6); // minutes 1, 6, 11, 16, 21, 26
    expect(warned[0]!.fields).toMatchObject({ view: 'spend', values: 50, aheadMs: 5 * 60_000 });
    expect(warned[0]!.msg).toContain('feature view spend');
    expect(warned[1]!.fields).toMatchObject({ values: 50, valuesUnlogged: 200 });
    // A row dated after the prediction but not after the read (written since, honest clock): newer_row only.
    const later = new MemorySkewStore();
    const registry2 = createMetricsRegistry({ service: 'skew-test', defaultMetrics: false });
    const honest = setup(later, await onlineStore(), 1, { registry: registry2 });
    const early = predictions(3).map((e) => ({ ...e, event_time: T0 - 3_000 }));
    await honest.processor.process(await decodeAll(honest.processor, early), context());
    expect(later.counts('age')).toMatchObject({ newerRow: 3 });
    const values2 = (await registry2.getMetricsAsJSON()).find((m) => m.name === 'driftline_skew_values_total')!;
    expect(values2.values.find((v) => v.labels.outcome === 'future_row')?.value ?? 0).toBe(0);
  });

  it('samples by prediction id, skips shadows, and dead-letters only sampled records it cannot compare', async () => {
    const skew = new MemorySkewStore();
    const { processor } = setup(skew, await onlineStore(), 0.3);
    const events = predictions(200);
    const items = await decodeAll(processor, events);
    await processor.process(items, context());
    const expected = events.filter((e) =>
      isSampled(samplingKey(e.prediction_id, e.model, e.entity_id, e.event_time), 0.3),
    ).length;
    expect(skew.counts('age').sampled).toBe(expected);

    const all = setup(new MemorySkewStore(), await onlineStore()).processor;
    const shadow = { ...events[0]!, prediction_id: 'p.shadow.v2', role: 'shadow' };
    expect(await all.decode(record(shadow, 0))).toEqual({});
    const badEntity = { ...events[0]!, entity_id: 'x'.repeat(2_000) };
    await expect(all.decode(record(badEntity, 0))).rejects.toThrow(/entity_id/);
    const future = { ...events[0]!, event_time: T0 + 10 * 86_400_000 };
    await expect(all.decode(record(future, 0))).rejects.toThrow(PoisonRecordError);
  });

  it('samples predictions without an id by model, entity and event time, and counts them (found by a review)', async () => {
    // Sampled by the empty id, every such prediction hashed alike: none at any rate up to ~0.42.
    const skew = new MemorySkewStore();
    const registry = createMetricsRegistry({ service: 'skew-test', defaultMetrics: false });
    const { processor } = setup(skew, await onlineStore(), 0.05, { registry });
    const events = predictions(2_000).map((e) => ({ ...e, prediction_id: '' }));
    const items = await decodeAll(processor, events);
    await processor.process(items, context());
    const expected = events.filter((e) => isSampled(samplingKey('', e.model, e.entity_id, e.event_time), 0.05));
    expect(expected.length).toBeGreaterThan(60);
    expect(expected.length).toBeLessThan(140);
    expect(skew.counts('age').sampled).toBe(expected.length);
    // The same records decide the same way again (a replay, another instance).
    const again = await decodeAll(processor, events);
    expect(again.map((i) => i.value.sampled !== undefined)).toEqual(items.map((i) => i.value.sampled !== undefined));
    const withoutId = (await registry.getMetricsAsJSON()).find(
      (m) => m.name === 'driftline_skew_predictions_without_id_total',
    )!.values[0]?.value;
    expect(withoutId).toBe(2_000);
    // One id shared by every prediction (a producer's bug) is sampled at the rate too.
    const shared = setup(new MemorySkewStore(), await onlineStore(), 0.05).processor;
    const constant = await decodeAll(
      shared,
      events.map((e) => ({ ...e, prediction_id: 'request' })),
    );
    const kept = constant.filter((i) => i.value.sampled !== undefined).length;
    expect(kept).toBeGreaterThan(60);
    expect(kept).toBeLessThan(140);
  });

  it("refuses the names its alerts could not carry (alertNameProblem), and compares an empty version's predictions", async () => {
    const { processor } = setup(new MemorySkewStore(), await onlineStore());
    const base = predictions(1)[0]!;
    const decoded = await processor.decode(record({ ...base, model_version: '' }, 0));
    expect(decoded.sampled?.version).toBe('');
    await expect(processor.decode(record({ ...base, model: '' }, 0))).rejects.toThrow(
      new PoisonRecordError('VALIDATION_FAILED', 'model must be 1..256 characters (got 0)'),
    );
    await expect(processor.decode(record({ ...base, model_version: 'v'.repeat(257) }, 0))).rejects.toThrow(
      'model_version must be 0..256 characters (got 257)',
    );
  });

  it('counts an absent row of a prediction older than its view TTL at the read as expired, not missing_in_store (found by a review)', async () => {
    // A monitor lagging more than the TTL behind read the served row as absent (TTL on read):
    // real skew counted missing_in_store.
    const ttlViews = parseFeatureViewsText(
      'views:\n  - name: profile\n    entity: user_id\n    ttl: 3s\n    features: { age: double }\n',
    );
    const base = predictions(1)[0]!;
    const events: PredictionEvent[] = [
      { ...base, prediction_id: 'served-u0', entity_id: 'u0', features: { age: 99 } }, // the row says 20
      { ...base, prediction_id: 'never-u9', entity_id: 'u9', features: { age: 1 } }, // no row ever
    ];
    const lagged = async (lagMs: number) => {
      let clock = T0 - 1_000;
      const store = new InMemoryOnlineStore({ now: () => clock });
      await store.write(
        planWrites([
          validateFeatureEvent(ttlViews, {
            event_id: 'p0',
            view: 'profile',
            entity_id: 'u0',
            event_time: T0 - 1_000,
            features: { age: 20 },
          }),
        ]),
      );
      clock = T0 + lagMs;
      const skew = new MemorySkewStore();
      const registry = createMetricsRegistry({ service: 'skew-test', defaultMetrics: false });
      const processor = skewProcessor({
        store,
        skew,
        sources: featureSources(ttlViews),
        windowMs: WINDOW,
        sampleRate: 1,
        tolerance: { relative: 1e-9, absolute: 0 },
        rule: { maxShareMismatched: 0.1, minCompared: 5 },
        decode: async (v) => JSON.parse(v!.toString()) as PredictionEvent,
        publish: async () => {},
        eventTime: { maxFutureMs: 86_400_000, minMs: 0 },
        now: () => clock,
        registry,
      });
      const items: Array<DecodedRecord<SkewRecord>> = [];
      for (const [i, e] of events.entries())
        items.push({ record: record(e, i), value: await processor.decode(record(e, i)) });
      await processor.process(items, context());
      const values = (await registry.getMetricsAsJSON()).find((m) => m.name === 'driftline_skew_values_total')!.values;
      const metric = Object.fromEntries(values.map((v) => [v.labels.outcome, v.value]));
      return { counts: skew.counts('age'), metric };
    };
    // Read at once: the row is current and differs.
    const atOnce = await lagged(500);
    expect(atOnce.counts).toMatchObject({ sampled: 2, compared: 1, mismatched: 1, missingInStore: 1, expired: 0 });
    // Read 4 s later (ttl 3 s): both predictions are past the TTL, neither row can be read as served.
    const late = await lagged(4_000);
    expect(late.counts).toMatchObject({ sampled: 2, compared: 0, mismatched: 0, missingInStore: 0, expired: 2 });
    expect(late.metric).toMatchObject({ expired: 2, missing_in_store: 0 });
  });

  it('counts a NaN feature as missing and ignores undeclared ones, instead of dead-lettering the prediction (found by a review)', async () => {
    const skew = new MemorySkewStore();
    const base = predictions(1)[0]!;
    const events: PredictionEvent[] = [
      { ...base, prediction_id: 'nan-age', features: { age: Number.NaN, country: 'fr' } },
      {
        ...base,
        prediction_id: 'nan-request-only',
        features: { age: 20, country: 'fr', request_only_score: Number.NaN },
      },
      { ...base, prediction_id: 'inf-age', features: { age: Number.POSITIVE_INFINITY, country: 'fr' } },
    ];
    // JSON has no NaN or Infinity: decode hands the events over as a codec would.
    const byId = new Map(events.map((e) => [e.prediction_id, e]));
    const { processor } = setup(skew, await onlineStore(), 1, {
      decode: async (v) => byId.get(v!.toString())!,
    });
    const items: Array<DecodedRecord<SkewRecord>> = [];
    for (const [i, e] of events.entries()) {
      const r = { ...record(e, i), value: Buffer.from(e.prediction_id) };
      items.push({ record: r, value: await processor.decode(r) });
    }
    await processor.process(items, context());
    // u0's row: age 20, country fr (as of T0 − 1 s).
    expect(skew.counts('age')).toMatchObject({
      sampled: 3,
      compared: 3,
      mismatched: 2, // NaN = missing in prediction; Infinity ≠ 20
      missingInPrediction: 1,
      numericCompared: 1,
      absDiffSum: 0,
    });
    expect(skew.counts('country')).toMatchObject({ sampled: 3, compared: 3, mismatched: 0 });
    expect(skew.counts('request_only_score').sampled).toBe(0);
  });

  describe('an alert held until consumers accept its times', () => {
    const HOUR = 3_600_000;
    const windowMs = 2 * HOUR;
    const bounds = DEFAULT_EVENT_TIME_BOUNDS; // what retrain-trigger and alert-router apply by default
    const due = T0 + HOUR + 60_000; // window end within the bound, less the release margin

    /** 20 mismatched predictions of the window [T0, T0 + 2 h), processed 30 min into it. */
    async function held(skew: MemorySkewStore, clock: { now: number }) {
      const deployment = setup(skew, await onlineStore(), 1, { windowMs, now: () => clock.now, eventTime: bounds });
      await deployment.processor.process(await decodeAll(deployment.processor, predictions(20)), context());
      return deployment;
    }

    it('is not raised while its window end is beyond the bound, then raised by the release with no batch (found by a review)', async () => {
      const skew = new MemorySkewStore();
      const clock = { now: T0 + 30 * 60_000 };
      const { processor, published } = await held(skew, clock);
      expect(skew.counts('amount').mismatched).toBe(20);
      expect(published).toEqual([]); // window_end 1.5 h ahead: would be dead-lettered downstream
      expect(await processor.releaseDue(TOPIC)).toBe(0);
      clock.now = due - 1;
      expect(await processor.releaseDue(TOPIC)).toBe(0);
      // The topic is idle: no batch, the release raises it as soon as it is due.
      clock.now = due;
      expect(await processor.releaseDue(TOPIC)).toBe(1);
      expect(published.map((a) => a.feature)).toEqual(['amount']);
      const alert = published[0]!;
      expect(alert).toMatchObject({ window_start: T0, window_end: T0 + windowMs, event_time: due });
      // The checks retrain-trigger's checkAlertTimes and alert-router make, at the clock it is raised.
      expect(eventTimeProblem(alert.event_time, clock.now, bounds)).toBeUndefined();
      expect(windowTimeProblem(alert.window_start, alert.window_end, clock.now, bounds)).toBeUndefined();
      // Once: neither a later release, a batch with nothing sampled nor a replay raises it again.
      clock.now += 10 * 60_000;
      expect(await processor.releaseDue(TOPIC)).toBe(0);
      await processor.process([], context());
      await processor.process(await decodeAll(processor, predictions(20)), context());
      expect(published).toHaveLength(1);
    });

    it('is raised after a restart by the new instance, with no new prediction (found by a review)', async () => {
      const skew = new MemorySkewStore();
      const clock = { now: T0 + 30 * 60_000 };
      const first = await held(skew, clock);
      // The process stops while holding it (its offsets committed); a new one starts later.
      clock.now = due + 5 * 60_000;
      const second = setup(skew, await onlineStore(), 1, { windowMs, now: () => clock.now, eventTime: bounds });
      expect(await second.processor.releaseDue(TOPIC)).toBe(1);
      expect(second.published.map((a) => [a.feature, a.window_start])).toEqual([['amount', T0]]);
      expect(first.published).toEqual([]);
    });

    it('a failed release raises nothing and the next one retries it', async () => {
      const skew = new MemorySkewStore();
      const clock = { now: T0 + 30 * 60_000 };
      const { processor, published } = await held(skew, clock);
      clock.now = due;
      skew.failWindowsNext = 1;
      await expect(processor.releaseDue(TOPIC)).rejects.toThrow(SinkUnavailableError);
      expect(published).toEqual([]);
      clock.now += 15_000;
      expect(await processor.releaseDue(TOPIC)).toBe(1);
    });

    it('leaves to batches what they could raise: a restart re-raises no window last written once due', async () => {
      const skew = new MemorySkewStore();
      const { processor, published } = setup(skew, await onlineStore()); // 1 min windows, all due
      await processor.process(await decodeAll(processor, predictions(90)), context());
      expect(published).toHaveLength(2);
      const restarted = setup(skew, await onlineStore());
      expect(await restarted.processor.releaseDue(TOPIC)).toBe(0);
    });

    it('a release failing through an outage longer than the catch-up span raises the alert once it works again (found by a review)', async () => {
      const skew = new MemorySkewStore();
      const clock = { now: T0 + 30 * 60_000 };
      const { processor, published } = await held(skew, clock);
      clock.now = due - 1;
      expect(await processor.releaseDue(TOPIC)).toBe(0); // the position is set before it is due
      for (const at of [due, due + HOUR, due + 24 * HOUR]) {
        clock.now = at;
        skew.failWindowsNext = 1;
        await expect(processor.releaseDue(TOPIC)).rejects.toThrow(SinkUnavailableError);
      }
      clock.now = due + 25 * HOUR;
      expect(await processor.releaseDue(TOPIC)).toBe(1);
      expect(published.map((a) => a.window_start)).toEqual([T0]);
    });

    it('an instance whose clock is ahead raises a window another wrote as held after its sweep had passed (found by a review)', async () => {
      const skew = new MemorySkewStore();
      const store = await onlineStore();
      const at = (now: number) => setup(skew, store, 1, { windowMs, now: () => now, eventTime: bounds });
      // A window ending with the same end, of a model sorting after 'fraud', is in skew_windows.
      const other = predictions(20).map((e) => ({ ...e, model: 'zz', prediction_id: `zz-${e.prediction_id}` }));
      const early = at(T0 + 30 * 60_000);
      await early.processor.process(await decodeAll(early.processor, other), context());
      // Instance A (its clock 2 min ahead) sweeps: the fraud window has no row yet; A's position
      // is the zz window, with the fraud window's end.
      const a = { now: T0 + 61.5 * 60_000 };
      const instanceA = setup(skew, store, 1, { windowMs, now: () => a.now, eventTime: bounds });
      await instanceA.processor.releaseDue(TOPIC);
      expect(instanceA.published.map((x) => x.model)).toEqual(['zz']);
      // Instance B, 2 min behind, writes the fraud window breaching: by its clock still held.
      const instanceB = at(T0 + 60 * 60_000);
      await instanceB.processor.process(await decodeAll(instanceB.processor, predictions(20)), context());
      expect(instanceB.published).toEqual([]);
      // B's partition moves to A: A's next sweep raises it.
      a.now = T0 + 62.25 * 60_000;
      expect(await instanceA.processor.releaseDue(TOPIC)).toBe(1);
      expect(instanceA.published.map((x) => x.model)).toEqual(['zz', 'fraud']);
    });

    it('catches up at start-up no further back than a day of window ends', async () => {
      const skew = new MemorySkewStore();
      const clock = { now: T0 + 30 * 60_000 };
      await held(skew, clock);
      expect(releaseCatchUpMs(windowMs)).toBe(24 * HOUR);
      // Started more than a day after the window's end came within reach: out of the catch-up.
      clock.now = due + 24 * HOUR + 60_000;
      const late = setup(skew, await onlineStore(), 1, { windowMs, now: () => clock.now, eventTime: bounds });
      expect(await late.processor.releaseDue(TOPIC)).toBe(0);
      clock.now = due + 23 * HOUR;
      const inTime = setup(skew, await onlineStore(), 1, { windowMs, now: () => clock.now, eventTime: bounds });
      expect(await inTime.processor.releaseDue(TOPIC)).toBe(1);
    });
  });

  it('lists in its help text only the prediction outcomes it counts (found by a review)', async () => {
    const registry = createMetricsRegistry({ service: 'skew-test', defaultMetrics: false });
    const skew = new MemorySkewStore();
    const { processor } = setup(skew, await onlineStore(), 0.5, { registry });
    const events = predictions(40);
    const shadow = { ...events[0]!, prediction_id: 'p.shadow', role: 'shadow' };
    const resent = events.find((e) =>
      isSampled(samplingKey(e.prediction_id, e.model, e.entity_id, e.event_time), 0.5),
    )!;
    const items = await decodeAll(processor, [...events, shadow, resent]);
    await processor.process(items, context());
    await processor.process(items, context()); // replayed
    const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'driftline_skew_predictions_total')!;
    const emitted = new Set(metric.values.filter((v) => v.value > 0).map((v) => String(v.labels.outcome)));
    const listed = /by outcome \(([^)]*)\)/.exec(metric.help)![1]!.split(', ');
    expect(new Set(listed)).toEqual(emitted);
  });
});
