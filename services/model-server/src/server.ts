import type { EventTimeBounds, Logger } from '@driftline/core';
import type { FeatureViews } from '@driftline/features';
import { counter, gauge, type Registry } from '@driftline/observability';
import type { OnlineStore } from '@driftline/online-store';
import type { CanarySpec } from '@driftline/policy';
import { contracts, type PredictionEvent } from '@driftline/schemas';
import { type HttpServer, type ListenVariables, listenHttp, type ServerTimeouts } from '@driftline/service/http';
import { addPredictionSizes, DEFAULT_MAX_REQUEST_LOG_BYTES } from './admission.js';
import type { VersionLoader } from './artifacts.js';
import { createModelHandler } from './handler.js';
import { type LogThreadData, startThreadLog } from './log-thread.js';
import { createPredictionLog, type PredictionLog, type RejectedPrediction } from './prediction-log.js';
import type { PredictLimits } from './request.js';
import { ServingTable } from './serving.js';

export interface PredictionLogBounds {
  readonly maxBuffered: number;
  /** Most approximate bytes held (approxRecordBytes): long string features bound memory, not only counts. */
  readonly maxBufferedBytes: number;
  /** Most UTF-8 bytes of string feature values in one request's records (all versions): above it, a 413. */
  readonly maxRequestBytes: number;
  /** Longest wait of a request for room in a full log before its 503 (back-pressure). */
  readonly maxWaitMs: number;
  readonly flushIntervalMs: number;
  readonly maxBatch: number;
}

export const DEFAULT_LOG_BOUNDS: PredictionLogBounds = {
  maxBuffered: 50_000,
  maxBufferedBytes: 256 * 1_048_576,
  maxRequestBytes: DEFAULT_MAX_REQUEST_LOG_BYTES,
  maxWaitMs: 1_000,
  flushIntervalMs: 50,
  maxBatch: 200,
};
/** Records per send when the log runs on its worker thread (log-thread.ts). */
export const THREAD_LOG_BATCH = 2_000;

/**
 * Where predictions are logged: through `publish` on the serving thread, or by a log on a worker
 * thread of its own that opens its own producer (`thread`; the service's default).
 */
export type PredictionLogTarget =
  | {
      readonly publish: (events: readonly PredictionEvent[]) => Promise<void>;
      readonly deadLetter: (rejected: ReadonlyArray<RejectedPrediction>) => Promise<void>;
    }
  | { readonly thread: LogThreadData };

export interface ModelServerOptions extends Partial<PredictLimits>, Partial<ServerTimeouts> {
  readonly store: OnlineStore;
  readonly views: FeatureViews;
  readonly load: VersionLoader;
  readonly log: PredictionLogTarget;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly canaries?: ReadonlyMap<string, CanarySpec>;
  readonly shadows?: ReadonlyMap<string, readonly string[]>;
  readonly logBounds?: Partial<PredictionLogBounds>;
  readonly token?: string;
  readonly port?: number;
  readonly host?: string;
  /** The variables naming port and host: a port in use is then a ConfigError naming them. */
  readonly listenVariables?: ListenVariables;
  /** Connections held at once; at the cap a new one closes the longest-idle (see `listenHttp`). */
  readonly maxConnections?: number;
  readonly ready?: () => boolean;
  /** Accepted `event_time` of a request's instances. */
  readonly eventTime?: EventTimeBounds;
  /** Most bytes the stored rows one feature read of a request may hold (default `MAX_READ_ROW_BYTES`, 32 MiB; 400 above). */
  readonly maxReadRowBytes?: number;
}

export interface ModelServer extends HttpServer {
  readonly table: ServingTable;
  readonly log: PredictionLog;
}

/**
 * The model server without its Kafka follower: the HTTP routes over a serving table, an online
 * store and a prediction log. The service wires models.v1 to `table.promote` and the log to
 * predictions.v1; tests and the bench drive it directly. `close()` stops listening, then drains
 * the log (and ends its thread).
 */
export async function startModelServer(options: ModelServerOptions): Promise<ModelServer> {
  const backlog = gauge(
    options.registry,
    'driftline_model_server_log_backlog',
    'Prediction records not yet acknowledged by Kafka',
    [],
  );
  const target = options.log;
  const bounds = {
    ...DEFAULT_LOG_BOUNDS,
    ...('thread' in target ? { maxBatch: THREAD_LOG_BATCH } : {}),
    ...options.logBounds,
  };
  const lost = counter(
    options.registry,
    'driftline_model_server_log_lost_total',
    'Prediction records answered and never sent to Kafka: lost (left queued by a close that could not drain, or not yet handed to a log thread that died)',
    [],
  );
  const unknown = counter(
    options.registry,
    'driftline_model_server_log_unknown_total',
    'Prediction records answered and sent to Kafka without an acknowledgement when the log closed or its thread ended: they may have reached predictions.v1 (look before resending)',
    [],
  );
  const rejected = counter(
    options.registry,
    'driftline_model_server_log_dead_letters_total',
    'Prediction records Kafka refused as they are (too large, not encodable), sent to the dead-letter topic',
    [],
  );
  const hooks = {
    onBacklog: (n: number) => backlog.set(n),
    onLost: (n: number) => lost.inc({}, n),
    onUnknown: (n: number) => unknown.inc({}, n),
    onRejected: (n: number) => rejected.inc({}, n),
  };
  const log =
    'thread' in target
      ? await startThreadLog(target.thread, { ...bounds, ...hooks }, options.logger)
      : createPredictionLog({
          ...bounds,
          ...hooks,
          sizesOf: addPredictionSizes,
          publish: target.publish,
          deadLetter: target.deadLetter,
          idOf: contracts.prediction.key,
          logger: options.logger,
        });
  const table = new ServingTable({
    views: options.views,
    load: options.load,
    canaries: options.canaries ?? new Map(),
    shadows: options.shadows ?? new Map(),
    logger: options.logger,
    registry: options.registry,
  });
  const handler = createModelHandler({ ...options, table, log });
  // A prediction is logged before it is answered: refused then, a retry would log it twice. Its
  // answers are bounded by DRIFTLINE_MODEL_SERVER_MAX_BATCH instead (README: Connections).
  const server = await listenHttp(handler, {
    listener: 'model-server',
    ...options,
    answersPastBound: 'send',
  }).catch(async (error: unknown) => {
    await log.close(0);
    throw error;
  });
  return {
    port: server.port,
    table,
    log,
    async close() {
      await server.close();
      await log.close();
    },
  };
}
