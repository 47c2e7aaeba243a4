import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createFeatureHandler, type FeatureHandlerOptions } from './handler.js';

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

export interface FeatureApiOptions extends FeatureHandlerOptions, Partial<ServerTimeouts> {
  readonly port?: number;
  readonly host?: string;
}

export interface FeatureApiServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The feature API over node:http:
 * - `GET  /v1/features/{view}/{entity}[?features=a,b]` — one entity;
 * - `POST /v1/features:batch` (alias `/v1/features/batch`) with `{"requests":[{"view","entities",["features"]}]}` —
 *   many entities of several views, one batch read of the store;
 * - `GET  /healthz` (never needs the token).
 * Bounded: body size, entities per batch, feature names per read (no repeats), an optional bearer
 * token, and header, request and keep-alive timeouts on every connection.
 * The store is any OnlineStore: Redis in the service, the in-memory spec in unit tests.
 */
export async function startFeatureApi(options: FeatureApiOptions): Promise<FeatureApiServer> {
  const handle = createFeatureHandler(options);
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
