import { createServer, type Server } from 'node:http';
import { PoisonRecordError } from '@driftline/core';
import { contracts } from '@driftline/schemas';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SchemaRegistryCodec } from '../src/index.js';
import { RegistryClient } from '../src/registry.js';

/** Answers `GET /schemas/ids/{id}` with the 404 body registered for that id (a loopback stand-in for a registry). */
const answers = new Map<number, string>([
  // Apicurio 3.0.9 with apicurio.ccompat.legacy-id-mode.enabled=true (the old docker/compose.yml).
  [1, JSON.stringify({ message: "No artifact with ID 'gid-1' in group 'null' was found.", error_code: 40401 })],
  [2, JSON.stringify({ message: 'Version not found', error_code: 40402 })],
  // Confluent, and Apicurio in its default id mode.
  [3, JSON.stringify({ message: "No content with ID '3' was found.", error_code: 40403 })],
  // A 404 without a Confluent code: a wrong base URL, a proxy's page.
  [4, '<html>Not Found</html>'],
  [5, JSON.stringify({ message: 'Not Found', error_code: 404 })],
]);

let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const id = Number(/^\/ccompat\/schemas\/ids\/(\d+)$/.exec(req.url ?? '')?.[1]);
    res.writeHead(404, { 'content-type': 'application/json' }).end(answers.get(id) ?? '');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}/ccompat`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('RegistryClient.schemaById on a 404', () => {
  it.each([
    [1, 40401],
    [2, 40402],
    [3, 40403],
  ])(
    'schema id %i answered with Confluent code %i: the id is unknown, poison (found by a review: 40401 held its partition)',
    async (id) => {
      const error = await new RegistryClient({ url }).schemaById(id).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PoisonRecordError);
      expect(error).toMatchObject({
        code: 'DECODE_FAILED',
        retriable: false,
        message: `schema id ${id} is unknown to the registry`,
      });
    },
  );

  it('without a Confluent code: retriable, and says to check the URL; another code: retriable', async () => {
    await expect(new RegistryClient({ url }).schemaById(4)).rejects.toMatchObject({
      code: 'SOURCE_UNAVAILABLE',
      retriable: true,
      message: expect.stringContaining('check DRIFTLINE_SCHEMA_REGISTRY_URL'),
    });
    await expect(new RegistryClient({ url }).schemaById(5)).rejects.toMatchObject({
      code: 'SOURCE_UNAVAILABLE',
      retriable: true,
    });
  });

  it('through the codec: a record naming an id the legacy-mode registry does not know is poison', async () => {
    const frame = Buffer.from([0, 0, 0, 0, 1, 2, 0x61]);
    await expect(
      new SchemaRegistryCodec({ url }).forTopic(contracts.feature, 'features.v1').decode(frame),
    ).rejects.toMatchObject({ code: 'DECODE_FAILED', retriable: false });
  });
});
