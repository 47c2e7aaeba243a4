// What every driftline HTTP listener does the same way (the observability port here, the feature
// API and the model-server through `listenHttp` of `@driftline/service/http`): a bounded number
// of connections, where a new one closes the longest-idle one; one JSON shape for every error
// answer, node's own included; and a bad request closing its connection.
import { type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '@driftline/core';
import { counter, type Registry } from './metrics.js';

/** How often at most a listener logs that it is at its connection cap. */
export const CAP_WARNING_INTERVAL_MS = 60_000;

/** The one shape of an error answer: `{"error":{"code","message"}}`. */
export function errorJson(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

/** What node's parser refused, as a status and message. */
function clientErrorAnswer(code: string | undefined): [number, string] {
  if (code === 'HPE_HEADER_OVERFLOW') return [431, 'request headers larger than 16 KiB'];
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return [408, 'the request did not arrive within the request timeout'];
  return [400, `malformed HTTP request${code === undefined ? '' : ` (${code})`}`];
}

/**
 * node's default for a request its parser refuses, with the JSON error body, on a connection with
 * no answer pending (else the bytes would corrupt it or be read as its answer), then closed.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  const current = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (error.code !== 'ECONNRESET' && socket.writable && current == null) {
    const [status, message] = clientErrorAnswer(error.code);
    const body = errorJson('BAD_REQUEST', message);
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

/** A protocol-level refusal (no Host, an unknown Expect): the JSON error, and the connection closed. */
function refuse(res: ServerResponse, status: number, message: string): void {
  const body = errorJson('BAD_REQUEST', message);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  res.end(body);
}

export interface HttpGuard {
  /**
   * Call first for every request (the `request` and `checkContinue` handlers): counts it against
   * its connection until its answer is done. Returns the requests of its connection admitted and
   * not yet answered, this one included (pipelined ones too); 0 when it was already answered (an
   * HTTP/1.1 request without Host: 400, connection closed) and must not be handled.
   */
  admit(req: IncomingMessage, res: ServerResponse): number;
  /** Connections open now. */
  connections(): number;
}

/** What the guard knows of one connection. */
interface Connection {
  /** Admitted requests whose answer is not done (written, or the connection gone), oldest first. */
  readonly answers: Set<ServerResponse>;
  /** In the idle list: no answer pending and no request seen arriving. */
  idle: boolean;
  /** `socket.bytesRead` when it became idle: more since then is a request arriving. */
  readAtIdle: number;
  /** When an eviction first found bytes of a request arriving on it (no request parsed yet). */
  arrivingSince: number | undefined;
  /** A request its parser refused came behind answers in flight: closed once they are written. */
  closeWhenAnswered: boolean;
}

/**
 * Guards `server` (created with `requireHostHeader: false`: the Host check is done here, to
 * answer it in the JSON shape). At `maxConnections`, a new connection closes the one idle for
 * longest (no answer pending and no byte received since its last answer was written: between
 * keep-alive requests, or never sent one) rather than being refused: a flood of idle connections
 * can then never lock probes and clients out, and the cap keeps the file descriptors the process's
 * Kafka, Redis and ClickHouse clients need. A connection whose request is still arriving (its
 * headers in part) is busy, not idle, for up to `headersTimeoutMs` from when an eviction first saw
 * it so (a real request has its headers in by then, or node closed it; bytes trickled to look busy
 * do not hold a place for longer). Only when every connection is busy is the new one closed. Each
 * is counted in `driftline_http_connections_shed_total{listener, reason}`; a warning is logged at
 * most once a {@link CAP_WARNING_INTERVAL_MS}.
 *
 * A request node's parser refuses (malformed, headers too large, too slow) is answered with the
 * JSON error and its connection closed, unless answers of that connection are pending: a 400
 * written then would be read as the answer of an earlier request. The connection is then closed
 * without it, once those answers are written (at once when the refused bytes are the body of the
 * request in flight, which can then never end, or when the error is a timeout).
 */
export function guardHttpServer(
  server: Server,
  options: {
    readonly maxConnections: number;
    /** Names the listener in the log line and the metric label (e.g. `observability`, `feature-api`). */
    readonly listener: string;
    /** The server's headers timeout: how long a connection with a request arriving is spared. */
    readonly headersTimeoutMs: number;
    readonly logger?: Logger;
    readonly registry?: Registry;
    readonly now?: () => number;
    /**
     * Called once for each admitted request when its answer is done: written to its socket, or its
     * connection gone (also for a pipelined answer node never started, which gets no `close`).
     */
    readonly onAnswered?: (res: ServerResponse) => void;
  },
): HttpGuard {
  const { maxConnections, listener, headersTimeoutMs, logger, registry, onAnswered } = options;
  const now = options.now ?? Date.now;
  const connections = new Map<Socket, Connection>();
  // Idle connections in the order they became idle: the first is the longest idle. A Map keeps
  // insertion order, so eviction is O(1) (amortised: one found receiving a request is moved
  // behind the idle ones once).
  const idle = new Map<Socket, Connection>();
  const shed =
    registry === undefined
      ? undefined
      : counter(
          registry,
          'driftline_http_connections_shed_total',
          'Connections closed because a listener was at its connection cap, by listener and reason (evicted_idle: the longest-idle one made room; refused: every connection was busy)',
          ['listener', 'reason'],
        );
  let lastWarning = Number.NEGATIVE_INFINITY;
  let shedSinceWarning = 0;
  const onShed = (reason: 'evicted_idle' | 'refused') => {
    shed?.inc({ listener, reason });
    shedSinceWarning++;
    if (logger !== undefined && now() - lastWarning >= CAP_WARNING_INTERVAL_MS) {
      logger.warn(
        { listener, maxConnections, shed: shedSinceWarning, reason },
        'HTTP listener at its connection cap: closing the longest-idle connections (more clients than the cap, or a flood)',
      );
      lastWarning = now();
      shedSinceWarning = 0;
    }
  };

  const becomeIdle = (socket: Socket, connection: Connection) => {
    connection.idle = true;
    connection.readAtIdle = socket.bytesRead;
    connection.arrivingSince = undefined;
    idle.set(socket, connection);
  };
  const track = (socket: Socket): Connection => {
    const connection: Connection = {
      answers: new Set(),
      idle: false,
      readAtIdle: 0,
      arrivingSince: undefined,
      closeWhenAnswered: false,
    };
    connections.set(socket, connection);
    becomeIdle(socket, connection);
    socket.once('close', () => {
      connections.delete(socket);
      idle.delete(socket);
      // Pipelined answers node never started get no `close` of their own.
      for (const res of connection.answers) onAnswered?.(res);
      connection.answers.clear();
    });
    return connection;
  };
  const answered = (socket: Socket, connection: Connection, res: ServerResponse) => {
    if (!connection.answers.delete(res)) return; // its connection's close came first
    onAnswered?.(res);
    if (connection.answers.size > 0 || socket.destroyed) return;
    if (connection.closeWhenAnswered) socket.destroy();
    else becomeIdle(socket, connection);
  };
  /** Closes the longest-idle connection; false when every connection is busy. */
  const evictIdle = (): boolean => {
    let unseen = idle.size;
    for (const [socket, connection] of idle) {
      if (unseen-- === 0) break; // the ones moved behind are seen once
      if (socket.bytesRead !== connection.readAtIdle) {
        // Bytes since its last answer and no request yet: a request's headers are arriving.
        const at = now();
        connection.arrivingSince ??= at;
        if (at - connection.arrivingSince < headersTimeoutMs) {
          idle.delete(socket);
          idle.set(socket, connection); // behind the idle ones
          continue;
        }
      }
      idle.delete(socket);
      connection.idle = false;
      socket.destroy();
      return true;
    }
    return false;
  };

  server.on('connection', (socket: Socket) => {
    if (connections.size >= maxConnections) {
      if (!evictIdle()) {
        socket.destroy();
        onShed('refused');
        return;
      }
      onShed('evicted_idle');
    }
    track(socket);
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    const connection = connections.get(socket as Socket);
    if (connection !== undefined && connection.answers.size > 0) {
      // A 400 now would be read as the answer of the oldest request in flight: none is written.
      let complete = true;
      for (const res of connection.answers) complete &&= res.req.complete;
      if (complete && error.code !== 'ERR_HTTP_REQUEST_TIMEOUT' && error.code !== 'ECONNRESET') {
        connection.closeWhenAnswered = true;
        // The client then knows not to send on it.
        for (const res of connection.answers) if (!res.headersSent) res.setHeader('connection', 'close');
      } else socket.destroy(error);
      return;
    }
    answerClientError(error, socket);
  });
  // Any Expect but 100-continue: node's own 417 had no body and kept the connection, then parsed
  // the unread body as the next request.
  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) =>
    refuse(res, 417, 'unsupported Expect header (only 100-continue is)'),
  );

  return {
    admit(req, res) {
      if (req.httpVersion === '1.1' && req.headers.host === undefined) {
        refuse(res, 400, 'an HTTP/1.1 request needs a Host header');
        return 0;
      }
      const socket = req.socket;
      const connection = connections.get(socket) ?? track(socket);
      if (connection.idle) {
        connection.idle = false;
        idle.delete(socket);
      }
      connection.answers.add(res);
      res.once('close', () => answered(socket, connection, res));
      return connection.answers.size;
    },
    connections: () => connections.size,
  };
}
