import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { ConfigError, silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { eventually } from '@driftline/test-support';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type AnswersPastBound,
  checkBearer,
  DEFAULT_MAX_CONNECTIONS,
  HttpError,
  type HttpServer,
  heldAnswerBytes,
  type JsonBodyBounds,
  listenHttp,
  MAX_BUFFERED_BODY_BYTES,
  MAX_JSON_OBJECT_MEMBERS,
  MAX_PIPELINED_PER_CONNECTION,
  maxConnectionsField,
  parseJsonBody,
  RETRY_AFTER_SECONDS,
  readBody,
  type ServerTimeouts,
  sendError,
  sendJson,
} from '../src/http.js';
import { listenError } from '../src/listen-error.js';

describe('request bodies', () => {
  const servers: Server[] = [];
  afterEach(() => {
    for (const s of servers.splice(0)) s.close();
  });

  /** A server whose every request's body goes through readBody; resolves with what it gave. */
  async function bodyOf(send: (port: number) => void): Promise<string | HttpError> {
    let settle: (v: string | HttpError) => void = () => {};
    const result = new Promise<string | HttpError>((r) => {
      settle = r;
    });
    const server = createServer((req, res) => {
      readBody(req, 1_024).then(
        (text) => {
          settle(text);
          res.end();
        },
        (error: HttpError) => {
          settle(error);
          res.destroy();
        },
      );
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    send((server.address() as { port: number }).port);
    return result;
  }

  const raw = (port: number, head: string, body: Buffer, end: boolean) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(head);
      socket.write(body);
      if (end) socket.end();
      else setTimeout(() => socket.destroy(), 50);
    });
    socket.on('error', () => {});
  };

  it('reads UTF-8', async () => {
    const body = Buffer.from('{"entity_id":"é"}');
    const got = await bodyOf((port) =>
      raw(port, `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`, body, true),
    );
    expect(got).toBe('{"entity_id":"é"}');
  });

  it('refuses bytes that are not UTF-8 (400), never replacing them', async () => {
    const body = Buffer.from([0x7b, 0x22, 0x75, 0xff, 0x22, 0x7d]);
    const got = await bodyOf((port) =>
      raw(port, `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`, body, true),
    );
    expect(got).toMatchObject({ status: 400, message: 'body is not valid UTF-8' });
  });

  it('a client that goes away mid-body is a 499, not a server error', async () => {
    const got = await bodyOf((port) =>
      raw(port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n', Buffer.from('{"entity_id":'), false),
    );
    expect(got).toBeInstanceOf(HttpError);
    expect(got).toMatchObject({ status: 499, code: 'BAD_REQUEST' });
  });

  it('a body that is not JSON is one line, whatever it holds', () => {
    expect(() => parseJsonBody('x\ny\r\u2028', 8)).toThrow(/^body is not JSON: [^\n\r]*x\\ny/);
    let message = '';
    try {
      parseJsonBody(`"${'a'.repeat(10_000)}`, 8);
    } catch (error) {
      message = (error as HttpError).message;
    }
    expect(message).toMatch(/^body is not JSON: /);
    expect(message.length).toBeLessThan(300);
  });

  /** What parseJsonBody throws for `text` (undefined: parsed), and whether JSON.parse ran. */
  const refusal = (text: string, maxDepth: number, bounds?: JsonBodyBounds) => {
    const parse = vi.spyOn(JSON, 'parse');
    try {
      parseJsonBody(text, maxDepth, bounds);
      return { error: undefined, parsed: parse.mock.calls.length > 0 };
    } catch (error) {
      return { error: error as HttpError, parsed: parse.mock.calls.length > 0 };
    } finally {
      parse.mockRestore();
    }
  };
  const object = (n: number, key = (i: number) => `k${i}`) =>
    `{${Array.from({ length: n }, (_, i) => `"${key(i)}":1`).join(',')}}`;

  it(`an object wider than ${MAX_JSON_OBJECT_MEMBERS} members is a 400 before JSON.parse (60,000 keys, 634 KiB, took 75-190 ms to parse); the widest bodies the services take pass`, () => {
    const wide = refusal(object(60_000), 8);
    expect(wide.error).toMatchObject({
      status: 400,
      message: `body: an object of more than ${MAX_JSON_OBJECT_MEMBERS} members`,
    });
    expect(wide.parsed).toBe(false);
    // Inside a batch request, and one member past the bound.
    expect(refusal(`{"requests":[${object(60_000)}]}`, 8).error?.message).toBe(
      `body: an object of more than ${MAX_JSON_OBJECT_MEMBERS} members`,
    );
    expect(refusal(object(MAX_JSON_OBJECT_MEMBERS + 1), 8).parsed).toBe(false);
    // At the bound: 10,000 feature values of one instance (DRIFTLINE_MODEL_SERVER_MAX_FEATURES at its most).
    const features = `{"instances":[{"entity_id":"u1","features":${object(MAX_JSON_OBJECT_MEMBERS)}}]}`;
    expect(refusal(features, 6)).toEqual({ error: undefined, parsed: true });
    // Arrays are not bounded: 10,000 entity ids, 170,000 numbers.
    const ids = JSON.stringify({
      requests: [{ view: 'v', entities: Array.from({ length: 10_000 }, (_, i) => `e${i}`) }],
    });
    expect(refusal(ids, 8).error).toBeUndefined();
    expect(refusal(`[${Array(170_000).fill('1e5').join(',')}]`, 8).error).toBeUndefined();
    // A batch of 1,000 instances x 256 features (the defaults), 1,000 requests of 3 members.
    const batch = JSON.stringify({
      instances: Array.from({ length: 1_000 }, (_, i) => ({
        entity_id: `e${i}`,
        features: Object.fromEntries(Array.from({ length: 256 }, (_, j) => [`f${j}`, j])),
      })),
    });
    expect(refusal(batch, 6).error).toBeUndefined();
    const requests = JSON.stringify({
      requests: Array.from({ length: 1_000 }, () => ({ view: 'v', entities: ['e'], features: ['a'] })),
    });
    expect(refusal(requests, 8, { maxMembers: 3 }).error).toBeUndefined();
  });

  it('a caller bounds the members of an object and the distinct keys; commas in strings and arrays are no members', () => {
    expect(refusal('{"a":1,"b":2,"c":3}', 4, { maxMembers: 3 }).error).toBeUndefined();
    expect(refusal('{"a":1,"b":2,"c":3,"d":4}', 4, { maxMembers: 3 }).error?.message).toBe(
      'body: an object of more than 3 members',
    );
    expect(
      refusal(`{"a":"${','.repeat(1_000)}","b\\",":[${Array(1_000).fill(1).join(',')}]}`, 4, { maxMembers: 2 }).error,
    ).toBeUndefined();
    expect(refusal('[{}, {}, {"a":[1,2],"b":{"c":1,"d":2}}]', 4, { maxMembers: 2 }).error).toBeUndefined();
    // 6,000 objects of 10 keys each new (704 KiB took 110-300 ms to parse): refused with maxKeys, not without.
    const distinct = `[${Array.from({ length: 6_000 }, (_, o) => object(10, (i) => `k${o}_${i}`)).join(',')}]`;
    const many = refusal(distinct, 4, { maxKeys: 100 });
    expect(many.error).toMatchObject({ status: 400, message: 'body: more than 100 distinct object keys' });
    expect(many.parsed).toBe(false);
    expect(refusal(distinct, 4).error).toBeUndefined();
    // The same 60 names in 1,000 objects, values that are strings, keys with escaped quotes: 61 keys.
    const same = `[${Array.from({ length: 1_000 }, (_, o) => object(60, (i) => `f\\"${i}`).replace('}', `,"s":"v${o}"}`)).join(',')}]`;
    expect(refusal(same, 4, { maxKeys: 61 }).error).toBeUndefined();
    expect(refusal(same, 4, { maxKeys: 60 }).error?.message).toBe('body: more than 60 distinct object keys');
    // Depth is still refused first.
    expect(refusal('[[[[[1]]]]]', 4, { maxMembers: 1, maxKeys: 1 }).error?.message).toBe(
      'body: nesting deeper than 4 levels',
    );
  });
});

/** Raw bytes a socket receives until the server closes it (or `ms` pass). */
function received(socket: Socket, ms = 5_000): Promise<{ text: string; closedByServer: boolean }> {
  return new Promise((resolve) => {
    let text = '';
    socket.on('data', (d) => {
      text += d.toString('latin1');
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closedByServer: false });
    }, ms);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closedByServer: true });
    });
    socket.on('error', () => {});
  });
}

const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));

describe('the HTTP server bounds what a client can hold, and closes gracefully', () => {
  const servers: HttpServer[] = [];
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    for (const s of servers.splice(0)) await s.close(0);
  });
  const listen = async (
    handle: (req: IncomingMessage, res: ServerResponse) => unknown,
    timeouts: Partial<ServerTimeouts> = {},
  ) => {
    const server = await listenHttp(handle, timeouts);
    servers.push(server);
    return server;
  };
  const open = (port: number) => {
    const socket = connect(port, '127.0.0.1');
    sockets.push(socket);
    return socket;
  };

  it('close() lets a request in flight finish (its answer closes the connection), refuses new ones', async () => {
    let handling = false;
    const server = await listen(async (_req, res) => {
      handling = true;
      await new Promise((r) => setTimeout(r, 300));
      sendJson(res, 200, { ok: true }, 'r');
    });
    const answer = new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
      const req = request({ port: server.port, host: '127.0.0.1', path: '/', agent: false }, (res) => {
        let body = '';
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }));
      });
      req.on('error', reject);
      req.end();
    });
    await eventually(async () => (handling ? true : undefined), 5_000, 10); // the request is in the handler
    const started = Date.now();
    const closed = server.close();
    expect(await answer).toEqual({ status: 200, connection: 'close', body: '{"ok":true}' });
    await closed;
    expect(Date.now() - started).toBeLessThan(5_000); // not the 10 s grace: closed once answered; slack for a loaded run
    await expect(
      new Promise((resolve, reject) => {
        const socket = connect(server.port, '127.0.0.1', () => resolve('connected'));
        socket.on('error', reject);
      }),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('close() gives up on a request that never ends after the grace period', async () => {
    let handling = false;
    const server = await listen(() => {
      handling = true;
      return new Promise(() => {});
    });
    const socket = open(server.port);
    const seen = received(socket);
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventually(async () => (handling ? true : undefined), 5_000, 10);
    const started = Date.now();
    await server.close(300);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect((await seen).closedByServer).toBe(true);
  });

  it('an answer given before the body was read closes the connection instead of reading what follows', async () => {
    const token = Buffer.from('secret');
    const server = await listen((req, res) => {
      try {
        checkBearer(req.headers.authorization, token);
      } catch (error) {
        sendError(res, error as HttpError, 'r');
      }
    });
    const socket = open(server.port);
    const seen = received(socket);
    socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n');
    socket.write(Buffer.alloc(64 * 1024));
    const { text, closedByServer } = await seen;
    expect(statuses(text)).toEqual([401]);
    expect(text.toLowerCase()).toContain('connection: close');
    expect(closedByServer).toBe(true);
  });

  it('Expect: 100-continue: no 100 before the request is accepted; 100 once its body is read', async () => {
    const token = Buffer.from('secret');
    const server = await listen(async (req, res) => {
      try {
        checkBearer(req.headers.authorization, token);
        sendJson(res, 200, { got: await readBody(req, 1_024) }, 'r');
      } catch (error) {
        sendError(res, error as HttpError, 'r');
      }
    });
    const refused = open(server.port);
    const refusedSeen = received(refused);
    refused.write('POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n');
    expect(statuses((await refusedSeen).text)).toEqual([401]);

    const accepted = open(server.port);
    let text = '';
    accepted.on('data', (d) => {
      text += d.toString('latin1');
      if (text.includes('100 Continue') && !text.includes('{}')) accepted.write('{}');
    });
    accepted.write(
      'POST / HTTP/1.1\r\nHost: x\r\nAuthorization: bearer secret\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n',
    );
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (text.includes('{"got":"{}"}')) {
          clearInterval(check);
          resolve();
        }
      }, 10);
    });
    expect(statuses(text)).toEqual([100, 200]); // the scheme is case-insensitive, too
  });

  it('a request node cannot parse gets the one JSON error line, and the connection closes', async () => {
    const server = await listen((_req, res) => sendJson(res, 200, {}, 'r'));
    for (const [head, status] of [
      ['GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 400],
      [`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
      ['NOT HTTP AT ALL\r\n\r\n', 400],
    ] as const) {
      const socket = open(server.port);
      const seen = received(socket);
      socket.write(head);
      const { text, closedByServer } = await seen;
      expect(statuses(text)).toEqual([status]);
      expect(text).toMatch(/\r\n\r\n\{"error":\{"code":"BAD_REQUEST","message":"[^"\n]+"\}\}$/);
      expect(closedByServer).toBe(true);
    }
  });

  it(`one connection runs at most ${MAX_PIPELINED_PER_CONNECTION} pipelined requests at once; the rest get a 503`, async () => {
    let running = 0;
    let most = 0;
    const server = await listen(async (_req, res) => {
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 50));
      running--;
      sendJson(res, 200, {}, 'r');
    });
    const socket = open(server.port);
    const seen = received(socket);
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(200));
    const { text, closedByServer } = await seen;
    const got = statuses(text);
    expect(most).toBeLessThanOrEqual(MAX_PIPELINED_PER_CONNECTION);
    expect(got.slice(0, MAX_PIPELINED_PER_CONNECTION)).toEqual(Array(MAX_PIPELINED_PER_CONNECTION).fill(200));
    expect(got[MAX_PIPELINED_PER_CONNECTION]).toBe(503);
    expect(text).toContain('"code":"OVERLOADED"');
    expect(closedByServer).toBe(true);
  });

  it('a client that stops reading its answer loses its connection after the write timeout', async () => {
    const answer = 'x'.repeat(16 * 1024 * 1024); // more than the socket buffers of both ends hold
    const held: Socket[] = [];
    const server = await listen(
      (req, res) => {
        held.push(req.socket);
        res.end(answer);
      },
      { writeTimeoutMs: 300 },
    );
    const reader = open(server.port);
    const stalled = open(server.port);
    stalled.on('error', () => {});
    stalled.pause(); // reads nothing
    stalled.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventually(async () => (held.length === 1 ? true : undefined), 5_000, 20);
    const stalledOnServer = held[0]!;
    // A client that reads gets the whole answer, on time, meanwhile.
    const seen = received(reader, 10_000);
    reader.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const { text } = await seen;
    expect(statuses(text)).toEqual([200]);
    expect(text.length).toBeGreaterThan(answer.length);
    await eventually(async () => (stalledOnServer.destroyed ? true : undefined), 5_000, 20);
  }, 20_000);

  it('request bodies held at once are bounded process-wide: past the bound a 503, and the budget comes back', async () => {
    const server = await listen(async (req, res) => {
      try {
        sendJson(res, 200, { bytes: (await readBody(req, 2 * 1024 * 1024)).length }, 'r');
      } catch (error) {
        sendError(res, error as HttpError, 'r');
      }
    });
    const size = 1024 * 1024;
    const slow = Math.ceil(MAX_BUFFERED_BODY_BYTES / (size - 1)) + 2;
    const answers: string[] = [];
    const held: Socket[] = [];
    for (let i = 0; i < slow; i++) {
      const socket = open(server.port);
      held.push(socket);
      answers[i] = '';
      socket.on('data', (d: Buffer) => {
        answers[i] += d.toString('latin1');
      });
      socket.on('error', () => {});
      // All but the last byte: each body is held, unfinished.
      socket.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`);
      socket.write(Buffer.alloc(size - 1, 0x20));
    }
    // Waits for the refusal itself, not a fixed window: a loaded machine delivers the ~66 MiB slowly.
    const refused = await eventually(async () => answers.find((text) => statuses(text).includes(503)), 60_000, 20);
    expect(refused).toContain('too many request bodies in flight');
    // The held bodies' connections end: their bytes are released, and a normal request is read again.
    for (const socket of held) socket.destroy();
    const status = await eventually(
      async () => {
        const socket = open(server.port);
        const after = received(socket);
        socket.write('POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}');
        const got = statuses((await after).text);
        return got.includes(200) ? got : undefined;
      },
      30_000,
      50,
    );
    expect(status).toEqual([200]);
  }, 120_000);
});

describe('connections, answer bytes and error answers of listenHttp', () => {
  const servers: HttpServer[] = [];
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    for (const s of servers.splice(0)) await s.close(0);
  });
  const open = (port: number) => {
    const socket = connect(port, '127.0.0.1');
    sockets.push(socket);
    return socket;
  };
  /** Sends one request on `socket` and resolves once its whole (small) answer came. */
  const ask = (socket: Socket, path = '/') =>
    new Promise<string>((resolve) => {
      let text = '';
      const onData = (d: Buffer) => {
        text += d.toString('latin1');
        if (text.includes('\r\n\r\n{')) {
          socket.off('data', onData);
          resolve(text);
        }
      };
      socket.on('data', onData);
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    });

  it('at maxConnections a new connection closes the longest-idle one, logs once and counts it (there was no cap)', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const warnings: unknown[] = [];
    const logger = { ...silentLogger, warn: (obj: object) => warnings.push(obj) };
    let busyRelease: () => void = () => {};
    const server = await listenHttp(
      async (req, res) => {
        if (req.url === '/busy') await new Promise<void>((r) => (busyRelease = r));
        sendJson(res, 200, { ok: true }, 'r');
      },
      { maxConnections: 3, listener: 'test-api', registry, logger },
    );
    servers.push(server);
    const [oldest, middle, busy] = [open(server.port), open(server.port), open(server.port)];
    const oldestSeen = received(oldest);
    await ask(oldest);
    await ask(middle);
    busy.write('GET /busy HTTP/1.1\r\nHost: x\r\n\r\n'); // a request in flight: never evicted
    await new Promise((r) => setTimeout(r, 50));
    const fresh = open(server.port);
    expect(statuses(await ask(fresh))).toEqual([200]);
    expect((await oldestSeen).closedByServer).toBe(true);
    expect(middle.destroyed).toBe(false);
    // Two more: the middle one goes, then the fresh one (idle since its answer); the busy one stays.
    const more = [open(server.port), open(server.port)];
    for (const m of more) expect(statuses(await ask(m))).toEqual([200]);
    expect(busy.destroyed).toBe(false);
    busyRelease();
    expect(warnings).toHaveLength(1); // rate-limited: one line for three evictions
    expect(warnings[0]).toMatchObject({ listener: 'test-api', maxConnections: 3 });
    expect(await registry.metrics()).toContain(
      'driftline_http_connections_shed_total{listener="test-api",reason="evicted_idle",service="test"} 3',
    );
  });

  it('the default cap is validated by its variable', () => {
    expect(DEFAULT_MAX_CONNECTIONS).toBe(512);
    expect(maxConnectionsField().parse(undefined)).toBe(DEFAULT_MAX_CONNECTIONS);
    expect(maxConnectionsField().safeParse('0').success).toBe(false);
    expect(maxConnectionsField().safeParse('2000').data).toBe(2_000);
  });

  /** A server whose every answer is 16 MiB of JSON (more than both ends' socket buffers hold). */
  const bigAnswers = async (maxHeldAnswerBytes: number, answersPastBound?: AnswersPastBound) => {
    const answer = { x: 'x'.repeat(16 * 1024 * 1024) };
    let handled = 0;
    const server = await listenHttp(
      (_req, res) => {
        handled++;
        sendJson(res, 200, answer, 'r');
      },
      { maxHeldAnswerBytes, writeTimeoutMs: 500, ...(answersPastBound === undefined ? {} : { answersPastBound }) },
    );
    servers.push(server);
    const stalled = open(server.port);
    stalled.on('error', () => {});
    stalled.pause(); // reads nothing
    stalled.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventually(async () => (handled === 1 ? true : undefined), 5_000, 20);
    return { server, stalled, handled: () => handled };
  };

  it('answer bytes held are bounded: a new request past the bound is a 503 with Retry-After, until the stuck client is dropped', async () => {
    const { server, handled } = await bigAnswers(8 * 1024 * 1024);
    const refused = open(server.port);
    const refusedSeen = received(refused, 1_000);
    refused.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const { text } = await refusedSeen;
    expect(statuses(text)).toEqual([503]);
    expect(text).toContain('retry-after: 1');
    expect(text).toContain('too many answers not yet read by their clients');
    expect(handled()).toBe(1); // refused before any work
    // Past the write timeout the stalled connection is destroyed and its bytes come back.
    await eventually(
      async () => {
        const socket = open(server.port);
        const seen = received(socket, 10_000);
        socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
        return statuses((await seen).text)[0] === 200 ? true : undefined;
      },
      10_000,
      100,
    );
  }, 20_000);

  it("answersPastBound 'send': an admitted request is always answered, past the bound too: refused only at admission, before any work (the model-server logged a prediction, then answered 503)", async () => {
    const { server, handled } = await bigAnswers(24 * 1024 * 1024, 'send');
    // 16 MiB held, under the bound: admitted, its 16 MiB answer passes the bound and is sent.
    const socket = open(server.port);
    const seen = received(socket, 10_000);
    socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const { text } = await seen;
    expect(handled()).toBe(2);
    expect(statuses(text)).toEqual([200]);
    expect(text.length).toBeGreaterThan(16 * 1024 * 1024);
  }, 20_000);

  /**
   * Three clients that read nothing each send a request for a 16 MiB answer at once, all admitted
   * while nothing is held (bound: 24 MiB); the statuses the server answered them, sorted.
   */
  const answeredTogether = async (answersPastBound: AnswersPastBound) => {
    const answer = { x: 'x'.repeat(16 * 1024 * 1024) };
    const answered: number[] = [];
    let handled = 0;
    let releaseAll: () => void = () => {};
    const together = new Promise<void>((r) => (releaseAll = r));
    const server = await listenHttp(
      async (_req, res) => {
        if (++handled === 3) releaseAll();
        await together; // the work of all three done before any answer is written
        sendJson(res, 200, answer, 'r');
        answered.push(res.statusCode);
      },
      { maxHeldAnswerBytes: 24 * 1024 * 1024, writeTimeoutMs: 5_000, answersPastBound },
    );
    servers.push(server);
    for (let i = 0; i < 3; i++) {
      const stalled = open(server.port);
      stalled.on('error', () => {});
      stalled.pause(); // reads nothing
      stalled.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    }
    await eventually(async () => (answered.length === 3 ? true : undefined), 5_000, 20);
    return answered.sort();
  };

  it("answersPastBound 'refuse' (the default): requests admitted together hold at most the bound; an answer past it is a 503 (60 connections x 16 held 813 MB against 1 MB)", async () => {
    expect(await answeredTogether('refuse')).toEqual([200, 503, 503]);
  });

  it("answersPastBound 'send': requests admitted together are all answered, past the bound", async () => {
    expect(await answeredTogether('send')).toEqual([200, 200, 200]);
  });

  it('answer bytes come back on every path: a client gone before its answer, pipelined answers never started, errors, HEAD, refusals (they leaked: every later request 503)', async () => {
    expect(heldAnswerBytes()).toBe(0);
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    let answered = 0;
    const big = 'x'.repeat(8 * 1024 * 1024); // more than the socket buffers of both ends hold
    const server = await listenHttp(
      async (req, res) => {
        const slow = req.url?.startsWith('/slow') === true;
        if (slow) await sleep(150);
        answered++;
        if (req.url === '/error') sendError(res, new HttpError(400, 'BAD_REQUEST', 'no'), 'r');
        else sendJson(res, 200, { data: req.url === '/big' ? big : 'x'.repeat(600) }, 'r');
      },
      { writeTimeoutMs: 200 },
    );
    servers.push(server);
    const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
    const head = 'HEAD / HTTP/1.1\r\nHost: x\r\n\r\n';
    const gone: Array<Promise<unknown>> = [];
    for (let i = 0; i < 8; i++) {
      // Gone before the answer (a client's timeout); pipelined answers computed behind a slow one,
      // then the client gone (node never starts them: no close of their own).
      const aborted = open(server.port);
      aborted.on('error', () => {});
      aborted.write(get('/slow'));
      const pipelined = open(server.port);
      pipelined.on('error', () => {});
      pipelined.write([get('/slow'), get('/'), get('/error'), head].join(''));
      // More than the connection may pipeline: the rest are refused with a 503.
      const refused = open(server.port);
      refused.on('error', () => {});
      refused.write(get('/slow').repeat(MAX_PIPELINED_PER_CONNECTION + 4));
      gone.push(
        sleep(50).then(() => aborted.destroy()),
        sleep(100).then(() => pipelined.destroy()),
        sleep(100).then(() => refused.destroy()),
      );
    }
    // A client that stops reading: its connection is closed at the write timeout.
    const stalled = open(server.port);
    stalled.on('error', () => {});
    stalled.pause();
    stalled.write(get('/big'));
    await eventually(async () => (heldAnswerBytes() >= big.length ? true : undefined), 5_000, 10);
    // Answered and read: errors and HEAD on a live connection.
    const reader = open(server.port);
    const seen = received(reader);
    reader.write([get('/error'), head, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'].join(''));
    expect(statuses((await seen).text)).toEqual([400, 200, 200]);
    await Promise.all(gone);
    await eventually(
      async () => (answered >= 8 * (1 + 4 + MAX_PIPELINED_PER_CONNECTION) + 1 ? true : undefined),
      10_000,
      20,
    );
    await eventually(async () => (heldAnswerBytes() === 0 ? true : undefined), 5_000, 20);
    expect(heldAnswerBytes()).toBe(0);
  }, 20_000);

  it('clients gone before a slow answer leave the bound as it was: later requests are answered (they were 503 for good)', async () => {
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    let answered = 0;
    const server = await listenHttp(
      async (req, res) => {
        if (req.url === '/slow') await sleep(200);
        answered++;
        sendJson(res, 200, { data: 'x'.repeat(600) }, 'r');
      },
      { maxHeldAnswerBytes: 1_000 },
    );
    servers.push(server);
    for (let i = 0; i < 2; i++) {
      const socket = open(server.port);
      socket.on('error', () => {});
      socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
      setTimeout(() => socket.destroy(), 50);
    }
    await eventually(async () => (answered === 2 ? true : undefined), 5_000, 20);
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`http://127.0.0.1:${server.port}/`);
      expect(res.status).toBe(200);
      await res.text();
    }
  });

  it('a connection whose request headers are still arriving is busy at the cap: the idle one is closed instead (it was closed mid-request)', async () => {
    const server = await listenHttp((_req, res) => sendJson(res, 200, { ok: true }, 'r'), { maxConnections: 3 });
    servers.push(server);
    const arriving = open(server.port);
    const arrivingSeen = received(arriving, 2_000);
    arriving.write('GET / HTTP/1.1\r\nHost: x\r\n'); // the headers in part
    await new Promise((r) => setTimeout(r, 50));
    const idle = open(server.port);
    const idleSeen = received(idle, 2_000);
    await ask(idle); // answered, then idle (keep-alive)
    const third = open(server.port);
    await ask(third);
    // At the cap: the longest idle is the one still sending its request; it is spared.
    const fresh = open(server.port);
    expect(statuses(await ask(fresh))).toEqual([200]);
    expect((await idleSeen).closedByServer).toBe(true);
    arriving.write('Connection: close\r\n\r\n');
    const { text } = await arrivingSeen;
    expect(statuses(text)).toEqual([200]);
  });

  it('a request node cannot parse behind an answer in flight: that answer is read as sent, no 400 in its place, then the connection closes', async () => {
    let handled = 0;
    const server = await listenHttp(async (_req, res) => {
      await new Promise((r) => setTimeout(r, 150));
      handled++;
      sendJson(res, 200, { ok: true }, 'r');
    }, {});
    servers.push(server);
    const socket = open(server.port);
    const seen = received(socket);
    socket.write(
      'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n',
    );
    const { text, closedByServer } = await seen;
    expect(handled).toBe(1);
    expect(statuses(text)).toEqual([200]);
    expect(text).toMatch(/\r\n\r\n\{"ok":true\}$/);
    expect(text.toLowerCase()).toContain('connection: close');
    expect(closedByServer).toBe(true);
  });

  it('a request without Host and an unknown Expect get the JSON error and close their connection (node answered them bare)', async () => {
    let handled = 0;
    const server = await listenHttp((_req, res) => {
      handled++;
      sendJson(res, 200, {}, 'r');
    }, {});
    servers.push(server);
    for (const [request, status] of [
      ['GET / HTTP/1.1\r\n\r\n', 400],
      ['POST / HTTP/1.1\r\nHost: x\r\nExpect: foo\r\nContent-Length: 27\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n', 417],
    ] as const) {
      const socket = open(server.port);
      const seen = received(socket);
      socket.write(request);
      const { text, closedByServer } = await seen;
      expect(statuses(text)).toEqual([status]); // the 417's body is never run as a request
      expect(text).toMatch(/\r\n\r\n\{"error":\{"code":"BAD_REQUEST","message":"[^"\n]+"\}\}$/);
      expect(closedByServer).toBe(true);
    }
    expect(handled).toBe(0);
  });

  it('every 503 has a Retry-After', async () => {
    const server = await listenHttp(
      (_req, res) => sendError(res, new HttpError(503, 'SINK_UNAVAILABLE', 'down'), 'r'),
      {},
    );
    servers.push(server);
    const res = await fetch(`http://127.0.0.1:${server.port}/`);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe(String(RETRY_AFTER_SECONDS));
  });
});

describe('bodies refused at the shared HTTP boundary are answered, and counted as answered', () => {
  const servers: HttpServer[] = [];
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    for (const s of servers.splice(0)) await s.close(0);
  });
  /**
   * A server whose handler reads the body as the services do (readBody, then sendError of what it
   * threw); `counted` holds the status of each request as its metrics would see it.
   */
  const service = async (limit = 1_024, timeouts: Partial<ServerTimeouts> = {}) => {
    const counted: number[] = [];
    const server = await listenHttp(async (req, res) => {
      try {
        const body = await readBody(req, limit);
        counted.push(200);
        sendJson(res, 200, { bytes: body.length }, 'r');
      } catch (error) {
        counted.push((error as HttpError).status);
        sendError(res, error as HttpError, 'r');
      }
    }, timeouts);
    servers.push(server);
    return { port: server.port, counted };
  };
  /** Writes `bytes` on a new connection; what it receives until the server closes it, and after how long. */
  const exchange = async (port: number, ...bytes: (string | Buffer)[]) => {
    const socket = connect(port, '127.0.0.1');
    sockets.push(socket);
    const started = Date.now();
    const seen = received(socket);
    for (const b of bytes) socket.write(b);
    const got = await seen;
    return { ...got, ms: Date.now() - started };
  };
  const head = (lines: string) => `POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\n${lines}\r\n`;
  const errorBody = (text: string) => JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as unknown;

  it('a chunked body the parser refuses is a 400 naming its code, connection closed, counted 400 (it closed with nothing, counted 499)', async () => {
    const { port, counted } = await service();
    for (const body of ['zz\r\nabc\r\n0\r\n\r\n', '5\r\n{"ent\r\nzz\r\n', '5\r\n{"ent\r\nzz\r\nmore junk\r\n']) {
      const { text, closedByServer } = await exchange(port, head('Transfer-Encoding: chunked\r\n'), body);
      expect(statuses(text)).toEqual([400]);
      expect(text.toLowerCase()).toContain('connection: close');
      expect(errorBody(text)).toEqual({
        error: { code: 'BAD_REQUEST', message: 'malformed HTTP request body (HPE_INVALID_CHUNK_SIZE)' },
      });
      expect(text).toMatch(/\r\n\r\n[^\n]+$/); // one line
      expect(closedByServer).toBe(true);
    }
    expect(counted).toEqual([400, 400, 400]);
  });

  it('a body that keeps coming but is not whole at the request timeout is a 408, connection closed, counted 408 (it closed with nothing, counted 499)', async () => {
    const { port, counted } = await service(100_000, { headersTimeoutMs: 1_000, requestTimeoutMs: 1_500 });
    const socket = connect(port, '127.0.0.1');
    sockets.push(socket);
    socket.on('error', () => {});
    const started = Date.now();
    const seen = received(socket);
    socket.write(head('Content-Length: 1000\r\n'));
    // A byte every 200 ms: never the longest pause allowed (the headers timeout), never whole in 1.5 s.
    const trickle = setInterval(() => {
      if (!socket.destroyed) socket.write(' ');
    }, 200);
    const { text, closedByServer } = await seen;
    clearInterval(trickle);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_500);
    expect(statuses(text)).toEqual([408]);
    expect(text.toLowerCase()).toContain('connection: close');
    expect(errorBody(text)).toEqual({
      error: { code: 'BAD_REQUEST', message: 'the request did not arrive whole within the request timeout (1.5 s)' },
    });
    expect(closedByServer).toBe(true);
    expect(counted).toEqual([408]);
  });

  it('a client that closes mid-body, chunked or not, is still a 499 (its end is no malformed body)', async () => {
    const { port, counted } = await service();
    for (const [framing, part] of [
      ['Transfer-Encoding: chunked\r\n', '5\r\n{"ent\r\n'],
      ['Content-Length: 100\r\n', '{"ent'],
    ] as const) {
      const before = counted.length;
      const socket = connect(port, '127.0.0.1');
      sockets.push(socket);
      socket.on('error', () => {});
      socket.write(`${head(framing)}${part}`);
      await new Promise((r) => setTimeout(r, 50));
      socket.destroy();
      await eventually(async () => (counted.length > before ? true : undefined), 2_000, 10);
    }
    expect(counted).toEqual([499, 499]);
  });

  it('a declared Content-Length over the limit is a 413 at once, before any byte of the body (the connection was held 30 s, then closed with nothing)', async () => {
    const { port, counted } = await service();
    const { text, closedByServer, ms } = await exchange(port, head('Content-Length: 100000000000\r\n'));
    expect(statuses(text)).toEqual([413]);
    expect(errorBody(text)).toEqual({ error: { code: 'BAD_REQUEST', message: 'request body larger than 1024 bytes' } });
    expect(text.toLowerCase()).toContain('connection: close');
    expect(closedByServer).toBe(true);
    expect(ms).toBeLessThan(1_000);
    // Expect: 100-continue gets the 413 and no 100: the client never sends the body.
    const refused = await exchange(port, head('Content-Length: 100000000000\r\nExpect: 100-continue\r\n'));
    expect(statuses(refused.text)).toEqual([413]);
    // The same message as a body that turns out too large as it streams.
    const streamed = await exchange(port, head('Transfer-Encoding: chunked\r\n'), `800\r\n${'a'.repeat(2048)}\r\n`);
    expect(statuses(streamed.text)).toEqual([413]);
    expect(errorBody(streamed.text)).toEqual(errorBody(text));
    expect(counted).toEqual([413, 413, 413]);
  });

  it('a compressed body is a 415 asking for it uncompressed (it was "body is not valid UTF-8"); identity is read', async () => {
    const { port, counted } = await service();
    const gzipped = gzipSync('{"entity_id":"u1"}');
    for (const coding of ['gzip', 'GZIP', 'identity, gzip']) {
      const { text, closedByServer } = await exchange(
        port,
        head(`Content-Encoding: ${coding}\r\nContent-Length: ${gzipped.length}\r\n`),
        gzipped,
      );
      expect(statuses(text)).toEqual([415]);
      expect(errorBody(text)).toEqual({
        error: { code: 'BAD_REQUEST', message: 'content encoding gzip not supported; send the body uncompressed' },
      });
      expect(text.toLowerCase()).toContain('accept-encoding: identity');
      expect(closedByServer).toBe(true);
    }
    const { text } = await exchange(
      port,
      head('Content-Encoding: identity\r\nContent-Length: 2\r\nConnection: close\r\n'),
      '{}',
    );
    expect(statuses(text)).toEqual([200]);
    expect(counted).toEqual([415, 415, 415, 200]);
  });
});

describe('an address that cannot be bound', () => {
  const taken: Server[] = [];
  afterEach(() => {
    for (const s of taken.splice(0)) s.close();
  });
  const takePort = async () => {
    const server = createServer();
    taken.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return (server.address() as { port: number }).port;
  };
  const variables = { port: 'DRIFTLINE_X_PORT', host: 'DRIFTLINE_X_HOST' };

  it('is a ConfigError naming the port variable when the port is in use (it was an internal error)', async () => {
    const port = await takePort();
    const error = await listenHttp(() => {}, { port, host: '127.0.0.1', listenVariables: variables }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('DRIFTLINE_X_PORT');
    expect((error as ConfigError).message).toBe(
      `DRIFTLINE_X_PORT: cannot listen on 127.0.0.1:${port}: the port is in use by another process (pick another, or 0 for any free one)`,
    );
    // Without the variables, node's own error as before.
    await expect(listenHttp(() => {}, { port, host: '127.0.0.1' })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });

  it('is a ConfigError naming the host variable when the host name does not resolve (it was an internal error)', async () => {
    const error = await listenHttp(() => {}, { port: 0, host: 'nosuch.invalid', listenVariables: variables }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(
      'DRIFTLINE_X_HOST: cannot listen on nosuch.invalid:0: the host name does not resolve to an address',
    );
  });

  it('names the port for a refused port, the host for an address the machine lacks, and passes the rest', () => {
    const systemError = (code: string) => Object.assign(new Error(`listen ${code}`), { code });
    const refused = listenError(systemError('EACCES'), variables, '::1', 80);
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as ConfigError).message).toBe(
      'DRIFTLINE_X_PORT: cannot listen on [::1]:80: permission denied (ports below 1024 need privileges)',
    );
    expect((listenError(systemError('EADDRNOTAVAIL'), variables, '10.9.9.9', 1) as ConfigError).field).toBe(
      'DRIFTLINE_X_HOST',
    );
    const other = systemError('EMFILE');
    expect((listenError(systemError('ENOTFOUND'), variables, 'nosuch.invalid', 1) as ConfigError).field).toBe(
      'DRIFTLINE_X_HOST',
    );
    expect(listenError(other, variables, '127.0.0.1', 1)).toBe(other);
    expect(listenError('constructor', variables, '127.0.0.1', 1)).toBe('constructor');
  });
});
