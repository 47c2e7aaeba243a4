import { type HttpServer, type ListenVariables, listenHttp, type ServerTimeouts } from '@driftline/service/http';
import { createFeatureHandler, type FeatureHandlerOptions } from './handler.js';

export type { ServerTimeouts };

export interface FeatureApiOptions extends FeatureHandlerOptions, Partial<ServerTimeouts> {
  readonly port?: number;
  readonly host?: string;
  /** The variables naming port and host: a port in use is then a ConfigError naming them. */
  readonly listenVariables?: ListenVariables;
  /** Connections held at once; at the cap a new one closes the longest-idle (default DEFAULT_MAX_CONNECTIONS). */
  readonly maxConnections?: number;
  /** A bound of answer bytes held of this server's own (tests); default the process's MAX_HELD_ANSWER_BYTES. */
  readonly maxHeldAnswerBytes?: number;
}

export type FeatureApiServer = HttpServer;

/**
 * The feature API over node:http:
 * - `GET  /v1/features/{view}/{entity}[?features=a,b]` — one entity;
 * - `POST /v1/features:batch` (alias `/v1/features/batch`) with `{"requests":[{"view","entities",["features"]}]}` —
 *   many entities of several views, one batch read of the store;
 * - `GET  /healthz` (never needs the token).
 * Bounded: body size, entities per batch, feature names per read (no repeats), an optional bearer
 * token, header, request, keep-alive and write timeouts on every connection, connections held,
 * and answer bytes not yet read by their clients (see `listenHttp`).
 * The store is any OnlineStore: Redis in the service, the in-memory spec in unit tests.
 */
export async function startFeatureApi(options: FeatureApiOptions): Promise<FeatureApiServer> {
  // A read: an answer refused past the bound of answer bytes is redone by the retry, so the bound holds.
  return listenHttp(createFeatureHandler(options), { listener: 'feature-api', ...options, answersPastBound: 'refuse' });
}
