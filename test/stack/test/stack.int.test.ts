import crypto from 'node:crypto';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { describe, expect, inject, it } from 'vitest';

const stack = inject('stack');
const suffix = crypto.randomBytes(4).toString('hex');

describe('local stack (from the global setup)', () => {
  it('provides the endpoints', () => {
    expect(stack.kafkaBrokers.length).toBeGreaterThan(0);
    expect(stack.schemaRegistryUrl).toMatch(/^http:\/\/.+\/apis\/ccompat\/v7$/);
    expect(stack.redisUrl).toMatch(/^redis:\/\//);
  });

  it('Kafka answers admin requests and round-trips a message', async () => {
    const kafka = new Kafka({ clientId: 'stack-int-test', brokers: stack.kafkaBrokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    const topic = `stack-int-${suffix}`;
    await admin.connect();
    try {
      expect(Array.isArray(await admin.listTopics())).toBe(true);
      await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
      expect(await admin.listTopics()).toContain(topic);

      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      await producer.send({ topic, messages: [{ key: 'k', value: 'hello' }] });
      await producer.disconnect();

      const consumer = kafka.consumer({ groupId: `stack-int-${suffix}` });
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      const received = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no message within 60 s')), 60_000);
        void consumer.run({
          eachMessage: async ({ message }) => {
            clearTimeout(timer);
            resolve(message.value?.toString() ?? '');
          },
        });
      });
      await consumer.disconnect();
      expect(received).toBe('hello');
    } finally {
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.disconnect();
    }
  });

  it('the schema registry lists subjects and registers a schema (BACKWARD by default)', async () => {
    const base = stack.schemaRegistryUrl;
    const subjects = await fetch(`${base}/subjects`);
    expect(subjects.status).toBe(200);
    expect(Array.isArray(await subjects.json())).toBe(true);

    const config = (await (await fetch(`${base}/config`)).json()) as { compatibilityLevel?: string };
    expect(config.compatibilityLevel).toBe('BACKWARD');

    const subject = `stack-int-${suffix}-value`;
    const headers = { 'content-type': 'application/vnd.schemaregistry.v1+json' };
    const schema = JSON.stringify({ type: 'record', name: 'Probe', fields: [{ name: 'x', type: 'int' }] });
    const res = await fetch(`${base}/subjects/${subject}/versions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ schema }),
    });
    expect(res.status).toBe(200);
    const { id } = (await res.json()) as { id: number };
    const byId = (await (await fetch(`${base}/schemas/ids/${id}`)).json()) as { schema: string };
    expect(JSON.parse(byId.schema)).toEqual(JSON.parse(schema));

    // A new required field breaks BACKWARD compatibility.
    const breaking = JSON.stringify({
      type: 'record',
      name: 'Probe',
      fields: [
        { name: 'x', type: 'int' },
        { name: 'y', type: 'int' },
      ],
    });
    const rejected = await fetch(`${base}/subjects/${subject}/versions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ schema: breaking }),
    });
    expect(rejected.status).toBe(409);

    expect((await fetch(`${base}/subjects/${subject}`, { method: 'DELETE' })).status).toBe(200);
    expect((await fetch(`${base}/subjects/${subject}?permanent=true`, { method: 'DELETE' })).status).toBe(200);
  });

  it('redis answers PING', async () => {
    const redis = new Redis(stack.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await redis.connect();
      expect(await redis.ping()).toBe('PONG');
    } finally {
      redis.disconnect();
    }
  });
});
