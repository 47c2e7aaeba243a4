import { type Logger, silentLogger } from '@driftline/core';
import { eventually, uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it } from 'vitest';
import { AdminSession, adminKafkajs } from '../src/admin.js';
import { kafkajsOf } from '../src/client.js';
import {
  adoptGroupOffsets,
  committedOffsets,
  createKafkaClient,
  createProducer,
  describeGroup,
  describeTopic,
  ensureTopics,
  groupHasCommitted,
  listTopics,
  partitionCount,
  probeCluster,
  setGroupOffsets,
  topicOffsets,
} from '../src/index.js';
import { readTopic } from '../src/testing.js';

const stack = inject('stack');
// The tests of each group run at once: each names its own topics, groups and clients.
const client = () => createKafkaClient({ brokers: stack.kafkaBrokers, clientId: uniqueName('admin-test'), ssl: false });

describe.concurrent('topic admin through the facade, on the real broker', () => {
  it('ensures topics idempotently, also when two processes race, and never alters an existing one', async () => {
    const topic = uniqueName('admin');
    await probeCluster(stack.kafkaBrokers);
    // Two clients creating the same topics at once: both succeed (a concurrent creation is retried).
    await Promise.all([
      ensureTopics(client(), [{ topic, partitions: 3 }, { topic: `${topic}.dlq` }]),
      ensureTopics(client(), [{ topic, partitions: 3 }, { topic: `${topic}.dlq` }]),
    ]);
    await ensureTopics(client(), [{ topic, partitions: 5 }]); // exists: left as it is
    expect(await partitionCount(client(), topic)).toBe(3);
    expect(await partitionCount(client(), `${topic}.dlq`)).toBe(1);
    expect(await listTopics(client())).toEqual(expect.arrayContaining([topic, `${topic}.dlq`]));
  });

  it('reports offsets, groups and records in driftline types', async () => {
    const kafka = client();
    const topic = uniqueName('offsets');
    await ensureTopics(kafka, [{ topic, partitions: 2 }]);
    const producer = await createProducer(kafka);
    await producer.send(topic, [
      { key: 'a', value: Buffer.from('1'), partition: 0, headers: { trace: 'xyz' } },
      { key: 'b', value: Buffer.from('2'), partition: 1 },
      { key: 'c', value: Buffer.from('3'), partition: 1 },
    ]);
    await producer.disconnect();
    const offsets = await topicOffsets(kafka, topic);
    expect(offsets.sort((x, y) => x.partition - y.partition)).toEqual([
      { partition: 0, low: 0n, high: 1n },
      { partition: 1, low: 0n, high: 2n },
    ]);
    const read = await readTopic(kafka, topic, 3);
    const a = read.find((r) => r.key?.toString() === 'a');
    expect(a).toMatchObject({ topic, partition: 0, offset: '0' });
    expect(a?.headers.trace?.toString()).toBe('xyz');
    const group = uniqueName('nobody');
    expect([...(await committedOffsets(kafka, group, topic)).values()]).toEqual([-1n, -1n]);
    expect((await describeGroup(kafka, group)).members).toBe(0);
  });

  it('refuses an impossible topic at once, as a non-retriable configuration error', async () => {
    const started = Date.now();
    await expect(
      ensureTopics(client(), [{ topic: uniqueName('bad'), partitions: 1, replicationFactor: 3 }]),
    ).rejects.toMatchObject({ code: 'CONFIG_INVALID', retriable: false });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('gives up on a topic that does not exist with NOT_FOUND', async () => {
    await expect(partitionCount(client(), uniqueName('missing'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe.concurrent('an existing topic whose configs differ from its spec (an upgrade: models.v1 kept for good)', () => {
  /** A client whose logger keeps its warning and debug lines. */
  function loggingClient() {
    const lines: Array<{ level: 'warn' | 'debug'; fields: Record<string, unknown>; msg: string }> = [];
    const logger: Logger = {
      debug: (fields, msg = '') => lines.push({ level: 'debug', fields: fields as Record<string, unknown>, msg }),
      info: () => {},
      warn: (fields, msg = '') => lines.push({ level: 'warn', fields: fields as Record<string, unknown>, msg }),
      error: () => {},
      child: () => logger,
    };
    const kafka = createKafkaClient(
      { brokers: stack.kafkaBrokers, clientId: uniqueName('drift-test'), ssl: false },
      logger,
    );
    return { kafka, warnings: () => lines.filter((l) => l.level === 'warn' && l.msg.includes('configs')) };
  }
  const required = { 'retention.ms': '-1', 'retention.bytes': '-1' };

  it('warns once per topic with the found and required values and the command, and alters nothing', async () => {
    const topic = uniqueName('models.v1');
    const other = uniqueName('models.v1');
    // As an old release created them: the broker's 7-day retention.
    await ensureTopics(client(), [
      { topic, partitions: 1, config: { 'retention.ms': '604800000' } },
      { topic: other, partitions: 1, config: { 'retention.ms': '604800000' } },
    ]);
    const { kafka, warnings } = loggingClient();
    await ensureTopics(kafka, [
      { topic, partitions: 1, config: required },
      { topic: other, partitions: 1, config: required },
    ]);
    expect(warnings()).toHaveLength(2);
    const line = warnings().find((w) => w.fields.topic === topic);
    expect(line?.fields.mismatches).toEqual([{ key: 'retention.ms', found: '604800000', required: '-1' }]);
    const command =
      `kafka-configs.sh --bootstrap-server ${stack.kafkaBrokers.join(',')} --alter --entity-type topics` +
      ` --entity-name ${topic} --add-config 'retention.ms=-1'`;
    expect(line?.fields.command).toBe(command);
    expect(line?.msg).toContain(`topic ${topic}`);
    expect(line?.msg).toContain('retention.ms is 604800000, required -1');
    expect(line?.msg).toContain(command);
    expect((await describeTopic(client(), topic)).overrides['retention.ms']).toBe('604800000');
    // A start-up retried on an outage ensures the topics again, with a new client: said once.
    const retried = loggingClient();
    await ensureTopics(retried.kafka, [{ topic, partitions: 1, config: required }]);
    expect(retried.warnings()).toEqual([]);
  });

  it('says nothing when the existing topic already has the required configs', async () => {
    const topic = uniqueName('models.v1');
    await ensureTopics(client(), [{ topic, partitions: 1, config: required }]);
    const { kafka, warnings } = loggingClient();
    await ensureTopics(kafka, [{ topic, partitions: 1, config: required }]);
    expect(warnings()).toEqual([]);
  });
});

describe.concurrent('groupHasCommitted', () => {
  it('is false at once for topics not created yet, true once the group committed on one of them', async () => {
    const topic = uniqueName('ghc');
    const group = `${topic}-group`;
    const started = Date.now();
    // A first start: the topics do not exist (asked per topic, this failed after every retry).
    expect(await groupHasCommitted(client(), group, [topic, `${topic}-other`])).toBe(false);
    expect(Date.now() - started).toBeLessThan(5_000);
    await ensureTopics(client(), [{ topic, partitions: 2 }]);
    expect(await groupHasCommitted(client(), group, [topic])).toBe(false);
    await setGroupOffsets(client(), group, topic, new Map([[1, 0n]]));
    expect(await groupHasCommitted(client(), group, [`${topic}-other`, topic])).toBe(true);
    expect(await groupHasCommitted(client(), group, [`${topic}-other`])).toBe(false);
  });
});

describe.concurrent('adoptGroupOffsets (a group renamed: the label-joiner and materializer groups gained the topic prefix)', () => {
  it("takes the old group's commits of the partitions the new one has none of, once, and only of its topics", async () => {
    const kafka = client();
    const [t1, t2, other] = [uniqueName('adopt'), uniqueName('adopt'), uniqueName('adopt')];
    await ensureTopics(kafka, [
      { topic: t1, partitions: 3 },
      { topic: t2, partitions: 2 },
      { topic: other, partitions: 1 },
    ]);
    const producer = await createProducer(kafka);
    for (const [topic, partitions] of [
      [t1, 3],
      [t2, 2],
      [other, 1],
    ] as const) {
      const records = Array.from({ length: partitions * 4 }, (_, i) => ({
        key: null,
        value: Buffer.from('x'),
        partition: i % partitions,
      }));
      await producer.send(topic, records);
    }
    await producer.disconnect();
    const [from, to] = [uniqueName('old'), uniqueName('new')];
    // A group's offsets are set by a member of it (seconds each): the old group's in turn, the new one's meanwhile.
    await Promise.all([
      (async () => {
        await setGroupOffsets(
          kafka,
          from,
          t1,
          new Map([
            [0, 1n],
            [1, 2n],
            [2, 3n],
          ]),
        );
        await setGroupOffsets(kafka, from, t2, new Map([[1, 4n]]));
        await setGroupOffsets(kafka, from, other, new Map([[0, 2n]]));
      })(),
      setGroupOffsets(kafka, to, t1, new Map([[0, 4n]])), // read further already: kept
    ]);
    const lines: string[] = [];
    const logger: Logger = { ...silentLogger, info: (_obj, msg) => void lines.push(msg ?? '') };

    const adopted = await adoptGroupOffsets(kafka, { from, to, topics: [t1, t2], logger });
    expect(adopted.sort((a, b) => `${a.topic}${a.partition}`.localeCompare(`${b.topic}${b.partition}`))).toEqual(
      [
        { topic: t1, partition: 1, offset: 2n },
        { topic: t1, partition: 2, offset: 3n },
        { topic: t2, partition: 1, offset: 4n },
      ].sort((a, b) => `${a.topic}${a.partition}`.localeCompare(`${b.topic}${b.partition}`)),
    );
    expect(Object.fromEntries(await committedOffsets(kafka, to, t1))).toEqual({ 0: 4n, 1: 2n, 2: 3n });
    expect(Object.fromEntries(await committedOffsets(kafka, to, t2))).toEqual({ 0: -1n, 1: 4n });
    expect(Object.fromEntries(await committedOffsets(kafka, to, other))).toEqual({ 0: -1n });
    expect(lines).toEqual([
      expect.stringMatching(new RegExp(`^consumer group ${to} took over the offsets of ${from}`)),
    ]);

    // Once: the old group's commits moved back are not taken again; the same name takes nothing.
    await setGroupOffsets(kafka, from, t1, new Map([[1, 0n]]));
    expect(await adoptGroupOffsets(kafka, { from, to, topics: [t1, t2], logger })).toEqual([]);
    expect(await adoptGroupOffsets(kafka, { from, to: from, topics: [t1, t2], logger })).toEqual([]);
    expect((await committedOffsets(kafka, to, t1)).get(1)).toBe(2n);
    expect(lines).toHaveLength(1);

    // A group with a running member started where it did: left alone.
    const busy = uniqueName('busy');
    const consumer = kafkajsOf(kafka).consumer({ groupId: busy });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic: t2, fromBeginning: false });
      await consumer.run({ eachMessage: async () => {} });
      await eventually(async () => ((await describeGroup(kafka, busy)).state === 'Stable' ? true : undefined));
      expect(await adoptGroupOffsets(kafka, { from, to: busy, topics: [t2], logger })).toEqual([]);
    } finally {
      await consumer.disconnect();
    }
  });
});

describe.concurrent('durability of created topics', () => {
  it('sets min.insync.replicas on the topic itself (auto: 1 on the single local broker), explicit values win', async () => {
    const auto = uniqueName('durable');
    const explicit = uniqueName('durable');
    await ensureTopics(client(), [{ topic: auto }, { topic: explicit, replicationFactor: 1, minInsyncReplicas: 1 }]);
    expect(await describeTopic(client(), auto)).toMatchObject({
      replicationFactor: 1,
      overrides: { 'min.insync.replicas': '1' },
    });
    expect((await describeTopic(client(), explicit)).overrides['min.insync.replicas']).toBe('1');
  });

  it('refuses min.insync.replicas above the replication factor (every acks=all write would fail)', async () => {
    await expect(
      ensureTopics(client(), [{ topic: uniqueName('durable'), replicationFactor: 1, minInsyncReplicas: 2 }]),
    ).rejects.toMatchObject({ code: 'CONFIG_INVALID', retriable: false, message: /min.insync.replicas 2 exceeds/ });
  });
});

describe.concurrent("an admin session (a consumer's periodic reads)", () => {
  /** Counts the kafkajs admin clients created on `kafka` (each one a connection of its own). */
  function countAdmins(kafka: ReturnType<typeof client>): { readonly created: () => number } {
    const k = adminKafkajs(kafka);
    const admin = k.admin.bind(k);
    let created = 0;
    k.admin = (...args) => {
      created++;
      return admin(...args);
    };
    return { created: () => created };
  }

  it('keeps one connection for its calls; a client opens one per call', async () => {
    const kafka = client();
    const topic = uniqueName('session');
    await ensureTopics(kafka, [{ topic, partitions: 2 }]);
    const admins = countAdmins(kafka);
    const session = new AdminSession(kafka);
    for (let i = 0; i < 5; i++) {
      expect(await topicOffsets(session, topic)).toHaveLength(2);
      expect((await committedOffsets(session, 'no-such-group', topic)).get(0)).toBe(-1n);
    }
    expect(admins.created()).toBe(1);
    for (let i = 0; i < 3; i++) await topicOffsets(kafka, topic);
    expect(admins.created()).toBe(4);
    await session.close();
    await expect(topicOffsets(session, topic)).rejects.toMatchObject({ code: 'SOURCE_UNAVAILABLE', retriable: false });
    expect(admins.created()).toBe(4);
  });

  it('answers after its connection died underneath it (a broker restart), on a new one', async () => {
    const kafka = client();
    const topic = uniqueName('session-dead');
    await ensureTopics(kafka, [{ topic }]);
    const session = new AdminSession(kafka);
    expect(await topicOffsets(session, topic)).toEqual([{ partition: 0, low: 0n, high: 0n }]);
    await (await session.acquire())!.disconnect();
    expect(await topicOffsets(session, topic)).toEqual([{ partition: 0, low: 0n, high: 0n }]);
    await session.close();
  });
});
