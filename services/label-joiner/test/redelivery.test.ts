import { DriftlineError } from '@driftline/core';
import { InMemoryJoinStore } from '@driftline/join';
import type { LabelEvent, PredictionEvent } from '@driftline/schemas';
import type { ExpiredPredictionRow, JoinedRow } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { batchSpan, JoinEngine, type JoinerRecord } from '../src/engine.js';
import { RestartedLogs } from '../src/restarts.js';

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const decoder = {
  prediction: (b: Buffer) => JSON.parse(b.toString()) as PredictionEvent,
  label: (b: Buffer) => JSON.parse(b.toString()) as LabelEvent,
};

function prediction(id: string, offset: number, appendTime?: number, role?: 'shadow'): JoinerRecord {
  const event: PredictionEvent = {
    prediction_id: id,
    model: 'm',
    model_version: 'v1',
    entity_id: 'e',
    event_time: 1_000,
    features: {},
    prediction: 0.7,
    predicted_class: null,
    ...(role === undefined ? {} : { role }),
  };
  return { kind: 'prediction', event, raw: json(event), offset, ...(appendTime === undefined ? {} : { appendTime }) };
}

function label(id: string, offset: number, appendTime: number): JoinerRecord {
  const event: LabelEvent = { prediction_id: id, model: 'm', event_time: 2_000, label: 1 };
  return { kind: 'label', event, raw: json(event), offset, appendTime };
}

const sink = {
  joined: [] as JoinedRow[],
  async insertJoined(rows: readonly JoinedRow[]) {
    this.joined.push(...rows);
  },
  async insertExpired(_rows: readonly ExpiredPredictionRow[]) {},
  async writtenPredictionRows() {
    return [];
  },
};

describe('batchSpan', () => {
  it('covers every record of the batch, shadow ones included, with the greatest Kafka timestamp', () => {
    expect(
      batchSpan([prediction('a', 4, 10), prediction('a.shadow.v2', 5, 30, 'shadow'), prediction('b', 6, 20)]),
    ).toEqual({ first: 4, last: 6, maxAppendTime: 30 });
    expect(batchSpan([prediction('a', 4, 10)], true)).toEqual({ first: 4, last: 4, maxAppendTime: 10, restart: true });
  });

  it('has no time when a record has none (the store then drops the marker), and no span without offsets', () => {
    expect(batchSpan([prediction('a', 4, 10), prediction('b', 5)])).toEqual({ first: 4, last: 5 });
    const { offset: _, ...unplaced } = prediction('a', 4, 10);
    expect(batchSpan([unplaced])).toBeUndefined();
    expect(batchSpan([])).toBeUndefined();
  });
});

describe('JoinEngine: a redelivery after the tombstone expired', () => {
  it('is a duplicate: the prediction is not pending again (fails without the applied marker)', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>({ maxDelayMs: 10_000, graceMs: 0, tombstoneMs: 1 });
    const engine = new JoinEngine(store, decoder, sink, 3_600_000);
    await engine.process([prediction('a', 0, 100)], 1_000, 'p/0');
    await engine.process([label('a', 0, 110)], 1_001, 'l/0');
    expect(sink.joined).toHaveLength(1);
    // Hours later (the J tombstone is gone), the prediction partition is read again from offset 0.
    const replay = await engine.process([prediction('a', 0, 100)], 10_000_000, 'p/0');
    expect(replay.outcomes).toEqual({ 'prediction:duplicate': 1 });
    expect(store.schedule.size).toBe(0);
    // The same partition assigned with no committed offset (a recreated topic): applied as new.
    const restarted = await engine.process([prediction('a', 0, 50)], 10_000_001, 'p/0', { restart: true });
    expect(restarted.outcomes).toEqual({ 'prediction:pending': 1 });
  });
});

describe('RestartedLogs', () => {
  it("reads the group's commits once per topic after each join, until a partition's batch is applied", async () => {
    const asked: string[] = [];
    const commits = new Map([
      [
        't',
        new Map([
          [0, 5n],
          [1, -1n],
        ]),
      ],
    ]);
    const logs = new RestartedLogs(async (topic) => {
      asked.push(topic);
      return commits.get(topic) ?? new Map();
    });
    expect(await logs.check('t', 0, 5)).toEqual({ restart: false, generation: 0 });
    const first = await logs.check('t', 1, 0);
    expect(first.restart).toBe(true);
    expect((await logs.check('t', 2, 0)).restart).toBe(true); // no entry at all: nothing committed
    expect((await logs.check('t', 1, 0)).restart).toBe(true); // not applied yet: still no commit
    logs.applied('t', 1, first, 9);
    expect(await logs.check('t', 1, 10)).toEqual({ restart: false, generation: 0 });
    expect(asked).toHaveLength(1); // the group's commits as read after its join, once per topic
    // A batch that began before a rebalance does not spare the partition its question after it.
    const before = await logs.check('t', 0, 5);
    logs.rebalanced();
    logs.applied('t', 0, before, 9);
    commits.get('t')?.set(0, -1n); // read again after the join: the topic was recreated meanwhile
    expect(await logs.check('t', 0, 5)).toEqual({ restart: true, generation: 1 });
    expect(asked).toHaveLength(2);
  });

  it("a partition's first batch below the commit read at the join asks again: its log may have been recreated since, with no rejoin (found by a review)", async () => {
    let commits = new Map([
      [0, 500n],
      [1, 10n],
    ]);
    const logs = new RestartedLogs(async () => commits);
    expect((await logs.check('t', 0, 500)).restart).toBe(false); // reads, and keeps, the commits
    commits = new Map(); // topic deleted and recreated: Kafka deleted the group's commits
    expect((await logs.check('t', 1, 0)).restart).toBe(true);
    // At the commit, or past it, the join's read stands (no second look-up).
    commits = new Map([[2, 7n]]);
    const again = new RestartedLogs(async () => commits);
    expect((await again.check('t', 2, 7)).restart).toBe(false);
  });

  it('counts a refused look-up as no commit (the marker dropped), and asks again next time', async () => {
    let calls = 0;
    const logs = new RestartedLogs(async () => {
      if (++calls === 1) throw new DriftlineError('CONFIG_INVALID', 'not authorized to describe the group');
      return new Map([[0, 3n]]);
    });
    expect((await logs.check('t', 0, 3)).restart).toBe(true);
    expect((await logs.check('t', 0, 3)).restart).toBe(false);
    expect(calls).toBe(2);
  });

  it('fails the batch (retriable) when the commit cannot be read for an outage, rather than drop the marker', async () => {
    let down = true;
    const logs = new RestartedLogs(async () => {
      if (down) throw new DriftlineError('SOURCE_UNAVAILABLE', 'coordinator away', { retriable: true });
      return new Map([[0, 3n]]);
    });
    await expect(logs.check('t', 0, 3)).rejects.toMatchObject({ code: 'SOURCE_UNAVAILABLE', retriable: true });
    down = false;
    const started = await logs.check('t', 0, 3);
    expect(started.restart).toBe(false);
    logs.applied('t', 0, started, 7);
    down = true; // the batch offered again while Kafka is still down
    await expect(logs.check('t', 0, 3)).rejects.toMatchObject({ retriable: true });
  });

  it('takes a batch offered again before its commit (a failed dead-letter send) for a retry, not a new log', async () => {
    const commit = new Map([[0, 3n]]);
    const logs = new RestartedLogs(async () => commit);
    const started = await logs.check('t', 0, 3);
    logs.applied('t', 0, started, 7);
    // Process succeeded, the dead-letter send failed: nothing committed, the same batch again.
    expect((await logs.check('t', 0, 3)).restart).toBe(false);
    // Bisected: its second half offered again after a retriable failure of the whole batch.
    expect((await logs.check('t', 0, 5)).restart).toBe(false);
  });

  it('treats a batch read backwards below the commit, or with none, as a new log; then follows the new log', async () => {
    const commit = new Map([[0, 3n]]);
    let asked = 0;
    const logs = new RestartedLogs(async () => {
      asked++;
      return commit;
    });
    const started = await logs.check('t', 0, 3);
    logs.applied('t', 0, started, 7);
    commit.set(0, 8n); // the batch 3..7 committed
    expect((await logs.check('t', 0, 8)).restart).toBe(false);
    expect((await logs.check('t', 0, 7)).restart).toBe(true); // below the commit: reset backwards
    expect((await logs.check('t', 0, 0)).restart).toBe(true); // the topic recreated under the consumer
    commit.set(0, -2n); // kafkajs committed its logical "earliest" when it reset the position
    const restarted = await logs.check('t', 0, 0);
    expect(restarted.restart).toBe(true);
    commit.delete(0); // or the broker deleted the commit with its topic
    expect((await logs.check('t', 0, 0)).restart).toBe(true);
    // The new log applied 0..2: its next batch is forward, no question (the old log is forgotten).
    logs.applied('t', 0, restarted, 2);
    const before = asked;
    expect((await logs.check('t', 0, 3)).restart).toBe(false);
    expect(asked).toBe(before);
  });
});

describe('label-joiner processing: the applied marker across a retry and shadow-only batches', () => {
  const hour = 3_600_000;
  const at = 1_700_000_000_000;
  /** What service.ts does with a batch of one partition (restarts.ts, then the engine). */
  async function deliver(
    logs: RestartedLogs,
    engine: JoinEngine,
    topic: string,
    records: readonly JoinerRecord[],
    now: number,
  ) {
    const started = await logs.check(topic, 0, records[0]?.offset);
    const stats = await engine.process(records, now, `${topic}/0`, { restart: started.restart });
    logs.applied(topic, 0, started, records.at(-1)?.offset);
    return stats;
  }

  it('a batch retried two hours later in the same assignment is a replay: not pending again', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>({ maxDelayMs: 7 * 24 * hour, graceMs: 0, tombstoneMs: hour });
    const engine = new JoinEngine(store, decoder, sink, hour);
    const commits = new Map([['p', new Map([[0, 0n]])]]);
    const logs = new RestartedLogs(async (topic) => commits.get(topic) ?? new Map());
    const batch = [prediction('a', 0, at), prediction('b', 1, at)];
    expect((await deliver(logs, engine, 'p', batch, at)).outcomes).toEqual({ 'prediction:pending': 2 });
    // Their labels join them (a J tombstone each, for an hour).
    await deliver(logs, engine, 'l', [label('a', 0, at + 1), label('b', 1, at + 1)], at + 1);
    expect(store.pending.size).toBe(0);
    // The prediction batch's dead-letter send failed (Kafka down): not committed, offered again
    // two hours later, the tombstones gone.
    const retried = await deliver(logs, engine, 'p', batch, at + 2 * hour);
    expect(retried.outcomes).toEqual({ 'prediction:duplicate': 2 });
    expect(store.pending.size).toBe(0);
  });

  it('a batch of shadow predictions only keeps the marker whole: a later replay of the batch before it is a duplicate', async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>({ maxDelayMs: 10_000, graceMs: 0, tombstoneMs: 1 });
    const engine = new JoinEngine(store, decoder, sink, hour);
    await engine.process([prediction('a', 0, 100)], 1_000, 'p/0');
    await engine.process([label('a', 0, 110)], 1_001, 'l/0');
    // Caught up with shadow traffic: offsets 1..2 are shadow predictions only.
    const shadows = [prediction('a.shadow', 1, 120, 'shadow'), prediction('b.shadow', 2, 130, 'shadow')];
    expect((await engine.process(shadows, 1_002, 'p/0')).outcomes).toEqual({ 'prediction:shadow': 2 });
    await engine.process([prediction('c', 3, 140)], 1_003, 'p/0');
    // Hours later (a's tombstone gone), the partition is read again from offset 0.
    const replay = await engine.process([prediction('a', 0, 100)], 10_000_000, 'p/0');
    expect(replay.outcomes).toEqual({ 'prediction:duplicate': 1 });
  });

  it("hands the batch's span to its own side only (one marker step a batch)", async () => {
    const store = new InMemoryJoinStore<Buffer, Buffer>({ maxDelayMs: 10_000, graceMs: 0, tombstoneMs: 1 });
    const spans: string[] = [];
    const { applyPredictions, applyLabels } = store;
    store.applyPredictions = (inputs, now, source, span) => {
      if (span !== undefined) spans.push(`prediction ${span.first}-${span.last}`);
      return applyPredictions.call(store, inputs, now, source, span);
    };
    store.applyLabels = (inputs, now, source, span) => {
      if (span !== undefined) spans.push(`label ${span.first}-${span.last}`);
      return applyLabels.call(store, inputs, now, source, span);
    };
    const engine = new JoinEngine(store, decoder, sink, hour);
    await engine.process([prediction('a.shadow', 1, 120, 'shadow')], 1_000, 'p/0');
    await engine.process([label('a', 4, 130)], 1_001, 'l/0');
    await engine.process([prediction('b', 5, 140), label('b', 6, 150)], 1_002, 'mixed'); // no partition: no span
    expect(spans).toEqual(['prediction 1-1', 'label 4-4']);
  });
});
