import { createServer, type Server, type Socket } from 'node:net';
import { type DriftlineError, silentLogger } from '@driftline/core';
import {
  committedOffsets,
  createProducer,
  DLQ_HEADERS,
  ensureTopics,
  type InboundRecord,
  startConsumer,
  topicOffsets,
} from '@driftline/kafka';
import { createMetricsRegistry } from '@driftline/observability';
import { contracts, type FeatureEvent } from '@driftline/schemas';
import { eventually, freePort, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { SchemaRegistryCodec } from '../src/index.js';

const stack = inject('stack');

const event: FeatureEvent = {
  event_id: 'e-1',
  view: 'user_stats',
  entity_id: 'user-1',
  event_time: 1_700_000_000_000,
  features: { clicks: 3, country: 'fr' },
};

function wire(id: number, body: number[]): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out.writeUInt32BE(id, 1);
  Buffer.from(body).copy(out, 5);
  return out;
}

/** Accepts connections and never answers (a hung registry). */
async function blackHole(): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets: Socket[] = [];
  const server: Server = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/apis/ccompat/v7`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('hostile bytes and registry failures at the codec', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });

  it('a 17-byte body with a huge map block count is poison within milliseconds', async () => {
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(
      contracts.feature,
      uniqueName('features'),
    );
    const id = await codec.register();
    await codec.decode(await codec.encode(event)); // the writer schema is cached: only the body is timed
    // event_id "a", view "b", entity_id "c", event_time 1, then the map block count of issue 11.
    const hostile = wire(
      id,
      [2, 0x61, 2, 0x62, 2, 0x63, 2, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    );
    expect(hostile.length - 5).toBe(17);
    const started = performance.now();
    await expect(codec.decode(hostile)).rejects.toMatchObject({
      code: 'DECODE_FAILED',
      retriable: false,
      message: expect.stringMatching(/at features \(byte 7\): map block count .* exceeds the 0 bytes left/),
    });
    console.log(`hostile 17-byte body: poison in ${(performance.now() - started).toFixed(2)} ms`);
  });

  it('classifies registry failures by cause: refused and hung are retriable, an unknown id is poison', async () => {
    // Refused: nothing listens on the port.
    const closed = new SchemaRegistryCodec({ url: `http://127.0.0.1:${await freePort()}/apis/ccompat/v7` });
    const refused = await closed
      .forTopic(contracts.feature, 'features.v1')
      .decode(wire(1, [0]))
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'SOURCE_UNAVAILABLE', retriable: true, details: { cause: 'ECONNREFUSED' } });
    expect((refused as Error).message).toMatch(/Schema Registry unreachable \(connect ECONNREFUSED/);
    await expect(closed.forTopic(contracts.feature, uniqueName('f')).register()).rejects.toMatchObject({
      code: 'SOURCE_UNAVAILABLE',
      retriable: true,
    });

    // Hung: the server accepts the connection and never answers.
    const hole = await blackHole();
    cleanup.push(hole.close);
    const hung = new SchemaRegistryCodec({ url: hole.url, timeoutMs: 300 }).forTopic(contracts.feature, 'features.v1');
    const started = Date.now();
    await expect(hung.decode(wire(1, [0]))).rejects.toMatchObject({ code: 'TIMEOUT', retriable: true });
    expect(Date.now() - started).toBeLessThan(5_000);

    // The real registry: an unknown id (404, error code 40403) is poison; a wrong base path is not.
    const real = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.feature, 'features.v1');
    await expect(real.decode(wire(0x7fff_fff0, [0]))).rejects.toMatchObject({
      code: 'DECODE_FAILED',
      retriable: false,
      message: expect.stringContaining('schema id 2147483632 is unknown to the registry'),
    });
    // A flood of records naming that id: the registry is asked once (it was asked per record).
    let lookups = 0;
    const registry = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).registry;
    const counted = new SchemaRegistryCodec({
      schemaById: (id) => {
        lookups++;
        return registry.schemaById(id);
      },
      register: (...a) => registry.register(...a),
      lookup: (...a) => registry.lookup(...a),
    }).forTopic(contracts.feature, 'features.v1');
    for (let i = 0; i < 1_000; i++) await expect(counted.decode(wire(0x7fff_fff0, [0]))).rejects.toThrow(/unknown/);
    expect(lookups).toBe(1);
    const wrongPath = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl.replace('/ccompat/v7', '/nothing') });
    await expect(wrongPath.forTopic(contracts.feature, 'features.v1').decode(wire(1, [0]))).rejects.toMatchObject({
      code: 'SOURCE_UNAVAILABLE',
      retriable: true,
      message: expect.stringContaining('check DRIFTLINE_SCHEMA_REGISTRY_URL'),
    });
  });

  async function consume(topic: string, decode: (record: InboundRecord) => Promise<FeatureEvent>) {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const producer = await createProducer(kafka);
    const sunk: FeatureEvent[] = [];
    const groupId = uniqueName('group');
    const handle = await startConsumer<FeatureEvent>({
      kafka,
      producer,
      groupId,
      topics: [topic],
      fromBeginning: true,
      logger: silentLogger,
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      backoff: { initialMs: 50, maxMs: 200, multiplier: 2, jitter: 0 },
      processor: {
        decode,
        async process(items) {
          sunk.push(...items.map((i) => i.value));
        },
      },
    });
    cleanup.push(async () => {
      await handle.stop();
      await producer.disconnect();
    });
    return { kafka, groupId, sunk };
  }

  it('a consumer loop with the registry unreachable commits nothing and dead-letters nothing', async () => {
    const topic = uniqueName('features');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq`, partitions: 1 }]);
    const writer = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.feature, topic);
    const producer = await createProducer(kafka);
    await producer.send(topic, [{ key: 'user-1', value: await writer.encode(event) }]);
    await producer.disconnect();

    const unreachable = new SchemaRegistryCodec({ url: `http://127.0.0.1:${await freePort()}/apis/ccompat/v7` });
    const reader = unreachable.forTopic(contracts.feature, topic);
    const failures: DriftlineError[] = [];
    const { groupId, sunk } = await consume(topic, (record) =>
      reader.decode(record.value).catch((error: DriftlineError) => {
        failures.push(error);
        throw error;
      }),
    );
    await eventually(async () => (failures.length >= 4 ? true : undefined));
    expect(failures.every((f) => f.retriable && f.code === 'SOURCE_UNAVAILABLE')).toBe(true);
    expect(sunk).toEqual([]);
    expect([...(await committedOffsets(kafka, groupId, topic)).values()].every((o) => o === -1n)).toBe(true);
    expect((await topicOffsets(kafka, `${topic}.dlq`)).every((p) => p.high === 0n)).toBe(true);
  });

  it('with the real registry, a record naming an unknown schema id goes to the DLQ and the rest goes on', async () => {
    const topic = uniqueName('features');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq`, partitions: 1 }]);
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.feature, topic);
    const good = await codec.encode(event);
    const unknownId = Buffer.from(good);
    unknownId.writeUInt32BE(0x7fff_fff0, 1);
    const producer = await createProducer(kafka);
    await producer.send(topic, [
      { key: 'unknown', value: unknownId },
      { key: 'user-1', value: good },
    ]);
    await producer.disconnect();

    const { groupId, sunk } = await consume(topic, (record) => codec.decode(record.value));
    const [dead] = await readTopic(kafka, `${topic}.dlq`, 1);
    expect(dead?.key?.toString()).toBe('unknown');
    expect(dead?.headers?.[DLQ_HEADERS.code]?.toString()).toBe('DECODE_FAILED');
    expect(dead?.headers?.[DLQ_HEADERS.reason]?.toString()).toMatch(/schema id 2147483632 is unknown/);
    await eventually(async () => (sunk.length === 1 ? true : undefined));
    await eventually(async () => ((await committedOffsets(kafka, groupId, topic)).get(0) === 2n ? true : undefined));
  });
});
