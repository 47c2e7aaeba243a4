import crypto from 'node:crypto';
import { createKafkaClient, createProducer, ensureTopics, probeCluster } from '@driftline/kafka';
import { readTopic } from '@driftline/kafka/testing';
import { describe, expect, inject, it } from 'vitest';
import { redisPing } from '../src/redis.js';

const stack = inject('stack');
const suffix = crypto.randomBytes(4).toString('hex');

describe('local stack (from the global setup)', () => {
  it('provides the endpoints', () => {
    expect(stack.kafkaBrokers.length).toBeGreaterThan(0);
    expect(stack.schemaRegistryUrl).toMatch(/^http:\/\/.+\/apis\/ccompat\/v7$/);
    expect(stack.redisUrl).toMatch(/^redis:\/\//);
  });

  it('Kafka answers admin requests and round-trips a message', async () => {
    await probeCluster(stack.kafkaBrokers);
    const kafka = createKafkaClient({ clientId: 'stack-int-test', brokers: stack.kafkaBrokers, ssl: false });
    const topic = `stack-int-${suffix}`;
    await ensureTopics(kafka, [{ topic }]);
    const producer = await createProducer(kafka);
    await producer.send(topic, [{ key: 'k', value: Buffer.from('hello') }]);
    await producer.disconnect();
    const [received] = await readTopic(kafka, topic, 1, 60_000);
    expect(received?.value?.toString()).toBe('hello');
  });

  it('the schema registry lists subjects and registers a schema (FULL by default)', async () => {
    const base = stack.schemaRegistryUrl;
    const subjects = await fetch(`${base}/subjects`);
    expect(subjects.status).toBe(200);
    expect(Array.isArray(await subjects.json())).toBe(true);

    const config = (await (await fetch(`${base}/config`)).json()) as { compatibilityLevel?: string };
    expect(config.compatibilityLevel).toBe('FULL');

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

    // A new required field breaks FULL compatibility (its BACKWARD half).
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
    const url = new URL(stack.redisUrl);
    await expect(redisPing(Number(url.port), url.hostname)).resolves.toBeUndefined();
  });
});
