// The HTTP pieces the HTTP services share (feature-api, model-server): typed HTTP errors, a bounded
// body reader, a JSON writer, constant-time bearer tokens and a node:http server with header,
// request and keep-alive timeouts, bounded work in flight and a graceful close. Exported as
// `@driftline/service/http`.
import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import {
  createServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError, DriftlineError, envField, jsonStringEnd, type Logger } from '@driftline/core';
import { guardHttpServer, type Registry } from '@driftline/observability';
import { type ListenVariables, listenError } from './listen-error.js';

export type { ListenVariables };

/** An error with the HTTP status it is answered with. */
export class HttpError extends DriftlineError {
  constructor(
    readonly status: number,
    code: 'BAD_REQUEST' | 'UNAUTHORIZED' | 'NOT_FOUND' | 'SINK_UNAVAILABLE' | 'OVERLOADED' | 'INTERNAL',
    message: string,
    /** The methods the resource takes: the Allow header of a 405. */
    readonly allow?: string,
  ) {
    super(code, message);
  }
}

export const badRequest = (message: string) => new HttpError(400, 'BAD_REQUEST', message);

/** Text from a request made fit for a one-line message: escaped as in a JSON string, at most `max` characters. */
export function oneLine(text: string, max = 200): string {
  const escaped = JSON.stringify(text).slice(1, -1);
  return escaped.length > max ? `${escaped.slice(0, max)}…` : escaped;
}

/** Status of a request whose client went away before its body was read (nginx's convention). */
const CLIENT_CLOSED_REQUEST = 499;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Most members of one object in a request body by default ({@link parseJsonBody}): the most
 * feature values one instance may pass (DRIFTLINE_MODEL_SERVER_MAX_FEATURES allows 10,000), the
 * widest object a service takes. JSON.parse spends super-linear time on wide objects: 1,000 keys
 * in one object cost ~0.5 ms, 10,000 ~10–15 ms, 60,000 (634 KiB) 75–190 ms, against 8–18 ms for
 * 628 KiB of entity ids.
 */
export const MAX_JSON_OBJECT_MEMBERS = 10_000;

/** What {@link parseJsonBody} refuses before JSON.parse, besides nesting. */
export interface JsonBodyBounds {
  /** Most members of one object; default {@link MAX_JSON_OBJECT_MEMBERS}. */
  readonly maxMembers?: number;
  /**
   * Most distinct key names over the whole body; default: not counted. Many objects with keys
   * all different (6,000 objects of 10 new keys, 704 KiB) took 110–300 ms to parse; counting
   * hashes each key, which cost ~40% more time on a batch of 60,000 keys (1,000 instances of the
   * same 60 features), so it is for callers whose bodies hold few keys.
   */
  readonly maxKeys?: number;
}

/**
 * A request body as JSON, or a 400. Refused before JSON.parse, in one pass over the text: nesting
 * deeper than `maxDepth` (V8 parses deep nesting about ten times slower per byte than flat JSON),
 * an object of more than `bounds.maxMembers` members, and more than `bounds.maxKeys` distinct key
 * names (see {@link JsonBodyBounds}). Arrays are not bounded here: their elements parse as fast as
 * flat JSON (170,000 numbers ~15 ms), and the callers check their lengths.
 */
export function parseJsonBody(text: string, maxDepth: number, bounds: JsonBodyBounds = {}): unknown {
  const maxMembers = bounds.maxMembers ?? MAX_JSON_OBJECT_MEMBERS;
  const refused = jsonShapeRefusal(text, maxDepth, maxMembers, bounds.maxKeys);
  if (refused === 'depth') throw badRequest(`body: nesting deeper than ${maxDepth} levels`);
  if (refused === 'members') throw badRequest(`body: an object of more than ${maxMembers} members`);
  if (refused === 'keys') throw badRequest(`body: more than ${bounds.maxKeys} distinct object keys`);
  try {
    return JSON.parse(text);
  } catch (error) {
    // V8 quotes the text it could not parse: escaped, so the answer stays one line.
    throw badRequest(`body is not JSON: ${oneLine(error instanceof Error ? error.message : String(error))}`);
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const OPEN_ARRAY = 0x5b;
const COMMA = 0x2c;
/** Seeds the key hashes of {@link jsonShapeRefusal}: a client cannot make distinct keys collide on purpose. */
const KEY_HASH_SEED = randomInt(2 ** 30);

/**
 * What JSON text breaks before it is parsed, or undefined: nesting deeper than `maxDepth`, an
 * object of more than `maxMembers` members, more than `maxKeys` distinct key names (counted by a
 * seeded hash: a collision only counts two keys as one). One pass, no allocation but the per-depth
 * counts (and the key hashes with `maxKeys`); strings skipped by core's `jsonStringEnd`, as
 * `jsonDepthWithin` does. Exact for text JSON.parse accepts (the separators of
 * an object are the commas at its depth outside strings); other text fails to parse anyway.
 */
function jsonShapeRefusal(
  text: string,
  maxDepth: number,
  maxMembers: number,
  maxKeys: number | undefined,
): 'depth' | 'members' | 'keys' | undefined {
  // Members so far of the object open at each depth; 0 for an array.
  const members = new Int32Array(maxDepth + 1);
  const keys = maxKeys === undefined ? undefined : new Set<number>();
  const keyLimit = maxKeys ?? Number.POSITIVE_INFINITY;
  let depth = 0;
  // The next string is a key whose name is counted.
  let key = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      if (key && keys !== undefined) {
        key = false;
        let hash = KEY_HASH_SEED;
        let j = i + 1;
        for (; j < n; j++) {
          let d = text.charCodeAt(j);
          if (d === QUOTE) break;
          // An escape and the character it escapes: an escaped quote does not end the key.
          if (d === BACKSLASH) {
            hash = Math.imul(hash ^ d, 0x01000193);
            d = text.charCodeAt(++j);
          }
          hash = Math.imul(hash ^ d, 0x01000193);
        }
        if (j >= n) return undefined;
        // 30 bits: a small integer, the Set's fastest key.
        keys.add(hash & 0x3fffffff);
        if (keys.size > keyLimit) return 'keys';
        i = j;
        continue;
      }
      const end = jsonStringEnd(text, i);
      if (end === -1) return undefined;
      i = end;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > maxDepth) return 'depth';
      const object = c === OPEN_OBJECT;
      members[depth] = object ? 1 : 0;
      key = object;
    } else if (c === 0x7d || c === 0x5d) {
      // More closed than opened: not JSON.
      if (--depth < 0) return undefined;
      key = false;
    } else if (c === COMMA && depth > 0 && members[depth]! > 0) {
      if (++members[depth]! > maxMembers) return 'members';
      key = true;
    }
  }
  return undefined;
}

/**
 * Most request-body bytes this process holds at once, over all requests being read: a flood of
 * slow or concurrent uploads (each within its own limit) is answered 503, never buffered into an
 * out-of-memory kill. About 1.1 MB of memory per 1 MiB body in flight was measured before it.
 */
export const MAX_BUFFERED_BODY_BYTES = 64 * 1024 * 1024;
let bufferedBodyBytes = 0;

/** Requests that asked for `100 Continue`: it is sent when their body is read, after routing and auth. */
const awaitingContinue = new WeakMap<IncomingMessage, ServerResponse>();

/**
 * Bodies the guard of a {@link listenHttp} server gave up on (bad chunked framing node's parser
 * refused, a body that stopped arriving): the reader of one being read, or the answer of one not
 * read yet.
 */
const bodyReaders = new WeakMap<IncomingMessage, (error: HttpError) => void>();
const refusedBodies = new WeakMap<IncomingMessage, HttpError>();

const malformedBody = (error: NodeJS.ErrnoException) =>
  badRequest(`malformed HTTP request body${error.code === undefined ? '' : ` (${error.code})`}`);

/** Hands a body the guard gave up on to its reader: the request is answered (400, 408), not left to end as a 499. */
function refuseBody(req: IncomingMessage, error: HttpError): void {
  const reader = bodyReaders.get(req);
  if (reader === undefined) refusedBodies.set(req, error);
  else reader(error);
}

const tooLarge = (limit: number) => new HttpError(413, 'BAD_REQUEST', `request body larger than ${limit} bytes`);

/** Content codings of a request other than `identity`, as sent (lower case). */
function contentCodings(header: string | undefined): string[] {
  if (header === undefined) return [];
  return header
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== '' && coding !== 'identity');
}

/** What the headers alone refuse: a declared length over the limit, a body that is compressed. */
function refusedByHeaders(req: IncomingMessage, limit: number): HttpError | undefined {
  // Refused before reading: with no body following, the client would wait for the request timeout.
  const length = req.headers['content-length'];
  if (length !== undefined && Number(length) > limit) return tooLarge(limit);
  const codings = contentCodings(req.headers['content-encoding']);
  if (codings.length > 0) {
    return new HttpError(
      415,
      'BAD_REQUEST',
      `content encoding ${oneLine(codings.join(', '), 64)} not supported; send the body uncompressed`,
    );
  }
  return undefined;
}

/**
 * Reads a request body up to `limit` bytes; more is a 413 (a declared Content-Length over it at
 * once, before any byte is read), a `Content-Encoding` other than `identity` a 415, bytes that are
 * not UTF-8 a 400 (never silently replaced), chunked framing node's parser refuses a 400 naming its
 * code, and a body that stopped arriving for the headers timeout or is not whole at the request
 * timeout a 408 (these on a {@link listenHttp} server), a client gone before the end a 499 (nothing to answer,
 * not a server error), and a body beyond the process's {@link MAX_BUFFERED_BODY_BYTES} a 503.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const refused = refusedByHeaders(req, limit) ?? refusedBodies.get(req);
  if (refused !== undefined) {
    // No `100 Continue`: the answer closes the connection, its body unread.
    awaitingContinue.delete(req);
    return Promise.reject(refused);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let held = 0;
    const release = () => {
      bufferedBodyBytes -= held;
      held = 0;
    };
    const refuse = (error: HttpError) => {
      // Stop buffering; the answer closes the connection (its body was not read to the end).
      req.off('data', onData);
      req.resume();
      release();
      reject(error);
    };
    // Nothing more is read once the guard gave up on the body: its answer closes the connection.
    bodyReaders.set(req, (error) => {
      req.off('data', onData);
      release();
      reject(error);
    });
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return refuse(tooLarge(limit));
      if (bufferedBodyBytes + chunk.length > MAX_BUFFERED_BODY_BYTES) {
        return refuse(new HttpError(503, 'OVERLOADED', 'too many request bodies in flight; retry later'));
      }
      bufferedBodyBytes += chunk.length;
      held += chunk.length;
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => {
      const bytes = Buffer.concat(chunks);
      bodyReaders.delete(req);
      release();
      try {
        resolve(utf8.decode(bytes));
      } catch {
        reject(badRequest('body is not valid UTF-8'));
      }
    });
    // The request stream fails only when its connection does (the client aborted or reset it).
    req.on('error', () => {
      bodyReaders.delete(req);
      release();
      reject(
        new HttpError(CLIENT_CLOSED_REQUEST, 'BAD_REQUEST', 'the client closed the request before its body ended'),
      );
    });
    awaitingContinue.get(req)?.writeContinue();
    awaitingContinue.delete(req);
  });
}

/** Whether the request still has body bytes on the wire that nobody read. */
function bodyUnread(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** The Retry-After of every 503, in seconds: load shedding and outages are short, a client retries soon. */
export const RETRY_AFTER_SECONDS = 1;

/**
 * Most answer bytes this process holds at once, over all answers written and not yet taken by
 * their socket (a client that does not read, a pipelined answer queued behind one): at it, new
 * requests are a 503 before any work. 64 clients each sending one ~6 MB batch and not reading held
 * 400 MB before it, 10 connections pipelining 16 such batches a gigabyte. Requests arriving
 * together are all admitted while nothing is held (60 connections x 16 pipelined 1 MB answers
 * held 813 MB against a 1 MB bound), so a server whose work may be thrown away also refuses an
 * answer that would pass the bound (see {@link AnswersPastBound}).
 */
export const MAX_HELD_ANSWER_BYTES = 64 * 1024 * 1024;

/** A budget of answer bytes held: the process's, or a server's own (tests). */
interface AnswerBudget {
  held: number;
  readonly max: number;
}

/**
 * What a {@link listenHttp} server does with a success answer that would pass its bound of answer
 * bytes held (an answer alone larger than the bound is sent when nothing else is held; error
 * answers, a message each, always are):
 * - `refuse`: a 503 `OVERLOADED` with Retry-After in its place, so the bound holds. For idempotent
 *   handlers (a read: the work thrown away is redone by the retry, with the same effect).
 * - `send`: sent anyway, for handlers whose work has effects (the model-server logs a prediction
 *   before answering: refused, a retry logged it twice). Only admission refuses then, so the bytes
 *   held may pass the bound by the answers of the requests admitted together: at worst
 *   connections x {@link MAX_PIPELINED_PER_CONNECTION} (at most {@link MAX_REQUESTS_IN_FLIGHT})
 *   x the largest answer; such a server must keep its answers small.
 */
export type AnswersPastBound = 'refuse' | 'send';

/** The bound of a listenHttp server's answers: its budget and what it does past it. */
interface AnswerBound {
  readonly budget: AnswerBudget;
  readonly pastBound: AnswersPastBound;
}
const processAnswers: AnswerBudget = { held: 0, max: MAX_HELD_ANSWER_BYTES };

/** Answer bytes the process's budget holds now (not those of a server with its own `maxHeldAnswerBytes`). */
export const heldAnswerBytes = (): number => processAnswers.held;

// Kept on each answer of a listenHttp server (properties: no map lookup per answer): its bound,
// and the bytes it holds of its budget until its connection takes them or goes away.
const answerBound = Symbol('answerBound');
const answerBytesHeld = Symbol('answerBytesHeld');
type BudgetedAnswer = ServerResponse & { [answerBound]?: AnswerBound; [answerBytesHeld]?: number };

/**
 * Writes `body` as JSON; a 401 names the bearer realm, a 415 accepts identity only, a 503 has a
 * Retry-After. An answer given before the request's body was read (a 413, a 401, an unknown route)
 * closes the connection: keeping it would mean reading and discarding whatever the client goes on
 * sending. An answer of a {@link listenHttp} server counts against its bound of answer bytes held
 * (see {@link MAX_HELD_ANSWER_BYTES}) until its socket takes it or closes; past the bound it is a
 * 503 instead when the server refuses such answers ({@link AnswersPastBound}).
 */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  realm: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  // Encoded once: byteLength + end(string) would walk the UTF-8 encoding twice.
  const bytes = Buffer.from(JSON.stringify(body), 'utf8');
  const answer = res as BudgetedAnswer;
  const bound = answer[answerBound];
  // Only what a live connection will hold: to a client already gone node writes nothing, and the
  // answer's release (its close, or its connection's) has already run.
  if (bound !== undefined && !res.destroyed && res.req?.socket.destroyed === false) {
    const { budget } = bound;
    if (bound.pastBound === 'refuse' && status < 400 && budget.held > 0 && budget.held + bytes.length > budget.max) {
      sendError(res, answersHeld(), realm);
      return;
    }
    budget.held += bytes.length;
    answer[answerBytesHeld] = bytes.length;
  }
  const head: OutgoingHttpHeaders = { 'content-type': 'application/json', 'content-length': bytes.length };
  if (res.req !== undefined && bodyUnread(res.req)) head.connection = 'close';
  if (status === 401) head['www-authenticate'] = `Bearer realm="${realm}"`;
  // A 415 is a compressed body (readBody): only identity is read (RFC 9110 §15.5.16).
  if (status === 415) head['accept-encoding'] = 'identity';
  if (status === 503) head['retry-after'] = String(RETRY_AFTER_SECONDS);
  Object.assign(head, headers);
  res.writeHead(status, head);
  res.end(bytes);
}

/** Gives back the bytes `res` holds of its budget (once: they are zero after). */
function releaseAnswerBytes(res: ServerResponse): void {
  const answer = res as BudgetedAnswer;
  const held = answer[answerBytesHeld];
  if (held === undefined || held === 0) return;
  answer[answerBytesHeld] = 0;
  const bound = answer[answerBound];
  if (bound !== undefined) bound.budget.held -= held;
}

const answersHeld = () =>
  new HttpError(503, 'OVERLOADED', 'too many answers not yet read by their clients; retry later');

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
  // The scheme is case-insensitive (RFC 9110 §11.1).
  const given = header !== undefined && /^bearer /i.test(header) ? header.slice(7) : '';
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  if (!(timingSafeEqual(a, b) && given !== '')) {
    throw new HttpError(401, 'UNAUTHORIZED', 'missing or wrong bearer token');
  }
}

export interface ServerTimeouts {
  /**
   * Time a client has to send its complete request headers (slow loris); 408 and close after. Also
   * the longest pause allowed in a request body (no byte arriving): 408 and close after.
   */
  readonly headersTimeoutMs: number;
  /** Time a client has to send its complete request, body included; 408 and close after. */
  readonly requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open. */
  readonly keepAliveTimeoutMs: number;
  /**
   * Time a client has to read an answer once it is complete: a client that stops reading would
   * otherwise hold the answer in memory and its request in flight for as long as the connection
   * lives. Its connection is closed after it.
   */
  readonly writeTimeoutMs: number;
}

export const DEFAULT_TIMEOUTS: ServerTimeouts = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 65_000,
  writeTimeoutMs: 30_000,
};

/** A server timeout variable: a duration from MIN_TIMEOUT_MS (100 ms) to what a timer keeps. */
const timeoutField = (fallback: number) => envField.timeout().default(fallback);

type TimeoutNames<P extends string> =
  | `${P}_HEADERS_TIMEOUT`
  | `${P}_REQUEST_TIMEOUT`
  | `${P}_KEEP_ALIVE_TIMEOUT`
  | `${P}_WRITE_TIMEOUT`;

/**
 * The variables of a server's timeouts, `<prefix>_HEADERS_TIMEOUT` (time a client has to send its
 * request headers), `_REQUEST_TIMEOUT` (its whole request; at least the headers timeout),
 * `_KEEP_ALIVE_TIMEOUT` (idle time before a keep-alive connection is closed) and `_WRITE_TIMEOUT`
 * (time a client has to read a complete answer), for an env shape.
 */
export function serverTimeoutsEnvShape<P extends string>(
  prefix: P,
): Record<TimeoutNames<P>, ReturnType<typeof timeoutField>> {
  return {
    [`${prefix}_HEADERS_TIMEOUT`]: timeoutField(DEFAULT_TIMEOUTS.headersTimeoutMs),
    [`${prefix}_REQUEST_TIMEOUT`]: timeoutField(DEFAULT_TIMEOUTS.requestTimeoutMs),
    [`${prefix}_KEEP_ALIVE_TIMEOUT`]: timeoutField(DEFAULT_TIMEOUTS.keepAliveTimeoutMs),
    [`${prefix}_WRITE_TIMEOUT`]: timeoutField(DEFAULT_TIMEOUTS.writeTimeoutMs),
  } as Record<TimeoutNames<P>, ReturnType<typeof timeoutField>>;
}

/** The timeouts read by {@link serverTimeoutsEnvShape}; a headers timeout above the request timeout is a ConfigError. */
export function serverTimeoutsFromEnv<P extends string>(
  prefix: P,
  env: Readonly<Record<TimeoutNames<P>, number>>,
): ServerTimeouts {
  const headers = env[`${prefix}_HEADERS_TIMEOUT`];
  const request = env[`${prefix}_REQUEST_TIMEOUT`];
  if (headers > request) {
    throw new ConfigError(`${prefix}_HEADERS_TIMEOUT`, `must not exceed ${prefix}_REQUEST_TIMEOUT (${request} ms)`);
  }
  return {
    headersTimeoutMs: headers,
    requestTimeoutMs: request,
    keepAliveTimeoutMs: env[`${prefix}_KEEP_ALIVE_TIMEOUT`],
    writeTimeoutMs: env[`${prefix}_WRITE_TIMEOUT`],
  };
}

/**
 * Requests one connection may have in flight (pipelined, not yet answered). Beyond it, a 503 that
 * closes the connection: one client writing thousands of requests without reading the answers
 * would otherwise run them all at once.
 */
export const MAX_PIPELINED_PER_CONNECTION = 16;
/** Requests in flight over all connections; beyond it, a 503 at once (load shedding, retry later). */
export const MAX_REQUESTS_IN_FLIGHT = 4_096;
/**
 * Connections a server holds at once (DRIFTLINE_*_MAX_CONNECTIONS): at the cap a new connection
 * closes the longest-idle one (see guardHttpServer of `@driftline/observability`). Well under the
 * usual file-descriptor limits (1,024 soft), which the process's Kafka, Redis and ClickHouse
 * clients share: 1,150 idle connections under a limit of 1,100 made the runner's probes and the
 * API fail, logging nothing.
 */
export const DEFAULT_MAX_CONNECTIONS = 512;
/** The variable of a server's connection cap: from 8 to 65,535. */
export const maxConnectionsField = () => envField.int(8, 65_535).default(DEFAULT_MAX_CONNECTIONS);
/** How long `close()` lets requests in flight finish before it closes their connections. */
export const DEFAULT_CLOSE_GRACE_MS = 10_000;

export interface HttpServer {
  readonly port: number;
  /**
   * Graceful: stops accepting connections, closes idle ones, lets the requests in flight finish
   * (their answers close their connections) for up to `graceMs`, then closes what is left.
   */
  close(graceMs?: number): Promise<void>;
}

const overloaded = (message: string) => new HttpError(503, 'OVERLOADED', message);

/**
 * Listens with `handle` on host:port (0: a free port), with the timeouts on every connection. With
 * `listenVariables`, an address that cannot be bound (port in use or not allowed) is a ConfigError
 * naming the variable.
 */
export async function listenHttp(
  handle: (req: IncomingMessage, res: ServerResponse) => unknown,
  options: Partial<ServerTimeouts> & {
    readonly port?: number;
    readonly host?: string;
    readonly listenVariables?: ListenVariables;
    /** Default {@link DEFAULT_MAX_CONNECTIONS}. */
    readonly maxConnections?: number;
    /** Names the server in the connection-cap warning and metric; default `http`. */
    readonly listener?: string;
    /** Where the connection-cap warning goes (at most once a minute). */
    readonly logger?: Logger;
    /** Where `driftline_http_connections_shed_total` is counted. */
    readonly registry?: Registry;
    /** A bound of answer bytes held of this server's own; default the process's {@link MAX_HELD_ANSWER_BYTES}. */
    readonly maxHeldAnswerBytes?: number;
    /**
     * What a success answer that would pass the bound of answer bytes held gets: `refuse` (a 503;
     * the default, so the bound holds) for idempotent handlers, `send` for handlers whose work has
     * effects (see {@link AnswersPastBound}).
     */
    readonly answersPastBound?: AnswersPastBound;
  },
): Promise<HttpServer> {
  const answers: AnswerBudget =
    options.maxHeldAnswerBytes === undefined ? processAnswers : { held: 0, max: options.maxHeldAnswerBytes };
  const bound: AnswerBound = { budget: answers, pastBound: options.answersPastBound ?? 'refuse' };
  const headersTimeout = options.headersTimeoutMs ?? DEFAULT_TIMEOUTS.headersTimeoutMs;
  const requestTimeout = Math.max(headersTimeout, options.requestTimeoutMs ?? DEFAULT_TIMEOUTS.requestTimeoutMs);
  // Requests being handled, over all connections: bounded, swept for unread answers, and let
  // finish by close().
  const inFlight = new Set<ServerResponse>();
  let closing = false;
  // Once per admitted request, from the guard: its answer was written, or its connection is gone
  // (also for a pipelined answer node never started, which gets no `close` of its own).
  const onAnswered = (res: ServerResponse) => {
    inFlight.delete(res);
    releaseAnswerBytes(res);
  };
  const admit = (req: IncomingMessage, res: ServerResponse) => {
    const onConnection = guard.admit(req, res);
    if (onConnection === 0) return;
    (res as BudgetedAnswer)[answerBound] = bound;
    if (onConnection > MAX_PIPELINED_PER_CONNECTION || inFlight.size >= MAX_REQUESTS_IN_FLIGHT) {
      const why =
        onConnection > MAX_PIPELINED_PER_CONNECTION
          ? `more than ${MAX_PIPELINED_PER_CONNECTION} requests in flight on one connection`
          : 'too many requests in flight; retry later';
      res.setHeader('connection', 'close');
      sendError(res, overloaded(why), '');
      return;
    }
    // Before any work: the only refusal for answer bytes of a server that sends every answer.
    if (answers.held >= answers.max) {
      sendError(res, answersHeld(), '');
      return;
    }
    inFlight.add(res);
    // While closing, every answer ends its connection.
    if (closing) res.setHeader('connection', 'close');
    void handle(req, res);
  };
  // Answers complete but not yet read by their client, since when (seen by a sweep): past the write
  // timeout their connection is closed, which ends them (and frees their place in flight).
  const writeTimeout = options.writeTimeoutMs ?? DEFAULT_TIMEOUTS.writeTimeoutMs;
  const unread = new WeakMap<ServerResponse, number>();
  const sweep = setInterval(
    () => {
      const now = Date.now();
      for (const res of inFlight) {
        if (!res.writableEnded || res.writableFinished) continue;
        const since = unread.get(res);
        if (since === undefined) unread.set(res, now);
        else if (now - since >= writeTimeout) res.socket?.destroy();
      }
    },
    Math.max(50, Math.min(1_000, Math.floor(writeTimeout / 4))),
  );
  sweep.unref();
  const server: Server = createServer(
    {
      headersTimeout,
      requestTimeout,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? DEFAULT_TIMEOUTS.keepAliveTimeoutMs,
      // How often node checks the two timeouts above (its default, 30 s, would let a slow client
      // hold a connection up to that long past them).
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(headersTimeout / 4))),
      // Checked by the guard, to answer in the JSON shape.
      requireHostHeader: false,
    },
    admit,
  );
  // Connection cap, node's own error answers (unparsable request, unknown Expect) in the JSON shape.
  const guard = guardHttpServer(server, {
    maxConnections: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    listener: options.listener ?? 'http',
    onAnswered,
    // A chunked body the parser refuses: its reader answers 400 (the client was left with nothing, counted 499).
    onBodyError: (req, error) => refuseBody(req, malformedBody(error)),
    // A body with no byte for the headers timeout (the longest pause allowed in a body), or one that
    // keeps coming but is not whole at the request timeout: its reader answers 408 and the
    // connection closes.
    bodyProgressTimeoutMs: headersTimeout,
    onBodyStalled: (req, message) => refuseBody(req, new HttpError(408, 'BAD_REQUEST', message)),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.registry === undefined ? {} : { registry: options.registry }),
  });
  // `Expect: 100-continue`: routed and authorised first; readBody sends the 100 when it reads.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    awaitingContinue.set(req, res);
    admit(req, res);
  });
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 0;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
  } catch (error) {
    clearInterval(sweep);
    throw options.listenVariables === undefined ? error : listenError(error, options.listenVariables, host, port);
  }
  let closed: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    close(graceMs = DEFAULT_CLOSE_GRACE_MS) {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        clearInterval(sweep);
        for (const res of inFlight) if (!res.headersSent) res.setHeader('connection', 'close');
        const force = setTimeout(() => server.closeAllConnections(), graceMs);
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
        // A connection whose last answer was already on its way when closing began is idle once
        // it is written: closed then.
        for (const res of inFlight) if (res.headersSent) res.once('finish', () => server.closeIdleConnections());
      });
      return closed;
    },
  };
}
