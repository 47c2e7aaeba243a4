// The HTTP pieces the HTTP services share (feature-api, model-server): typed HTTP errors, a bounded
// body reader, a JSON writer, constant-time bearer tokens and a node:http server with header,
// request and keep-alive timeouts. Exported as `@driftline/service/http`.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DriftlineError, jsonDepthWithin } from '@driftline/core';

/** An error with the HTTP status it is answered with. */
export class HttpError extends DriftlineError {
  constructor(
    readonly status: number,
    code: 'BAD_REQUEST' | 'UNAUTHORIZED' | 'NOT_FOUND' | 'SINK_UNAVAILABLE' | 'INTERNAL',
    message: string,
    /** The methods the resource takes: the Allow header of a 405. */
    readonly allow?: string,
  ) {
    super(code, message);
  }
}

export const badRequest = (message: string) => new HttpError(400, 'BAD_REQUEST', message);

/** Text from a request made fit for a one-line message: escaped as in a JSON string, at most `max` characters. */
function oneLine(text: string, max = 200): string {
  const escaped = JSON.stringify(text).slice(1, -1);
  return escaped.length > max ? `${escaped.slice(0, max)}…` : escaped;
}

/** Status of a request whose client went away before its body was read (nginx's convention). */
const CLIENT_CLOSED_REQUEST = 499;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A request body as JSON, or a 400: nesting deeper than `maxDepth` is refused before JSON.parse,
 * which parses deep nesting about ten times slower per byte than flat JSON.
 */
export function parseJsonBody(text: string, maxDepth: number): unknown {
  if (!jsonDepthWithin(text, maxDepth)) throw badRequest(`body: nesting deeper than ${maxDepth} levels`);
  try {
    return JSON.parse(text);
  } catch (error) {
    // V8 quotes the text it could not parse: escaped, so the answer stays one line.
    throw badRequest(`body is not JSON: ${oneLine(error instanceof Error ? error.message : String(error))}`);
  }
}

/**
 * Reads a request body up to `limit` bytes; more is a 413, bytes that are not UTF-8 a 400 (never
 * silently replaced), a client gone before the end a 499 (nothing to answer, not a server error).
 */
export function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        // Stop buffering but drain the rest, so the 413 can still be written on this socket.
        req.off('data', onData);
        req.resume();
        reject(new HttpError(413, 'BAD_REQUEST', `request body larger than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => {
      try {
        resolve(utf8.decode(Buffer.concat(chunks)));
      } catch {
        reject(badRequest('body is not valid UTF-8'));
      }
    });
    // The request stream fails only when its connection does (the client aborted or reset it).
    req.on('error', () =>
      reject(
        new HttpError(CLIENT_CLOSED_REQUEST, 'BAD_REQUEST', 'the client closed the request before its body ended'),
      ),
    );
  });
}

/** Writes `body` as JSON; a 413 closes the connection, a 401 names the bearer realm. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  realm: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  // Encoded once: byteLength + end(string) would walk the UTF-8 encoding twice.
  const bytes = Buffer.from(JSON.stringify(body), 'utf8');
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': bytes.length,
    ...(status === 413 ? { connection: 'close' } : {}),
    ...(status === 401 ? { 'www-authenticate': `Bearer realm="${realm}"` } : {}),
    ...headers,
  });
  res.end(bytes);
}

/** Answers `error` as `{"error": {"code", "message"}}`, with its Allow header when it has one. */
export function sendError(res: ServerResponse, error: HttpError, realm: string): void {
  const body = { error: { code: error.code, message: error.message } };
  sendJson(res, error.status, body, realm, error.allow === undefined ? {} : { allow: error.allow });
}

/**
 * `Authorization: Bearer <token>` against the configured token, in constant time (both sides are
 * hashed first, so neither content nor length leaks through timing). Throws a 401.
 */
export function checkBearer(header: string | undefined, expected: Buffer): void {
  const given = header?.startsWith('Bearer ') === true ? header.slice(7) : '';
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  if (!(timingSafeEqual(a, b) && given !== '')) {
    throw new HttpError(401, 'UNAUTHORIZED', 'missing or wrong bearer token');
  }
}

export interface ServerTimeouts {
  /** Time a client has to send its complete request headers (slow loris); 408 and close after. */
  readonly headersTimeoutMs: number;
  /** Time a client has to send its complete request, body included; 408 and close after. */
  readonly requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open. */
  readonly keepAliveTimeoutMs: number;
}

export const DEFAULT_TIMEOUTS: ServerTimeouts = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 65_000,
};

export interface HttpServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Listens with `handle` on host:port (0: a free port), with the timeouts on every connection. */
export async function listenHttp(
  handle: (req: IncomingMessage, res: ServerResponse) => unknown,
  options: Partial<ServerTimeouts> & { readonly port?: number; readonly host?: string },
): Promise<HttpServer> {
  const headersTimeout = options.headersTimeoutMs ?? DEFAULT_TIMEOUTS.headersTimeoutMs;
  const requestTimeout = Math.max(headersTimeout, options.requestTimeoutMs ?? DEFAULT_TIMEOUTS.requestTimeoutMs);
  const server: Server = createServer(
    {
      headersTimeout,
      requestTimeout,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? DEFAULT_TIMEOUTS.keepAliveTimeoutMs,
      // How often node checks the two timeouts above (its default, 30 s, would let a slow client
      // hold a connection up to that long past them).
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(headersTimeout / 4))),
    },
    (req, res) => {
      void handle(req, res);
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
