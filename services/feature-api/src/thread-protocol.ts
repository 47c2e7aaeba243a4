import type { RedisConnectionConfig } from '@driftline/core';
import type { Registry } from '@driftline/observability';
import type { RedisClientPolicy } from '@driftline/online-store/redis';
import type { ListenVariables, ServerTimeouts } from '@driftline/service/http';
import type { ForwardedLog, StartFailure } from '@driftline/service/worker';

/** What the worker thread needs to start the API on its own (structured-cloneable). */
export interface FeatureApiThreadData extends Partial<ServerTimeouts> {
  readonly redis: RedisConnectionConfig;
  readonly keyPrefix: string;
  /** Whether reads fall back to key layout v1 (DRIFTLINE_FEATURE_READ_V1; default true). */
  readonly readV1?: boolean;
  /** The store's bound on its reads in flight (DRIFTLINE_FEATURE_READ_IN_FLIGHT_*; defaults: the store's). */
  readonly maxReadEntitiesInFlight?: number;
  readonly maxReadBytesInFlight?: number;
  /** The feature view file's text (YAML or JSON), parsed again in the thread. */
  readonly viewsText: string;
  readonly port: number;
  readonly host: string;
  readonly listenVariables?: ListenVariables;
  readonly maxBatchEntities?: number;
  readonly maxBodyBytes?: number;
  readonly maxFeatures?: number;
  readonly maxConnections?: number;
  readonly token?: string;
  readonly redisPolicy?: Partial<RedisClientPolicy>;
}

export type ThreadMetrics = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** Worker → main. */
export type FromThread =
  | { readonly type: 'listening'; readonly port: number }
  | StartFailure
  | { readonly type: 'ready'; readonly ready: boolean }
  | { readonly type: 'metrics'; readonly id: number; readonly metrics: ThreadMetrics }
  | ForwardedLog
  | { readonly type: 'closed' };

/** Main → worker. */
export type ToThread = { readonly type: 'metrics'; readonly id: number } | { readonly type: 'close' };
