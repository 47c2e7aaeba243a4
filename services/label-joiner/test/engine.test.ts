import {
  DEFAULT_EVENT_TIME_BOUNDS,
  DriftlineError,
  PoisonRecordError,
  parseEnv,
  SinkUnavailableError,
  silentLogger,
} from '@driftline/core';
import { backstopTtl, InMemoryJoinStore, type JoinConfig, type SourceReport } from '@driftline/join';
import { DEFAULT_MAX_REASON_BYTES, isolateRejected } from '@driftline/kafka';
import { createMetricsRegistry } from '@driftline/observability';
import type { LabelEvent, PredictionEvent } from '@driftline/schemas';
import type { ExpiredPredictionRow, JoinedRow, WrittenLookup } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { labelJoinerEnvShape, MAX_JOIN_LIFETIME_MS, toLabelJoinerConfig } from '../src/config.js';
import { JoinEngine, type JoinerRecord, validateLabel, validatePrediction } from '../src/engine.js';
import { EXPIRY_READ_BYTES, ExpiryScanner } from '../src/loops.js';

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const decoder = {
  prediction: (b: Buffer) => JSON.parse(b.toString()) as PredictionEvent,
  label: (b: Buffer) => JSON.parse(b.toString()) as LabelEvent,
};

function prediction(id: string, eventTime = 1_000): JoinerRecord {
  const event: PredictionEvent = {
    prediction_id: id,
    model: 'm',
    model_version: 'v1',
    entity_id: 'e',
    event_time: eventTime,
    features: { country: 'FR' },
    prediction: 0.7,
    predicted_class: null,
  };
  return { kind: 'prediction', event, raw: json(event) };
}

function label(id: string, eventTime = 2_000, value = 1): JoinerRecord {
  const event: LabelEvent = { prediction_id: id, model: 'm', event_time: eventTime, label: value };
  return { kind: 'label', event, raw: json(event) };
}

class FlakySink {
  joined: JoinedRow[] = [];
  expired: ExpiredPredictionRow[] = [];
  failNext = 0;
  async insertJoined(rows: readonly JoinedRow[]) {
    if (this.failNext-- > 0) throw new SinkUnavailableError('down');
    this.joined.push(...rows);
  }
  async insertExpired(rows: readonly ExpiredPredictionRow[]) {
    if (this.failNext-- > 0) throw new SinkUnavailableError('down');
    this.expired.push(...rows);
  }
  lookups: Array<ReadonlyArray<WrittenLookup>> = [];
  /**
   * What the warehouse answers: the predictions among `lookups` that have a joined or expired row
   * here, one per prediction time, within each look-up's prediction-time bounds.
   */
  async writtenPredictionRows(lookups: ReadonlyArray<WrittenLookup>) {
    if (this.failNext-- > 0) throw new SinkUnavailableError('down');
    this.lookups.push(lookups);
    const held = new Map<string, Map<number, boolean>>();
    for (const [rows, labeled] of [
      [this.expired, false],
      [this.joined, true],
    ] as const) {
      for (const r of rows) {
        const key = JSON.stringify([r.prediction.model, r.prediction.prediction_id]);
        const times = held.get(key) ?? new Map<number, boolean>();
        times.set(r.prediction.event_time, labeled || times.get(r.prediction.event_time) === true);
        held.set(key, times);
      }
    }
    return lookups.flatMap((l) =>
      [...(held.get(JSON.stringify([l.model, l.predictionId])) ?? [])]
        .filter(([t]) => t >= (l.from ?? -Infinity) && t <= (l.to ?? Infinity))
        .map(([predictionTime, labeled]) => ({
          model: l.model,
          predictionId: l.predictionId,
          labeled,
          predictionTime,
        })),
    );
  }
}

const config = { maxDelayMs: 10_000, graceMs: 0, tombstoneMs: 60_000 };
const TIME = { bounds: DEFAULT_EVENT_TIME_BOUNDS, now: Date.UTC(2024, 11, 2, 12, 0, 0) };

/** The scanner's clock options with one source ('test/0', the engine tests' only one) caught up. */
const clockOf = (c: JoinConfig, reports: () => SourceReport[] = () => [{ source: 'test/0', caughtUp: true }]) => ({
  maxDelayMs: c.maxDelayMs,
  graceMs: c.graceMs,
  positions: async () => reports(),
  counts: () => true,
});

/** An expiry scanner on the wall clock of `config` that may dead-letter nothing. */
function plainScanner(store: InMemoryJoinStore<Buffer, Buffer>, sink: FlakySink): ExpiryScanner {
  return new ExpiryScanner(
    store,
    decoder,
    sink,
    {
      ...clockOf(config),
      deadLetter: async () => {
        throw new Error('nothing here may be dead-lettered');
      },
    },
    createMetricsRegistry({ service: 't', defaultMetrics: false }),
  );
}

describe('JoinEngine', () => {
  it('joins once whatever the order, and a failed sink write is re-emitted on retry, never lost', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>(config);
    const sink = new FlakySink();
    const engine = new JoinEngine(store, decoder, sink, 3_600_000);
    await engine.process([label('a'), prediction('b')], 5, 'test/0');
    sink.failNext = 1;
    await expect(engine.process([prediction('a')], 6, 'test/0')).rejects.toThrow(/down/);
    expect(sink.joined).toHaveLength(0);
    // The consumer loop retries the same batch: the K state re-emits the same row.
    const stats = await engine.process([prediction('a')], 7, 'test/0');
    expect(stats.outcomes).toEqual({ 'prediction:replayed': 1 });
    expect(sink.joined.map((r) => [r.prediction.prediction_id, r.label.label, r.joinedAt])).toEqual([['a', 1, 6]]);
    // After the ack, replays are duplicates: no second row.
    expect((await engine.process([prediction('a'), label('a')], 8, 'test/0')).outcomes).toEqual({
      'prediction:duplicate': 1,
      'label:duplicate': 1,
    });
    expect(sink.joined).toHaveLength(1);
    // A duplicate inside one batch yields one row.
    await engine.process([label('b'), label('b')], 9, 'test/0');
    expect(sink.joined.map((r) => r.prediction.prediction_id)).toEqual(['a', 'b']);
    expect(await store.pendingCount('["m","v1",0]')).toBe(0);
  });

  it('the expiry scanner counts an unlabeled prediction once, even when the sink failed the first time', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>(config);
    const sink = new FlakySink();
    const engine = new JoinEngine(store, decoder, sink, 3_600_000);
    await engine.process([prediction('a', 1_000), prediction('b', 1_000), label('c', 50_000)], 0, 'test/0');
    const scanner = plainScanner(store, sink);
    sink.failNext = 1;
    await expect(scanner.pass(20_000)).rejects.toThrow(/down/);
    expect(await scanner.pass(20_000)).toBe(2);
    expect(await scanner.pass(20_000)).toBe(0);
    expect(sink.expired.map((r) => [r.prediction.prediction_id, r.deadline]).sort()).toEqual([
      ['a', 11_000],
      ['b', 11_000],
    ]);
    // A label arriving after its prediction expired is late: no join.
    expect((await engine.process([label('a', 1_500)], 20_001, 'test/0')).outcomes).toEqual({ 'label:late': 1 });
  });

  it('one expiry pass empties the outbox when the store cuts its reads by bytes (fewer rows than a batch)', async () => {
    // A store that hands out one expired row per read, as the Redis store does for large predictions.
    class OneRowAtATime extends InMemoryJoinStore<Buffer, Buffer> {
      override async unackedExpired(_limit: number, maxBytes?: number) {
        expect(maxBytes).toBe(EXPIRY_READ_BYTES);
        return super.unackedExpired(1);
      }
    }
    const store = new OneRowAtATime(config);
    const sink = new FlakySink();
    const engine = new JoinEngine(store, decoder, sink, 3_600_000);
    await engine.process([prediction('a', 1_000), prediction('b', 1_000), prediction('c', 1_000)], 0, 'test/0');
    const scanner = plainScanner(store, sink);
    expect(await scanner.pass(20_000)).toBe(3);
    expect(sink.expired.map((r) => r.prediction.prediction_id).sort()).toEqual(['a', 'b', 'c']);
  });

  it('expiry waits for the slowest partition: a label read late after an outage still joins', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>(config);
    const sink = new FlakySink();
    const engine = new JoinEngine(store, decoder, sink, 3_600_000);
    // Predictions flow (up to event time 55 s); labels/1 was down and has a backlog: it has
    // applied labels up to 3 s only. a's and b's deadlines are 11 s.
    await engine.process([prediction('a', 1_000), prediction('b', 1_000), prediction('z', 55_000)], 0, 'predictions/0');
    await engine.process([label('x', 3_000)], 0, 'labels/1');
    let reports: SourceReport[] = [];
    const scanner = new ExpiryScanner(
      store,
      decoder,
      sink,
      {
        ...clockOf(config, () => reports),
        deadLetter: async () => {
          throw new Error('nothing here may be dead-lettered');
        },
      },
      createMetricsRegistry({ service: 't', defaultMetrics: false }),
    );
    // Before this instance has reported its partitions (not yet in the group), nothing expires.
    expect(await scanner.pass(60_000)).toBe(0);
    reports = [
      { source: 'predictions/0', caughtUp: true },
      { source: 'labels/0', caughtUp: true },
      { source: 'labels/1', caughtUp: false },
    ];
    expect(await scanner.pass(60_000)).toBe(0);
    // The backlog is read: a's label (event time 5 s) joins.
    expect((await engine.process([label('a', 5_000)], 61_000, 'labels/1')).outcomes).toEqual({ 'label:joined': 1 });
    expect(await scanner.pass(62_000)).toBe(0); // labels/1 still behind, at 5 s
    reports = reports.map((r) => ({ ...r, caughtUp: true }));
    expect(await scanner.pass(63_000)).toBe(1); // caught up: b expires unlabeled, z is not due yet
    expect(sink.joined.map((r) => r.prediction.prediction_id)).toEqual(['a']);
    expect(sink.expired.map((r) => r.prediction.prediction_id)).toEqual(['b']);
  });

  it('while Kafka cannot say where the partitions are, the pass goes on from the last reports', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>(config);
    const sink = new FlakySink();
    const engine = new JoinEngine(store, decoder, sink, 3_600_000);
    await engine.process([prediction('a', 1_000), prediction('b', 40_000)], 0, 'test/0');
    let kafkaDown = false;
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (_o: object, msg?: string) => void warnings.push(msg ?? '') };
    const scanner = new ExpiryScanner(
      store,
      decoder,
      sink,
      {
        ...clockOf(config, () => {
          if (kafkaDown) throw new SinkUnavailableError('kafka down');
          return [{ source: 'test/0', caughtUp: true }];
        }),
        deadLetter: async () => {
          throw new Error('nothing here may be dead-lettered');
        },
        logger,
      },
      createMetricsRegistry({ service: 't', defaultMetrics: false }),
    );
    expect(await scanner.pass(20_000)).toBe(1); // a (deadline 11 s); the report holds at 20 s
    kafkaDown = true;
    // The clock stays where the last report left it: b (deadline 50 s) is not due at 60 s.
    expect(await scanner.pass(60_000)).toBe(0);
    expect(await scanner.pass(61_000)).toBe(0);
    expect(warnings).toEqual(['partition positions unavailable; expiry uses the last reports']); // once
    kafkaDown = false;
    expect(await scanner.pass(62_000)).toBe(1);
    expect(sink.expired.map((r) => r.prediction.prediction_id)).toEqual(['a', 'b']);
  });

  it('while Redis refuses to store the reports (OOM), the pass goes on from the stored ones and frees state', async () => {
    // Under noeviction OOM the expiry steps still run (they turn states into small tombstones), but
    // the pass aborted at the report write, exactly when memory had to be freed (found by a review).
    let oom = false;
    const store = new (class extends InMemoryJoinStore<Buffer, Buffer> {
      override async reportSources(reports: readonly SourceReport[], now: number): Promise<void> {
        if (oom) throw new SinkUnavailableError("OOM command not allowed when used memory > 'maxmemory'");
        await super.reportSources(reports, now);
      }
    })(config);
    const sink = new FlakySink();
    const engine = new JoinEngine(store, decoder, sink, 3_600_000);
    await engine.process([prediction('a', 1_000), prediction('b', 40_000)], 0, 'test/0');
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (_o: object, msg?: string) => void warnings.push(msg ?? '') };
    let at = 20_000;
    const scanner = new ExpiryScanner(
      store,
      decoder,
      sink,
      {
        ...clockOf(config),
        deadLetter: async () => {
          throw new Error('nothing here may be dead-lettered');
        },
        logger,
      },
      createMetricsRegistry({ service: 't', defaultMetrics: false }),
    );
    expect(await scanner.pass(at)).toBe(1); // a; this instance's report is stored at 20 s
    // c arrived late (deadline 12 s): due under the stored clock.
    await engine.process([prediction('c', 2_000)], 0, 'test/0');
    oom = true;
    at = 60_000;
    // The pass runs to its end on the stored reports: c expires (its state freed); b (deadline
    // 50 s) waits for a report that moves the clock. Said once.
    expect(await scanner.pass(at)).toBe(1);
    expect(await scanner.pass(at + 1_000)).toBe(0);
    expect(warnings).toEqual(['partition reports not stored; expiry uses the stored ones']);
    oom = false;
    expect(await scanner.pass(at + 2_000)).toBe(1);
    expect(sink.expired.map((r) => r.prediction.prediction_id)).toEqual(['a', 'c', 'b']);
  });

  it('the expiry scanner dead-letters rows it can never write and goes on; an outage acks nothing', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>(config);
    const engine = new JoinEngine(store, decoder, new FlakySink(), 3_600_000);
    // b's stored bytes no longer decode (a schema the registry lost, say); ClickHouse refuses c's row.
    const garbled: JoinerRecord = { ...prediction('b', 1_000), raw: Buffer.from('not json') };
    // A label far ahead moves the watermark past their deadlines.
    await engine.process(
      [prediction('a', 1_000), garbled, prediction('c', 1_000), prediction('d', 1_000), label('z', 50_000)],
      0,
      'test/0',
    );
    const sink = new (class extends FlakySink {
      override async insertExpired(rows: readonly ExpiredPredictionRow[]) {
        if (rows.some((r) => r.prediction.prediction_id === 'c')) throw new DriftlineError('SINK_REJECTED', 'refused');
        await super.insertExpired(rows);
      }
    })();
    const letters: Array<[string, string]> = [];
    let dlqDown = true;
    const scanner = new ExpiryScanner(
      store,
      decoder,
      sink,
      {
        ...clockOf(config),
        deadLetter: async (rows) => {
          if (dlqDown) throw new SinkUnavailableError('dlq down');
          for (const { row, error } of rows) letters.push([row.id, error.code]);
        },
      },
      createMetricsRegistry({ service: 't', defaultMetrics: false }),
    );
    // The dead-letter topic is down: retriable, nothing acknowledged (the rows come back next pass).
    await expect(scanner.pass(20_000)).rejects.toThrow(/dlq down/);
    dlqDown = false;
    expect(await scanner.pass(20_000)).toBe(2);
    expect(letters.sort()).toEqual([
      ['b', 'INTERNAL'],
      ['c', 'SINK_REJECTED'],
    ]);
    expect([...new Set(sink.expired.map((r) => r.prediction.prediction_id))].sort()).toEqual(['a', 'd']);
    // Acknowledged: the next pass has nothing left (before, b stayed at the head and every pass failed on it).
    expect(await scanner.pass(20_000)).toBe(0);
  });

  it('rejects unusable predictions as poison records', () => {
    const bad = prediction('');
    expect(() => validatePrediction(bad.event as PredictionEvent, TIME)).toThrow(/prediction_id must be/);
    const ok = prediction('p', TIME.now - 1_000).event as PredictionEvent;
    expect(() => validatePrediction({ ...ok, role: 'SHADOW' }, TIME)).toThrow(
      'prediction "p": role "SHADOW" is not production, canary or shadow',
    );
    expect(() => validatePrediction({ ...ok, model_version: 'v'.repeat(257) }, TIME)).toThrow(
      'prediction "p": model_version must be 1..256 characters (got 257)',
    );
    for (const role of ['production', 'canary', 'shadow'])
      expect(() => validatePrediction({ ...ok, role }, TIME)).not.toThrow();
    // A non-finite score of any version: it would be compared as 0.0 (JSON null read as 0).
    for (const score of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      expect(() => validatePrediction({ ...ok, scores: { v1: 0.4, v2: score } }, TIME)).toThrow(
        `prediction "p": scores["v2"] is ${score}: not a finite number`,
      );
    }
    expect(() => validatePrediction({ ...ok, scores: { v1: 0.4, v2: 0 } }, TIME)).not.toThrow();
    // Beyond ±1e100: squared and summed, it made a window's metrics NaN (stored null, never alerted).
    expect(() => validatePrediction({ ...ok, prediction: 1e200 }, TIME)).toThrow(
      'prediction "p": prediction is 1e+200: beyond ±1e+100',
    );
    const okLabel = label('a', TIME.now - 1_000).event as LabelEvent;
    expect(() => validateLabel({ ...okLabel, label: -1e200 }, TIME)).toThrow(
      'label of "a": label is -1e+200: beyond ±1e+100',
    );
    expect(() => validateLabel({ ...okLabel, value: 1e300 }, TIME)).toThrow(
      'label of "a": value is 1e+300: beyond ±1e+100',
    );
    expect(() => validateLabel({ ...okLabel, label: 1e100, value: -1e100 }, TIME)).not.toThrow();
    const longModel = { ...(label('a', TIME.now - 1_000).event as LabelEvent), model: 'm'.repeat(300) };
    expect(() => validateLabel(longModel, TIME)).toThrow('label of "a": model must be 1..256 characters (got 300)');
  });

  it('an over-long prediction id leaves the DLQ reason room to say why: the id is quoted to 64 characters', () => {
    const id = 'x'.repeat(2_000);
    const reason = (f: () => void) => {
      try {
        f();
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error('accepted');
    };
    const longPrediction = { ...(prediction('p', TIME.now - 1_000).event as PredictionEvent), prediction_id: id };
    const longLabel = { ...(label('a', TIME.now - 1_000).event as LabelEvent), prediction_id: id };
    for (const [side, message] of [
      ['prediction', reason(() => validatePrediction(longPrediction, TIME))],
      ['label of', reason(() => validateLabel(longLabel, TIME))],
    ] as const) {
      expect(message).toBe(`${side} "${'x'.repeat(64)}…": prediction_id must be 1..512 characters (got 2000)`);
      expect(Buffer.byteLength(message)).toBeLessThan(DEFAULT_MAX_REASON_BYTES);
    }
  });

  it("a classification model's label other than 0 or 1 is poison, naming the value and the task; regression takes any finite value (found by a review)", () => {
    const okLabel = label('a', TIME.now - 1_000).event as LabelEvent;
    for (const bad of [-1, 2, 0.5]) {
      expect(() => validateLabel({ ...okLabel, label: bad }, TIME, 'classification')).toThrow(PoisonRecordError);
      expect(() => validateLabel({ ...okLabel, label: bad }, TIME, 'classification')).toThrow(
        `label of "a": label ${bad} is not a class (0 or 1): model "m" is a classification model (DRIFTLINE_JOINER_TASK, DRIFTLINE_JOINER_MODEL_TASKS)`,
      );
      expect(() => validateLabel({ ...okLabel, label: bad }, TIME, 'regression')).not.toThrow();
    }
    for (const good of [0, 1]) {
      expect(() => validateLabel({ ...okLabel, label: good }, TIME, 'classification')).not.toThrow();
    }
  });

  it('counts and warns of joined labels a classification model cannot use (validated before its task was known)', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>(config);
    const sink = new FlakySink();
    const registry = createMetricsRegistry({ service: 't', defaultMetrics: false });
    const warnings: unknown[] = [];
    const logger = { ...silentLogger, warn: (fields: unknown) => warnings.push(fields) } as typeof silentLogger;
    const engine = new JoinEngine(store, decoder, sink, 3_600_000, registry, undefined, {
      taskOf: () => 'classification',
      logger,
    });
    await engine.process([prediction('a'), prediction('b'), prediction('c')], 1, 'test/0');
    await engine.process([label('a', 2_000, -1), label('b', 2_000, 1), label('c', 2_000, 2)], 2, 'test/1');
    expect(sink.joined).toHaveLength(3);
    expect(await registry.getSingleMetricAsString('driftline_joiner_invalid_labels_total')).toMatch(
      /model="m",service="t"} 2/,
    );
    expect(warnings).toEqual([{ invalidLabels: 2, model: 'm', prediction_id: 'a', label: -1 }]);
    // Rate-limited: the next one within the minute is counted, not logged.
    await engine.process([prediction('d')], 3, 'test/0');
    await engine.process([label('d', 2_000, -1)], 4, 'test/1');
    expect(warnings).toHaveLength(1);
    expect(await registry.getSingleMetricAsString('driftline_joiner_invalid_labels_total')).toMatch(
      /model="m",service="t"} 3/,
    );
  });

  it('a µs label or prediction is poison (DLQ with the reason) and never reaches the join state', async () => {
    const now = TIME.now;
    const usLabel = label('a', now * 1000);
    const usPrediction = prediction('b', now * 1000);
    expect(() => validateLabel(usLabel.event as LabelEvent, TIME)).toThrow(PoisonRecordError);
    expect(() => validateLabel(usLabel.event as LabelEvent, TIME)).toThrow(
      /^label of "a": event_time \d+ is [\d,]+ years in the future.*microseconds\?$/,
    );
    expect(() => validatePrediction(usPrediction.event as PredictionEvent, TIME)).toThrow(
      /^prediction "b": event_time \d+ is [\d,]+ years in the future.*microseconds\?$/,
    );
    const pre1900 = prediction('c', Date.UTC(1899, 11, 31));
    expect(() => validatePrediction(pre1900.event as PredictionEvent, TIME)).toThrow(/before the minimum 2000-01-01/);
    // What the consumer loop does: poison is dead-lettered, the rest joins as usual.
    const store = new InMemoryJoinStore<Buffer, Buffer>(config);
    const sink = new FlakySink();
    const engine = new JoinEngine(store, decoder, sink, 3_600_000);
    const batch = [prediction('a', now - 5_000), usLabel, label('a', now - 1_000)].filter((r) => {
      try {
        if (r.kind === 'label') validateLabel(r.event, TIME);
        else validatePrediction(r.event, TIME);
        return true;
      } catch {
        return false;
      }
    });
    await engine.process(batch, now, 'test/0');
    expect(sink.joined.map((r) => [r.prediction.prediction_id, r.label.event_time])).toEqual([['a', now - 1_000]]);
  });

  it('a stored side that no longer decodes rejects the one record that joined it, the rest of its batch joins (found by a review)', async () => {
    // What the codec answers for stored bytes whose schema id the registry no longer knows.
    let lost = { prediction: 'a', label: 'b' };
    const forget = <T extends { prediction_id: string }>(e: T, id: string): T => {
      if (e.prediction_id === id)
        throw new PoisonRecordError('DECODE_FAILED', 'schema id 17 is unknown to the registry');
      return e;
    };
    const forgetful = {
      prediction: (b: Buffer) => forget(decoder.prediction(b), lost.prediction),
      label: (b: Buffer) => forget(decoder.label(b), lost.label),
    };
    const store = new InMemoryJoinStore<Buffer, Buffer>(config);
    const sink = new FlakySink();
    const engine = new JoinEngine(store, forgetful, sink, 3_600_000);
    // a's prediction and b's label are stored (their bytes will not decode), as are c's and d's.
    await engine.process([prediction('a'), prediction('c')], 5, 'p/0');
    await engine.process([label('b'), label('d')], 5, 'l/0');
    // The consumer loop's delivery: a non-retriable failure is bisected down to the records at fault.
    const deliver = (source: string) => async (items: readonly JoinerRecord[]) => {
      await engine.process(items, 6, source);
    };
    const ofLabels = await isolateRejected([label('a'), label('c')], deliver('l/0'));
    const ofPredictions = await isolateRejected([prediction('b'), prediction('d')], deliver('p/0'));
    expect(
      [...ofLabels, ...ofPredictions].map(({ item, error }) => [
        item.kind,
        item.event.prediction_id,
        error.code,
        error.retriable,
      ]),
    ).toEqual([
      ['label', 'a', 'DECODE_FAILED', false],
      ['prediction', 'b', 'DECODE_FAILED', false],
    ]);
    expect(ofLabels[0]!.error.message).toMatch(
      /^the stored prediction of \["m","a"\] no longer decodes \(schema id 17 is unknown to the registry\)/,
    );
    expect(ofPredictions[0]!.error.message).toMatch(/^the stored label of \["m","b"\] no longer decodes/);
    // Before: INTERNAL, retriable, for the whole batch: c and d were never joined, the partition retried for ever.
    expect(sink.joined.map((r) => r.prediction.prediction_id).sort()).toEqual(['c', 'd']);
    // Nothing lost: the join state stays K, and the dead letters replayed once the schema is back join.
    lost = { prediction: '', label: '' };
    expect((await engine.process([{ ...label('a'), replayed: true }], 7, 'l/0')).outcomes).toEqual({
      'label:replayed': 1,
    });
    expect((await engine.process([{ ...prediction('b'), replayed: true }], 7, 'p/0')).outcomes).toEqual({
      'prediction:replayed': 1,
    });
    expect(sink.joined.map((r) => r.prediction.prediction_id).sort()).toEqual(['a', 'b', 'c', 'd']);
    // An outage of the decoder stays an outage: the batch fails retriably, nothing rejected.
    const down = new JoinEngine(
      new InMemoryJoinStore<Buffer, Buffer>(config),
      {
        ...decoder,
        prediction: () => {
          throw new DriftlineError('SOURCE_UNAVAILABLE', 'registry down', { retriable: true });
        },
      },
      new FlakySink(),
      3_600_000,
    );
    await down.process([prediction('e')], 5, 'p/0');
    await expect(
      isolateRejected([label('e')], async (items) => {
        await down.process(items, 6, 'l/0');
      }),
    ).rejects.toMatchObject({ code: 'SOURCE_UNAVAILABLE', retriable: true });
  });
});

describe('configuration and helpers', () => {
  it('parses durations, bounds and per-model tasks, naming the variable on error', () => {
    const env = {
      DRIFTLINE_REDIS_URL: 'redis://localhost:6379',
      DRIFTLINE_JOINER_MAX_LABEL_DELAY: '7d',
      DRIFTLINE_JOINER_WINDOW: '15m',
      DRIFTLINE_JOINER_ALERT_BOUNDS: 'accuracy<0.8,rmse>3',
      DRIFTLINE_JOINER_MODEL_TASKS: 'price:regression',
      DRIFTLINE_JOINER_SEGMENT_FEATURES: 'country, device',
    };
    const c = toLabelJoinerConfig(parseEnv(labelJoinerEnvShape, env));
    expect(c.join.maxDelayMs).toBe(604_800_000);
    expect(c.windowMs).toBe(900_000);
    expect(c.bounds).toHaveLength(2);
    expect(c.modelTasks.get('price')).toBe('regression');
    expect(c.segmentFeatures).toEqual(['country', 'device']);
    expect(() => parseEnv(labelJoinerEnvShape, { ...env, DRIFTLINE_JOINER_WINDOW: '15 minutes' })).toThrow(
      /^DRIFTLINE_JOINER_WINDOW: must be a duration/,
    );
    expect(() =>
      toLabelJoinerConfig(parseEnv(labelJoinerEnvShape, { ...env, DRIFTLINE_JOINER_ALERT_BOUNDS: 'auc<1' })),
    ).toThrow(/^DRIFTLINE_JOINER_ALERT_BOUNDS: unknown metric/);
    expect(() =>
      toLabelJoinerConfig(parseEnv(labelJoinerEnvShape, { ...env, DRIFTLINE_JOINER_MODEL_TASKS: 'price:ranking' })),
    ).toThrow(/^DRIFTLINE_JOINER_MODEL_TASKS:/);
  });

  it('bounds the session timeout by what a broker accepts (a longer one never joined the group)', () => {
    const env = { DRIFTLINE_REDIS_URL: 'redis://localhost:6379' };
    expect(() => parseEnv(labelJoinerEnvShape, { ...env, DRIFTLINE_JOINER_SESSION_TIMEOUT: '2h' })).toThrow(
      /^DRIFTLINE_JOINER_SESSION_TIMEOUT: must be at most 5m/,
    );
    expect(() => parseEnv(labelJoinerEnvShape, { ...env, DRIFTLINE_JOINER_SESSION_TIMEOUT: '1s' })).toThrow(
      /^DRIFTLINE_JOINER_SESSION_TIMEOUT: must be at least 6000 ms/,
    );
    const longest = parseEnv(labelJoinerEnvShape, { ...env, DRIFTLINE_JOINER_SESSION_TIMEOUT: '5m' });
    expect(toLabelJoinerConfig(longest).sessionTimeoutMs).toBe(300_000);
  });

  it('bounds the join lifetimes so the state TTL stays one the join scripts accept', () => {
    const env = { DRIFTLINE_REDIS_URL: 'redis://localhost:6379' };
    for (const variable of [
      'DRIFTLINE_JOINER_MAX_LABEL_DELAY',
      'DRIFTLINE_JOINER_EXPIRY_GRACE',
      'DRIFTLINE_JOINER_TOMBSTONE_TTL',
    ]) {
      expect(() => parseEnv(labelJoinerEnvShape, { ...env, [variable]: '1000000w' })).toThrow(
        new RegExp(`^${variable}: must be at most 365d`),
      );
    }
    const longest = toLabelJoinerConfig(
      parseEnv(labelJoinerEnvShape, {
        ...env,
        DRIFTLINE_JOINER_MAX_LABEL_DELAY: '365d',
        DRIFTLINE_JOINER_EXPIRY_GRACE: '365d',
        DRIFTLINE_JOINER_TOMBSTONE_TTL: '365d',
      }),
    );
    expect(longest.join.maxDelayMs).toBe(MAX_JOIN_LIFETIME_MS);
    // The join scripts take a TTL of at most 15 digits (ttl_arg in join-scripts.ts).
    expect(String(backstopTtl(longest.join)).length).toBeLessThanOrEqual(15);
    expect(String(longest.join.tombstoneMs).length).toBeLessThanOrEqual(15);
  });
});

describe('join keys', () => {
  it('a label without its model is poison: the join is keyed by (model, prediction id)', () => {
    const l = label('a', TIME.now - 1_000);
    expect(() => validateLabel({ ...(l.event as LabelEvent), model: '' }, TIME)).toThrow(PoisonRecordError);
    expect(() => validateLabel({ ...(l.event as LabelEvent), model: '' }, TIME)).toThrow(
      'label of "a": model must be 1..256 characters (got 0)',
    );
  });

  it('two models sharing a prediction id each join their own label', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>(config);
    const sink = new FlakySink();
    const engine = new JoinEngine(store, decoder, sink, 3_600_000);
    const of = (r: JoinerRecord, model: string, value?: number): JoinerRecord => {
      const event = { ...r.event, model, ...(value === undefined ? {} : { label: value }) };
      return { ...r, event, raw: json(event) } as JoinerRecord;
    };
    await engine.process([of(prediction('x'), 'a'), of(label('x', 2_000, 1), 'b')], 1, 'test/0');
    await engine.process([of(prediction('x'), 'b'), of(label('x', 2_000, 0), 'a')], 2, 'test/0');
    expect(sink.joined.map((r) => [r.prediction.model, r.label.model, r.label.label]).sort()).toEqual([
      ['a', 'a', 0],
      ['b', 'b', 1],
    ]);
  });
});

describe('JoinEngine: shadow records and paired scores', () => {
  it('never joins a shadow record (counted, no state); the answered record carries the scores and the label value', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>(config);
    const sink = new FlakySink();
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const engine = new JoinEngine(store, decoder, sink, 3_600_000, registry);
    const answered = prediction('a');
    const paired: PredictionEvent = {
      ...answered.event,
      role: 'canary',
      scores: { v1: 0.7, v2: 0.4 },
    } as PredictionEvent;
    const shadowEvent: PredictionEvent = {
      ...paired,
      prediction_id: 'a.shadow.v2',
      model_version: 'v2',
      role: 'shadow',
      scores: null,
    };
    const valued: LabelEvent = { prediction_id: 'a', model: 'm', event_time: 2_000, label: 1, value: 125.5 };
    const stats = await engine.process(
      [
        { kind: 'prediction', event: paired, raw: json(paired) },
        { kind: 'prediction', event: shadowEvent, raw: json(shadowEvent) },
        { kind: 'label', event: valued, raw: json(valued) },
      ],
      5,
      'test/0',
    );
    expect(stats.outcomes).toMatchObject({ 'prediction:shadow': 1, 'prediction:pending': 1, 'label:joined': 1 });
    expect(
      sink.joined.map((r) => [r.prediction.prediction_id, r.prediction.role, r.prediction.scores, r.label.value]),
    ).toEqual([['a', 'canary', { v1: 0.7, v2: 0.4 }, 125.5]]);
    // No state for the shadow id: nothing pending, nothing to expire.
    expect([...store.states.keys()].some((k) => k.includes('shadow'))).toBe(false);
    expect(await registry.getSingleMetricAsString('driftline_joiner_events_total')).toMatch(
      /kind="prediction",outcome="shadow",service="test"} 1/,
    );
  });
});

describe('JoinEngine: dead letters replayed after the tombstone expired (driftline dlq replay)', () => {
  const replayed = (r: JoinerRecord): JoinerRecord => ({ ...r, replayed: true });

  it('skips a replayed prediction or label whose prediction the warehouse holds: no pending, no state, no second row', async () => {
    // Tombstones of 1 ms: what an hour leaves of them by default.
    const store = new InMemoryJoinStore<Buffer, Buffer>({ ...config, tombstoneMs: 1 });
    const sink = new FlakySink();
    const registry = createMetricsRegistry({ service: 't', defaultMetrics: false });
    const engine = new JoinEngine(store, decoder, sink, 3_600_000, registry);
    await engine.process([prediction('a'), prediction('b')], 1, 'test/0');
    await engine.process([label('a')], 2, 'test/1');
    await plainScanner(store, sink).pass(20_000); // b expires unlabeled
    expect(sink.joined.map((r) => r.prediction.prediction_id)).toEqual(['a']);
    expect(sink.expired.map((r) => r.prediction.prediction_id)).toEqual(['b']);
    expect(await store.scheduledCount()).toBe(0);
    // Hours later, another group's dead letters come back under new offsets, with the header.
    const stats = await engine.process([replayed(prediction('a')), replayed(prediction('b'))], 30_000, 'test/0');
    expect(stats.outcomes).toEqual({ 'prediction:replay-duplicate': 2 });
    const labels = await engine.process([replayed(label('a')), replayed(label('b'))], 30_001, 'test/1');
    expect(labels.outcomes).toEqual({ 'label:replay-duplicate': 2 });
    expect(await store.scheduledCount()).toBe(0);
    expect(await store.pendingCount('["m","v1",0]')).toBe(0);
    // No live state either (only the expired tombstones the memory store drops when read).
    expect([...store.states.values()].filter((e) => e.expiresAt > 30_001)).toEqual([]);
    expect(sink.joined).toHaveLength(1);
    expect(await registry.getSingleMetricAsString('driftline_joiner_events_total')).toMatch(
      /kind="prediction",outcome="replay-duplicate",service="t"} 2/,
    );
  });

  it('looks up replayed records only; a replayed record the warehouse lacks takes its transition', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>(config);
    const sink = new FlakySink();
    const engine = new JoinEngine(store, decoder, sink, 3_600_000);
    await engine.process([prediction('a'), label('b')], 1, 'test/0');
    expect(sink.lookups).toEqual([]); // records without the header pay nothing
    // The joiner's own dead letter of c, replayed after a fix: new to it, so pending as usual.
    const stats = await engine.process([replayed(prediction('c')), prediction('d')], 2, 'test/0');
    expect(stats.outcomes).toEqual({ 'prediction:pending': 2 });
    expect(sink.lookups).toEqual([[{ model: 'm', predictionId: 'c', from: 1_000, to: 1_000 }]]);
    // A replayed label of a prediction still pending joins it.
    expect((await engine.process([replayed(label('a'))], 3, 'test/0')).outcomes).toEqual({ 'label:joined': 1 });
  });

  it('an outage of the look-up fails the batch before anything is applied (retriable)', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>(config);
    const sink = new FlakySink();
    const engine = new JoinEngine(store, decoder, sink, 3_600_000);
    sink.failNext = 1;
    const failed = engine.process([prediction('x'), replayed(prediction('a'))], 1, 'test/0');
    await expect(failed).rejects.toBeInstanceOf(SinkUnavailableError);
    expect(store.states.size).toBe(0);
    expect(await store.scheduledCount()).toBe(0);
    expect(store.watermarks.size).toBe(0);
    // The consumer loop retries the batch.
    expect((await engine.process([prediction('x'), replayed(prediction('a'))], 2, 'test/0')).outcomes).toEqual({
      'prediction:pending': 2,
    });
  });
});

describe('JoinEngine: copies after the tombstones, labels after the expiry (checked against the warehouse)', () => {
  const MINUTE = 60_000;
  const HOUR = 60 * MINUTE;
  const T = Date.UTC(2026, 11, 1, 10);
  // Tombstones of 2 h, the event-time bound of 1 h: predictions dated an hour before now (less
  // the clock allowance) are looked up; labels read more than the grace after their event time.
  const join = { maxDelayMs: HOUR, graceMs: 5 * MINUTE, tombstoneMs: 2 * HOUR };
  const check = (store: InMemoryJoinStore<Buffer, Buffer>) => ({
    config: { ...join, maxFutureMs: HOUR },
    states: store,
  });
  const at = (id: string, t: number) => prediction(id, t);
  const labelAt = (id: string, t: number) => label(id, t);

  function scanner(store: InMemoryJoinStore<Buffer, Buffer>, sink: FlakySink): ExpiryScanner {
    return new ExpiryScanner(
      store,
      decoder,
      sink,
      {
        ...clockOf(join),
        deadLetter: async () => {
          throw new Error('nothing here may be dead-lettered');
        },
      },
      createMetricsRegistry({ service: 't', defaultMetrics: false }),
    );
  }

  it('a prediction sent again without the header after its tombstone expired is a sink-duplicate: no pending, no second tally; live ones are not looked up', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>(join);
    const sink = new FlakySink();
    const engine = new JoinEngine(store, decoder, sink, HOUR, undefined, undefined, undefined, check(store));
    await engine.process([at('a', T), at('b', T)], T + MINUTE, 'test/0');
    await engine.process([labelAt('a', T + MINUTE)], T + 2 * MINUTE, 'test/1');
    await scanner(store, sink).pass(T + HOUR + 10 * MINUTE); // b expires unlabeled
    expect(sink.lookups).toEqual([]); // live traffic: nothing looked up
    // Three hours later (tombstones gone), a producer publishes both again, with a live one.
    const now = T + 3 * HOUR;
    const stats = await engine.process([at('a', T), at('b', T), at('c', now - 30_000)], now, 'test/0');
    expect(stats.outcomes).toEqual({ 'prediction:sink-duplicate': 2, 'prediction:pending': 1 });
    expect(sink.lookups.at(-1)).toEqual([
      { model: 'm', predictionId: 'a', from: T, to: T },
      { model: 'm', predictionId: 'b', from: T, to: T },
    ]);
    expect(await store.pendingCount(`["m","v1",${T}]`)).toBe(0);
    expect(await store.scheduledCount()).toBe(1); // c only
    expect([sink.joined.length, sink.expired.length]).toEqual([1, 1]);
    // Without the check (the old behaviour): pending again, for the max delay.
    const unchecked = new JoinEngine(store, decoder, sink, HOUR);
    expect((await unchecked.process([at('a', T)], now + 1, 'test/0')).outcomes).toEqual({ 'prediction:pending': 1 });
  });

  it('an outage of the look-up fails the batch before anything is applied (retriable)', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>(join);
    const sink = new FlakySink();
    const engine = new JoinEngine(store, decoder, sink, HOUR, undefined, undefined, undefined, check(store));
    sink.failNext = 1;
    const now = T + 3 * HOUR;
    await expect(engine.process([at('x', T), at('y', now)], now, 'test/0')).rejects.toBeInstanceOf(
      SinkUnavailableError,
    );
    expect(store.states.size).toBe(0);
    expect(store.watermarks.size).toBe(0);
    expect((await engine.process([at('x', T), at('y', now)], now, 'test/0')).outcomes).toEqual({
      'prediction:pending': 2,
    });
  });

  it('a K whose row the warehouse holds is acknowledged when its redelivered record is skipped: J, window dirty', async () => {
    class AckFailsOnce extends InMemoryJoinStore<Buffer, Buffer> {
      fail = true;
      override async ackJoined(refs: Parameters<InMemoryJoinStore<Buffer, Buffer>['ackJoined']>[0], now: number) {
        if (this.fail) {
          this.fail = false;
          throw new SinkUnavailableError('redis down');
        }
        return super.ackJoined(refs, now);
      }
    }
    const store = new AckFailsOnce(join);
    const sink = new FlakySink();
    const engine = new JoinEngine(store, decoder, sink, HOUR, undefined, undefined, undefined, check(store));
    // A backfill: the label waits, its prediction (3 h old) joins it, the row is written, the ack fails.
    const now = T + 3 * HOUR;
    await engine.process([labelAt('a', T + MINUTE)], now, 'test/1');
    await expect(engine.process([at('a', T)], now, 'test/0')).rejects.toBeInstanceOf(SinkUnavailableError);
    expect(sink.joined).toHaveLength(1);
    expect(store.states.get(JSON.stringify(['m', 'a']))?.state.tag).toBe('K');
    for (const { key, mark } of await store.dirtyWindows(10)) await store.clearDirty(key, mark);
    // The batch is retried: the prediction is looked up, its row is there: skipped, K acknowledged.
    const stats = await engine.process([at('a', T)], now + 1, 'test/0');
    expect(stats.outcomes).toEqual({ 'prediction:sink-duplicate': 1 });
    expect(store.states.get(JSON.stringify(['m', 'a']))?.state.tag).toBe('J');
    expect((await store.dirtyWindows(10)).map((d) => d.key)).toEqual([`["m","v1",${T - (T % HOUR)}]`]);
    expect(sink.joined).toHaveLength(1);
  });

  it('a label on time by event time read after its prediction expired is expired-before-label (warned of once a minute, naming the grace); a late one stays late', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>(join);
    const sink = new FlakySink();
    const warnings: Array<{ obj: unknown; msg: string }> = [];
    const logger = {
      ...silentLogger,
      warn: (obj: unknown, msg?: string) => void warnings.push({ obj, msg: msg ?? '' }),
    };
    const registry = createMetricsRegistry({ service: 't', defaultMetrics: false });
    const engine = new JoinEngine(store, decoder, sink, HOUR, registry, undefined, undefined, {
      ...check(store),
      logger,
    });
    await engine.process([at('a', T), at('b', T), at('c', T)], T + MINUTE, 'test/0');
    // Deadline T + 1 h, grace 5 min: expired at T + 1 h 5 min; its tombstone (X) is still there.
    await scanner(store, sink).pass(T + HOUR + 6 * MINUTE);
    expect(sink.expired).toHaveLength(3);
    // A batch published 10 minutes after the deadline: a's label observed a minute before it, b's
    // a minute after it (late).
    const now = T + HOUR + 10 * MINUTE;
    const stats = await engine.process(
      [labelAt('a', T + HOUR - MINUTE), labelAt('b', T + HOUR + MINUTE)],
      now,
      'test/1',
    );
    expect(stats.outcomes).toEqual({ 'label:expired-before-label': 1, 'label:late': 1 });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toContain('DRIFTLINE_JOINER_EXPIRY_GRACE');
    expect(warnings[0]?.obj).toMatchObject({
      expiredBeforeLabel: 1,
      prediction_id: 'a',
      readAfterDeadline: '10 minutes',
    });
    // Within the minute: counted, not warned; after it, one line with the count since.
    await engine.process([labelAt('c', T + HOUR - MINUTE)], now + 1_000, 'test/1');
    expect(warnings).toHaveLength(1);
    await engine.process([labelAt('a', T + HOUR - MINUTE)], now + 61_000, 'test/1');
    expect(warnings).toHaveLength(2);
    expect(warnings[1]?.obj).toMatchObject({ expiredBeforeLabel: 2 });
    expect(await store.scheduledCount()).toBe(0);
    expect(await registry.getSingleMetricAsString('driftline_joiner_events_total')).toMatch(
      /kind="label",outcome="expired-before-label",service="t"} 3/,
    );
    // A live label (read a minute after its event time) is not looked up.
    const lookups = sink.lookups.length;
    await engine.process([labelAt('z', now)], now + MINUTE, 'test/1');
    expect(sink.lookups).toHaveLength(lookups);
  });

  it('copies skipped are one info line a minute with the count since the last, not one per batch', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>({ ...join, tombstoneMs: 1 });
    const sink = new FlakySink();
    const infos: Array<{ obj: unknown; msg: string }> = [];
    const logger = { ...silentLogger, info: (obj: object, msg?: string) => void infos.push({ obj, msg: msg ?? '' }) };
    const engine = new JoinEngine(store, decoder, sink, HOUR, undefined, undefined, undefined, {
      ...check(store),
      logger,
    });
    const ids = ['a', 'b', 'c', 'd'];
    await engine.process(
      ids.map((id) => at(id, T)),
      T + MINUTE,
      'test/0',
    );
    await scanner(store, sink).pass(T + HOUR + 10 * MINUTE);
    expect(sink.expired).toHaveLength(4);
    // A producer re-sends them three hours later, one per batch.
    const now = T + 3 * HOUR;
    for (const [n, id] of ids.slice(0, 3).entries()) {
      expect((await engine.process([at(id, T)], now + n * 1_000, 'test/0')).outcomes).toEqual({
        'prediction:sink-duplicate': 1,
      });
    }
    expect(infos).toHaveLength(1);
    expect(infos[0]?.obj).toMatchObject({ skipped: 1 });
    await engine.process([at('d', T)], now + 61_000, 'test/0');
    expect(infos).toHaveLength(2);
    expect(infos[1]?.obj).toMatchObject({ skipped: 3 });
  });
});

describe('JoinEngine: labels whose prediction is pending are not looked up (found by a review)', () => {
  const MINUTE = 60_000;
  const HOUR = 60 * MINUTE;
  const DAY = 24 * HOUR;
  const T = Date.UTC(2026, 10, 1);
  // The service's defaults: 7 d max delay, 5 min grace, 2 h tombstones, 1 h event-time bound.
  const join = { maxDelayMs: 7 * DAY, graceMs: 5 * MINUTE, tombstoneMs: 2 * HOUR };
  const engineOf = (store: InMemoryJoinStore<Buffer, Buffer>, sink: FlakySink) =>
    new JoinEngine(store, decoder, sink, HOUR, undefined, undefined, undefined, {
      config: { ...join, maxFutureMs: HOUR },
      states: store,
    });

  it('a label read 3 h after its event time joins its pending prediction without a query; one whose prediction is absent is looked up', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>(join);
    const sink = new FlakySink();
    const engine = engineOf(store, sink);
    await engine.process([prediction('a', T)], T + MINUTE, 'test/0');
    // An ordinary delayed label: observed an hour after the prediction, read 3 h after that. Its
    // look-up read the model's predictions as far back as the label's lag, and could never find
    // anything: a pending prediction has no row.
    const now = T + 4 * HOUR;
    const stats = await engine.process([label('a', T + HOUR)], now, 'test/1');
    expect(stats.outcomes).toEqual({ 'label:joined': 1 });
    expect(sink.lookups).toEqual([]);
    // A label whose prediction the state does not know (never read, or joined or expired longer
    // ago than the tombstones last) is still looked up, over the times of predictions whose expiry
    // the state can have forgotten (expired more than the tombstone TTL ago).
    expect((await engine.process([label('b', T + HOUR)], now, 'test/1')).outcomes).toEqual({ 'label:waiting': 1 });
    expect(sink.lookups).toEqual([
      [{ model: 'm', predictionId: 'b', from: T + HOUR - 7 * DAY, to: now - 7 * DAY - 5 * MINUTE - 2 * HOUR + MINUTE }],
    ]);
    // Read within grace + tombstone TTL of its event time, such a label is not looked up at all.
    expect((await engine.process([label('c', now - 2 * HOUR)], now, 'test/1')).outcomes).toEqual({
      'label:waiting': 1,
    });
    expect(sink.lookups).toHaveLength(1);
  });

  it('an id the model used again: the label of its pending second prediction joins it, though the first expired in the label’s range', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>(join);
    const sink = new FlakySink();
    const engine = engineOf(store, sink);
    const expire = new ExpiryScanner(
      store,
      decoder,
      sink,
      {
        ...clockOf(join),
        deadLetter: async () => {
          throw new Error('nothing here may be dead-lettered');
        },
      },
      createMetricsRegistry({ service: 't', defaultMetrics: false }),
    );
    // The first prediction with id p expires unlabeled; its tombstone goes.
    await engine.process([prediction('p', T)], T + MINUTE, 'test/0');
    await expire.pass(T + 7 * DAY + 10 * MINUTE);
    expect(sink.expired.map((r) => r.prediction.event_time)).toEqual([T]);
    // A second prediction with id p, six days later, read in a backfill: another prediction (its
    // own time has no row), pending.
    const now = T + 7 * DAY + 3 * HOUR;
    const second = T + 6 * DAY;
    expect((await engine.process([prediction('p', second)], now, 'test/0')).outcomes).toEqual({
      'prediction:pending': 1,
    });
    // Its label, on time: joined (it was dropped as expired-before-label, the first's row being
    // in the label's range).
    const stats = await engine.process([label('p', second + HOUR)], now + 10 * MINUTE, 'test/1');
    expect(stats.outcomes).toEqual({ 'label:joined': 1 });
    expect(sink.joined.map((r) => r.prediction.event_time)).toEqual([second]);
  });

  it('a label read before its lagging prediction joins it, though an older prediction with its id expired within its range minutes before (found by a review)', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>(join);
    const sink = new FlakySink();
    const engine = engineOf(store, sink);
    const T1 = T + 3 * DAY;
    // The warehouse holds the expired row of an older prediction p, dated 7 d − 12 min before the
    // new one (due 7 minutes before the label is read), and the state holds no X of it.
    const older = JSON.parse(prediction('p', T1 + 12 * MINUTE - 7 * DAY).raw.toString()) as PredictionEvent;
    sink.expired.push({ prediction: older, deadline: older.event_time + join.maxDelayMs, expiredAt: T1 + 17 * MINUTE });
    // The new prediction p (T1) lags behind its label (T1 + 10 min, read 10 minutes later).
    const now = T1 + 20 * MINUTE;
    const labels = await engine.process([label('p', T1 + 10 * MINUTE)], now, 'test/1');
    // It waits: had the older prediction expired that recently, its state would be X. (It was
    // dropped as expired-before-label, and the new prediction then expired unlabeled.)
    expect(labels.outcomes).toEqual({ 'label:waiting': 1 });
    expect(sink.lookups).toEqual([]);
    const predictions = await engine.process([prediction('p', T1)], now + 5 * MINUTE, 'test/0');
    expect(predictions.outcomes).toEqual({ 'prediction:joined': 1 });
    expect(sink.joined.map((r) => [r.prediction.event_time, r.label.event_time])).toEqual([[T1, T1 + 10 * MINUTE]]);
  });

  it('the same when the older prediction was joined and its J tombstone is gone: the new label is no sink-duplicate', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>(join);
    const sink = new FlakySink();
    const engine = engineOf(store, sink);
    // The older p joins its label at once; its J tombstone lasts 2 h.
    await engine.process([prediction('p', T)], T + MINUTE, 'test/0');
    await engine.process([label('p', T + 2 * MINUTE)], T + 3 * MINUTE, 'test/1');
    expect(sink.joined).toHaveLength(1);
    // Seven days later the model uses p again (T1, 12 minutes before the older one's deadline); its
    // label is read first, 10 minutes after its event time. The older row is in its range.
    const T1 = T + 7 * DAY - 12 * MINUTE;
    const now = T1 + 20 * MINUTE;
    expect((await engine.process([label('p', T1 + 10 * MINUTE)], now, 'test/1')).outcomes).toEqual({
      'label:waiting': 1,
    });
    expect((await engine.process([prediction('p', T1)], now + 5 * MINUTE, 'test/0')).outcomes).toEqual({
      'prediction:joined': 1,
    });
    expect(sink.joined.map((r) => r.prediction.event_time)).toEqual([T, T1]);
  });

  it('a label of a truly expired prediction whose X is gone is still expired-before-label; with its X, too', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>(join);
    const sink = new FlakySink();
    const engine = engineOf(store, sink);
    const expire = new ExpiryScanner(
      store,
      decoder,
      sink,
      {
        ...clockOf(join),
        deadLetter: async () => {
          throw new Error('nothing here may be dead-lettered');
        },
      },
      createMetricsRegistry({ service: 't', defaultMetrics: false }),
    );
    await engine.process([prediction('a', T), prediction('b', T)], T + MINUTE, 'test/0');
    // Both due at T + 7 d; expired by the pass 5 minutes later (the grace).
    await expire.pass(T + 7 * DAY + 5 * MINUTE);
    expect(sink.expired).toHaveLength(2);
    // An hour later b's label (on time by a minute) is read: its X is there.
    const b = await engine.process([label('b', T + 7 * DAY - MINUTE)], T + 7 * DAY + HOUR, 'test/1');
    expect(b.outcomes).toEqual({ 'label:expired-before-label': 1 });
    // A nightly batch, 3 h after the expiry: a's X is gone (2 h); its row is old enough to be forgotten.
    const now = T + 7 * DAY + 3 * HOUR;
    expect(await store.stateTags([{ model: 'm', id: 'a' }], now)).toEqual([undefined]);
    const a = await engine.process([label('a', T + 7 * DAY - MINUTE)], now, 'test/1');
    expect(a.outcomes).toEqual({ 'label:expired-before-label': 1 });
    expect(await store.scheduledCount()).toBe(0);
  });
});
