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
 * node's default for a request its parser refuses, with the JSON error body: answered only when
 * no answer of the connection has started (else the bytes would corrupt it), then closed.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  const current = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (error.code !== 'ECONNRESET' && socket.writable && (current == null || !current.headersSent)) {
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
   * its connection until its answer is done. False when it was already answered (an HTTP/1.1
   * request without Host: 400, connection closed), and must not be handled.
   */
  admit(req: IncomingMessage, res: ServerResponse): boolean;
  /** Requests of this connection admitted and not yet answered (pipelined ones included). */
  inFlightOn(socket: Socket): number;
  /** Connections open now. */
  connections(): number;
}

/**
 * Guards `server` (created with `requireHostHeader: false`: the Host check is done here, to
 * answer it in the JSON shape). At `maxConnections`, a new connection closes the one idle for
 * longest (no request in flight: between keep-alive requests, or never sent one) rather than being
 * refused: a flood of idle connections can then never lock probes and clients out, and the cap
 * keeps the file descriptors the process's Kafka, Redis and ClickHouse clients need. Only when
 * every connection has a request in flight is the new one closed. Each is counted in
 * `driftline_http_connections_shed_total{listener, reason}`; a warning is logged at most once a
 * {@link CAP_WARNING_INTERVAL_MS}.
 */
export function guardHttpServer(
  server: Server,
  options: {
    readonly maxConnections: number;
    /** Names the listener in the log line and the metric label (e.g. `observability`, `feature-api`). */
    readonly listener: string;
    readonly logger?: Logger;
    readonly registry?: Registry;
    readonly now?: () => number;
  },
): HttpGuard {
  const { maxConnections, listener, logger, registry } = options;
  const now = options.now ?? Date.now;
  // Connections without a request in flight, in the order they became idle: the first is the
  // longest idle. A Map keeps insertion order, so eviction is O(1).
  const idle = new Map<Socket, true>();
  const inFlight = new Map<Socket, number>();
  let open = 0;
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

  server.on('connection', (socket: Socket) => {
    if (open >= maxConnections) {
      const oldest = idle.keys().next().value;
      if (oldest === undefined) {
        socket.destroy();
        onShed('refused');
        return;
      }
      idle.delete(oldest);
      oldest.destroy();
      onShed('evicted_idle');
    }
    open++;
    idle.set(socket, true);
    socket.once('close', () => {
      open--;
      idle.delete(socket);
      inFlight.delete(socket);
    });
  });
  server.on('clientError', answerClientError);
  // Any Expect but 100-continue: node's own 417 had no body and kept the connection, then parsed
  // the unread body as the next request.
  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) =>
    refuse(res, 417, 'unsupported Expect header (only 100-continue is)'),
  );

  return {
    admit(req, res) {
      const socket = req.socket;
      if (req.httpVersion === '1.1' && req.headers.host === undefined) {
        refuse(res, 400, 'an HTTP/1.1 request needs a Host header');
        return false;
      }
      idle.delete(socket);
      inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1);
      res.once('close', () => {
        const left = (inFlight.get(socket) ?? 1) - 1;
        if (left > 0) inFlight.set(socket, left);
        else {
          inFlight.delete(socket);
          if (!socket.destroyed) idle.set(socket, true);
        }
      });
      return true;
    },
    inFlightOn: (socket) => inFlight.get(socket) ?? 0,
    connections: () => open,
  };
}
