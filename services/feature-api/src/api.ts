import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createFeatureHandler, type FeatureHandlerOptions } from './handler.js';

export interface FeatureApiOptions extends FeatureHandlerOptions {
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
 * - `GET  /healthz`.
 * The store is any OnlineStore: Redis in the service, the in-memory spec in unit tests.
 */
export async function startFeatureApi(options: FeatureApiOptions): Promise<FeatureApiServer> {
  const handle = createFeatureHandler(options);
  const server: Server = createServer((req, res) => {
    void handle(req, res);
  });
  server.keepAliveTimeout = 65_000;
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
