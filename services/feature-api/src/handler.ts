import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '@driftline/core';
import type { FeatureViews } from '@driftline/features';
import { counter, histogram, type Registry } from '@driftline/observability';
import { type FeatureRow, type OnlineStore, StoreOverloadedError } from '@driftline/online-store';
import type { FeatureValue } from '@driftline/schemas';
import {
  checkBearer,
  DEFAULT_LIMITS,
  HttpError,
  oneLine,
  parseBatch,
  parseSingle,
  REALM,
  type RequestLimits,
  readBody,
  send,
  sendError,
  toHttpError,
} from './http.js';

/**
 * Most bytes the `features` objects of one batch answer take as JSON (UTF-8, escapes included);
 * the rest of the answer (entity ids, times) is bounded by the request body.
 */
export const MAX_ANSWER_FEATURE_BYTES = 32 * 1024 * 1024;

/** What JSON.stringify writes as more than the character itself: control characters, `"`, `\`, surrogates. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the characters JSON escapes
const ESCAPED_OR_WIDE = /[\u0000-\u001f"\\\ud800-\udfff]/;

/** Bytes of `JSON.stringify(text)` in UTF-8, without building it. */
export function jsonStringBytes(text: string): number {
  if (!ESCAPED_OR_WIDE.test(text)) return Buffer.byteLength(text, 'utf8') + 2;
  let bytes = 2;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20)
      bytes += c === 8 || c === 9 || c === 10 || c === 12 || c === 13 ? 2 : 6; // \n or \u0001
    else if (c === 0x22 || c === 0x5c) bytes += 2;
    else if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c < 0xd800 || c > 0xdfff) bytes += 3;
    else if (c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4; // a surrogate pair: one 4-byte UTF-8 sequence
      i++;
    } else bytes += 6; // a lone surrogate: \udXXX
  }
  return bytes;
}

/** Bytes of `JSON.stringify(features)`: names are view names (`[A-Za-z][A-Za-z0-9_]*`, never escaped). */
function featuresJsonBytes(features: Readonly<Record<string, FeatureValue>>): number {
  let bytes = 1; // `{`, and `}` or `,` after each field, minus one when there are none
  for (const name in features) {
    const v = features[name];
    bytes += name.length + 4; // "name": and the , or }
    if (typeof v === 'string') bytes += jsonStringBytes(v);
    else if (typeof v === 'number') bytes += Number.isFinite(v) ? String(v).length : 4;
    else bytes += v === true ? 4 : v === false ? 5 : 4;
  }
  return bytes === 1 ? 2 : bytes;
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

export interface FeatureHandlerOptions extends Partial<RequestLimits> {
  /** When set, every /v1 route needs `Authorization: Bearer <token>` (401 otherwise). */
  readonly token?: string;
  readonly store: OnlineStore;
  readonly views: FeatureViews;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly now?: () => number;
}

export type FeatureHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** Status of a request whose client went away before its answer (nginx's convention): nothing is sent. */
const CLIENT_CLOSED_REQUEST = 499;

/**
 * The routes of the feature API over an {@link OnlineStore}; parsing, validation and limits are
 * in http.ts. Absent entities are `found: false`; malformed input or a limit 400, a missing token
 * 401, unknown view 404, a store outage 503.
 */
export function createFeatureHandler(options: FeatureHandlerOptions): FeatureHandler {
  const { store, views, registry } = options;
  const now = options.now ?? Date.now;
  const limits: RequestLimits = {
    maxBatchEntities: options.maxBatchEntities ?? DEFAULT_LIMITS.maxBatchEntities,
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_LIMITS.maxBodyBytes,
    maxFeatures: options.maxFeatures ?? DEFAULT_LIMITS.maxFeatures,
  };
  const token = options.token === undefined ? undefined : Buffer.from(options.token, 'utf8');
  // A store outage answers every request with 503, and a store fault (a Redis Cluster's CROSSSLOT,
  // a bug) every request with 500: each is logged at most once a second, with the count since.
  let lastOutageLog = 0;
  let outagesSinceLog = 0;
  let lastFaultLog = 0;
  let faultsSinceLog = 0;
  const logger = options.logger.child({ stage: 'http' });
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
    overloaded: counter(
      registry,
      'driftline_feature_api_store_overloaded_total',
      'Requests answered 503 OVERLOADED: their reads found no room among the online store reads in flight in time (load shedding, not an outage)',
      [],
    ),
  };
  let lastOverloadLog = 0;
  let overloadsSinceLog = 0;

  const toResult = (entity: string, row: FeatureRow | undefined, at: number): EntityResult => {
    if (row === undefined) return { entity, found: false };
    return { entity, found: true, event_time: row.eventTime, age_ms: at - row.eventTime, features: row.features };
  };

  /**
   * The rows of each read, each distinct entity read once (a batch may name one many times). Rows
   * holding more than the answer bound as stored are refused by the store before it reads any
   * (400): 1,000 rows of 512 KB (a 7 KB request) were read whole, one ~0.5 GB reply that kept Redis
   * from every client for seconds, then answered 503 and failed /healthz (a review).
   */
  async function readDistinct(
    reads: ReturnType<typeof parseBatch>,
    signal: AbortSignal,
  ): Promise<Array<Array<FeatureRow | undefined>>> {
    const bound = { maxRowBytes: MAX_ANSWER_FEATURE_BYTES, signal };
    const distinct = reads.map((r) => [...new Set(r.entities)]);
    if (distinct.every((ids, i) => ids.length === reads[i]!.entities.length)) {
      return store.readBatch(reads, bound);
    }
    const rows = await store.readBatch(
      reads.map((r, i) => ({ ...r, entities: distinct[i]! })),
      bound,
    );
    return reads.map((r, i) => {
      const index = new Map(distinct[i]!.map((e, j) => [e, j]));
      return r.entities.map((e) => rows[i]![index.get(e)!]);
    });
  }

  /**
   * String values are at most MAX_STRING_FEATURE_LENGTH characters each, but a batch may name an
   * entity many times: the rows it would answer are measured before they are serialised, in bytes
   * of JSON. 1,000 reads of one entity holding a 900,000-character value answered 500 (V8's string
   * limit) after a gigabyte of memory; counted in characters, values of control characters (6
   * bytes each escaped) passed at 6 times the bound (a review).
   */
  function checkAnswerSize(rows: ReadonlyArray<ReadonlyArray<FeatureRow | undefined>>): void {
    let bytes = 0;
    // An entity named many times is one row object: measured once.
    const measured = new Map<FeatureRow, number>();
    for (const viewRows of rows) {
      for (const row of viewRows) {
        if (row === undefined) continue;
        let size = measured.get(row);
        if (size === undefined) {
          size = featuresJsonBytes(row.features);
          measured.set(row, size);
        }
        bytes += size;
      }
    }
    if (bytes > MAX_ANSWER_FEATURE_BYTES) {
      throw new HttpError(
        400,
        'BAD_REQUEST',
        `the answer would hold ${bytes} bytes of feature values as JSON, more than ${MAX_ANSWER_FEATURE_BYTES}: ask for fewer entities or features per request`,
      );
    }
  }

  async function getOne(path: string, query: string | undefined): Promise<unknown> {
    const read = parseSingle(views, path, query, limits);
    const entity = read.entities[0]!;
    const row = await store.read(read.view, entity, read.features);
    metrics.rows.inc({ view: read.view.name, result: row === undefined ? 'miss' : 'hit' });
    return { view: read.view.name, ...toResult(entity, row, now()) };
  }

  async function getBatch(req: IncomingMessage, signal: AbortSignal): Promise<unknown> {
    const reads = parseBatch(views, await readBody(req, limits.maxBodyBytes), limits);
    const rows = await readDistinct(reads, signal);
    checkAnswerSize(rows);
    const at = now();
    return {
      results: reads.map((r, i) => {
        let hits = 0;
        const results = r.entities.map((entity, j) => {
          const row = rows[i]![j];
          if (row !== undefined) hits++;
          return toResult(entity, row, at);
        });
        // One counter update per view and outcome, not per entity.
        if (hits > 0) metrics.rows.inc({ view: r.view.name, result: 'hit' }, hits);
        if (hits < results.length) metrics.rows.inc({ view: r.view.name, result: 'miss' }, results.length - hits);
        return { view: r.view.name, rows: results };
      }),
    };
  }

  return async (req, res) => {
    const started = performance.now();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const query = q === -1 ? undefined : url.slice(q + 1);
    let route = 'other';
    let status = 200;
    // Aborted when the client goes away before its answer: reads not yet issued are skipped.
    const departed = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) departed.abort();
    };
    res.once('close', onClose);
    try {
      let body: unknown;
      // Before anything is read or parsed: an unauthenticated client costs one hash.
      if (token !== undefined && path.startsWith('/v1/')) checkBearer(req.headers.authorization, token);
      if (path === '/v1/features:batch' || path === '/v1/features/batch') {
        route = 'batch';
        if (req.method !== 'POST') throw new HttpError(405, 'BAD_REQUEST', 'use POST for a batch', 'POST');
        body = await getBatch(req, departed.signal);
      } else if (path.startsWith('/v1/features/')) {
        route = 'single';
        if (req.method !== 'GET') throw new HttpError(405, 'BAD_REQUEST', 'use GET for one entity', 'GET');
        body = await getOne(path, query);
      } else if (path === '/healthz') {
        route = 'health';
        if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'BAD_REQUEST', 'use GET', 'GET');
        const ok = store.ready();
        status = ok ? 200 : 503;
        body = { status: ok ? 'ok' : 'unavailable' };
      } else {
        throw new HttpError(404, 'NOT_FOUND', `no route ${req.method ?? ''} ${oneLine(path)}`);
      }
      send(res, status, body);
    } catch (error) {
      if (departed.signal.aborted || req.socket.destroyed) {
        // Nobody to answer (nginx's 499): neither an outage nor a fault, whatever the read said.
        status = CLIENT_CLOSED_REQUEST;
        metrics.latency.observe({ route, status: String(status) }, (performance.now() - started) / 1000);
        return;
      }
      const e = toHttpError(error);
      if (error instanceof StoreOverloadedError) {
        metrics.overloaded.inc();
        overloadsSinceLog++;
        if (Date.now() - lastOverloadLog >= 1_000) {
          logger.warn({ requests: overloadsSinceLog }, 'online store overloaded; answered 503 (retry later)');
          lastOverloadLog = Date.now();
          overloadsSinceLog = 0;
        }
      } else if (e.status === 500) {
        faultsSinceLog++;
        if (Date.now() - lastFaultLog >= 1_000) {
          logger.error({ err: error, requests: faultsSinceLog }, 'feature API request failed; answered 500');
          lastFaultLog = Date.now();
          faultsSinceLog = 0;
        }
      }
      if (e.status === 503 && !(error instanceof StoreOverloadedError)) {
        outagesSinceLog++;
        if (Date.now() - lastOutageLog >= 1_000) {
          logger.warn({ err: error, requests: outagesSinceLog }, 'online store unavailable; answered 503');
          lastOutageLog = Date.now();
          outagesSinceLog = 0;
        }
      }
      status = e.status;
      sendError(res, e, REALM);
    } finally {
      res.off('close', onClose);
    }
    metrics.latency.observe({ route, status: String(status) }, (performance.now() - started) / 1000);
  };
}
