import { createServer, type Server } from 'node:http';
import { PoisonRecordError, silentLogger } from '@driftline/core';
import avro from 'avsc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SchemaRegistryCodec } from '../src/index.js';
import { RegistryClient } from '../src/registry.js';

/**
 * A loopback stand-in for the registry's answers about schema references (`/schemas/ids/{id}` with
 * `references`, `/subjects/{s}/versions/{v}`) and subjects' levels (`/config/{s}?defaultToGlobal=true`).
 */
const host = { type: 'record', name: 'Host', namespace: 'io.team', fields: [{ name: 'name', type: 'string' }] };
const meta = { type: 'record', name: 'Meta', namespace: 'io.team', fields: [{ name: 'host', type: 'Host' }] };
const holder = {
  type: 'record',
  name: 'Holder',
  fields: [
    { name: 'id', type: 'string' },
    { name: 'meta', type: ['null', 'io.team.Meta'], default: null },
    { name: 'again', type: ['null', 'io.team.Meta'], default: null },
  ],
};
const ref = (name: string, subject: string, version = 1) => ({ name, subject, version });
const versions = new Map<string, object>([
  ['host/1', { schema: JSON.stringify(host) }],
  ['meta/1', { schema: JSON.stringify(meta), references: [ref('io.team.Host', 'host')] }],
  // A chain of references deeper than the bound: chain0 → chain1 → … → chain9.
  ...Array.from({ length: 10 }, (_, i): [string, object] => [
    `chain${i}/1`,
    {
      schema: JSON.stringify({
        type: 'record',
        name: `C${i}`,
        fields: i < 9 ? [{ name: 'next', type: `C${i + 1}` }] : [],
      }),
      references: i < 9 ? [ref(`C${i + 1}`, `chain${i + 1}`)] : [],
    },
  ]),
]);
const ids = new Map<number, object>([
  [20, { schema: JSON.stringify(holder), references: [ref('io.team.Meta', 'meta')] }],
  [21, { schema: JSON.stringify(holder), references: [ref('io.team.Meta', 'gone')] }],
  [22, { schema: JSON.stringify({ type: 'record', name: 'C', fields: [] }), references: [ref('C0', 'chain0')] }],
  [
    23,
    {
      schema: JSON.stringify(holder),
      references: Array.from({ length: 33 }, (_, i) => ref(`T${i}`, 'host')),
    },
  ],
]);
const levels = new Map<string, string>([
  ['open-value', 'NONE'],
  ['kept-value', 'FULL'],
]);
const notFound = JSON.stringify({ message: 'not found', error_code: 40401 });

let server: Server;
let url: string;
let versionReads = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    const path = req.url ?? '';
    const id = /^\/ccompat\/schemas\/ids\/(\d+)$/.exec(path)?.[1];
    const version = /^\/ccompat\/subjects\/([^/]+)\/versions\/(\d+)$/.exec(path);
    const config = /^\/ccompat\/config\/([^/?]+)\?defaultToGlobal=true$/.exec(path)?.[1];
    if (version !== null) versionReads++;
    const body =
      id !== undefined
        ? ids.get(Number(id))
        : version !== null
          ? versions.get(`${version[1]}/${version[2]}`)
          : config !== undefined && levels.has(config)
            ? { compatibilityLevel: levels.get(config) }
            : undefined;
    if (body === undefined) res.writeHead(404).end(notFound);
    else res.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}/ccompat`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('schema references (every record of such a writer was poison: "not a usable Avro schema", found by a review)', () => {
  it('are resolved, nested ones too: each type defined where the schema first names it', async () => {
    const text = await new RegistryClient({ url }).schemaById(20);
    const type = avro.Type.forSchema(JSON.parse(text) as avro.Schema);
    const value = { id: 'h', meta: { host: { name: 'n' } }, again: { host: { name: 'm' } } };
    expect(type.fromBuffer(type.toBuffer(value))).toEqual(value);
    // And through the codec, into a reader that does not read meta.
    const reader = new SchemaRegistryCodec({ url }).forSchema<{ id: string }>(
      { type: 'record', name: 'Holder', fields: [{ name: 'id', type: 'string' }] },
      'holders.v1',
    );
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 20]), type.toBuffer(value)]);
    expect({ ...(await reader.decode(frame)) }).toEqual({ id: 'h' });
  });

  it('an unknown reference, or beyond the bounds: poison, saying the schema uses references and why', async () => {
    const client = new RegistryClient({ url });
    const refused = async (id: number) => {
      const error = await client.schemaById(id).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PoisonRecordError);
      return (error as Error).message;
    };
    expect(await refused(21)).toBe(
      'schema id 21 uses schema references: io.team.Meta (gone version 1) is unknown to the registry',
    );
    versionReads = 0;
    expect(await refused(22)).toBe('schema id 22 uses schema references: references nested deeper than 4');
    expect(versionReads).toBe(4);
    expect(await refused(23)).toBe('schema id 23 uses schema references: more than 32 references');
  });
});

describe('an input subject checked at NONE', () => {
  it('is warned about once per subject; one at FULL, or not registered, is not', async () => {
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (_fields: object, message: string) => void warnings.push(message) };
    const codec = new SchemaRegistryCodec({ url }, { logger });
    for (const topic of ['open', 'open', 'kept', 'absent']) await codec.checkInput(topic);
    expect(warnings).toEqual([
      "open-value: the Schema Registry checks no new schema of this input (compatibility NONE): a producer can register one this consumer cannot read, every record it writes then dead-lettered; set FULL (or FORWARD) on the subject or as the registry's global level",
    ]);
  });
});
