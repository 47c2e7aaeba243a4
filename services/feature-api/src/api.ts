import { type HttpServer, type ListenVariables, listenHttp, type ServerTimeouts } from '@driftline/service/http';
import { createFeatureHandler, type FeatureHandlerOptions } from './handler.js';

export type { ServerTimeouts };

export interface FeatureApiOptions extends FeatureHandlerOptions, Partial<ServerTimeouts> {
  readonly port?: number;
  readonly host?: string;
  /** The variables naming port and host: a port in use is then a ConfigError naming them. */
  readonly listenVariables?: ListenVariables;
}

export type FeatureApiServer = HttpServer;

/**
 * The feature API over node:http:
 * - `GET  /v1/features/{view}/{entity}[?features=a,b]` — one entity;
 * - `POST /v1/features:batch` (alias `/v1/features/batch`) with `{"requests":[{"view","entities",["features"]}]}` —
 *   many entities of several views, one batch read of the store;
 * - `GET  /healthz` (never needs the token).
 * Bounded: body size, entities per batch, feature names per read (no repeats), an optional bearer
 * token, and header, request, keep-alive and write timeouts on every connection.
 * The store is any OnlineStore: Redis in the service, the in-memory spec in unit tests.
 */
export async function startFeatureApi(options: FeatureApiOptions): Promise<FeatureApiServer> {
  return listenHttp(createFeatureHandler(options), options);
}
