// The server connection against what is not a healthy ClickHouse: a loopback HTTP server answering
// as a proxy, a load balancer or another service does. Found by a review: outage pages were
// classified as bad records (dead-lettered and committed), another service at
// DRIFTLINE_CLICKHOUSE_URL failed with an empty "unknown error", and a server answering 200 to
// everything let migrations "apply" and every insert "succeed".
import { createServer, type IncomingHttpHeaders, type OutgoingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError, SinkUnavailableError } from '@driftline/core';
import { afterEach, describe, expect, it } from 'vitest';
import { createClickHouse, openWarehouse } from '../src/index.js';

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly headers?: OutgoingHttpHeaders;
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((resolve) => s.close(() => resolve()));
});

/** A loopback server giving every request the same answer; `seen` records what it was asked. */
async function answering(answer: Answer): Promise<{ url: string; seen: IncomingHttpHeaders[] }> {
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    req.on('end', () => {
      res.writeHead(answer.status, { 'content-type': 'text/html', ...answer.headers });
      res.end(answer.body);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const failure = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => undefined,
    (error: unknown) => error,
  );

const NGINX_500 =
  '<html><head><title>500 Internal Server Error</title></head><body><center><h1>500 Internal Server Error</h1></center><hr><center>nginx</center></body></html>';

describe('an outage page from a proxy or load balancer is retried, never dead-lettered', () => {
  it.each<Answer>([
    { status: 503, body: '' },
    { status: 429, body: '' },
    { status: 401, body: '' },
    { status: 503, body: 'upstream request timeout' },
    { status: 500, body: 'Internal Server Error' },
    { status: 500, body: NGINX_500 },
    { status: 404, body: 'default backend - 404' },
    { status: 502, body: '<html><head><title>502 Bad Gateway</title></head></html>' },
  ])('HTTP $status $body → SINK_UNAVAILABLE', async (answer) => {
    const { url } = await answering(answer);
    const ch = await createClickHouse({ mode: 'server', url, database: 'driftline', timeoutMs: 5_000 });
    const error = await failure(ch.insert('drift_windows', [{ model: 'm' }]));
    await ch.close();
    expect(error).toBeInstanceOf(SinkUnavailableError);
    expect(error).toMatchObject({
      code: 'SINK_UNAVAILABLE',
      retriable: true,
      details: { clickhouse: { category: 'unavailable', name: 'NO_CLICKHOUSE_CODE' } },
    });
  });
});

describe('an answer that is not ClickHouse’s acknowledges nothing', () => {
  it('an insert, command or query answered 200 without X-ClickHouse-* headers fails, retriable', async () => {
    const { url } = await answering({ status: 200, body: '' });
    const ch = await createClickHouse({ mode: 'server', url, database: 'driftline', timeoutMs: 5_000 });
    for (const call of [
      () => ch.insert('drift_windows', [{ model: 'm' }]),
      () => ch.command('CREATE DATABASE IF NOT EXISTS driftline'),
      () => ch.select('SELECT 1'),
    ]) {
      expect(await failure(call())).toMatchObject({
        code: 'SINK_UNAVAILABLE',
        retriable: true,
        details: { clickhouse: { name: 'NOT_CLICKHOUSE' } },
      });
    }
    await ch.close();
  });

  it('the same 200 with ClickHouse’s headers is acknowledged', async () => {
    const { url } = await answering({
      status: 200,
      body: '',
      headers: { 'x-clickhouse-query-id': 'q', 'x-clickhouse-summary': '{"written_rows":"1"}' },
    });
    const ch = await createClickHouse({ mode: 'server', url, database: 'driftline', timeoutMs: 5_000 });
    await expect(ch.insert('drift_windows', [{ model: 'm' }])).resolves.toBeUndefined();
    await ch.close();
  });
});

describe('openWarehouse checks that DRIFTLINE_CLICKHOUSE_URL is ClickHouse before writing anything', () => {
  it.each<[string, Answer]>([
    ['a server answering 200 to everything', { status: 200, body: '<!doctype html><html><body>app</body></html>' }],
    ['the Schema Registry (a redirect)', { status: 302, body: '', headers: { location: '/apis' } }],
    ['another service (404)', { status: 404, body: '{"error_code":404,"message":"HTTP 404 Not Found"}' }],
    ['a JSON answer that is not a version', { status: 200, body: '{"version()":"x"}\n' }],
  ])('%s → a ConfigError naming the variable, one line, without credentials', async (_, answer) => {
    const { url, seen } = await answering(answer);
    const withCredentials = url.replace('http://', 'http://driftline:s3cret@');
    const error = await failure(
      openWarehouse({ mode: 'server', url: withCredentials, database: 'driftline', timeoutMs: 5_000 }),
    );
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).toMatch(/^DRIFTLINE_CLICKHOUSE_URL: http:\/\/\*\*\*@127\.0\.0\.1:\d+ is not a ClickHouse server/);
    expect(message).toContain(`HTTP ${answer.status}`);
    expect(message).not.toContain('s3cret');
    expect(message).not.toContain('\n');
    // Only the probe was sent: no DDL reached it.
    expect(seen).toHaveLength(1);
  });

  it('a proxy whose ClickHouse is down (503) is retriable at open: a starting service waits for it', async () => {
    const { url } = await answering({ status: 503, body: 'upstream request timeout' });
    const error = await failure(openWarehouse({ mode: 'server', url, database: 'driftline', timeoutMs: 5_000 }));
    expect(error).toBeInstanceOf(SinkUnavailableError);
    expect((error as Error).message).toContain('DRIFTLINE_CLICKHOUSE_URL');
  });

  it('ClickHouse refusing the credentials is classified by its code (AUTHENTICATION_FAILED: retriable), not a ConfigError', async () => {
    const { url } = await answering({
      status: 403,
      body: 'Code: 516. DB::Exception: default: Authentication failed. (AUTHENTICATION_FAILED) (version 24.8.1.1)',
      headers: { 'x-clickhouse-exception-code': '516' },
    });
    const error = await failure(openWarehouse({ mode: 'server', url, database: 'driftline', timeoutMs: 5_000 }));
    expect(error).toMatchObject({ code: 'SINK_UNAVAILABLE', details: { clickhouse: { code: 516 } } });
  });
});

describe('ch.verify() accepts every ClickHouse build', () => {
  it.each(['24.8.1.1', '23.8.16.42.altinitystable', '25.3.2.39-lts'])(
    'version %s with ClickHouse headers (found by a review: suffixed builds failed start-up)',
    async (version) => {
      const { url } = await answering({
        status: 200,
        body: `{"version()":"${version}"}\n`,
        headers: { 'x-clickhouse-query-id': 'q', 'x-clickhouse-summary': '{}' },
      });
      const ch = await createClickHouse({ mode: 'server', url, database: 'driftline', timeoutMs: 5_000 });
      await expect(ch.verify()).resolves.toBeUndefined();
      await ch.close();
    },
  );
});

describe('a server refusing the URL (414, 431) refuses that query: not retried, named', () => {
  const NGINX_414 =
    '<html><head><title>414 Request-URI Too Large</title></head><body><center><h1>414 Request-URI Too Large</h1></center><hr><center>nginx</center></body></html>';
  const NGINX_400_HEADERS =
    '<html><head><title>400 Request Header Or Cookie Too Large</title></head><body><center><h1>400 Bad Request</h1></center></body></html>';
  const refusal = {
    code: 'INTERNAL',
    retriable: false,
    details: { clickhouse: { category: 'rejected', name: 'REQUEST_URI_TOO_LONG' } },
  };

  it.each<Answer>([
    { status: 431, body: '' },
    { status: 414, body: '' },
    { status: 414, body: NGINX_414 },
    { status: 400, body: NGINX_400_HEADERS },
  ])('HTTP $status $body → REQUEST_URI_TOO_LONG', async (answer) => {
    const { url } = await answering(answer);
    const ch = await createClickHouse({ mode: 'server', url, database: 'driftline', timeoutMs: 5_000 });
    const error = await failure(ch.select('SELECT 1 WHERE {ids:Array(String)} != []', { ids: ['a'] }));
    await ch.close();
    expect(error).toMatchObject(refusal);
  });

  it('a Node server over its header bound (431 without a body, sent before any handler)', async () => {
    const { url, seen } = await answering({ status: 200, body: '' });
    const ch = await createClickHouse({ mode: 'server', url, database: 'driftline', timeoutMs: 5_000 });
    const error = await failure(ch.select('SELECT {text:String}', { text: 'x'.repeat(20_000) }));
    await ch.close();
    expect(seen).toHaveLength(0);
    expect(error).toMatchObject(refusal);
    expect((error as Error).message).toContain('HTTP 431 Request Header Fields Too Large');
  });
});
