import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  DEFAULT_EVENT_TIME_BOUNDS,
  DriftlineError,
  type EventTimeBounds,
  eventTimeProblem,
  keyedLineLimit,
  type Logger,
} from '@driftline/core';
import { counter, histogram, MAX_SERIES_PER_METRIC, type Registry } from '@driftline/observability';
import type { OnlineStore } from '@driftline/online-store';
import { badRequest, checkBearer, HttpError, oneLine, readBody, sendError, sendJson } from '@driftline/service/http';
import type { PredictionLog } from './prediction-log.js';
import { MAX_READ_ROW_BYTES, scoreInstances } from './predictor.js';
import { DEFAULT_PREDICT_LIMITS, type PredictLimits, parsePredictBody } from './request.js';
import { type ServingTable, unservedReason } from './serving.js';

export interface ModelHandlerOptions extends Partial<PredictLimits> {
  readonly table: ServingTable;
  readonly store: OnlineStore;
  readonly log: PredictionLog;
  readonly registry: Registry;
  readonly logger: Logger;
  /** When set, /v1 routes need `Authorization: Bearer <token>` (401 otherwise). */
  readonly token?: string;
  readonly now?: () => number;
  /** Accepted `event_time` of an instance (DRIFTLINE_EVENT_TIME_*); default: libs/core's defaults. */
  readonly eventTime?: EventTimeBounds;
  /** Readiness beyond the store (the models.v1 follower). */
  readonly ready?: () => boolean;
  /** Most bytes the stored rows one feature read of a request may hold (default {@link MAX_READ_ROW_BYTES}; 400 above). */
  readonly maxReadRowBytes?: number;
}

const PREFIX = '/v1/models/';
const SUFFIX = ':predict';
const REALM = 'driftline-model-server';
/** At most one canary-failure line per model and version this often (the rest counted in it). */
const CANARY_FAILURE_LOG_MS = 60_000;
/** Status of a request whose client went away before its answer (nginx's convention): nothing is sent or logged. */
const CLIENT_CLOSED_REQUEST = 499;

/** The client of a request went away before its predictions were logged: nothing is logged, a 499. */
class ClientGone extends Error {
  constructor() {
    super('the client went away before its answer');
  }
}

const departed = (req: IncomingMessage, signal: AbortSignal) => signal.aborted || req.socket.destroyed;

function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof DriftlineError) {
    // The store refused a read whose rows hold more than the request's bound, before reading them.
    const rows = error.details;
    if (error.code === 'BAD_REQUEST' && typeof rows.rowBytes === 'number' && typeof rows.maxRowBytes === 'number') {
      return new HttpError(
        400,
        'BAD_REQUEST',
        `the rows of the request's entities hold ${rows.rowBytes} bytes in the online store (every view the model reads), more than the ${rows.maxRowBytes} one request may read: send fewer instances per request`,
      );
    }
    if (error.code === 'BAD_REQUEST') return new HttpError(400, 'BAD_REQUEST', error.message);
    // More reads in flight than the store answers in time (StoreOverloadedError): load shedding.
    if (error.code === 'OVERLOADED') return new HttpError(503, 'OVERLOADED', 'online store overloaded; retry later');
    if (error.retriable) return new HttpError(503, 'SINK_UNAVAILABLE', 'online store unavailable');
  }
  return new HttpError(500, 'INTERNAL', 'internal error');
}

/**
 * The model server's routes:
 * - `POST /v1/models/{model}:predict` — one entity or `{"instances": [...]}`;
 * - `GET /v1/models` — the served models, their versions and roles, and the promoted ones not served;
 * - `GET /healthz` (never needs the token).
 */
export function createModelHandler(options: ModelHandlerOptions) {
  const { table, store, log, registry } = options;
  const now = options.now ?? Date.now;
  const bounds = options.eventTime ?? DEFAULT_EVENT_TIME_BOUNDS;
  const limits: PredictLimits = {
    maxBatch: options.maxBatch ?? DEFAULT_PREDICT_LIMITS.maxBatch,
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_PREDICT_LIMITS.maxBodyBytes,
    maxFeatures: options.maxFeatures ?? DEFAULT_PREDICT_LIMITS.maxFeatures,
  };
  const token = options.token === undefined ? undefined : Buffer.from(options.token, 'utf8');
  const maxReadRowBytes = options.maxReadRowBytes ?? MAX_READ_ROW_BYTES;
  const logger = options.logger.child({ stage: 'http' });
  let lastOutageLog = 0;
  const metrics = {
    latency: histogram(
      registry,
      'driftline_model_server_request_seconds',
      'Model server request latency, by route and status',
      ['route', 'status'],
      [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    ),
    predictions: counter(registry, 'driftline_model_server_predictions_total', 'Predictions made, by role', ['role']),
    // Versions of a served plan only (from models.v1): bounded as `driftline_model_serving`, the
    // series cap binding rather than the values per label (a model serves about ten versions).
    shadowFailures: counter(
      registry,
      'driftline_model_server_shadow_failures_total',
      'Instances a version scored only for comparison (shadow, watched, production on canary instances) could not score, by model and version (the request is answered all the same)',
      ['model', 'version'],
      { bounded: ['model', 'version'], max: MAX_SERIES_PER_METRIC },
    ),
    canaryFailures: counter(
      registry,
      'driftline_model_server_canary_failures_total',
      "Instances of a canary's share the canary could not answer (a request value it encodes differently from production, a score that is not a finite number, its scorer failing), answered by production, by model and version",
      ['model', 'version'],
      { bounded: ['model', 'version'], max: MAX_SERIES_PER_METRIC },
    ),
    // Only served models reach it (a plan exists): `model` is bounded all the same (names from models.v1).
    outOfRange: counter(
      registry,
      'driftline_model_server_out_of_range_values_total',
      'Feature values of answered predictions logged as null for lying beyond float32 (missing to the model; the trainer sees null, not out_of_range_values)',
      ['model'],
      { bounded: ['model'] },
    ),
  };

  // Keyed by model and version, both from models.v1; as many as the series the metric keeps.
  const canaryLines = keyedLineLimit<string>({ intervalMs: CANARY_FAILURE_LOG_MS, maxKeys: MAX_SERIES_PER_METRIC });

  /** The 503 or 404 of a model with no plan. */
  function notServed(model: string): never {
    // Before models.v1 is read to its end no model is known yet: "unknown" (a client error, not
    // retried) would be false; a 503 sends the client to another instance or a retry.
    if (options.ready?.() === false)
      throw new HttpError(503, 'SINK_UNAVAILABLE', 'models.v1 not read yet: this instance does not serve yet');
    // The name comes from the URL: quoted and cut, so the answer stays one line.
    const name = JSON.stringify(model.slice(0, 128));
    // Promoted, but no version of it loads here (its files missing at start): a 404 "unknown
    // model" told clients to give up on a model that serves once its files are back, or elsewhere.
    const unserved = table.unservedProduction(model);
    if (unserved !== undefined)
      throw new HttpError(503, 'SINK_UNAVAILABLE', `model ${name}: ${unservedReason(unserved)}`);
    throw new HttpError(404, 'NOT_FOUND', `unknown model ${name} (no version of it is promoted)`);
  }

  async function predict(req: IncomingMessage, model: string, signal: AbortSignal): Promise<unknown> {
    // Before the body is read: an unknown model costs nothing.
    if (table.get(model) === undefined) notServed(model);
    const request = parsePredictBody(await readBody(req, limits.maxBodyBytes), limits);
    const at = now();
    request.instances.forEach((inst, i) => {
      if (inst.eventTime === undefined) return;
      const problem = eventTimeProblem(
        inst.eventTime,
        at,
        bounds,
        request.batch ? `instances[${i}].event_time` : 'event_time',
      );
      if (problem !== undefined) throw badRequest(problem);
    });
    // The plan is taken once the body is read, and again after the feature read (scoreInstances):
    // taken before the body, a slow body (up to the request timeout) or a slow Redis read was scored
    // by a version rolled back meanwhile, answered and logged as production (found by a review).
    let scored = await scoreInstances(
      () => table.get(model) ?? notServed(model),
      request,
      store,
      at,
      undefined,
      maxReadRowBytes,
      signal,
    );
    // Queued before it is answered; under a backlog this waits for room (back-pressure), then 503.
    // The plan is looked at a third time when the records are taken, after that wait (up to
    // DRIFTLINE_MODEL_SERVER_LOG_WAIT): a swap during it scores again with the new plan, on the rows
    // read (a rolled-back version answered as production 1 s after its rollback, found by a review).
    // Nothing is logged for a client gone (before, or while waiting for room): no client holds
    // the prediction ids, a retrying client's request was logged twice, and orphans never get
    // labels (a review: 300 aborted batches, 28,100 predictions logged, answered "200").
    if (departed(req, signal)) throw new ClientGone();
    await log.append(
      scored.events,
      () => {
        if (departed(req, signal)) throw new ClientGone();
        const plan = table.get(model) ?? notServed(model);
        if (plan !== scored.plan) scored = scored.rescore(plan);
        return scored.events;
      },
      signal, // a client gone while waiting leaves the waiting room at once (its place freed)
    );
    for (const p of scored.predictions) metrics.predictions.inc({ role: p.role });
    if (scored.events.length > scored.predictions.length) {
      metrics.predictions.inc({ role: 'shadow' }, scored.events.length - scored.predictions.length);
    }
    for (const [version, n] of scored.shadowFailuresByVersion) metrics.shadowFailures.inc({ model, version }, n);
    const canary = scored.canaryFailures;
    if (canary !== undefined) {
      metrics.canaryFailures.inc({ model, version: canary.version }, canary.count);
      const leftOut = canaryLines.admit(JSON.stringify([model, canary.version]), Date.now(), canary.count);
      if (leftOut !== undefined) {
        logger.warn(
          {
            model,
            version: canary.version,
            reason: canary.why,
            instances: canary.count + leftOut,
          },
          `canary version could not answer instances of its share (${canary.why}): production answered them; see driftline_model_server_canary_failures_total`,
        );
      }
    }
    if (scored.outOfRange > 0) metrics.outOfRange.inc({ model }, scored.outOfRange);
    if (!request.batch) return { model, ...scored.predictions[0]! };
    return { model, predictions: scored.predictions };
  }

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = performance.now();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    let route = 'other';
    let status = 200;
    // Aborted when the client goes away before its answer: reads not yet issued are skipped.
    const gone = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) gone.abort();
    };
    res.once('close', onClose);
    try {
      let body: unknown;
      if (token !== undefined && path.startsWith('/v1/')) checkBearer(req.headers.authorization, token);
      if (path.startsWith(PREFIX) && path.endsWith(SUFFIX)) {
        route = 'predict';
        if (req.method !== 'POST') throw new HttpError(405, 'BAD_REQUEST', 'use POST to predict', 'POST');
        let model: string;
        try {
          model = decodeURIComponent(path.slice(PREFIX.length, -SUFFIX.length));
        } catch {
          throw new HttpError(400, 'BAD_REQUEST', 'path: malformed percent-encoding');
        }
        body = await predict(req, model, gone.signal);
      } else if (path === '/v1/models') {
        route = 'models';
        if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'BAD_REQUEST', 'use GET', 'GET');
        body = { models: table.describe(), not_served: table.describeUnserved() };
      } else if (path === '/healthz') {
        route = 'health';
        if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'BAD_REQUEST', 'use GET', 'GET');
        const ok = store.ready() && log.ready() && (options.ready?.() ?? true);
        status = ok ? 200 : 503;
        body = { status: ok ? 'ok' : 'unavailable' };
      } else {
        throw new HttpError(404, 'NOT_FOUND', `no route ${req.method ?? ''} ${oneLine(path)}`);
      }
      sendJson(res, status, body, REALM);
    } catch (error) {
      if (error instanceof ClientGone || departed(req, gone.signal)) {
        // Nobody to answer (nginx's 499), whatever the read or the log said.
        status = CLIENT_CLOSED_REQUEST;
        metrics.latency.observe({ route, status: String(status) }, (performance.now() - started) / 1000);
        return;
      }
      const e = toHttpError(error);
      if (e.status === 500) logger.error({ err: error }, 'model server request failed');
      if (e.status === 503 && Date.now() - lastOutageLog >= 1_000) {
        lastOutageLog = Date.now();
        logger.warn({ err: error }, 'answered 503');
      }
      status = e.status;
      sendError(res, e, REALM);
    } finally {
      res.off('close', onClose);
    }
    metrics.latency.observe({ route, status: String(status) }, (performance.now() - started) / 1000);
  };
}
