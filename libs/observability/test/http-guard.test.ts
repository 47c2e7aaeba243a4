import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createMetricsRegistry,
  guardHttpServer,
  type ObservabilityServer,
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
    options: { maxConnections?: number; headersTimeoutMs?: number; now?: () => number } = {},
  ) => {
    const server = createServer({ requireHostHeader: false }, (req, res) => {
      if (guard.admit(req, res) > 0) handle(req, res);
    });
    const guard = guardHttpServer(server, {
      maxConnections: options.maxConnections ?? 8,
      listener: 'test',
      headersTimeoutMs: options.headersTimeoutMs ?? 10_000,
      ...(options.now === undefined ? {} : { now: options.now }),
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { port: (server.address() as { port: number }).port, guard };
  };
  const answer = (res: ServerResponse, body = '{"ok":true}') =>
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);

  it('at the cap, a connection whose request headers are arriving is busy: the idle one is closed instead (it was closed mid-request)', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    observability = await startObservabilityServer({
      registry,
      health: { healthy: () => true, ready: () => true },
      maxConnections: 3,
    });
    const port = observability.port;
    const arriving = open(port);
    const arrivingSeen = received(arriving);
    arriving.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'); // the headers in part
    await sleep(50);
    const idle = open(port);
    const idleSeen = received(idle);
    await sleep(50);
    await ask(open(port), '/healthz');
    // A new connection at the cap: the longest idle is the one still sending; it is spared.
    expect(statuses(await ask(open(port), '/healthz'))).toEqual([200]);
    expect((await idleSeen).closedByServer).toBe(true);
    expect(arriving.destroyed).toBe(false);
    arriving.write('Connection: close\r\n\r\n');
    expect(statuses((await arrivingSeen).text)).toEqual([200]);
  });

  it('bytes trickled with no request spare a connection for the headers timeout only', async () => {
    let clock = 1_000_000;
    const { port } = await guarded((req, res) => (req.url === '/hold' ? undefined : answer(res)), {
      maxConnections: 2,
      headersTimeoutMs: 5_000,
      now: () => clock,
    });
    const trickler = open(port);
    const tricklerSeen = received(trickler);
    await ask(trickler); // answered, then idle
    open(port).write('GET /hold HTTP/1.1\r\nHost: x\r\n\r\n'); // busy: never answered
    await sleep(50);
    trickler.write('\r\n'); // looks like a request arriving (node ignores it)
    await sleep(50);
    const refused = received(open(port), 1_000);
    expect((await refused).closedByServer).toBe(true); // every connection busy
    expect(trickler.destroyed).toBe(false);
    clock += 5_000;
    trickler.write('\r\n');
    await sleep(50);
    expect(statuses(await ask(open(port)))).toEqual([200]);
    expect((await tricklerSeen).closedByServer).toBe(true);
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
});
