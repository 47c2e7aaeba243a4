// Errors @clickhouse/client raises itself, without a ClickHouse code, produced by the real client (a
// loopback HTTP server answering as ClickHouse would, cut or odd), through createClickHouse.
// Found by a review: every one of them was NO_CLICKHOUSE_CODE on the server connection — an outage,
// retried for ever — though the same call fails the same way every time.
import { createServer, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { ResultSet } from '@clickhouse/client';
import { afterEach, describe, expect, it } from 'vitest';
import { createClickHouse, toWarehouseError } from '../src/index.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

// The headers ClickHouse sends with every answer (client.ts requires one of the first two).
const CLICKHOUSE_HEADERS: OutgoingHttpHeaders = {
  'x-clickhouse-query-id': 'q',
  'x-clickhouse-summary': '{"read_rows":"1"}',
  'x-clickhouse-format': 'JSONEachRow',
};

/** A ClickHouse over a loopback server whose every answer `answer` writes. */
async function clickhouseAnswering(answer: (res: ServerResponse) => void) {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => answer(res));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return createClickHouse({ mode: 'server', url, database: 'driftline', timeoutMs: 5_000 });
}

const answering200 = (body: string, headers: OutgoingHttpHeaders = {}) =>
  clickhouseAnswering((res) => {
    res.writeHead(200, { ...CLICKHOUSE_HEADERS, ...headers });
    res.end(body);
  });

const failure = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => undefined,
    (error: unknown) => error,
  );

// Reads: a processor fault (INTERNAL), held by the consumer, never every record dead-lettered at once.
const refused = (name: string) => ({
  code: 'INTERNAL',
  retriable: false,
  details: { clickhouse: { category: 'rejected', name } },
});

describe('an answer the client cannot read is refused, not retried for ever', () => {
  it('a FORMAT JSON answer cut short (ended cleanly) → UNREADABLE_ANSWER, not retriable', async () => {
    const ch = await answering200('{"meta":[{"name":"x","type":"UInt8"}],"data":[{"x":1},{"x"');
    expect(await failure(ch.selectTyped('SELECT 1 AS x'))).toMatchObject(refused('UNREADABLE_ANSWER'));
    await ch.close();
  });

  it('a JSONEachRow line that does not parse → UNREADABLE_ANSWER, not retriable (select and selectEach)', async () => {
    const ch = await answering200('{"x":1}\n{"x":\n');
    expect(await failure(ch.select('SELECT 1 AS x'))).toMatchObject(refused('UNREADABLE_ANSWER'));
    expect(await failure(ch.selectEach('SELECT 1 AS x', {}, () => {}))).toMatchObject(refused('UNREADABLE_ANSWER'));
    await ch.close();
  });

  it("ClickHouse ≥ 25.11's exception trailer cut short (the client's own error) → UNREADABLE_ANSWER", async () => {
    const ch = await answering200('{"x":1}\r\n', { 'x-clickhouse-exception-tag': 'tag' });
    const error = await failure(ch.select('SELECT 1 AS x'));
    expect((error as Error).message).toContain('there was an error in the stream');
    expect(error).toMatchObject(refused('UNREADABLE_ANSWER'));
    await ch.close();
  });

  it('a result longer than a JS string can hold → RESPONSE_TOO_LARGE, not retriable', async () => {
    // The client's own wrapping of what V8 throws past its string limit (result.text(), FORMAT JSON).
    const tooLong = (() => {
      try {
        'x'.repeat(2 ** 30);
      } catch (error) {
        return error;
      }
      throw new Error('V8 built a string of 2^30 characters');
    })();
    const stream = new Readable({ read() {} });
    stream.push(Buffer.from('{"data":['));
    const result = ResultSet.instance({
      stream,
      format: 'JSON',
      query_id: 'q',
      log_error: () => {},
      response_headers: {},
    });
    setImmediate(() => stream.destroy(tooLong as Error));
    const error = await failure(result.text());
    expect((error as Error).message).toMatch(/^The response length exceeds the maximum allowed size of a string/);
    expect(toWarehouseError('query', error, 'server')).toMatchObject(refused('RESPONSE_TOO_LARGE'));
    expect(toWarehouseError('query', error, 'embedded')).toMatchObject(refused('RESPONSE_TOO_LARGE'));
  });
});

describe("the client's refusal of a call it cannot build is not an outage", () => {
  it('an unsupported query parameter value → CLIENT_REFUSED, not retriable', async () => {
    const ch = await answering200('{"x":1}\n');
    const error = await failure(ch.select('SELECT {f:String} AS x', { f: () => 'x' }));
    expect((error as Error).message).toContain('Unsupported value in query parameters');
    expect(error).toMatchObject({
      code: 'INTERNAL',
      retriable: false,
      details: { clickhouse: { category: 'unknown', name: 'CLIENT_REFUSED' } },
    });
    await ch.close();
  });

  it('a result read twice → CLIENT_REFUSED, not retriable', async () => {
    const result = ResultSet.instance({
      stream: Readable.from([]),
      format: 'JSON',
      query_id: 'q',
      log_error: () => {},
      response_headers: {},
    });
    await result.text();
    const error = await failure(result.text());
    expect(toWarehouseError('query', error, 'server')).toMatchObject({ code: 'INTERNAL', retriable: false });
  });
});

describe('what fails every call alike, or only this time, is still retried', () => {
  it('an exception ClickHouse < 25.11 writes after the rows is classified by its code (MEMORY_LIMIT_EXCEEDED: retried)', async () => {
    const exception =
      'Code: 241. DB::Exception: Memory limit (total) exceeded: would use 9.31 GiB. (MEMORY_LIMIT_EXCEEDED) (version 24.8.1.1)\n';
    const rows = await answering200(`{"x":1}\n${exception}`);
    for (const call of [() => rows.select('SELECT 1 AS x'), () => rows.selectEach('SELECT 1 AS x', {}, () => {})]) {
      expect(await failure(call())).toMatchObject({
        code: 'SINK_UNAVAILABLE',
        retriable: true,
        details: { clickhouse: { code: 241, name: 'MEMORY_LIMIT_EXCEEDED' } },
      });
    }
    await rows.close();
    const typed = await answering200(`{"meta":[{"name":"x","type":"UInt8"}],"data":[{"x":1},${exception}`);
    expect(await failure(typed.selectTyped('SELECT 1 AS x'))).toMatchObject({
      retriable: true,
      details: { clickhouse: { code: 241 } },
    });
    await typed.close();
  });

  it('an answer compressed with an encoding the client does not decode → UNSUPPORTED_ENCODING, retried (the deployment)', async () => {
    const ch = await answering200('{"x":1}\n', { 'content-encoding': 'compress' });
    for (const call of [() => ch.select('SELECT 1 AS x'), () => ch.insert('t', [{ x: 1 }])]) {
      expect(await failure(call())).toMatchObject({
        code: 'SINK_UNAVAILABLE',
        details: { clickhouse: { category: 'environment', name: 'UNSUPPORTED_ENCODING' } },
      });
    }
    await ch.close();
  });

  it('a connection dropped in the middle of an answer is an outage, retried', async () => {
    const ch = await clickhouseAnswering((res) => {
      res.writeHead(200, { ...CLICKHOUSE_HEADERS, 'content-length': '1000' });
      res.write('{"x":1}\n{"x"');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    for (const call of [() => ch.select('SELECT 1 AS x'), () => ch.selectTyped('SELECT 1 AS x')]) {
      expect(await failure(call())).toMatchObject({ code: 'SINK_UNAVAILABLE', retriable: true });
    }
    await ch.close();
  });
});
