import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DriftlineError, type Logger } from '@driftline/core';
import {
  decodeProjectedRow,
  type FeatureRow,
  type FeatureValue,
  type FeatureView,
  type FeatureViews,
  fieldType,
  formatPath,
  MAX_ENTITY_LENGTH,
  type RedisConnectionConfig,
  rowKey,
  rowProjection,
} from '@driftline/features';
import { counter, histogram, type Registry } from '@driftline/observability';
import { Redis } from 'ioredis';
import { z } from 'zod';

export interface FeatureApiOptions {
  readonly redis: Redis;
  readonly views: FeatureViews;
  readonly keyPrefix: string;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly port?: number;
  readonly host?: string;
  /** Most entities one batch request may ask for (over all its views). */
  readonly maxBatchEntities?: number;
  readonly maxBodyBytes?: number;
  readonly now?: () => number;
}

export interface FeatureApiServer {
  readonly port: number;
  close(): Promise<void>;
}

/** One entity in a response: present with its values, or reported absent. */
export type EntityResult =
  | {
      readonly entity: string;
      readonly found: true;
      readonly event_time: number;
      readonly age_ms: number;
      readonly features: Record<string, FeatureValue>;
    }
  | { readonly entity: string; readonly found: false };

/** A fast-failing, auto-pipelining client: concurrent requests share round trips; a down Redis is a 503 at once. */
export function createReaderRedis(config: RedisConnectionConfig, name = 'driftline-feature-api'): Redis {
  return new Redis(config.url, {
    ...(config.password === undefined ? {} : { password: config.password }),
    ...(config.tls ? { tls: {} } : {}),
    connectionName: name,
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 2_000,
    retryStrategy: (times) => Math.min(50 * times, 500),
  });
}

class HttpError extends DriftlineError {
  constructor(
    readonly status: number,
    code: 'BAD_REQUEST' | 'NOT_FOUND' | 'SINK_UNAVAILABLE' | 'INTERNAL',
    message: string,
  ) {
    super(code, message);
  }
}

const badRequest = (message: string) => new HttpError(400, 'BAD_REQUEST', message);

const entityId = z
  .string({ message: 'must be a string' })
  .min(1, 'must be a non-empty string')
  .max(MAX_ENTITY_LENGTH, `must be at most ${MAX_ENTITY_LENGTH} characters`);

const batchSchema = z.strictObject({
  requests: z
    .array(
      z.strictObject({
        view: z.string({ message: 'must be a string' }).min(1, 'must be a non-empty string'),
        entities: z
          .array(entityId, { message: 'must be an array of entity ids' })
          .min(1, 'must list at least one entity'),
        features: z
          .array(z.string({ message: 'must be a string' }))
          .min(1)
          .optional(),
      }),
      { message: 'must be an array' },
    )
    .min(1, 'must hold at least one request'),
});

function checkEntity(entity: string, where: string): void {
  const result = entityId.safeParse(entity);
  if (!result.success) throw badRequest(`${where}: ${result.error.issues[0]?.message ?? 'invalid entity id'}`);
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(entity)) {
    throw badRequest(`${where}: not well-formed Unicode`);
  }
}

function checkFeatures(view: FeatureView, names: readonly string[] | undefined, where: string): void {
  if (names === undefined) return;
  for (const [i, name] of names.entries()) {
    if (fieldType(view, name) === undefined) {
      throw badRequest(`${where}[${i}]: view "${view.name}" has no feature or aggregate "${name}"`);
    }
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        // Stop buffering but drain the rest, so the 413 can still be written on this socket.
        req.off('data', onData);
        req.resume();
        reject(new HttpError(413, 'BAD_REQUEST', `request body larger than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...(status === 413 ? { connection: 'close' } : {}),
  });
  res.end(text);
}

/**
 * The feature API over node:http:
 * - `GET  /v1/features/{view}/{entity}[?features=a,b]` — one entity;
 * - `POST /v1/features:batch` (alias `/v1/features/batch`) with `{"requests":[{"view","entities",["features"]}]}` —
 *   many entities of several views, read with one pipelined round trip;
 * - `GET  /healthz`.
 * Absent entities are `found: false`; malformed input is 400, an unknown view 404, Redis down 503.
 * Keys are built only from a known view name and a validated, percent-encoded entity id.
 */
export async function startFeatureApi(options: FeatureApiOptions): Promise<FeatureApiServer> {
  const { redis, views, keyPrefix, registry } = options;
  const now = options.now ?? Date.now;
  const maxBatch = options.maxBatchEntities ?? 1_000;
  const maxBody = options.maxBodyBytes ?? 1_048_576;
  const logger = options.logger.child({ component: 'feature-api' });
  const metrics = {
    latency: histogram(
      registry,
      'driftline_feature_api_request_seconds',
      'Feature API request latency, by route and status',
      ['route', 'status'],
      [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    ),
    rows: counter(registry, 'driftline_feature_api_rows_total', 'Entities looked up, by view and result', [
      'view',
      'result',
    ]),
  };

  const viewOf = (name: string): FeatureView => {
    const view = views.get(name);
    if (view === undefined) throw new HttpError(404, 'NOT_FOUND', `unknown feature view "${name}"`);
    return view;
  };

  const toResult = (entity: string, row: FeatureRow | undefined, at: number): EntityResult => {
    if (row === undefined) return { entity, found: false };
    return { entity, found: true, event_time: row.eventTime, age_ms: at - row.eventTime, features: row.features };
  };

  const redisFailure = (error: unknown): HttpError =>
    new HttpError(503, 'SINK_UNAVAILABLE', `online store unavailable: ${(error as Error).message}`);

  async function getOne(path: string, query: string | undefined): Promise<unknown> {
    const parts = path.split('/'); // ['', 'v1', 'features', view, entity]
    if (parts.length !== 5 || parts[4] === '') throw badRequest('expected /v1/features/{view}/{entity}');
    let entity: string;
    let viewName: string;
    try {
      viewName = decodeURIComponent(parts[3]!);
      entity = decodeURIComponent(parts[4]!);
    } catch {
      throw badRequest('path: malformed percent-encoding');
    }
    const view = viewOf(viewName);
    checkEntity(entity, 'entity');
    let only: string[] | undefined;
    if (query !== undefined) {
      const params = new URLSearchParams(query);
      for (const key of params.keys()) if (key !== 'features') throw badRequest(`unknown query parameter "${key}"`);
      const list = params.get('features');
      if (list !== null) only = list.split(',').filter((s) => s.length > 0);
      checkFeatures(view, only, 'features');
    }
    // HMGET of the known fields: no reply-to-object conversion, and only the selection travels.
    const projection = rowProjection(view, only);
    let values: Array<string | null>;
    try {
      values = await redis.hmget(rowKey(keyPrefix, view.name, entity), ...projection.fields);
    } catch (error) {
      throw redisFailure(error);
    }
    const row = decodeProjectedRow(projection, values);
    metrics.rows.inc({ view: view.name, result: row === undefined ? 'miss' : 'hit' });
    return { view: view.name, ...toResult(entity, row, now()) };
  }

  async function getBatch(req: IncomingMessage): Promise<unknown> {
    const text = await readBody(req, maxBody);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw badRequest(`body is not JSON: ${(error as Error).message}`);
    }
    const parsed = batchSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw badRequest(`${formatPath(issue?.path ?? [])}: ${issue?.message ?? 'invalid'}`);
    }
    const requests = parsed.data.requests;
    const total = requests.reduce((n, r) => n + r.entities.length, 0);
    if (total > maxBatch) throw badRequest(`requests: at most ${maxBatch} entities per batch, got ${total}`);
    const resolved = requests.map((r, i) => {
      const view = viewOf(r.view);
      checkFeatures(view, r.features, `requests[${i}].features`);
      for (const [j, e] of r.entities.entries()) checkEntity(e, `requests[${i}].entities[${j}]`);
      return { view, entities: r.entities, projection: rowProjection(view, r.features) };
    });
    // One pipeline: every HGETALL of the batch goes out in one write and comes back in one read.
    const pipeline = redis.pipeline();
    for (const r of resolved) {
      for (const e of r.entities) pipeline.hmget(rowKey(keyPrefix, r.view.name, e), ...r.projection.fields);
    }
    let replies: Array<[Error | null, unknown]> | null;
    try {
      replies = await pipeline.exec();
    } catch (error) {
      throw redisFailure(error);
    }
    if (replies === null) throw redisFailure(new Error('pipeline discarded'));
    const at = now();
    let k = 0;
    return {
      results: resolved.map((r) => {
        let hits = 0;
        const rows = r.entities.map((entity) => {
          const [error, values] = replies[k++]!;
          if (error !== null) throw redisFailure(error);
          const row = decodeProjectedRow(r.projection, values as Array<string | null>);
          if (row !== undefined) hits++;
          return toResult(entity, row, at);
        });
        // One counter update per view and outcome, not per entity.
        if (hits > 0) metrics.rows.inc({ view: r.view.name, result: 'hit' }, hits);
        if (hits < rows.length) metrics.rows.inc({ view: r.view.name, result: 'miss' }, rows.length - hits);
        return { view: r.view.name, rows };
      }),
    };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const query = q === -1 ? undefined : url.slice(q + 1);
    let route = 'other';
    let status = 200;
    try {
      let body: unknown;
      if (path === '/v1/features:batch' || path === '/v1/features/batch') {
        route = 'batch';
        if (req.method !== 'POST') throw new HttpError(405, 'BAD_REQUEST', 'use POST for a batch');
        body = await getBatch(req);
      } else if (path.startsWith('/v1/features/')) {
        route = 'single';
        if (req.method !== 'GET') throw new HttpError(405, 'BAD_REQUEST', 'use GET for one entity');
        body = await getOne(path, query);
      } else if (path === '/healthz') {
        route = 'health';
        const ok = redis.status === 'ready';
        status = ok ? 200 : 503;
        body = { status: ok ? 'ok' : 'unavailable' };
      } else {
        throw new HttpError(404, 'NOT_FOUND', `no route ${req.method ?? ''} ${path}`);
      }
      send(res, status, body);
    } catch (error) {
      const e =
        error instanceof HttpError
          ? error
          : error instanceof DriftlineError && error.code === 'BAD_REQUEST'
            ? badRequest(error.message)
            : new HttpError(500, 'INTERNAL', 'internal error');
      if (e.status === 500) logger.error({ err: error }, 'feature API request failed');
      status = e.status;
      send(res, status, { error: { code: e.code, message: e.message } });
    }
    metrics.latency.observe({ route, status: String(status) }, (performance.now() - started) / 1000);
  }

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
