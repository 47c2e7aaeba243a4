import { createProducer, ensureTopics } from '@driftline/kafka';
import { contracts, type FeatureEvent } from '@driftline/schemas';
import { kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it } from 'vitest';
import { SchemaRegistryCodec } from '../src/index.js';

const stack = inject('stack');

describe('codec against the real Schema Registry and Kafka', () => {
  it('registers a contract, produces Avro through Kafka, consumes and decodes it', async () => {
    const topic = uniqueName('features');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic, partitions: 2 }]);
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.feature, topic);
    const id = await codec.register();
    expect(id).toBeGreaterThan(0);

    const events: FeatureEvent[] = Array.from({ length: 20 }, (_, i) => ({
      event_id: `e${i}`,
      view: 'user_stats',
      entity_id: `user-${i % 5}`,
      event_time: 1_700_000_000_000 + i,
      features: { clicks: i, country: i % 2 === 0 ? 'fr' : 'de', active: i % 3 === 0, missing: null },
    }));
    const producer = await createProducer(kafka);
    await producer.send(
      topic,
      await Promise.all(events.map(async (e) => ({ key: contracts.feature.key(e), value: await codec.encode(e) }))),
    );
    await producer.disconnect();

    const read = await readTopic(kafka, topic, events.length);
    const decoded = await Promise.all(read.map((r) => codec.decode(r.value)));
    const byId = new Map(decoded.map((e) => [e.event_id, e]));
    for (const e of events) expect({ ...byId.get(e.event_id) }).toEqual(e);
    // Keyed by entity: every event of one entity sits in one partition.
    const partitionsOfEntity = new Map<string, Set<number>>();
    read.forEach((r, i) => {
      const entity = decoded[i]!.entity_id;
      partitionsOfEntity.set(entity, (partitionsOfEntity.get(entity) ?? new Set()).add(r.partition));
    });
    for (const set of partitionsOfEntity.values()) expect(set.size).toBe(1);
    // The wire format is Confluent's: magic byte 0 then the registry id.
    expect(read[0]!.value!.readUInt8(0)).toBe(0);
    expect(read[0]!.value!.readUInt32BE(1)).toBe(id);
  });

  it('decodes old events with an evolved schema and refuses an incompatible change', async () => {
    const topic = uniqueName('evolve');
    const registry = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl });
    const v1 = { type: 'record', name: 'Thing', namespace: 'test', fields: [{ name: 'a', type: 'string' }] };
    const v2 = {
      ...v1,
      fields: [...v1.fields, { name: 'b', type: ['null', 'string'], default: null }],
    };
    const incompatible = { ...v1, fields: [...v1.fields, { name: 'c', type: 'long' }] };

    const old = registry.forSchema<{ a: string }>(v1, topic);
    const id1 = await old.register();
    const oldBytes = await old.encode({ a: 'written by v1' });

    const evolved = registry.forSchema<{ a: string; b: string | null }>(v2, topic);
    const id2 = await evolved.register();
    expect(id2).not.toBe(id1);
    expect({ ...(await evolved.decode(oldBytes)) }).toEqual({ a: 'written by v1', b: null });
    // And the old reader still reads new events (the extra field is skipped).
    expect({ ...(await old.decode(await evolved.encode({ a: 'new', b: 'x' }))) }).toEqual({ a: 'new' });

    await expect(registry.forSchema(incompatible, topic).register()).rejects.toMatchObject({
      code: 'SCHEMA_INCOMPATIBLE',
    });
    const config = await fetch(`${stack.schemaRegistryUrl}/config/${topic}-value`);
    expect(await config.json()).toEqual({ compatibilityLevel: 'BACKWARD' });
  });

  it('several clients registering a new subject at the same moment all succeed with one id', async () => {
    // Several rounds: the race (both see no subject, both set its level; or one sees the subject
    // before its level is set) does not show on every attempt.
    for (let round = 0; round < 5; round++) {
      const topic = uniqueName('race');
      const ids = await Promise.all(
        Array.from({ length: 8 }, () =>
          new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.prediction, topic).register(),
        ),
      );
      expect(new Set(ids).size).toBe(1);
    }
  });

  it('accepts a subject an owner made stricter, raises one without checks, refuses a weaker one (found by a review)', async () => {
    const registry = stack.schemaRegistryUrl;
    const json = { 'content-type': 'application/vnd.schemaregistry.v1+json' };
    const subjectOf = (topic: string) => `${topic}-value`;
    const config = (topic: string) => `${registry}/config/${encodeURIComponent(subjectOf(topic))}`;
    const levelOf = async (topic: string) =>
      ((await (await fetch(config(topic))).json()) as { compatibilityLevel?: string }).compatibilityLevel;
    /** A subject another tool created: its first schema registered, its level set (or not) by that tool. */
    const created = async (topic: string, level?: string) => {
      const schema = JSON.stringify(contracts.prediction.schema);
      const posted = await fetch(`${registry}/subjects/${encodeURIComponent(subjectOf(topic))}/versions`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ schema }),
      });
      expect(posted.status).toBe(200);
      if (level !== undefined) {
        const put = await fetch(config(topic), {
          method: 'PUT',
          headers: json,
          body: JSON.stringify({ compatibility: level }),
        });
        expect(put.status).toBe(200);
      }
    };
    const register = (topic: string) =>
      new SchemaRegistryCodec({ url: registry }).forTopic(contracts.prediction, topic).register();

    const stricter = uniqueName('strict');
    await created(stricter, 'FULL_TRANSITIVE');
    expect(await register(stricter)).toBeGreaterThan(0);
    expect(await levelOf(stricter)).toBe('FULL_TRANSITIVE'); // left as the owner set it

    const unchecked = uniqueName('unchecked');
    await created(unchecked);
    expect(await register(unchecked)).toBeGreaterThan(0);
    expect(await levelOf(unchecked)).toBe('BACKWARD');

    const weaker = uniqueName('weaker');
    await created(weaker, 'FORWARD');
    await expect(register(weaker)).rejects.toMatchObject({
      code: 'SCHEMA_INCOMPATIBLE',
      message: expect.stringMatching(/compatibility is FORWARD; driftline needs BACKWARD, BACKWARD_TRANSITIVE, FULL/),
    });
  });

  it('refuses an event that does not match its schema before sending, naming the field', async () => {
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(
      contracts.label,
      uniqueName('labels'),
    );
    await expect(
      codec.encode({ prediction_id: 'p', model: 'm', event_time: 1, label: 'yes' } as never),
    ).rejects.toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringContaining('label="yes"') });
  });

  it('classifies undecodable bytes as poison', async () => {
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(
      contracts.label,
      uniqueName('labels'),
    );
    await expect(codec.decode(Buffer.from('not avro'))).rejects.toMatchObject({
      code: 'DECODE_FAILED',
      retriable: false,
    });
    await expect(codec.decode(Buffer.from([0, 0x7f, 0xff, 0xff, 0xf0, 1]))).rejects.toMatchObject({
      code: 'DECODE_FAILED',
    });
    await expect(codec.decode(null)).rejects.toMatchObject({ code: 'DECODE_FAILED' });
  });
});
