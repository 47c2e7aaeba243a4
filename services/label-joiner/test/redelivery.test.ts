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
    await engine.process([prediction('a', 0, 100)], 10, 'p/0');
    await engine.process([label('a', 0, 110)], 11, 'l/0');
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
    logs.applied('t', 1, first.generation, 9);
    expect(await logs.check('t', 1, 10)).toEqual({ restart: false, generation: 0 });
    expect(asked).toHaveLength(1); // the group's commits as read after its join, once per topic
    // A batch that began before a rebalance does not spare the partition its question after it.
    const before = await logs.check('t', 0, 5);
    logs.rebalanced();
    logs.applied('t', 0, before.generation, 9);
    commits.get('t')?.set(0, -1n); // read again after the join: the topic was recreated meanwhile
    expect(await logs.check('t', 0, 5)).toEqual({ restart: true, generation: 1 });
    expect(asked).toHaveLength(2);
  });

  it('counts a failed look-up as no commit (the marker dropped), and asks again next time', async () => {
    let calls = 0;
    const logs = new RestartedLogs(async () => {
      if (++calls === 1) throw new Error('coordinator away');
      return new Map([[0, 3n]]);
    });
    expect((await logs.check('t', 0, 3)).restart).toBe(true);
    expect((await logs.check('t', 0, 3)).restart).toBe(false);
    expect(calls).toBe(2);
  });

  it('treats a batch read backwards within one assignment as a new log (an out-of-range reset)', async () => {
    const logs = new RestartedLogs(async () => new Map([[0, 3n]]));
    const { generation } = await logs.check('t', 0, 3);
    logs.applied('t', 0, generation, 7);
    expect((await logs.check('t', 0, 8)).restart).toBe(false);
    expect((await logs.check('t', 0, 0)).restart).toBe(true); // the topic recreated under the consumer
    expect((await logs.check('t', 0, 7)).restart).toBe(true);
  });
});
