import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FIRST_BYTES_GRACE_MS } from '../src/http-guard.js';
import {
  createMetricsRegistry,
  guardHttpServer,
  type ObservabilityServer,
  type Registry,
  startObservabilityServer,
} from '../src/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));

describe('guardHttpServer', () => {
  const sockets: Socket[] = [];
  const servers: Server[] = [];
  let observability: ObservabilityServer | undefined;
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    for (const s of servers.splice(0)) s.closeAllConnections();
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
    await observability?.close();
    observability = undefined;
  });

  const open = (port: number) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    sockets.push(socket);
    return socket;
  };
  /** What a socket receives until the server closes it (or `ms` pass). */
  const received = (socket: Socket, ms = 3_000) =>
    new Promise<{ text: string; closedByServer: boolean }>((resolve) => {
      let text = '';
      socket.on('data', (d) => {
        text += d.toString('latin1');
      });
      const timer = setTimeout(() => resolve({ text, closedByServer: false }), ms);
      socket.on('close', () => {
        clearTimeout(timer);
        resolve({ text, closedByServer: true });
      });
    });
  /** Sends one request and resolves once its (small JSON) answer came. */
  const ask = (socket: Socket, path = '/') =>
    new Promise<string>((resolve) => {
      let text = '';
      const onData = (d: Buffer) => {
        text += d.toString('latin1');
        if (/\r\n\r\n\{.*\}$/s.test(text)) {
          socket.off('data', onData);
          resolve(text);
        }
      };
      socket.on('data', onData);
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    });

  /** A plain node server behind the guard; `handle` runs for every admitted request. */
  const guarded = async (
    handle: (req: IncomingMessage, res: ServerResponse) => void,
    options: {
      maxConnections?: number;
      now?: () => number;
      registry?: Registry;
      onBodyError?: (req: IncomingMessage, error: NodeJS.ErrnoException) => void;
    } = {},
  ) => {
    const server = createServer({ requireHostHeader: false }, (req, res) => {
      if (guard.admit(req, res) > 0) handle(req, res);
    });
    const guard = guardHttpServer(server, {
      maxConnections: options.maxConnections ?? 8,
      listener: 'test',
      ...(options.now === undefined ? {} : { now: options.now }),
      ...(options.registry === undefined ? {} : { registry: options.registry }),
      ...(options.onBodyError === undefined ? {} : { onBodyError: options.onBodyError }),
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { port: (server.address() as { port: number }).port, guard };
  };
  const answer = (res: ServerResponse, body = '{"ok":true}') =>
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);

  /** A new connection that has sent `bytes` (once the server has them). */
  const sending = async (port: number, bytes: string) => {
    const socket = open(port);
    const seen = received(socket, 2_000);
    await new Promise<void>((r) => socket.once('connect', r));
    if (bytes !== '') socket.write(bytes);
    await sleep(30);
    return { socket, seen };
  };
  const shedCount = async (registry: Registry, reason: string) =>
    Number(
      new RegExp(
        `driftline_http_connections_shed_total\\{listener="[^"]+",reason="${reason}",service="test"\\} (\\d+)`,
      ).exec(await registry.metrics())?.[1] ?? 0,
    );
  const probeRequest = 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';

  it('a one-byte flood at the cap leaves probes answered: partial requests are closed, longest waiting first (8 one-byte connections reset every probe)', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    observability = await startObservabilityServer({
      registry,
      health: { healthy: () => true, ready: () => true },
      maxConnections: 4,
    });
    const port = observability.port;
    const flood = [];
    for (let i = 0; i < 4; i++) flood.push(await sending(port, 'G'));
    for (const expectedClosed of [0, 1]) {
      const probe = await sending(port, probeRequest);
      const { text } = await probe.seen;
      expect(statuses(text)).toEqual([200]);
      expect((await flood[expectedClosed]!.seen).closedByServer).toBe(true);
      // The probe's connection closed after its answer: the flood takes its place again.
      flood.push(await sending(port, 'G'));
    }
    expect(flood.slice(2).map((f) => f.socket.destroyed)).toEqual([false, false, false, false]);
    expect(await shedCount(registry, 'evicted_partial')).toBe(2);
    expect(await shedCount(registry, 'refused')).toBe(0);
  });

  it('a partial request survives while an idle connection exists; with nothing idle the new connection closes it, and only when every connection has a request dispatched is it refused', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const { port } = await guarded((req, res) => (req.url === '/hold' ? undefined : answer(res)), {
      maxConnections: 3,
      registry,
    });
    const arriving = await sending(port, 'GET / HTTP/1.1\r\nHost: x\r\n'); // a client mid-headers
    const keepAlive = open(port);
    const keepAliveSeen = received(keepAlive);
    await ask(keepAlive); // answered, then idle
    const busy = await sending(port, 'GET /hold HTTP/1.1\r\nHost: x\r\n\r\n');
    // At the cap with an idle connection: it makes room; the client mid-headers is kept.
    const holding = await sending(port, 'GET /hold HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await keepAliveSeen).closedByServer).toBe(true);
    expect(arriving.socket.destroyed).toBe(false);
    // Nothing idle: the partial request makes room (it was spared, and the new connection refused).
    const fresh = open(port);
    expect(statuses(await ask(fresh))).toEqual([200]);
    expect((await arriving.seen).closedByServer).toBe(true);
    expect(await shedCount(registry, 'evicted_partial')).toBe(1);
    // Every connection with a request dispatched: a new one is refused.
    fresh.write('GET /hold HTTP/1.1\r\nHost: x\r\n\r\n');
    await sleep(30);
    const refused = await sending(port, '');
    expect((await refused.seen).closedByServer).toBe(true);
    expect(await shedCount(registry, 'refused')).toBe(1);
    expect([busy.socket.destroyed, holding.socket.destroyed, fresh.destroyed]).toEqual([false, false, false]);
  });

  it(`a new connection that has sent nothing yet is not idle for ${FIRST_BYTES_GRACE_MS} ms: the flood's next connection closes a partial request, not a probe whose request is on its way (2 probes in 20 were reset)`, async () => {
    let clock = 1_000_000;
    const { port } = await guarded((_req, res) => answer(res), { maxConnections: 3, now: () => clock });
    const flood = [await sending(port, 'G'), await sending(port, 'G')];
    const probe = await sending(port, ''); // accepted; its request not yet read
    flood.push(await sending(port, 'G'));
    expect((await flood[0]!.seen).closedByServer).toBe(true);
    expect(probe.socket.destroyed).toBe(false);
    probe.socket.write(probeRequest);
    expect(statuses((await probe.seen).text)).toEqual([200]);
    // Silent past the grace, a new connection is idle: it goes before the partial requests.
    const silent = await sending(port, '');
    clock += FIRST_BYTES_GRACE_MS;
    const next = await sending(port, 'G');
    expect((await silent.seen).closedByServer).toBe(true);
    expect([flood[1]!.socket.destroyed, flood[2]!.socket.destroyed, next.socket.destroyed]).toEqual([
      false,
      false,
      false,
    ]);
  });

  it('a request its parser refuses behind an answer in flight: no 400 read as that answer; closed once it is written', async () => {
    let handled = 0;
    const { port } = await guarded((_req, res) => {
      setTimeout(() => {
        handled++;
        answer(res);
      }, 150);
    });
    const socket = open(port);
    const seen = received(socket);
    socket.write(
      'POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\nmore garbage\r\n\r\n',
    );
    const { text, closedByServer } = await seen;
    expect(handled).toBe(1);
    expect(statuses(text)).toEqual([200]);
    expect(text).toMatch(/connection: close\r\n/i);
    expect(text).toMatch(/\r\n\r\n\{"ok":true\}$/);
    expect(closedByServer).toBe(true);
  });

  it('a malformed body of the request in flight closes the connection at once, with no 400 (the body can never end)', async () => {
    let bodyFailed = false;
    const { port } = await guarded((req, res) => {
      req.on('error', () => {
        bodyFailed = true;
      });
      req.on('end', () => answer(res));
      req.resume();
    });
    const socket = open(port);
    const seen = received(socket);
    socket.write('POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n');
    const { text, closedByServer } = await seen;
    expect(text).toBe('');
    expect(closedByServer).toBe(true);
    expect(bodyFailed).toBe(true);
  });

  it('with onBodyError, a malformed body of the one request in flight is handed to its handler once, answered with connection: close, then closed (it was closed with no answer)', async () => {
    const refused: string[] = [];
    const handlers = new Map<IncomingMessage, (code: string) => void>();
    const { port } = await guarded(
      (req, res) => {
        handlers.set(req, (code) => {
          const body = `{"error":"${code}"}`;
          res.writeHead(400, { 'content-type': 'application/json', 'content-length': body.length }).end(body);
        });
        req.resume();
      },
      {
        onBodyError: (req, error) => {
          refused.push(error.code ?? '');
          handlers.get(req)?.(error.code ?? '');
        },
      },
    );
    const socket = open(port);
    const seen = received(socket);
    socket.write('POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n');
    await sleep(20);
    socket.write('more garbage\r\n'); // refused again by the parser: not handed over twice
    const { text, closedByServer } = await seen;
    expect(statuses(text)).toEqual([400]);
    expect(text).toMatch(/connection: close\r\n/i);
    expect(text).toMatch(/\r\n\r\n\{"error":"HPE_INVALID_CHUNK_SIZE"\}$/);
    expect(closedByServer).toBe(true);
    expect(refused).toEqual(['HPE_INVALID_CHUNK_SIZE']);
  });

  it('onBodyError is not called for a body behind an answer pending, nor for a client that ends mid-body', async () => {
    const refused: string[] = [];
    const { port } = await guarded(
      (req, res) => {
        if (req.url === '/first') setTimeout(() => answer(res), 150);
        req.resume();
      },
      { onBodyError: (_req, error) => refused.push(error.code ?? '') },
    );
    const pipelined = open(port);
    const pipelinedSeen = received(pipelined);
    pipelined.write(
      'GET /first HTTP/1.1\r\nHost: x\r\n\r\nPOST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n',
    );
    const { text, closedByServer } = await pipelinedSeen;
    // The first request's answer was not written yet: closed at once, no 400 read as its answer.
    expect(statuses(text)).toEqual([]);
    expect(closedByServer).toBe(true);
    const ending = open(port);
    const endingSeen = received(ending);
    ending.end('POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel');
    expect((await endingSeen).closedByServer).toBe(true);
    expect(refused).toEqual([]);
  });
});
