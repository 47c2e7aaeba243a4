// What every driftline HTTP listener does the same way (the observability port here, the feature
// API and the model-server through `listenHttp` of `@driftline/service/http`): a bounded number
// of connections, where a new one closes the longest-idle one (else a partial request, else a
// request whose body has paused, else a new silent connection, else a request whose body is still
// arriving); a body that stops arriving answered 408; one JSON shape for every error answer,
// node's own included; and a bad request closing its connection.
import { type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '@driftline/core';
import { counter, type Registry } from './metrics.js';

/** How often at most a listener logs that it is at its connection cap. */
export const CAP_WARNING_INTERVAL_MS = 60_000;

/**
 * How long a new connection that has sent nothing yet counts as about to send, not idle: its
 * request is on its way (an RTT and a turn of the event loop). Taken for idle at once, a probe was
 * closed by the next connection of a one-byte flood before its request was read (2 probes in 20).
 * Also how long a request body must have had no byte to be cut before such a new connection: an
 * upload that keeps sending is not cut by a flood of connections that send nothing.
 */
export const FIRST_BYTES_GRACE_MS = 1_000;

/**
 * How long a new connection must have sent nothing to be cut before a request body that is still
 * arriving: a younger one is most likely a client whose request is in flight (a probe on a new
 * connection, an RTT away), and a flood of connections that send nothing keeps its oldest older
 * than this unless it opens more than 40 × (the cap − the bodies being received) a second: past
 * that every new connection cuts a moving upload (a regression review: cap 512 with 480 uploads,
 * ~860 connections/s cut 65). An event-loop turn instead of a wall-clock age would hold at any
 * rate but cut remote clients whose request is an RTT behind their connection.
 */
const SILENT_BEFORE_BODY_MS = 25;

/**
 * The default longest pause in a request body (no byte arriving) before its request is answered
 * 408 and its connection closed, as nginx's `client_body_timeout` (60 s there: the time between
 * two successive reads). `listenHttp` uses its headers timeout (10 s by default). A client that is
 * sending does not pause that long: a lost segment is sent again 5 times within ~6 s (Linux's
 * 200 ms least retransmission timeout, doubling); past that, the client is gone or holds the
 * connection on purpose. An internal API's clients are near: 60 s would let a stalled body hold a
 * place six times as long.
 */
export const BODY_PROGRESS_TIMEOUT_MS = 10_000;

/**
 * `driftline_http_connections_shed_total{listener, reason}` of `registry`, created on first use:
 * every listener of a process counts into the one metric (a worker thread's are served beside it).
 */
export function connectionsShedCounter(registry: Registry) {
  return counter(
    registry,
    'driftline_http_connections_shed_total',
    'Connections closed because a listener was at its connection cap, by listener and reason (evicted_idle: the longest-idle one made room; evicted_partial: nothing was idle, the longest-waiting one with a partial request made room; evicted_body: no partial request either, a request whose body had no byte for 1 s made room, or, with no new connection silent for 25 ms either, the body longest without a byte; refused: every connection had a request in flight)',
    ['listener', 'reason'],
  );
}

/** The one shape of an error answer: `{"error":{"code","message"}}`. */
export function errorJson(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

/** The raw 408 of a body that stopped arriving or came too slowly (a guard without `onBodyStalled`): JSON error, connection closed. */
function bodyStalledAnswer(message: string): string {
  const body = errorJson('BAD_REQUEST', message);
  return `HTTP/1.1 408 ${STATUS_CODES[408]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** Why a request is answered 408 when its body stopped arriving. */
function bodyStalledMessage(timeoutMs: number): string {
  return `the request body stopped arriving (no byte for ${timeoutMs / 1000} s)`;
}

/** Why a request is answered 408 when it did not arrive whole within node's request timeout. */
function requestTimeoutMessage(timeoutMs: number): string {
  return `the request did not arrive whole within the request timeout (${timeoutMs / 1000} s)`;
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

/** Why a listener at its cap closed a connection (the `reason` label). */
type ShedReason = 'evicted_idle' | 'evicted_partial' | 'evicted_body' | 'refused';

/** What the guard knows of one connection. */
interface Connection {
  /** Admitted requests whose answer is not done (written, or the connection gone), oldest first. */
  readonly answers: Set<ServerResponse>;
  /** No request dispatched to the handler: in the fresh, idle or partial list. */
  waiting: boolean;
  /** `socket.bytesRead` when it began waiting: more since then is a request arriving. */
  readAtWaiting: number;
  /** Orders waiting connections of different lists: lower began waiting earlier. */
  waitingOrder: number;
  /** When it was accepted (the grace of a fresh connection). */
  readonly acceptedAt: number;
  /** A request its parser refused came behind answers in flight: closed once they are written. */
  closeWhenAnswered: boolean;
  /** The body of its request in flight was refused and handed to `onBodyError`: the parser's repeats are ignored. */
  bodyRefused: boolean;
  /** `socket.bytesRead` when its body (the receiving list) was last seen to move. */
  bodyReadAt: number;
  /** When its body was last seen to move, or the server was last seen to be the one waited for. */
  bodyMovedAt: number;
}

/**
 * Guards `server` (created with `requireHostHeader: false`: the Host check is done here, to
 * answer it in the JSON shape). At `maxConnections`, a new connection is never refused while a
 * connection can make room; it closes, in this order:
 * 1. the one fully idle for longest: no request dispatched and no byte received since its last
 *    answer was written (between keep-alive requests), or since it was accepted
 *    {@link FIRST_BYTES_GRACE_MS} or more ago;
 * 2. else the one with a partial request (bytes received, no request dispatched yet) waiting
 *    longest: a client sending one byte per connection must not hold places (8 such connections
 *    locked every probe out). A legitimate client still sending its headers is then cut, but only
 *    at the cap with nothing idle: a flood;
 * 3. else the one whose only request was dispatched while its body is still arriving (nothing of
 *    its answer written) and has had no byte for {@link FIRST_BYTES_GRACE_MS} or more, the one
 *    paused longest first (a body seen moving since the last check counts as moving now);
 * 4. else the oldest of the new connections that have sent nothing for
 *    {@link SILENT_BEFORE_BODY_MS} or more: cut before the bodies, every upload was cut by a
 *    flood of connections that send nothing (cap 8, 100 a second: 5 uploads of 5; 100 POSTs of
 *    1 MiB through a cap of 512: 98);
 * 5. else any body still arriving, the one whose body waited longest for a byte first: 512
 *    connections each sending headers, then a byte every 2 s, locked every probe and client out
 *    for the request timeout (30 s), again on each reconnection;
 * 6. else the oldest of the new connections that have sent nothing yet: a probe on a new
 *    connection, its request in flight, goes after those bodies (cut before them, 7 probes in 76
 *    were reset by such bodies reconnecting at the cap).
 * Only when every connection has a request dispatched to the handler and read whole (or its
 * answer begun) is the new one closed. A flood can then never lock probes and clients out, and
 * the cap keeps the file descriptors the process's Kafka, Redis and ClickHouse clients need. Each
 * is counted in `driftline_http_connections_shed_total{listener, reason}`; a warning is logged at
 * most once a {@link CAP_WARNING_INTERVAL_MS}.
 *
 * A body that stops arriving for `bodyProgressTimeoutMs` (the time between two bytes, not the
 * whole body: a large body over a slow link that keeps coming is read to its end, within node's
 * request timeout) is answered 408 and its connection closed: by the handler through
 * `onBodyStalled`, else with the guard's own JSON 408. The clock stops while the server is the one
 * waited for: body bytes received and not yet read by the handler (node then stops reading the
 * socket), or an `Expect: 100-continue` not yet answered. Checked every eighth of the timeout (at
 * least 50 ms, at most 500 ms), only while such a body is being received. A body that keeps coming
 * but is not whole at node's request timeout is answered the same way (408, through
 * `onBodyStalled` or the guard's own), not closed with nothing.
 *
 * A request node's parser refuses (malformed, headers too large, too slow) is answered with the
 * JSON error and its connection closed, unless answers of that connection are pending: a 400
 * written then would be read as the answer of an earlier request. The connection is then closed
 * without it, once those answers are written (at once when the refused bytes are the body of the
 * request in flight, which can then never end, or when the error is a timeout). With
 * `onBodyError`, a body the parser refuses of the one request in flight, nothing of its answer
 * written yet, is handed to it instead (that request is then answered, with `connection: close`,
 * and the connection closed after its answer).
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
    /**
     * Called once for each admitted request when its answer is done: written to its socket, or its
     * connection gone (also for a pipelined answer node never started, which gets no `close`).
     */
    readonly onAnswered?: (res: ServerResponse) => void;
    /**
     * Called once when the parser refuses the body of the one request in flight on its connection
     * (bad chunked framing: `error.code` is the parser's `HPE_…`) before any of its answer is
     * written: the handler reading that body is to answer it (a 400). The connection stays open
     * until that answer is written, which says `connection: close`, then closes. Without it, the
     * connection is closed at once with no answer (the body can never end).
     */
    readonly onBodyError?: (req: IncomingMessage, error: NodeJS.ErrnoException) => void;
    /**
     * Longest pause in a request body before its request is answered 408 and its connection
     * closed; default {@link BODY_PROGRESS_TIMEOUT_MS}.
     */
    readonly bodyProgressTimeoutMs?: number;
    /**
     * Called once when the body of the one request in flight on its connection stopped arriving
     * for `bodyProgressTimeoutMs`, or was not whole at the server's request timeout, nothing of its
     * answer written: the handler reading that body is to answer it (a 408 with `message`). The answer says `connection: close` and the connection
     * closes after it. Without it, the guard writes a 408 itself and closes the connection.
     */
    readonly onBodyStalled?: (req: IncomingMessage, message: string) => void;
  },
): HttpGuard {
  const { maxConnections, listener, logger, registry, onAnswered, onBodyError, onBodyStalled } = options;
  const bodyTimeout = options.bodyProgressTimeoutMs ?? BODY_PROGRESS_TIMEOUT_MS;
  const now = options.now ?? Date.now;
  const connections = new Map<Socket, Connection>();
  // Connections with no request dispatched, each list in the order they began waiting (a Map keeps
  // insertion order; the first is the one waiting longest): new ones that never had one, answered
  // ones waiting for their next, and those an eviction found with bytes of a request (moved there
  // once, so an eviction is O(1) amortised).
  const fresh = new Map<Socket, Connection>();
  const idle = new Map<Socket, Connection>();
  const partial = new Map<Socket, Connection>();
  // Connections whose one request in flight is still receiving its body, the one whose body last
  // moved longest ago first (moved to the end when a check sees it move). Checked lazily: an entry
  // whose body ended, whose answer began or that has another request is dropped when met.
  const receiving = new Map<Socket, Connection>();
  const bodyCheckEvery = Math.max(50, Math.min(500, Math.floor(bodyTimeout / 8)));
  let bodyCheck: NodeJS.Timeout | undefined;
  let waitingOrder = 0;
  const shed = registry === undefined ? undefined : connectionsShedCounter(registry);
  let lastWarning = Number.NEGATIVE_INFINITY;
  let shedSinceWarning = 0;
  const onShed = (reason: ShedReason) => {
    shed?.inc({ listener, reason });
    shedSinceWarning++;
    if (logger !== undefined && now() - lastWarning >= CAP_WARNING_INTERVAL_MS) {
      logger.warn(
        { listener, maxConnections, shed: shedSinceWarning, reason },
        'HTTP listener at its connection cap: closing the longest-idle connections, else partial requests, else requests whose body paused or is still arriving (more clients than the cap, or a flood)',
      );
      lastWarning = now();
      shedSinceWarning = 0;
    }
  };

  const startWaiting = (socket: Socket, connection: Connection, list: Map<Socket, Connection>) => {
    connection.waiting = true;
    connection.readAtWaiting = socket.bytesRead;
    connection.waitingOrder = waitingOrder++;
    list.set(socket, connection);
  };
  const stopWaiting = (socket: Socket, connection: Connection) => {
    connection.waiting = false;
    fresh.delete(socket);
    idle.delete(socket);
    partial.delete(socket);
  };
  const track = (socket: Socket): Connection => {
    const connection: Connection = {
      answers: new Set(),
      waiting: false,
      readAtWaiting: 0,
      waitingOrder: 0,
      acceptedAt: now(),
      closeWhenAnswered: false,
      bodyRefused: false,
      bodyReadAt: 0,
      bodyMovedAt: 0,
    };
    connections.set(socket, connection);
    startWaiting(socket, connection, fresh);
    socket.once('close', () => {
      connections.delete(socket);
      stopWaiting(socket, connection);
      receiving.delete(socket);
      // Pipelined answers node never started get no `close` of their own.
      for (const res of connection.answers) onAnswered?.(res);
      connection.answers.clear();
    });
    return connection;
  };
  const close = (socket: Socket, connection: Connection) => {
    // Uncounted at once: its `close` comes later, and new connections of the same burst must not
    // close one more each.
    connections.delete(socket);
    stopWaiting(socket, connection);
    receiving.delete(socket);
    socket.destroy();
  };
  /** The one request in flight of a connection in the receiving list while its body is still arriving and its answer not begun. */
  const receivingAnswer = (socket: Socket, connection: Connection): ServerResponse | undefined => {
    if (socket.destroyed || connection.answers.size !== 1) return undefined;
    const [only] = connection.answers;
    return only !== undefined && !only.req.complete && !only.headersSent ? only : undefined;
  };
  /**
   * Whether the server, not the client, is the one waited for: body bytes its handler has not read
   * (node stops reading the socket past its high-water mark), or a 100 Continue not sent yet
   * (`_sent100`: node's own flag, set by `writeContinue`).
   */
  const serversTurn = (res: ServerResponse): boolean =>
    res.req.readableLength > 0 ||
    (/100-continue/i.test(res.req.headers.expect ?? '') &&
      (res as ServerResponse & { _sent100?: boolean })._sent100 !== true);
  /** A body that stopped arriving: its handler answers a 408 (or the guard does), and the connection closes. */
  const bodyStalled = (socket: Socket, connection: Connection, res: ServerResponse, message: string) => {
    receiving.delete(socket);
    if (onBodyStalled === undefined) {
      if (socket.writable) socket.write(bodyStalledAnswer(message));
      socket.destroy();
      return;
    }
    connection.closeWhenAnswered = true;
    res.setHeader('connection', 'close');
    onBodyStalled(res.req, message);
  };
  /**
   * Walks the bodies still arriving in `receiving`'s order: drops those no longer receiving, marks
   * those that moved since they were last seen (or whose server's turn it is) as moving at `at` and
   * moves them to the end; hands each other one to `still`, and stops when it returns true.
   */
  const scanBodies = (at: number, still: (socket: Socket, connection: Connection, res: ServerResponse) => boolean) => {
    const moved: [Socket, Connection][] = [];
    for (const [socket, connection] of receiving) {
      const res = receivingAnswer(socket, connection);
      if (res === undefined) receiving.delete(socket);
      else if (socket.bytesRead !== connection.bodyReadAt || serversTurn(res)) {
        connection.bodyReadAt = socket.bytesRead;
        connection.bodyMovedAt = at;
        moved.push([socket, connection]);
      } else if (still(socket, connection, res)) break;
    }
    for (const [socket, connection] of moved) {
      receiving.delete(socket);
      receiving.set(socket, connection);
    }
  };
  const checkBodies = () => {
    const at = now();
    const stalled: [Socket, Connection, ServerResponse][] = [];
    scanBodies(at, (socket, connection, res) => {
      if (at - connection.bodyMovedAt >= bodyTimeout) stalled.push([socket, connection, res]);
      return false;
    });
    for (const [socket, connection, res] of stalled)
      bodyStalled(socket, connection, res, bodyStalledMessage(bodyTimeout));
    if (receiving.size === 0) {
      clearInterval(bodyCheck);
      bodyCheck = undefined;
    }
  };
  const startReceiving = (socket: Socket, connection: Connection) => {
    connection.bodyReadAt = socket.bytesRead;
    connection.bodyMovedAt = now();
    receiving.delete(socket);
    receiving.set(socket, connection);
    if (bodyCheck === undefined) {
      bodyCheck = setInterval(checkBodies, bodyCheckEvery);
      bodyCheck.unref();
    }
  };
  const answered = (socket: Socket, connection: Connection, res: ServerResponse) => {
    if (!connection.answers.delete(res)) return; // its connection's close came first
    onAnswered?.(res);
    // A request pipelined behind this one, its body still arriving, is now the one in flight.
    if (connection.answers.size === 1 && receivingAnswer(socket, connection) !== undefined) {
      startReceiving(socket, connection);
    }
    if (connection.answers.size > 0 || socket.destroyed) return;
    if (connection.closeWhenAnswered) socket.destroy();
    else startWaiting(socket, connection, idle);
  };
  /** The first connection of `list` with no byte since it began waiting; those before it with bytes move to the partial list. */
  const firstSilent = (list: Map<Socket, Connection>): [Socket, Connection] | undefined => {
    for (const [socket, connection] of list) {
      if (socket.bytesRead === connection.readAtWaiting) return [socket, connection];
      // Bytes since it began waiting and no request dispatched: a partial request.
      list.delete(socket);
      partial.set(socket, connection);
    }
    return undefined;
  };
  /**
   * The connection whose body has had no byte for {@link FIRST_BYTES_GRACE_MS} or more, the one
   * waiting longest first. Those seen moving since the last check (or the server's turn) are
   * marked moving now and go to the end, as a check does (the list stays in the order of
   * `bodyMovedAt`, so the scan stops at the first recent one: O(1) amortised).
   */
  const firstStaleBody = (): [Socket, Connection] | undefined => {
    const at = now();
    let found: [Socket, Connection] | undefined;
    scanBodies(at, (socket, connection) => {
      if (at - connection.bodyMovedAt >= FIRST_BYTES_GRACE_MS) found = [socket, connection];
      return true; // the first one not moving is the one waiting longest
    });
    return found;
  };
  /** Closes a connection to make room (the order: see guardHttpServer); undefined when none can. */
  const evict = (): ShedReason | undefined => {
    const afterAnswer = firstSilent(idle);
    const silentNew = firstSilent(fresh);
    const silentLong =
      silentNew !== undefined && now() - silentNew[1].acceptedAt >= FIRST_BYTES_GRACE_MS ? silentNew : undefined;
    const longestIdle =
      afterAnswer === undefined ||
      (silentLong !== undefined && silentLong[1].waitingOrder < afterAnswer[1].waitingOrder)
        ? silentLong
        : afterAnswer;
    if (longestIdle !== undefined) {
      close(...longestIdle);
      return 'evicted_idle';
    }
    for (const [socket, connection] of partial) {
      close(socket, connection);
      return 'evicted_partial';
    }
    const stale = firstStaleBody();
    if (stale !== undefined) {
      close(...stale);
      return 'evicted_body';
    }
    if (silentNew !== undefined && now() - silentNew[1].acceptedAt >= SILENT_BEFORE_BODY_MS) {
      close(...silentNew);
      return 'evicted_idle';
    }
    for (const [socket, connection] of receiving) {
      if (receivingAnswer(socket, connection) === undefined) {
        receiving.delete(socket);
        continue;
      }
      close(socket, connection);
      return 'evicted_body';
    }
    if (silentNew !== undefined) {
      close(...silentNew);
      return 'evicted_idle';
    }
    return undefined;
  };

  server.on('connection', (socket: Socket) => {
    if (connections.size >= maxConnections) {
      const reason = evict();
      if (reason === undefined) {
        socket.destroy();
        onShed('refused');
        return;
      }
      onShed(reason);
    }
    track(socket);
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    const connection = connections.get(socket as Socket);
    if (connection !== undefined && connection.answers.size > 0) {
      // The end of the stream mid-body (HPE_INVALID_EOF_STATE) is a client gone, not a bad body.
      const parseError = error.code?.startsWith('HPE_') === true && error.code !== 'HPE_INVALID_EOF_STATE';
      // The parser stays in its error state and refuses every later chunk again.
      if (connection.bodyRefused && parseError) return;
      const [only] = connection.answers;
      // The request timeout with the body of the one request in flight still arriving (a body that
      // keeps coming too slowly): answered 408 as a stalled body is, not closed with nothing (a 499).
      if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT' && only !== undefined) {
        const res = receivingAnswer(socket as Socket, connection);
        if (res !== undefined) {
          bodyStalled(socket as Socket, connection, res, requestTimeoutMessage(server.requestTimeout));
          return;
        }
      }
      if (
        onBodyError !== undefined &&
        parseError &&
        connection.answers.size === 1 &&
        only !== undefined &&
        !only.req.complete &&
        !only.headersSent
      ) {
        // Its own body: its answer is the next bytes on the connection, so it can say why.
        connection.bodyRefused = true;
        connection.closeWhenAnswered = true;
        only.setHeader('connection', 'close');
        onBodyError(only.req, error);
        return;
      }
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
      if (connection.waiting) stopWaiting(socket, connection);
      connection.answers.add(res);
      res.once('close', () => answered(socket, connection, res));
      if (connection.answers.size === 1 && !req.complete) startReceiving(socket, connection);
      return connection.answers.size;
    },
    connections: () => connections.size,
  };
}
