import { silentLogger } from '@driftline/core';
import { createProducer, ensureTopics } from '@driftline/kafka';
import { contracts, type FeatureEvent } from '@driftline/schemas';
import { kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import avro from 'avsc';
import { describe, expect, inject, it } from 'vitest';
import { SchemaRegistryCodec } from '../src/index.js';
import { RegistryClient } from '../src/registry.js';

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
    expect(await config.json()).toEqual({ compatibilityLevel: 'FULL' });
  });

  it('at the level driftline sets, a producer cannot register a schema its consumers cannot read: a dropped field without default is refused (BACKWARD took it; found by a review)', async () => {
    const topic = uniqueName('drop');
    const registry = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl });
    await registry.forTopic(contracts.prediction, topic).register();
    const schema = contracts.prediction.schema as unknown as { fields: Array<{ name: string }> };
    const withoutEntity = { ...schema, fields: schema.fields.filter((f) => f.name !== 'entity_id') };
    await expect(registry.forSchema(withoutEntity, topic).register()).rejects.toMatchObject({
      code: 'SCHEMA_INCOMPATIBLE',
      message: expect.stringMatching(/entity_id/),
    });
  });

  it('adding an enum symbol takes the documented temporary step (schemas/README.md): BACKWARD, register, FULL again', async () => {
    const topic = uniqueName('kinds');
    const subject = `${topic}-value`;
    const registry = stack.schemaRegistryUrl;
    const json = { 'content-type': 'application/vnd.schemaregistry.v1+json' };
    const codec = new SchemaRegistryCodec({ url: registry });
    await codec.forTopic(contracts.alert, topic).register();
    const alert = contracts.alert.schema as unknown as { fields: Array<{ name: string; type: unknown }> };
    const withKind = {
      ...alert,
      fields: alert.fields.map((f) =>
        f.name === 'kind'
          ? {
              ...f,
              type: { ...(f.type as object), symbols: [...(f.type as { symbols: string[] }).symbols, 'NEW_KIND'] },
            }
          : f,
      ),
    };
    // Not FORWARD compatible: a consumer on the previous reader cannot read the new kind.
    await expect(codec.forSchema(withKind, topic).register()).rejects.toMatchObject({ code: 'SCHEMA_INCOMPATIBLE' });
    const level = (compatibility: string) =>
      fetch(`${registry}/config/${subject}`, { method: 'PUT', headers: json, body: JSON.stringify({ compatibility }) });
    expect((await level('BACKWARD')).status).toBe(200);
    const posted = await fetch(`${registry}/subjects/${subject}/versions`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ schema: JSON.stringify(withKind) }),
    });
    expect(posted.status).toBe(200);
    expect((await level('FULL')).status).toBe(200);
    // The new release's publisher then starts at FULL: its schema is there, the level stays.
    const { id } = (await posted.json()) as { id: number };
    expect(await codec.forSchema(withKind, topic).register()).toBe(id);
    expect(await (await fetch(`${registry}/config/${subject}`)).json()).toEqual({ compatibilityLevel: 'FULL' });
  });

  it("decodes a writer whose schema uses a reference to another subject's type (every record was poison: 'not a usable Avro schema'; found by a review)", async () => {
    const topic = uniqueName('refs');
    const registry = stack.schemaRegistryUrl;
    const json = { 'content-type': 'application/vnd.schemaregistry.v1+json' };
    const reader = new SchemaRegistryCodec({ url: registry }).forTopic(contracts.prediction, topic);
    await reader.register();
    const namespace = `io.${topic.replace(/[^A-Za-z0-9_]/g, '_')}`;
    const meta = { type: 'record', name: 'Meta', namespace, fields: [{ name: 'host', type: 'string' }] };
    const metaSubject = `${topic}-meta`;
    const posted = await fetch(`${registry}/subjects/${metaSubject}/versions`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ schema: JSON.stringify(meta) }),
    });
    expect(posted.status).toBe(200);
    const prediction = contracts.prediction.schema as unknown as { fields: unknown[] };
    const writer = {
      ...prediction,
      fields: [...prediction.fields, { name: 'meta', type: ['null', `${namespace}.Meta`], default: null }],
    };
    const registered = await fetch(`${registry}/subjects/${topic}-value/versions`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({
        schema: JSON.stringify(writer),
        references: [{ name: `${namespace}.Meta`, subject: metaSubject, version: 1 }],
      }),
    });
    expect(registered.status).toBe(200);
    const { id } = (await registered.json()) as { id: number };
    const whole = avro.Type.forSchema({
      ...writer,
      fields: [...prediction.fields, { name: 'meta', type: ['null', meta], default: null }],
    } as avro.Schema);
    const value = {
      prediction_id: 'p1',
      model: 'm',
      model_version: '1',
      entity_id: 'e1',
      event_time: 1_733_140_000_000,
      features: { a: 1 },
      prediction: 0.5,
      predicted_class: null,
      role: 'production',
      scores: null,
      unscored: null,
    };
    const framed = (body: Buffer) => {
      const header = Buffer.alloc(5);
      header.writeUInt32BE(id, 1);
      return Buffer.concat([header, body]);
    };
    for (const m of [null, { host: 'h1' }]) {
      expect(await reader.decode(framed(whole.toBuffer({ ...value, meta: m })))).toMatchObject(value);
    }
  });

  it("an input subject's level is the one the registry checks with: a subject without its own rule is not warned about when the global level checks it", async () => {
    const registry = stack.schemaRegistryUrl;
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (_fields: object, message: string) => void warnings.push(message) };
    const client = new RegistryClient({ url: registry });
    const topic = uniqueName('labels-in');
    // Registered by an outside producer: no rule of its own (Apicurio answers NONE for its own level).
    const posted = await fetch(`${registry}/subjects/${topic}-value/versions`, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
      body: JSON.stringify({ schema: JSON.stringify(contracts.label.schema) }),
    });
    expect(posted.status).toBe(200);
    const global = ((await (await fetch(`${registry}/config`)).json()) as { compatibilityLevel: string })
      .compatibilityLevel;
    expect(global).not.toBe('NONE');
    expect(await client.compatibilityOf(`${topic}-value`)).toBe(global);
    expect(await client.compatibilityOf(`${uniqueName('absent')}-value`)).toBeUndefined();
    await new SchemaRegistryCodec({ url: registry }, { logger }).checkInput(topic);
    expect(warnings).toEqual([]);
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

  it('accepts a subject at FORWARD or FULL(_TRANSITIVE) as it is, raises NONE and BACKWARD to FULL (found by a review)', async () => {
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
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (_fields: object, message: string) => warnings.push(message) };
    const register = (topic: string) =>
      new SchemaRegistryCodec({ url: registry }, { logger }).forTopic(contracts.prediction, topic).register();

    for (const level of ['FULL_TRANSITIVE', 'FORWARD', 'FORWARD_TRANSITIVE', 'FULL']) {
      const topic = uniqueName('kept');
      await created(topic, level);
      expect(await register(topic)).toBeGreaterThan(0);
      expect(await levelOf(topic)).toBe(level); // left as the owner set it
    }

    const unchecked = uniqueName('unchecked');
    await created(unchecked);
    expect(await register(unchecked)).toBeGreaterThan(0);
    expect(await levelOf(unchecked)).toBe('FULL');
    expect(warnings).toEqual([]);

    for (const level of ['BACKWARD', 'BACKWARD_TRANSITIVE']) {
      const topic = uniqueName('backward');
      await created(topic, level);
      expect(await register(topic)).toBeGreaterThan(0);
      expect(await levelOf(topic)).toBe('FULL');
      expect(warnings.splice(0)).toEqual([
        `${topic}-value: compatibility raised from ${level} to FULL (at ${level} a producer could register a schema driftline's consumers cannot read)`,
      ]);
    }
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
