import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@driftline/core';
import type { Registry } from 'prom-client';
import { errorJson, guardHttpServer } from './http-guard.js';
import { createLogger } from './logger.js';

export interface HealthCheck {
  /** Live: the process is working (not wedged). */
  healthy(): boolean;
  /** Ready: connected to its sources and sinks and able to make progress. */
  ready(): boolean;
  /**
   * Why it is unhealthy or unready, added to a 503 body (e.g. the stalled partitions). Only
   * driftline's own facts (names, counts, durations), never a backend's raw error text.
   */
  problems?(): Record<string, unknown>;
}

export interface ObservabilityServer {
  readonly port: number;
  close(): Promise<void>;
}

/** The server's connection timeouts, in ms (what `listenHttp` of `@driftline/service/http` calls ServerTimeouts). */
export interface ObservabilityTimeouts {
  /** Time a client has to send its request headers (an idle or slow-loris connection): 408 and close after. */
  readonly headersTimeoutMs: number;
  /** Time a client has to send its whole request. */
  readonly requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open (above a scrape interval, so Prometheus reuses it). */
  readonly keepAliveTimeoutMs: number;
  /** Time a client has to read a complete answer before its connection is closed. */
  readonly writeTimeoutMs: number;
}

/**
 * The defaults of `listenHttp` (`DEFAULT_TIMEOUTS` of `@driftline/service/http`), repeated here:
 * that package depends on this one. Node's own (60 s for headers, checked every 30 s) held an idle
 * or slow-loris connection for 90 s.
 */
export const OBSERVABILITY_TIMEOUTS: ObservabilityTimeouts = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 65_000,
  writeTimeoutMs: 30_000,
};

/**
 * Connections the server holds at once. A scraper, a probe or two and a person need a handful: the
 * cap keeps a flood of connections from using up the process's file descriptors, which its Kafka,
 * Redis and ClickHouse clients need. At the cap a new connection closes the longest-idle one (it
 * was refused: 64 idle keep-alive connections locked every probe out, and the orchestrator
 * restarted a healthy process).
 */
export const MAX_OBSERVABILITY_CONNECTIONS = 64;

/**
 * Requests one connection may have in flight (pipelined, not yet answered); beyond it a 503 that
 * closes the connection. Three connections pipelining /metrics without reading held ~280 MB of
 * answers before it.
 */
export const MAX_OBSERVABILITY_PIPELINED = 4;

/** The Retry-After of the server's 503s, in seconds. */
const RETRY_AFTER_SECONDS = '1';

const ALLOW = 'GET, HEAD';

/** Serves /metrics (Prometheus text), /healthz and /readyz (200 or 503 with a JSON body); GET and HEAD. */
export async function startObservabilityServer(options: {
  registry: Registry;
  health: HealthCheck;
  port?: number;
  host?: string;
  timeouts?: Partial<ObservabilityTimeouts>;
  maxConnections?: number;
  /** Where a failed /metrics collection is logged (its text never goes to the client). */
  logger?: Logger;
}): Promise<ObservabilityServer> {
  const timeouts = { ...OBSERVABILITY_TIMEOUTS, ...options.timeouts };
  let logger = options.logger;
  const log = () => {
    logger ??= createLogger({ service: 'driftline' });
    return logger;
  };
  /**
   * Ends the answer (`headers`: the caller's own object, given its content-length here); a client
   * that does not read it within the write timeout loses its connection.
   */
  const send = (res: ServerResponse, status: number, headers: Record<string, string>, body?: string) => {
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    res.writeHead(status, headers).end(body);
    if (res.writableFinished) return;
    const timer = setTimeout(() => res.socket?.destroy(), timeouts.writeTimeoutMs);
    timer.unref();
    res.once('close', () => clearTimeout(timer));
  };
  const sendError = (res: ServerResponse, status: number, code: string, message: string, headers = {}) =>
    send(res, status, { 'content-type': 'application/json', ...headers }, errorJson(code, message));
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const inFlightOnConnection = guard.admit(req, res);
    if (inFlightOnConnection === 0) return;
    if (inFlightOnConnection > MAX_OBSERVABILITY_PIPELINED) {
      sendError(
        res,
        503,
        'OVERLOADED',
        `more than ${MAX_OBSERVABILITY_PIPELINED} requests in flight on one connection`,
        { connection: 'close', 'retry-after': RETRY_AFTER_SECONDS },
      );
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    // HEAD as GET without a body (node drops it): probes that only look at the status use it.
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(res, 405, 'BAD_REQUEST', `use ${ALLOW}`, { allow: ALLOW });
      return;
    }
    if (path === '/metrics') {
      options.registry.metrics().then(
        (body) => send(res, 200, { 'content-type': options.registry.contentType }, body),
        (error: unknown) => {
          // A collector's text (a proxied thread's, a backend's) is the operator's, not the scraper's.
          log().error({ err: error }, '/metrics collection failed; answered 500');
          send(res, 500, { 'content-type': 'text/plain' }, 'metrics collection failed\n');
        },
      );
      return;
    }
    if (path === '/healthz' || path === '/readyz') {
      const ok = path === '/healthz' ? options.health.healthy() : options.health.ready();
      const problems = ok ? {} : (options.health.problems?.() ?? {});
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (!ok) headers['retry-after'] = RETRY_AFTER_SECONDS;
      send(res, ok ? 200 : 503, headers, JSON.stringify({ status: ok ? 'ok' : 'unavailable', ...problems }));
      return;
    }
    sendError(res, 404, 'NOT_FOUND', 'no route: /metrics, /healthz and /readyz are served');
  };
  const server: Server = createServer(
    {
      headersTimeout: timeouts.headersTimeoutMs,
      requestTimeout: Math.max(timeouts.headersTimeoutMs, timeouts.requestTimeoutMs),
      keepAliveTimeout: timeouts.keepAliveTimeoutMs,
      // How often node checks the two timeouts above (its default, 30 s, let a connection outlive them by that much).
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(timeouts.headersTimeoutMs / 4))),
      // Checked by the guard, to answer in the JSON shape.
      requireHostHeader: false,
    },
    handle,
  );
  const guard = guardHttpServer(server, {
    maxConnections: options.maxConnections ?? MAX_OBSERVABILITY_CONNECTIONS,
    listener: 'observability',
    registry: options.registry,
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
