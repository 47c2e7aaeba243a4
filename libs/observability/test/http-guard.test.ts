import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BODY_PROGRESS_TIMEOUT_MS, FIRST_BYTES_GRACE_MS } from '../src/http-guard.js';
import {
  createMetricsRegistry,
  guardHttpServer,
  type ObservabilityServer,
  type Registry,
  startObservabilityServer,
} from '../src/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
/** Polls `check` until it holds, or fails after `ms`. */
const until = async (check: () => boolean, what: string, ms = 5_000) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await sleep(10);
  }
};

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
  /** Resolves once a (small JSON) answer came on `socket`, or with what came when it closed first. */
  const answerOf = (socket: Socket) =>
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
      socket.once('close', () => resolve(text));
    });
  /** Sends one request and resolves once its (small JSON) answer came. */
  const ask = (socket: Socket, path = '/') => {
    const answered = answerOf(socket);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    return answered;
  };

  /** A plain node server behind the guard; `handle` runs for every admitted request. */
  const guarded = async (
    handle: (req: IncomingMessage, res: ServerResponse) => void,
    options: {
      maxConnections?: number;
      now?: () => number;
      registry?: Registry;
      onBodyError?: (req: IncomingMessage, error: NodeJS.ErrnoException) => void;
      bodyProgressTimeoutMs?: number;
      onBodyStalled?: (req: IncomingMessage, message: string) => void;
      /** node's request timeout (and headers timeout), checked every 100 ms; default node's. */
      requestTimeoutMs?: number;
    } = {},
  ) => {
    const timeouts =
      options.requestTimeoutMs === undefined
        ? {}
        : {
            requestTimeout: options.requestTimeoutMs,
            headersTimeout: options.requestTimeoutMs,
            connectionsCheckingInterval: 100,
          };
    const server = createServer({ requireHostHeader: false, ...timeouts }, (req, res) => {
      if (guard.admit(req, res) > 0) handle(req, res);
    });
    const guard = guardHttpServer(server, {
      maxConnections: options.maxConnections ?? 8,
      listener: 'test',
      ...(options.now === undefined ? {} : { now: options.now }),
      ...(options.registry === undefined ? {} : { registry: options.registry }),
      ...(options.onBodyError === undefined ? {} : { onBodyError: options.onBodyError }),
      ...(options.bodyProgressTimeoutMs === undefined ? {} : { bodyProgressTimeoutMs: options.bodyProgressTimeoutMs }),
      ...(options.onBodyStalled === undefined ? {} : { onBodyStalled: options.onBodyStalled }),
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { port: (server.address() as { port: number }).port, guard };
  };
  const answer = (res: ServerResponse, body = '{"ok":true}') =>
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);

  /** A new connection that has sent `bytes` (once the server has them). */
  const sending = async (port: number, bytes: string, ms = 2_000) => {
    const socket = open(port);
    const seen = received(socket, ms);
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
    let holds = 0;
    const { port } = await guarded((req, res) => (req.url === '/hold' ? void holds++ : answer(res)), {
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
    await until(() => holds === 3, "the fresh connection's request dispatched");
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

  /** A handler that reads the body and answers its length (GET: at once); counts the POSTs dispatched. */
  const bodyReader = () => {
    const state = { dispatched: 0 };
    const handle = (req: IncomingMessage, res: ServerResponse) => {
      if (req.method === 'POST') state.dispatched++;
      let length = 0;
      req.on('data', (chunk: Buffer) => {
        length += chunk.length;
      });
      req.on('end', () => answer(res, `{"length":${length}}`));
    };
    return { state, handle };
  };
  const slowBodyHead = (length: number) =>
    `POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n{`;

  it('at the cap with every connection receiving a slow body, a client is answered at once: the body waiting longest makes room, after any partial request (512 bodies of a byte every 2 s locked every client out for the 30 s request timeout)', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const { state, handle } = bodyReader();
    const { port, guard } = await guarded(handle, { maxConnections: 8, registry });
    const bodies = [];
    for (let i = 0; i < 8; i++) {
      bodies.push(await sending(port, slowBodyHead(100), 10_000));
      await until(() => state.dispatched === i + 1, `body ${i} dispatched`);
    }
    // A probe at the cap: the first body makes room (the probe was refused, as every client after it).
    const probe = await sending(port, '', 10_000);
    const askedAt = Date.now();
    probe.socket.write(probeRequest);
    expect(statuses((await probe.seen).text)).toEqual([200]);
    expect(Date.now() - askedAt).toBeLessThan(10_000); // not the 30 s request timeout; slack for a loaded run
    expect((await bodies[0]!.seen).closedByServer).toBe(true);
    // A body that is cut is not answered (its client's connection just closes).
    expect((await bodies[0]!.seen).text).toBe('');
    // At the cap again (the probe's connection closed after its answer).
    await until(() => guard.connections() === 7, "the probe's connection closed");
    bodies.push(await sending(port, slowBodyHead(100), 10_000));
    await until(() => state.dispatched === 9, 'the ninth body dispatched');
    // The next body waiting longest makes room for a client mid-headers, which goes first after it.
    const arriving = await sending(port, 'GET / HTTP/1.1\r\nHost: x\r\n');
    expect((await bodies[1]!.seen).closedByServer).toBe(true);
    const next = await sending(port, probeRequest);
    expect(statuses((await next.seen).text)).toEqual([200]);
    expect((await arriving.seen).closedByServer).toBe(true);
    expect(bodies.slice(2).map((b) => b.socket.destroyed)).toEqual(Array(7).fill(false));
    expect(await shedCount(registry, 'evicted_body')).toBe(2);
    expect(await shedCount(registry, 'evicted_partial')).toBe(1);
    expect(await shedCount(registry, 'refused')).toBe(0);
  });

  it('at the cap, a body still arriving is cut after the bodies that stopped: the one whose body waited longest for a byte goes first', async () => {
    const { state, handle } = bodyReader();
    // Checked every 200 ms; a stopped body is answered 408 only after 1.6 s.
    const { port } = await guarded(handle, { maxConnections: 3, bodyProgressTimeoutMs: 1_600 });
    const uploading = await sending(port, slowBodyHead(1_000), 10_000);
    await until(() => state.dispatched === 1, 'the upload dispatched');
    const stopped = [await sending(port, slowBodyHead(100), 10_000)];
    await until(() => state.dispatched === 2, 'the second body dispatched');
    stopped.push(await sending(port, slowBodyHead(100), 10_000));
    await until(() => state.dispatched === 3, 'the third body dispatched');
    // The upload, oldest, keeps sending: it is seen moving at the checks, the others not.
    const started = Date.now();
    while (Date.now() - started < 700) {
      uploading.socket.write(' ');
      await sleep(50);
    }
    const client = open(port);
    expect(statuses(await ask(client))).toEqual([200]);
    expect((await stopped[0]!.seen).closedByServer).toBe(true);
    expect([uploading.socket.destroyed, stopped[1]!.socket.destroyed]).toEqual([false, false]);
  });

  it('an upload that keeps sending survives a flood of connections that send nothing at the cap: the oldest silent one makes room (every upload was cut by such a flood)', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const { state, handle } = bodyReader();
    const { port } = await guarded(handle, { maxConnections: 8, registry });
    const chunks = 40;
    const upload = open(port);
    const uploadAnswer = answerOf(upload);
    upload.write(slowBodyHead(1 + chunks * 64));
    await until(() => state.dispatched === 1, 'the upload dispatched');
    // A byte burst every 25 ms (1 s in all) while a new silent connection comes every 20 ms:
    // 7 fill the cap, each next one must close one.
    let flooding = true;
    const flood = (async () => {
      while (flooding) {
        open(port);
        await sleep(20);
      }
    })();
    for (let i = 0; i < chunks; i++) {
      await sleep(25);
      upload.write(' '.repeat(64));
    }
    flooding = false;
    await flood;
    const text = await uploadAnswer;
    expect(statuses(text)).toEqual([200]);
    expect(text).toMatch(new RegExp(`\\{"length":${1 + chunks * 64}\\}$`));
    expect(await shedCount(registry, 'evicted_idle')).toBeGreaterThan(10);
    expect(await shedCount(registry, 'evicted_body')).toBe(0);
  });

  it(`at the cap, a body with no byte for ${FIRST_BYTES_GRACE_MS} ms goes first, then a new silent connection unless its request may be in flight (a probe), then a body still arriving`, async () => {
    let clock = 1_000_000;
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const got = new Map<string, number>();
    const { port, guard } = await guarded(
      (req, res) => {
        if (req.method !== 'POST') return answer(res);
        const url = req.url ?? '';
        got.set(url, 0);
        req.on('data', (chunk: Buffer) => got.set(url, (got.get(url) ?? 0) + chunk.length));
        req.on('end', () => answer(res));
      },
      { maxConnections: 4, now: () => clock, registry },
    );
    const body = (url: string) => `POST ${url} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{`;
    const uploads = [await sending(port, body('/u1'), 10_000), await sending(port, body('/u2'), 10_000)];
    const stopped = await sending(port, body('/stopped'), 10_000);
    await until(() => got.get('/u1') === 1 && got.get('/u2') === 1 && got.get('/stopped') === 1, 'the bodies begun');
    let sent = 1;
    /** One more byte of each upload, once the server has read it: both seen moving. */
    const uploadsMove = async () => {
      sent++;
      for (const u of uploads) if (!u.socket.destroyed) u.socket.write(' ');
      await until(
        () => ['/u1', '/u2'].every((u, i) => uploads[i]!.socket.destroyed || got.get(u) === sent),
        'the upload bytes read',
      );
    };
    clock += FIRST_BYTES_GRACE_MS;
    await uploadsMove();
    const probe = await sending(port, '', 10_000); // at the cap: a probe, its request on its way
    // The next connection closes the body with no byte for 1 s, not the uploads nor the probe.
    await uploadsMove();
    const second = await sending(port, '', 10_000);
    expect((await stopped.seen).closedByServer).toBe(true);
    expect(await shedCount(registry, 'evicted_body')).toBe(1);
    // Nothing paused, the probe and the second connection silent for no time: a body that is still
    // arriving makes room, not the probe (its request may be in flight).
    await uploadsMove();
    await sending(port, '', 10_000);
    expect(uploads.filter((u) => u.socket.destroyed)).toHaveLength(1);
    expect(probe.socket.destroyed).toBe(false);
    expect(await shedCount(registry, 'evicted_body')).toBe(2);
    probe.socket.write(probeRequest);
    expect(statuses((await probe.seen).text)).toEqual([200]);
    await until(() => guard.connections() === 3, "the probe's connection closed");
    await sending(port, '', 10_000); // at the cap again
    // Silent for 100 ms, a new connection is no probe in flight: it goes before the upload left.
    clock += 100;
    await uploadsMove();
    await sending(port, '', 10_000);
    expect((await second.seen).closedByServer).toBe(true);
    expect(uploads.filter((u) => u.socket.destroyed)).toHaveLength(1);
    expect(await shedCount(registry, 'evicted_idle')).toBe(1);
    expect(await shedCount(registry, 'evicted_body')).toBe(2);
  });

  it(`a body with no byte for the progress timeout (default ${BODY_PROGRESS_TIMEOUT_MS / 1000} s) is answered 408 and closed (also one pipelined behind an answer), while a body that keeps coming slowly, and one its handler is slow to read, are read to the end`, async () => {
    const timeoutMs = 1_000;
    const stalledHandedOver: string[] = [];
    const slowReader = new Set<IncomingMessage>();
    const stalls = new Map<IncomingMessage, (message: string) => void>();
    const { port } = await guarded(
      (req, res) => {
        let length = 0;
        const read = () => {
          req.on('data', (chunk: Buffer) => {
            length += chunk.length;
          });
          // The request a stalled body is pipelined behind is answered after it arrived.
          req.on('end', () => setTimeout(() => answer(res, `{"length":${length}}`), req.url === '/first' ? 200 : 0));
        };
        // The handler does not read this body for 2.5 timeouts: node stops reading the socket, which is not the client's pause.
        if (req.url === '/slow-reader') {
          slowReader.add(req);
          setTimeout(read, 2.5 * timeoutMs);
        } else read();
      },
      { bodyProgressTimeoutMs: timeoutMs },
    );
    const { port: handingPort } = await guarded(
      (req, res) => {
        // What listenHttp's readBody does: the reader answers the body the guard gave up on.
        const stall = (message: string) => {
          const body = JSON.stringify({ error: { code: 'BAD_REQUEST', message } });
          res.writeHead(408, { 'content-type': 'application/json', 'content-length': body.length }).end(body);
        };
        stalls.set(req, stall);
        req.resume();
      },
      {
        bodyProgressTimeoutMs: timeoutMs,
        onBodyStalled: (req, message) => {
          stalledHandedOver.push(message);
          stalls.get(req)?.(message);
        },
      },
    );

    const stalled = open(port);
    const stalledSeen = received(stalled, 10_000);
    stalled.write(`${slowBodyHead(100)}"a":`);
    const stalledAt = Date.now();
    const handed = open(handingPort);
    const handedSeen = received(handed, 10_000);
    handed.write(slowBodyHead(100));
    // Pipelined behind a request answered after it: its body's clock starts when it is the one in flight.
    const pipelined = open(port);
    const pipelinedSeen = received(pipelined, 10_000);
    pipelined.write(`POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}${slowBodyHead(100)}`);

    const trickling = open(port);
    const tricklingAnswer = answerOf(trickling);
    trickling.write(slowBodyHead(13));
    // 12 more bytes, one every 150 ms: 1.8 s, past the timeout in all.
    const trickle = (async () => {
      for (let i = 0; i < 11; i++) {
        await sleep(150);
        trickling.write(' ');
      }
      await sleep(150);
      trickling.write('}');
    })();

    const big = 4 * 1024 * 1024;
    const uploading = open(port);
    const uploadAnswer = answerOf(uploading);
    uploading.write(`POST /slow-reader HTTP/1.1\r\nHost: x\r\nContent-Length: ${big}\r\n\r\n${'x'.repeat(big)}`);

    const { text: stalledText, closedByServer } = await stalledSeen;
    expect(Date.now() - stalledAt).toBeGreaterThanOrEqual(timeoutMs);
    expect(statuses(stalledText)).toEqual([408]);
    expect(stalledText).toMatch(/connection: close\r\n/i);
    expect(stalledText).toMatch(
      /\r\n\r\n\{"error":\{"code":"BAD_REQUEST","message":"the request body stopped arriving \(no byte for 1 s\)"\}\}$/,
    );
    expect(closedByServer).toBe(true);
    const handedOver = await handedSeen;
    expect(statuses(handedOver.text)).toEqual([408]);
    expect(handedOver.text).toMatch(/connection: close\r\n/i);
    expect(handedOver.closedByServer).toBe(true);
    expect(stalledHandedOver).toEqual(['the request body stopped arriving (no byte for 1 s)']);
    const afterFirst = await pipelinedSeen;
    expect(statuses(afterFirst.text)).toEqual([200, 408]);
    expect(afterFirst.closedByServer).toBe(true);

    await trickle;
    const tricklingText = await tricklingAnswer;
    expect(statuses(tricklingText)).toEqual([200]);
    expect(tricklingText).toMatch(/\{"length":13\}$/);
    const uploadText = await uploadAnswer;
    expect(slowReader.size).toBe(1);
    expect(statuses(uploadText)).toEqual([200]);
    expect(uploadText).toMatch(new RegExp(`\\{"length":${big}\\}$`));
  });

  it('a body that keeps coming but is not whole at the request timeout is answered 408 and closed, by its handler or the guard (it was closed with nothing: a 499)', async () => {
    const requestTimeoutMs = 1_000;
    const handedOver: string[] = [];
    const refusals = new Map<IncomingMessage, (message: string) => void>();
    // Reads the body, answers at its end: it never ends in time.
    const reading = (req: IncomingMessage, res: ServerResponse) => {
      req.on('end', () => answer(res));
      req.resume();
    };
    const { port: rawPort } = await guarded(reading, { requestTimeoutMs });
    const { port: handingPort } = await guarded(
      (req, res) => {
        // What listenHttp's readBody does: the reader answers the body the guard gave up on.
        refusals.set(req, (message) => {
          const body = JSON.stringify({ error: { code: 'BAD_REQUEST', message } });
          res.writeHead(408, { 'content-type': 'application/json', 'content-length': body.length }).end(body);
        });
        reading(req, res);
      },
      {
        requestTimeoutMs,
        onBodyStalled: (req, message) => {
          handedOver.push(message);
          refusals.get(req)?.(message);
        },
      },
    );
    const message = 'the request did not arrive whole within the request timeout (1 s)';
    for (const port of [rawPort, handingPort]) {
      const socket = open(port);
      const seen = received(socket, 10_000);
      const started = Date.now();
      socket.write(slowBodyHead(1_000));
      // A byte every 100 ms: never a pause of the progress timeout, never whole within 1 s.
      const trickle = setInterval(() => {
        if (!socket.destroyed) socket.write(' ');
      }, 100);
      const { text, closedByServer } = await seen;
      clearInterval(trickle);
      expect(Date.now() - started).toBeGreaterThanOrEqual(requestTimeoutMs);
      expect(statuses(text)).toEqual([408]);
      expect(text).toMatch(/connection: close\r\n/i);
      expect(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))).toEqual({ error: { code: 'BAD_REQUEST', message } });
      expect(closedByServer).toBe(true);
    }
    expect(handedOver).toEqual([message]);
  });
});
