import {
  DEFAULT_EVENT_TIME_BOUNDS,
  DriftlineError,
  type Logger,
  PoisonRecordError,
  SinkUnavailableError,
  silentLogger,
} from '@driftline/core';
import {
  decodePartials,
  MAX_BORROWED_VERSIONS_PER_MODEL,
  MergeState,
  type OutboundPartials,
  type PartialsMessage,
  type ReferenceSet,
  referenceSet,
} from '@driftline/drift';
import type { DecodedRecord, ProcessResult } from '@driftline/kafka';
import type { PredictionEvent } from '@driftline/schemas';
import { buildNumericProfile } from '@driftline/stats';
import type { Progress, ProgressStore, ReferenceStore } from '@driftline/warehouse';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { driftMetrics } from '../src/metrics.js';
import { ReferenceCache } from '../src/reference-cache.js';
import { SOURCE_COUNT_MAX_AGE_MS, stageOneProcessor } from '../src/stage-one.js';
import { memoryProgress } from './support.js';

const ref: ReferenceSet = referenceSet(
  'm',
  'v1',
  new Map([['x', buildNumericProfile(Array.from({ length: 100 }, (_, i) => i))]]),
);
const store: ReferenceStore = {
  save: async () => {},
  latest: async (model, version) => (model === 'm' && version === 'v1' ? ref : undefined),
  byId: async () => ref,
  newest: async () => [ref],
  catalog: async () => [{ model: 'm', version: 'v1', referenceId: ref.referenceId }],
};

function items(times: number[], from = 0): DecodedRecord<PredictionEvent>[] {
  return times.map((t, i) => ({
    record: { topic: 'p', partition: 0, offset: String(from + i), key: null, value: null, headers: {}, timestamp: 0 },
    value: {
      prediction_id: `p${from + i}`,
      model: 'm',
      model_version: 'v1',
      entity_id: 'e',
      event_time: t,
      features: { x: i },
      prediction: 0,
      predicted_class: null,
    },
  }));
}

function setup(
  failures: number,
  options: {
    restored?: Progress;
    now?: number;
    logger?: Logger;
    references?: ReferenceCache;
    /** Messages Kafka refuses as they are (too large). */
    refuse?: (m: OutboundPartials) => boolean;
    maxBorrowedVersions?: number;
  } = {},
) {
  const sent: OutboundPartials[] = [];
  const saved: Progress[] = [];
  let failing = failures;
  const progress: ProgressStore = {
    load: async () => options.restored,
    save: async (_s, _g, _t, _p, p) => {
      saved.push(p);
    },
  };
  const processor = stageOneProcessor({
    spec: { sizeMs: 1000, latenessMs: 0 },
    references: options.references ?? new ReferenceCache(store),
    progress,
    group: 'g',
    sourceTopic: 'p',
    sourcePartitions: 1,
    mergePartitions: 1,
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    now: () => options.now ?? Date.now(),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.maxBorrowedVersions === undefined ? {} : { maxBorrowedVersions: options.maxBorrowedVersions }),
    // The record's value is the JSON of the event (the registry codec's part is not under test here).
    decode: async (value) => JSON.parse(String(value)) as PredictionEvent,
    emit: async (messages) => {
      if (failing-- > 0) throw new SinkUnavailableError('kafka down');
      if (options.refuse !== undefined && messages.some(options.refuse))
        throw new DriftlineError('SINK_REJECTED', 'MESSAGE_TOO_LARGE');
      sent.push(...messages);
    },
  });
  return { processor, sent, saved };
}

const ctx = { topic: 'p', partition: 0, highWatermark: '0' };

describe('stage-1 processor', () => {
  it('holds the commit at the oldest open window and emits closed windows', async () => {
    const { processor, sent, saved } = setup(0);
    // Window 0 closes within the batch; window 1000 (first offset 2) stays open.
    expect(await processor.process(items([100, 200, 1100]), ctx)).toEqual({ commitOffset: '2' });
    expect(await processor.process(items([2100], 3), ctx)).toEqual({ commitOffset: '3' });
    const partials = sent.map((m) => decodePartials(m.value)).filter((m) => m.type === 'partial');
    expect(partials.map((p) => [p.windowStart, p.type === 'partial' ? p.events : 0])).toEqual([
      [0, 2],
      [1000, 1],
    ]);
    expect(saved.at(-1)).toEqual({ position: 2000, offset: 4, lateFrom: 3 });
  });

  it('a retried batch after a failed send neither double-counts nor loses a window', async () => {
    const { processor, sent } = setup(1);
    await expect(processor.process(items([100, 200, 1500]), ctx)).rejects.toThrow(SinkUnavailableError);
    expect(sent).toEqual([]);
    await processor.process(items([100, 200, 1500]), ctx); // the loop retries the same batch
    const partials = sent.map((m) => decodePartials(m.value)).filter((m) => m.type === 'partial');
    expect(partials.map((p) => (p.type === 'partial' ? [p.windowStart, p.events] : []))).toEqual([[0, 2]]);
  });
});

/** One prediction at `offset` whose record carries the Kafka timestamp `stamp`. */
const event = (eventTime: number, stamp: number, offset: number): DecodedRecord<PredictionEvent> => ({
  record: {
    topic: 'p',
    partition: 0,
    offset: String(offset),
    key: null,
    value: null,
    headers: {},
    timestamp: stamp,
  },
  value: {
    prediction_id: `p${offset}`,
    model: 'm',
    model_version: 'v1',
    entity_id: 'e',
    event_time: eventTime,
    features: { x: offset },
    prediction: 0,
    predicted_class: null,
  },
});

describe('stage-1 processor: the watermark horizon on replay (found by a review)', () => {
  it('a replay days later closes the same windows as live processing did', async () => {
    const T = Date.UTC(2024, 11, 2, 12, 0, 0);
    // One event dated 50 minutes ahead (the event-time bound lets it in), then on-time traffic.
    const batches = [
      { at: T + 1_000, records: [event(T + 3_000_000, T + 1_000, 0)] },
      { at: T + 200_000, records: [event(T + 190_000, T + 190_000, 1)] },
      { at: T + 400_000, records: [event(T + 400_000, T + 400_000, 2)] },
    ];
    const closed = async (replayAt?: number) => {
      const clock = { now: 0 };
      const { processor, sent } = setup(0, clock); // reads clock.now at each batch
      for (const b of batches) {
        clock.now = replayAt ?? b.at;
        await processor.process(b.records, ctx);
      }
      return sent
        .map((m) => decodePartials(m.value))
        .filter((m) => m.type === 'partial')
        .map((p) => p.windowStart - T);
    };
    const live = await closed();
    expect(live).toContain(190_000); // the on-time event's window, counted
    expect(await closed(T + 2 * 86_400_000)).toEqual(live);
  });

  it('a record stamped behind the one before (producers with skewed clocks) does not make an on-time event ahead', async () => {
    const T = Date.UTC(2024, 11, 2, 10, 0, 0);
    const clock = { now: T + 1_300_000 };
    const { processor, sent } = setup(0, clock);
    // 10:20 stamped 10:20, then 10:20:30 stamped 12 minutes behind (another producer's clock).
    await processor.process([event(T + 1_200_000, T + 1_200_000, 0), event(T + 1_230_000, T + 480_000, 1)], ctx);
    await processor.process([event(T + 1_260_000, T + 1_260_000, 2)], ctx);
    const partials = sent.map((m) => decodePartials(m.value)).filter((m) => m.type === 'partial');
    // Each event in its own (1 s) window: none counted late into an old one.
    expect(partials.map((p) => p.windowStart - T)).toEqual([1_200_000, 1_230_000]);
  });
});

describe('stage-1 processor: partials Kafka refuses', () => {
  it('leaves a refused partial out, loudly, and goes on: the rest of the flush and later windows are sent', async () => {
    const errors: Array<{ obj: object; msg: string | undefined }> = [];
    const logger: Logger = {
      ...silentLogger,
      error: (obj, msg) => void errors.push({ obj, msg }),
      child: () => logger,
    };
    const isWindow0Partial = (m: OutboundPartials) => {
      const decoded = decodePartials(m.value);
      return decoded.type === 'partial' && decoded.windowStart === 0;
    };
    const { processor, sent } = setup(0, { logger, refuse: isWindow0Partial });
    expect(await processor.process(items([100, 200, 1100]), ctx)).toEqual({ commitOffset: '2' });
    expect(await processor.process(items([2100], 3), ctx)).toEqual({ commitOffset: '3' });
    const decoded = sent.map((m) => decodePartials(m.value));
    // Window 0's closed marker went out without the refused partial (so the merge completes the
    // window instead of waiting for it for ever); window 1000's lists its partial.
    expect(decoded.map((d) => [d.type, d.windowStart, d.type === 'closed' ? d.models.length : d.events])).toEqual([
      ['closed', 0, 0],
      ['partial', 1000, 1],
      ['closed', 1000, 1],
    ]);
    // What the merge makes of them: both windows complete.
    const merge = new MergeState({ idleTimeoutMs: 60_000 }, 0);
    for (const [offset, d] of decoded.entries()) merge.add(d, offset, 1);
    expect(merge.ready(1).complete.map((w) => w.windowStart)).toEqual([0, 1000]);
    expect(errors).toEqual([
      {
        obj: expect.objectContaining({ model: 'm', events: 2, code: 'SINK_REJECTED' }),
        msg: 'drift partials refused by Kafka: their events are left out of the window',
      },
    ]);
  });
});

/** Wall clock of the event-time tests: windows of 1 s from here on. */
const NOW = Date.UTC(2024, 11, 2, 12, 0, 0);

/** What the consumer loop does with a batch: decode each record (poison → DLQ), then process the rest. */
async function consume(processor: ReturnType<typeof setup>['processor'], times: number[], from: number) {
  const dlq: string[] = [];
  const decoded: DecodedRecord<PredictionEvent>[] = [];
  for (const item of items(times, from)) {
    const record = { ...item.record, value: Buffer.from(JSON.stringify(item.value)) };
    try {
      decoded.push({ record, value: await processor.decode(record) });
    } catch (error) {
      if (!(error instanceof PoisonRecordError)) throw error;
      dlq.push(error.message);
    }
  }
  const result = decoded.length === 0 ? undefined : await processor.process(decoded, ctx);
  return { dlq, result };
}

describe('stage-1 processor: event-time bounds', () => {
  it('a µs event goes to the DLQ: later windows close and the commit advances', async () => {
    const { processor, sent } = setup(0, { now: NOW });
    const first = await consume(processor, [NOW - 5000, NOW * 1000, NOW - 4900], 0);
    expect(first.dlq).toEqual([
      expect.stringMatching(/^event_time \d+ is [\d,]+ years in the future.*microseconds\?$/),
    ]);
    const second = await consume(processor, [NOW - 3900, NOW - 2900], 3);
    // The window of NOW-5000 and NOW-3900's closed; only NOW-2900's window (offset 4) is still open.
    expect(second.result).toEqual({ commitOffset: '4' });
    const partials = sent.map((m) => decodePartials(m.value)).filter((m) => m.type === 'partial');
    expect(partials.map((p) => (p.type === 'partial' ? p.events : 0))).toEqual([2, 1]);
  });

  it('a pre-2000 and a too-far-future event go to the DLQ with the reason', async () => {
    const { processor } = setup(0, { now: NOW });
    const out = await consume(processor, [Date.UTC(1899, 0, 1), NOW + 2 * 86_400_000, NOW], 0);
    expect(out.dlq).toEqual([
      expect.stringMatching(/\(1899-01-01T00:00:00.000Z\) is before the minimum 2000-01-01/),
      expect.stringMatching(/is 2 days in the future/),
    ]);
  });

  it('refuses a restored watermark out of bounds (logged) and processes as if none was stored', async () => {
    const warnings: Array<[object, string | undefined]> = [];
    const logger: Logger = {
      debug: () => {},
      info: () => {},
      warn: (obj, msg) => warnings.push([obj, msg]),
      error: (obj, msg) => warnings.push([obj, msg]),
      child: () => logger,
    };
    // What a µs event persisted in drift_progress before the fix: a frontier 54,000 years ahead.
    const restored = { position: Math.floor((NOW * 1000) / 1000) * 1000, offset: 7 };
    const { processor, sent } = setup(0, { now: NOW, restored, logger });
    const out = await consume(processor, [NOW - 5000, NOW - 3900], 0);
    expect(out.result).toEqual({ commitOffset: '1' });
    const partials = sent.map((m) => decodePartials(m.value)).filter((m) => m.type === 'partial');
    expect(partials.map((p) => (p.type === 'partial' ? [p.windowStart, p.events, p.late] : []))).toEqual([
      [NOW - 5000, 1, 0],
    ]);
    expect(warnings).toEqual([
      [
        expect.objectContaining({ partition: 0, position: restored.position }),
        expect.stringMatching(/restored drift progress refused.*years in the future/),
      ],
    ]);
  });
});

describe('stage-1 processor: a ClickHouse outage while recording progress', () => {
  it('emits each closed window once however often the batch is retried', async () => {
    const sent: OutboundPartials[] = [];
    const saved: Progress[] = [];
    let outage = 5; // drift_progress (ClickHouse) refuses the first 5 saves
    const processor = stageOneProcessor({
      spec: { sizeMs: 1000, latenessMs: 0 },
      references: new ReferenceCache(store),
      progress: {
        load: async () => undefined,
        save: async (_s, _g, _t, _p, p) => {
          if (outage-- > 0) throw new SinkUnavailableError('clickhouse down');
          saved.push(p);
        },
      },
      group: 'g',
      sourceTopic: 'p',
      sourcePartitions: 1,
      mergePartitions: 1,
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      decode: async (value) => JSON.parse(String(value)) as PredictionEvent,
      emit: async (messages) => {
        sent.push(...messages);
      },
    });
    const batch = items([100, 200, 1100, 2100]);
    for (let attempt = 0; attempt < 5; attempt++) {
      await expect(processor.process(batch, ctx)).rejects.toThrow(SinkUnavailableError);
    }
    expect(await processor.process(batch, ctx)).toEqual({ commitOffset: '3' });
    // Windows 0 and 1000 closed: one partial and one marker each, emitted once in all.
    const kinds = sent.map((m) => decodePartials(m.value)).map((m) => `${m.type}@${m.windowStart}`);
    expect(kinds.sort()).toEqual(['closed@0', 'closed@1000', 'partial@0', 'partial@1000']);
    expect(saved).toEqual([{ position: 2000, offset: 4, lateFrom: 3 }]);
  });
});

// A review: chdb's `store/` replaced by a file, the drift_progress insert failed as `unknown`
// (SINK_REJECTED): process() threw a non-retriable error, so the consumer bisected the batch and
// dead-lettered its 300 predictions, which the windows already sent had counted — replaying the DLQ
// would count them twice.
describe('stage-1 processor: drift_progress refuses the frontier (not retriable as the warehouse classified it)', () => {
  it('the failure is retriable: nothing is dead-lettered, the retry records the frontier and sends nothing twice', async () => {
    const sent: OutboundPartials[] = [];
    const saved: Progress[] = [];
    let refusals = 3;
    const processor = stageOneProcessor({
      spec: { sizeMs: 1000, latenessMs: 0 },
      references: new ReferenceCache(store),
      progress: {
        load: async () => undefined,
        save: async (_s, _g, _t, _p, p) => {
          if (refusals-- > 0) {
            throw new DriftlineError(
              'SINK_REJECTED',
              'clickhouse insert into drift_progress: STD_EXCEPTION (1001): std::__1::filesystem::filesystem_error: filesystem error: in create_directories: Not a directory ["/data/store/e81"].',
            );
          }
          saved.push(p);
        },
      },
      group: 'g',
      sourceTopic: 'p',
      sourcePartitions: 1,
      mergePartitions: 1,
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      decode: async (value) => JSON.parse(String(value)) as PredictionEvent,
      emit: async (messages) => {
        sent.push(...messages);
      },
    });
    const batch = items([100, 200, 1100, 2100]);
    for (let attempt = 0; attempt < 3; attempt++) {
      const failure = await processor.process(batch, ctx).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(failure).toBeInstanceOf(SinkUnavailableError);
      expect(failure).toMatchObject({ code: 'SINK_UNAVAILABLE', retriable: true });
      expect((failure as Error).message).toContain('Not a directory');
    }
    expect(await processor.process(batch, ctx)).toEqual({ commitOffset: '3' });
    const kinds = sent.map((m) => decodePartials(m.value)).map((m) => `${m.type}@${m.windowStart}`);
    expect(kinds.sort()).toEqual(['closed@0', 'closed@1000', 'partial@0', 'partial@1000']);
    expect(saved).toEqual([{ position: 2000, offset: 4, lateFrom: 3 }]);
  });
});

/** A stage-one processor started with 2 source partitions, whose topic now has `count()` (which may throw). */
function growingTopic(count: () => number, now?: () => number) {
  const sent: OutboundPartials[] = [];
  const saved: Progress[] = [];
  let reads = 0;
  const processor = stageOneProcessor({
    spec: { sizeMs: 1000, latenessMs: 0 },
    references: new ReferenceCache(store),
    progress: {
      load: async () => undefined,
      save: async (_s, _g, _t, _p, progress) => {
        saved.push(progress);
      },
    },
    ...(now === undefined ? {} : { now }),
    group: 'g',
    sourceTopic: 'p',
    sourcePartitions: 2, // at start-up
    currentSourcePartitions: async () => {
      reads++;
      return count();
    },
    mergePartitions: 1,
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    decode: async (value) => JSON.parse(String(value)) as PredictionEvent,
    emit: async (messages) => {
      sent.push(...messages);
    },
  });
  return { processor, sent, saved, reads: () => reads };
}

/** [window start, source partitions named] of every message sent. */
const namedCounts = (sent: readonly OutboundPartials[]) =>
  sent.map((m) => decodePartials(m.value)).map((d) => [d.windowStart, d.source.partitions] as const);

describe('stage-1 processor: the source topic grew after start-up', () => {
  it('a batch of a new partition re-reads the count: its partials name the new count, which the merge accepts', async () => {
    const { processor, sent, reads } = growingTopic(() => 4); // the operator added two
    await processor.process(items([100, 1100]), { ...ctx, partition: 3 });
    await processor.process(items([2100], 2), { ...ctx, partition: 3 });
    expect(reads()).toBe(1); // once, not per batch
    // decodePartials is the merge stage's check (it refused partition 3 of 2 as malformed).
    const decoded = sent.map((m) => decodePartials(m.value));
    expect(decoded.length).toBeGreaterThan(0);
    expect(decoded.every((d) => d.source.partition === 3 && d.source.partitions === 4)).toBe(true);
  });

  it('a rebalance re-reads it too: an instance owning none of the new partitions names the new count', async () => {
    let count = 2;
    const { processor, sent } = growingTopic(() => count);
    await processor.process(items([100, 1100]), { ...ctx, partition: 0 });
    count = 4; // the operator added two; this instance keeps partition 0 only
    processor.rebalanced?.(); // it keeps partition 0: nothing is revoked
    await processor.process(items([2100, 3100], 2), { ...ctx, partition: 0 });
    const counts = sent.map((m) => decodePartials(m.value)).map((d) => [d.windowStart, d.source.partitions]);
    expect(counts.filter(([start]) => start === 0).every(([, n]) => n === 2)).toBe(true);
    expect(counts.filter(([start]) => (start as number) >= 2000).every(([, n]) => n === 4)).toBe(true);
    expect(counts.some(([start]) => (start as number) >= 2000)).toBe(true);
  });

  it('a window closing after the topic grew names the new count, before kafkajs rebalanced or read a new partition', async () => {
    // kafkajs' metadata lags a grown topic by up to 30 s: partitions 0 and 1 closed windows naming
    // 2 while producers already wrote to partition 2, and the merge completed them without it.
    let count = 2;
    let clock = 1_000_000;
    const { processor, sent } = growingTopic(
      () => count,
      () => clock,
    );
    await processor.process(items([100]), ctx); // window 0 opens
    count = 3; // the operator added one; this member is not told (no rebalance yet)
    clock += SOURCE_COUNT_MAX_AGE_MS;
    await processor.process(items([1100], 1), ctx); // closes window 0
    const window0 = namedCounts(sent).filter(([start]) => start === 0);
    expect(window0.length).toBeGreaterThan(0);
    expect(window0.every(([, n]) => n === 3)).toBe(true);
  });

  it('reads the count when windows close, at most once per SOURCE_COUNT_MAX_AGE_MS, shared by the partitions', async () => {
    const clock = 1_000_000;
    let wall = clock;
    const { processor, reads } = growingTopic(
      () => 2,
      () => wall,
    );
    await processor.process(items([100]), ctx); // the frontier moves: its marker names a fresh count
    expect(reads()).toBe(1);
    await processor.process(items([200], 1), ctx); // closes nothing: no read
    await processor.process(items([1100], 2), ctx); // closes window 0 within the interval
    await processor.process(items([1100]), { ...ctx, partition: 1 }); // another partition, same interval
    expect(reads()).toBe(1);
    wall = clock + SOURCE_COUNT_MAX_AGE_MS;
    await processor.process(items([2100], 3), ctx); // closes window 1000
    expect(reads()).toBe(2);
  });

  it('a failed read is retriable and loses nothing: the retry sends the closed window with the count read then', async () => {
    let failing = true;
    const { processor, sent, saved } = growingTopic(() => {
      if (failing) throw new Error('brokers unreachable');
      return 3;
    });
    const batch = items([100, 1100]); // closes window 0
    const refused = await processor.process(batch, ctx).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(DriftlineError);
    expect((refused as DriftlineError).retriable).toBe(true);
    expect(sent).toEqual([]);
    expect(saved).toEqual([]); // the frontier is not recorded ahead of its markers
    failing = false;
    await processor.process(batch, ctx); // the consumer loop's retry
    const counts = namedCounts(sent);
    expect(counts.filter(([start]) => start === 0).length).toBe(2); // window 0's partial and marker, once
    expect(counts.every(([, n]) => n === 3)).toBe(true);
    expect(saved.map((p) => p.position)).toEqual([1000]);
  });
});

describe('stage-1 processor: a flood of model versions', () => {
  it('dead-letters the events of pairs past the bound per window; the window still closes for every model in it', async () => {
    // v1 promoted: a version without a reference of its own is measured against v1's.
    const references = new ReferenceCache(store);
    await references.promoted('m', 'v1', 0);
    // As many borrowed versions as the pair cap allows: this is about the cap.
    const { processor, sent } = setup(0, { now: NOW, references, maxBorrowedVersions: 1_000 });
    // v1, then 1,001 invented versions, in one window; then an event that closes it.
    const batch = items(Array.from({ length: 1_003 }, () => NOW - 5_000)).map((item, i) => ({
      ...item,
      value: { ...item.value, model_version: i === 0 ? 'v1' : `hostile-${i}` },
    }));
    const result = await processor.process(batch, ctx);
    const refused = (result === undefined ? undefined : result.deadLetters) ?? [];
    expect(refused.map((d) => d.record.offset)).toEqual(['1000', '1001', '1002']);
    expect(refused[0]!.reason).toMatch(
      /already holds 1000 \(model, version\) pairs.*version "hostile-1000" is not counted$/,
    );
    // A retry of the same batch names them again (they are sent only once the batch succeeds).
    const again = await processor.process(batch, ctx);
    expect(again === undefined ? undefined : again.deadLetters).toHaveLength(3);

    await processor.process(items([NOW - 3_000], 1_003), ctx);
    const messages = sent.map((m) => decodePartials(m.value)); // the marker decodes: within the merge's bound
    const partials = messages.filter((m) => m.type === 'partial');
    expect(partials).toHaveLength(1_000);
    expect(partials.some((p) => p.type === 'partial' && p.version === 'v1' && p.events === 1)).toBe(true);
  });

  it('dead-letters versions past DRIFTLINE_DRIFT_MAX_BORROWED_VERSIONS on the promoted reference for their whole window, never the version with its own (found by a review)', async () => {
    const references = new ReferenceCache(store);
    await references.promoted('m', 'v1', 0);
    const { processor, sent } = setup(0, { now: NOW, references });
    // 32 invented versions, each twice, with v1 between them, in one window; then an event that closes it.
    const versions = Array.from({ length: 80 }, (_, i) => (i % 5 === 0 ? 'v1' : `invented-${i % 40}`));
    const batch = items(versions.map(() => NOW - 5_000)).map((item, i) => ({
      ...item,
      value: { ...item.value, model_version: versions[i]! },
    }));
    const result = await processor.process(batch, ctx);
    const refused = (result === undefined ? [] : (result.deadLetters ?? [])).map((d) => ({
      version: versions[Number(d.record.offset)],
      reason: d.reason,
    }));
    const invented = [...new Set(versions.filter((v) => v !== 'v1'))];
    const admitted = invented.slice(0, MAX_BORROWED_VERSIONS_PER_MODEL);
    expect(refused.some((r) => r.version === 'v1' || admitted.includes(r.version!))).toBe(false);
    expect(new Set(refused.map((r) => r.version))).toEqual(new Set(invented.slice(MAX_BORROWED_VERSIONS_PER_MODEL)));
    expect(refused[0]!.reason).toMatch(
      new RegExp(
        `already measures ${MAX_BORROWED_VERSIONS_PER_MODEL} versions of model "m" .*DRIFTLINE_DRIFT_MAX_BORROWED_VERSIONS`,
      ),
    );
    await processor.process(items([NOW - 3_000], 80), ctx);
    const partials = sent.map((m) => decodePartials(m.value)).filter((m) => m.type === 'partial');
    expect(new Set(partials.map((p) => p.version))).toEqual(new Set(['v1', ...admitted]));
    // Each admitted version has all its events: none was refused, then counted part-way.
    for (const p of partials) expect(p.events).toBe(versions.filter((v) => v === p.version).length);
  });
});

/**
 * The source topic deleted and created again after a previous owner recorded progress (found by a
 * regression review of db1feb7): the restored offsets were the old log's, so the new log's late
 * events below them were dropped as replays (outcome 'replayed'), never counted late.
 */
describe('stage-1 processor: a source log restarted after progress was restored', () => {
  const B = NOW - 60_000;
  const at = (times: number[], from: number) =>
    items(
      times.map((t) => B + t),
      from,
    );
  /** Stage one on `progress`, with the event counts by outcome and the partials it sends. */
  function restartable(progress: ProgressStore, options: { sourceIdleMs?: number; clock?: { now: number } } = {}) {
    const { sourceIdleMs, clock = { now: NOW } } = options;
    const registry = new Registry();
    const sent: PartialsMessage[] = [];
    const processor = stageOneProcessor({
      spec: { sizeMs: 1000, latenessMs: 0 },
      references: new ReferenceCache(store),
      progress,
      group: 'g',
      sourceTopic: 'p',
      sourcePartitions: 1,
      mergePartitions: 1,
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      now: () => clock.now,
      metrics: driftMetrics(registry),
      ...(sourceIdleMs === undefined ? {} : { sourceIdleMs, sourceIdleCheckMs: 1_000 }),
      decode: async (value) => JSON.parse(String(value)) as PredictionEvent,
      emit: async (messages) => {
        sent.push(...messages.map((m) => decodePartials(m.value)));
      },
    });
    const outcomes = async () =>
      Object.fromEntries(
        (await registry.getSingleMetric('driftline_drift_events_total')!.get()).values.map((v) => [
          v.labels.outcome,
          v.value,
        ]),
      );
    /** Window (ms after B) → [events, late] of its partials. */
    const windows = () =>
      sent.flatMap((m) => (m.type === 'partial' ? [[m.windowStart - B, m.events, m.late] as const] : []));
    return { processor, outcomes, windows };
  }
  /** drift_progress holding what an owner of the old log recorded: windows to B + 10 s closed, offsets to 1000. */
  const oldLogProgress = async () => {
    const progress = memoryProgress();
    await progress.save('stage1', 'g', 'p', 0, { position: B + 10_000, offset: 1000, lateFrom: 1000 });
    return progress;
  };

  it("counts the new log's events dated in closed windows late, and reopens no closed window", async () => {
    const { processor, outcomes, windows } = restartable(await oldLogProgress());
    // The old log from its restored offset: window 10 s closes, 11 s stays open.
    await processor.process(at([10_100, 10_200, 11_100], 1000), ctx);
    processor.logRestarted!('p', 0);
    // The new log from offset 0: three events of window 5 s (closed before the restart), one on time.
    await processor.process(at([5_100, 5_200, 5_300, 11_200], 0), ctx);
    expect(await outcomes()).toMatchObject({ late: 3 });
    expect((await outcomes()).replayed).toBeUndefined();
    await processor.process(at([12_500], 4), ctx); // closes window 11 s
    // Window 10 s once, before the restart; 5 s never again: its events are late in the open window.
    expect(windows()).toEqual([
      [10_000, 2, 0],
      [11_000, 2, 3],
    ]);
  });

  it('records the new log before its first batch: a new owner replaying it counts the same late events', async () => {
    const progress = await oldLogProgress();
    const first = restartable(progress);
    await first.processor.process(at([10_100, 10_200, 11_100], 1000), ctx);
    first.processor.logRestarted!('p', 0);
    const batch = at([5_100, 5_200, 5_300, 11_200], 0);
    const result = await first.processor.process(batch, ctx);
    // No window closed by the new log yet: what drift_progress holds is the restart's record.
    expect(await progress.load('stage1', 'g', 'p', 0)).toEqual({ position: B + 11_000, offset: 0, lateFrom: 0 });
    // The member stops; the next owner restores that progress and replays from the commit.
    const commit = Number((result as ProcessResult).commitOffset);
    const next = restartable(progress);
    await next.processor.process(batch.slice(commit), ctx);
    await next.processor.process(at([12_500], 4), ctx);
    expect(await next.outcomes()).toMatchObject({ late: 3 });
    expect(next.windows()).toEqual([[11_000, 1, 3]]); // the old log's event there went with the member
  });

  it('a restart no process here saw (the monitor down, or another member owning it): restored offsets past the end of the log are forgotten', async () => {
    const { processor, outcomes, windows } = restartable(await oldLogProgress());
    // No logRestarted: the consumer cannot tell (Kafka deleted the group's commits with the topic).
    await processor.process(at([5_100, 10_200, 11_200], 0), { ...ctx, highWatermark: '3' });
    await processor.process(at([12_500], 3), { ...ctx, highWatermark: '4' });
    // As when the restart is reported: before, the late event below offset 1000 was a replay, dropped.
    expect(await outcomes()).toMatchObject({ late: 1, added: 3 });
    expect((await outcomes()).replayed).toBeUndefined();
    expect(windows()).toEqual([
      [10_000, 1, 1],
      [11_000, 1, 0],
    ]);
  });

  it('restored offsets within the log being read are kept: its records below them are replays', async () => {
    const { processor, outcomes } = restartable(await oldLogProgress());
    // The same log, replayed from a commit below the restored offset (its end is past it).
    await processor.process(at([5_100, 10_200], 998), { ...ctx, highWatermark: '1500' });
    expect(await outcomes()).toMatchObject({ replayed: 1 });
  });

  it('a restart reported before the partition is owned again forgets the offsets of the progress then loaded', async () => {
    const { processor, outcomes, windows } = restartable(await oldLogProgress());
    // Revoked while the topic was gone; the consumer finds the restart at the first batch after.
    processor.logRestarted!('p', 0);
    await processor.process(at([5_100, 10_200, 11_200], 0), ctx);
    await processor.process(at([12_500], 3), ctx);
    expect(await outcomes()).toMatchObject({ late: 1, added: 3 });
    expect(windows()).toEqual([
      [10_000, 1, 1],
      [11_000, 1, 0],
    ]);
  });

  it('an idle advance after the restart records an offset of the new log', async () => {
    const progress = await oldLogProgress();
    const clock = { now: NOW };
    const { processor } = restartable(progress, { sourceIdleMs: 2_000, clock });
    await processor.process(at([10_100, 10_200, 11_100], 1000), ctx);
    processor.logRestarted!('p', 0);
    // Silent and read to its end (the new log is empty): the clock moves on processing time.
    for (let i = 0; i < 6; i++) {
      clock.now += 1_000;
      await processor.advanceIdle(async () => [0]);
    }
    const saved = await progress.load('stage1', 'g', 'p', 0);
    expect(saved?.position).toBeGreaterThan(B + 11_000);
    expect(saved).toMatchObject({ offset: 0, lateFrom: 0 });
  });

  it('a restart while an idle advance records the old log does not lose the record of the new one', async () => {
    const memory = await oldLogProgress();
    let release: (() => void) | undefined;
    const progress: ProgressStore = {
      load: memory.load,
      save: async (...args) => {
        if (release === undefined) await new Promise<void>((resolve) => (release = resolve));
        await memory.save(...args);
      },
    };
    const clock = { now: NOW };
    const { processor } = restartable(progress, { sourceIdleMs: 2_000, clock });
    release = () => {};
    await processor.process(at([10_100, 10_200, 11_100], 1000), ctx);
    release = undefined; // the idle advance's save waits
    let advance: Promise<void> | undefined;
    for (let i = 0; i < 6 && release === undefined; i++) {
      clock.now += 1_000;
      advance = processor.advanceIdle(async () => [0]);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    processor.logRestarted!('p', 0);
    release!();
    await advance;
    // The new log's first batch: late events only, no window closes.
    await processor.process(at([5_100], 0), ctx);
    expect(await memory.load('stage1', 'g', 'p', 0)).toMatchObject({ offset: 0, lateFrom: 0 });
  });
});
