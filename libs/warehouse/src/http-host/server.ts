// The ClickHouse host: one process owns the embedded engine's data directory and serves the part
// of ClickHouse's HTTP interface @clickhouse/client uses, so several driftline processes on one
// machine share one ClickHouse (DRIFTLINE_CLICKHOUSE_URL=http://127.0.0.1:8123) without a server.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { DriftlineError, isRetriable, type Logger, silentLogger } from '@driftline/core';
import { ChdbEngine } from './engine.js';
import { contentType, exceptionText, HostError, hostErrorFrom, parseHostRequest } from './protocol.js';

export interface ClickHouseHostOptions {
  /** Data directory of the engine (the host is its only user). */
  readonly path: string;
  /** Default 8123; 0 picks a free port. */
  readonly port?: number;
  /** Default 127.0.0.1. Any other address needs a password. */
  readonly host?: string;
  /** Required from clients when set (HTTP basic auth, X-ClickHouse-User/-Key headers, or user/password in the URL). */
  readonly password?: string;
  /** The user name clients give with the password (default `default`). */
  readonly username?: string;
  /** Largest request body (query and INSERT data), bytes; default 64 MiB. More is refused, 413. */
  readonly maxBodyBytes?: number;
  /** Bound on a request from its arrival to its answer (waiting for the engine included); default 60 s. */
  readonly requestTimeoutMs?: number;
  /** Requests waiting for the engine at most; default 256. More are refused, 503 (retriable). */
  readonly maxQueue?: number;
  /**
   * How long start-up keeps trying to open the engine, with backoff, while the machine refuses its
   * directory for want of a resource (a full or read-only disk: SinkUnavailableError); default 0,
   * one attempt. `driftline clickhouse serve` passes DRIFTLINE_STARTUP_TIMEOUT.
   */
  readonly startupTimeoutMs?: number;
  /** Ends start-up's retries at once (a signal while it waits), with the last failure. */
  readonly signal?: AbortSignal;
  readonly logger?: Logger;
}

export const CLICKHOUSE_HOST_DEFAULTS = {
  port: 8123,
  host: '127.0.0.1',
  username: 'default',
  maxBodyBytes: 64 * 1024 * 1024,
  requestTimeoutMs: 60_000,
  maxQueue: 256,
  /**
   * Longest request URL (ClickHouse's `http_max_uri_size`, 1 MiB): the client sends query
   * parameters in it. Node's default bound on a request's headers, URL included, is 16 KiB: a
   * lookup of 400 ids was refused 431 where ClickHouse takes it (found by a review).
   */
  maxUriBytes: 1024 * 1024,
} as const;

// Room for the request's other headers beside its URL (Node's whole default bound).
const OTHER_HEADER_BYTES = 16 * 1024;

const HEADERS_TOO_LARGE_TEXT = `Request Header Fields Too Large: the URL and headers exceed ${CLICKHOUSE_HOST_DEFAULTS.maxUriBytes + OTHER_HEADER_BYTES} bytes (http_max_uri_size)\n`;
const HEADERS_TOO_LARGE = `HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: ${Buffer.byteLength(HEADERS_TOO_LARGE_TEXT)}\r\n\r\n${HEADERS_TOO_LARGE_TEXT}`;
const REQUEST_TIMEOUT = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n';
const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n';

export interface ClickHouseHost {
  /** `http://host:port` for DRIFTLINE_CLICKHOUSE_URL. */
  readonly url: string;
  readonly port: number;
  readonly path: string;
  /** Stops accepting, answers the requests in hand, closes the engine. */
  close(): Promise<void>;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

// Start-up's backoff between attempts to open the engine, as `driftline run`'s (libs/service).
const STARTUP_RETRY_INITIAL_MS = 1_000;
const STARTUP_RETRY_MAX_MS = 15_000;

/**
 * The engine, opened again with backoff while the machine refuses its directory, for
 * `startupTimeoutMs`: the host exited at once on a full or read-only disk, a restart loop under a
 * supervisor (found by a review). Anything not retriable (a directory in use or not writable by
 * this user) fails at once.
 */
async function openEngine(options: ClickHouseHostOptions, logger: Logger): Promise<ChdbEngine> {
  const started = Date.now();
  const aborted = () => options.signal?.aborted === true;
  for (let attempt = 1; ; attempt++) {
    try {
      return new ChdbEngine({ path: options.path, maxQueue: options.maxQueue ?? CLICKHOUSE_HOST_DEFAULTS.maxQueue });
    } catch (error) {
      const delay = Math.min(STARTUP_RETRY_MAX_MS, STARTUP_RETRY_INITIAL_MS * 2 ** (attempt - 1));
      const left = (options.startupTimeoutMs ?? 0) - (Date.now() - started);
      if (!isRetriable(error) || delay > left || aborted()) throw error;
      logger.warn(
        { err: (error as Error).message, attempt, retryInMs: delay, giveUpInMs: left },
        'start-up failed: the engine cannot open its data directory; retrying (DRIFTLINE_STARTUP_TIMEOUT)',
      );
      await sleep(delay, undefined, options.signal === undefined ? {} : { signal: options.signal }).catch(() => {});
      if (aborted()) throw error;
    }
  }
}

/** Starts the host; refuses a non-loopback address without a password (CONFIG_INVALID). */
export async function startClickHouseHost(options: ClickHouseHostOptions): Promise<ClickHouseHost> {
  const host = options.host ?? CLICKHOUSE_HOST_DEFAULTS.host;
  if (!LOOPBACK.test(host) && (options.password === undefined || options.password === '')) {
    throw new DriftlineError(
      'CONFIG_INVALID',
      `DRIFTLINE_CLICKHOUSE_HOST_BIND: ${host} is not a loopback address; set DRIFTLINE_CLICKHOUSE_HOST_PASSWORD to serve it`,
    );
  }
  const maxBody = options.maxBodyBytes ?? CLICKHOUSE_HOST_DEFAULTS.maxBodyBytes;
  const timeoutMs = options.requestTimeoutMs ?? CLICKHOUSE_HOST_DEFAULTS.requestTimeoutMs;
  const logger = options.logger ?? silentLogger;
  const engine = await openEngine(options, logger);
  const credentials =
    options.password === undefined || options.password === ''
      ? undefined
      : digest(`${options.username ?? CLICKHOUSE_HOST_DEFAULTS.username}:${options.password}`);

  const fail = (res: ServerResponse, error: HostError, queryId?: string) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = Buffer.from(exceptionText(error, engine.version), 'utf8');
    res.writeHead(error.status === 499 ? 500 : error.status, {
      'content-type': 'text/plain; charset=UTF-8',
      'content-length': body.length,
      'x-clickhouse-exception-code': String(error.code),
      ...(queryId === undefined ? {} : { 'x-clickhouse-query-id': queryId }),
      ...(error.status === 413 ? { connection: 'close' } : {}),
    });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const arrived = Date.now();
    const url = new URL(req.url ?? '/', 'http://host');
    try {
      // Only programs talk to this host (clients, Grafana's backend, the CLI); a browser sends
      // Origin or Sec-Fetch-* and any page it opens could otherwise run SQL here (the GET
      // readonly rule aside, a cross-site form POST could). Refused before anything else.
      if (req.headers.origin !== undefined || req.headers['sec-fetch-site'] !== undefined) {
        throw new HostError(
          497,
          'ACCESS_DENIED',
          'requests from a web browser (Origin or Sec-Fetch-Site set) are refused: this host runs any SQL it is sent',
          403,
        );
      }
      if (credentials !== undefined && !authorized(req, url, credentials)) {
        throw new HostError(
          516,
          'AUTHENTICATION_FAILED',
          'Authentication failed: password is incorrect, or there is no user with such name',
          403,
        );
      }
      const method = req.method ?? 'GET';
      if (url.pathname === '/ping' || (url.pathname === '/' && method === 'GET' && !url.searchParams.has('query'))) {
        res.writeHead(200, { 'content-type': 'text/plain; charset=UTF-8' }).end('Ok.\n');
        return;
      }
      if (url.pathname !== '/') throw new HostError(48, 'NOT_IMPLEMENTED', `no handler for ${url.pathname}`, 404);
      const encoding = req.headers['content-encoding'];
      if (encoding !== undefined && encoding !== 'identity') {
        throw new HostError(48, 'NOT_IMPLEMENTED', `request Content-Encoding ${encoding} is not supported`, 501);
      }
      if ((req.headers['content-type'] ?? '').startsWith('multipart/')) {
        throw new HostError(48, 'NOT_IMPLEMENTED', 'multipart query parameters are not supported', 501);
      }
      const body = await readBody(req, maxBody);
      const request = parseHostRequest(method, url, body);
      const closed = new AbortController();
      res.once('close', () => closed.abort());
      const result = await engine.execute(request, arrived + timeoutMs, closed.signal);
      const gzip = request.compression && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
      const bytes = gzip ? gzipSync(result.bytes) : Buffer.from(result.bytes);
      const summary = {
        read_rows: String(result.rowsRead),
        read_bytes: String(result.bytesRead),
        written_rows: '0',
        written_bytes: '0',
        total_rows_to_read: '0',
        result_rows: String(result.rowsRead),
        result_bytes: String(result.bytes.length),
        elapsed_ns: String(Math.round(result.elapsedSeconds * 1e9)),
      };
      res.writeHead(200, {
        'content-type': contentType(request.format),
        'content-length': bytes.length,
        'x-clickhouse-format': request.format,
        'x-clickhouse-summary': JSON.stringify(summary),
        'x-clickhouse-timezone': 'UTC',
        ...(request.queryId === undefined ? {} : { 'x-clickhouse-query-id': request.queryId }),
        ...(gzip ? { 'content-encoding': 'gzip' } : {}),
      });
      res.end(bytes);
    } catch (error) {
      const e = hostErrorFrom(error);
      if (e.code === 425 || e.code === 159)
        logger.warn({ code: e.code, err: e.message }, 'clickhouse host request failed');
      fail(res, e, url.searchParams.get('query_id') ?? undefined);
    }
  };

  const server = createServer(
    {
      headersTimeout: 10_000,
      // A longer URL or larger headers are answered 431 (by Node, before any handler).
      maxHeaderSize: CLICKHOUSE_HOST_DEFAULTS.maxUriBytes + OTHER_HEADER_BYTES,
      // The whole request must arrive within the request bound; the engine's wait is bounded apart.
      requestTimeout: timeoutMs,
      keepAliveTimeout: 10_000,
      connectionsCheckingInterval: 1_000,
    },
    (req, res) => void handle(req, res),
  );
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code !== 'HPE_HEADER_OVERFLOW' || !socket.writable) {
      // Node's own answer to the other malformed requests (it gives none once a listener is set).
      if (socket.writable) socket.end(error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? REQUEST_TIMEOUT : BAD_REQUEST);
      socket.destroy();
      return;
    }
    // Answered 431, then the rest of the request is read and dropped: a socket closed with the
    // URL still arriving is reset before the client reads the answer, an outage to it
    // (ECONNRESET, retried for ever) where 431 is a refusal of that query.
    socket.end(HEADERS_TOO_LARGE);
    socket.resume();
    setTimeout(() => socket.destroy(), timeoutMs).unref();
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? CLICKHOUSE_HOST_DEFAULTS.port, host, () => resolve());
    });
  } catch (error) {
    await engine.close();
    throw new DriftlineError(
      'CONFIG_INVALID',
      `DRIFTLINE_CLICKHOUSE_HOST_PORT: cannot listen on ${host}: ${String(error)}`,
      {
        cause: error,
      },
    );
  }
  const port = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}`,
    port,
    path: engine.path,
    async close() {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await engine.close();
      server.closeAllConnections();
      await stopped;
    },
  };
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

// Basic auth, ClickHouse's own X-ClickHouse-User/-Key headers, or user/password URL keys, compared
// in constant time (hashes of equal length).
function authorized(req: IncomingMessage, url: URL, expected: Buffer): boolean {
  let given: string | undefined;
  const header = req.headers.authorization;
  if (header?.startsWith('Basic ') === true) given = Buffer.from(header.slice(6), 'base64').toString('utf8');
  else if (req.headers['x-clickhouse-key'] !== undefined) {
    given = `${String(req.headers['x-clickhouse-user'] ?? 'default')}:${String(req.headers['x-clickhouse-key'])}`;
  } else if (url.searchParams.has('password')) {
    given = `${url.searchParams.get('user') ?? 'default'}:${url.searchParams.get('password')}`;
  }
  return given !== undefined && timingSafeEqual(digest(given), expected);
}

/** The body as text, up to `limit` bytes; more is TOO_MANY_BYTES (413), read no further. */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.resume();
        reject(new HostError(307, 'TOO_MANY_BYTES', `request body larger than ${limit} bytes`, 413));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
