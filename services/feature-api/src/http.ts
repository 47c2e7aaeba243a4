import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DriftlineError } from '@driftline/core';
import { type FeatureView, type FeatureViews, formatPath, isWellFormed, MAX_ENTITY_LENGTH } from '@driftline/features';
import { fieldType } from '@driftline/online-store';
import { z } from 'zod';

/** An error with the HTTP status it is answered with. */
export class HttpError extends DriftlineError {
  constructor(
    readonly status: number,
    code: 'BAD_REQUEST' | 'UNAUTHORIZED' | 'NOT_FOUND' | 'SINK_UNAVAILABLE' | 'INTERNAL',
    message: string,
  ) {
    super(code, message);
  }
}

export const badRequest = (message: string) => new HttpError(400, 'BAD_REQUEST', message);

/** A validated read of one view: known view, well-formed entity ids, known feature names. */
export interface ViewRead {
  readonly view: FeatureView;
  readonly entities: readonly string[];
  readonly features?: readonly string[];
}

export interface RequestLimits {
  /** Most entities one batch request may ask for (over all its views). */
  readonly maxBatchEntities: number;
  /** Largest request body; more is a 413. */
  readonly maxBodyBytes: number;
  /** Most feature names one read (a single GET, or one entry of a batch) may select. */
  readonly maxFeatures: number;
}

/** Defaults of {@link RequestLimits} (and of the DRIFTLINE_FEATURE_API_MAX_* variables). */
export const DEFAULT_LIMITS: RequestLimits = { maxBatchEntities: 1_000, maxBodyBytes: 1_048_576, maxFeatures: 256 };

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

function viewOf(views: FeatureViews, name: string): FeatureView {
  const view = views.get(name);
  if (view === undefined) throw new HttpError(404, 'NOT_FOUND', `unknown feature view "${name}"`);
  return view;
}

function checkEntity(entity: string, where: string): void {
  const result = entityId.safeParse(entity);
  if (!result.success) throw badRequest(`${where}: ${result.error.issues[0]?.message ?? 'invalid entity id'}`);
  if (!isWellFormed(entity)) throw badRequest(`${where}: not well-formed Unicode`);
}

/**
 * A selection of feature names: at most `max`, each known, none repeated (a repeated name would
 * multiply the fields read per entity: 1,000 entities × 60,000 names is 60 million reads).
 */
function checkFeatures(view: FeatureView, names: readonly string[] | undefined, where: string, max: number): void {
  if (names === undefined) return;
  if (names.length > max) throw badRequest(`${where}: at most ${max} feature names per request, got ${names.length}`);
  const seen = new Set<string>();
  for (const [i, name] of names.entries()) {
    if (seen.has(name)) throw badRequest(`${where}[${i}]: ${JSON.stringify(name)} is repeated`);
    seen.add(name);
    if (fieldType(view, name) === undefined) {
      throw badRequest(`${where}[${i}]: view "${view.name}" has no feature or aggregate "${name}"`);
    }
  }
}

/** `GET /v1/features/{view}/{entity}[?features=a,b]` → one validated read of one entity. */
export function parseSingle(
  views: FeatureViews,
  path: string,
  query: string | undefined,
  limits: Pick<RequestLimits, 'maxFeatures'>,
): ViewRead {
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
  const view = viewOf(views, viewName);
  checkEntity(entity, 'entity');
  let features: string[] | undefined;
  if (query !== undefined) {
    const params = new URLSearchParams(query);
    for (const key of params.keys()) if (key !== 'features') throw badRequest(`unknown query parameter "${key}"`);
    const list = params.get('features');
    if (list !== null) features = list.split(',').filter((s) => s.length > 0);
    checkFeatures(view, features, 'features', limits.maxFeatures);
  }
  return { view, entities: [entity], ...(features === undefined ? {} : { features }) };
}

/** The JSON body of a batch request → validated reads, within the entity limit. */
export function parseBatch(views: FeatureViews, text: string, limits: RequestLimits): ViewRead[] {
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
  if (total > limits.maxBatchEntities) {
    throw badRequest(`requests: at most ${limits.maxBatchEntities} entities per batch, got ${total}`);
  }
  return requests.map((r, i) => {
    const view = viewOf(views, r.view);
    checkFeatures(view, r.features, `requests[${i}].features`, limits.maxFeatures);
    for (const [j, e] of r.entities.entries()) checkEntity(e, `requests[${i}].entities[${j}]`);
    return { view, entities: r.entities, ...(r.features === undefined ? {} : { features: r.features }) };
  });
}

/** Reads a request body up to `limit` bytes; more is a 413. */
export function readBody(req: IncomingMessage, limit: number): Promise<string> {
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

export function send(res: ServerResponse, status: number, body: unknown): void {
  // Encoded once: byteLength + end(string) would walk the UTF-8 encoding twice.
  const bytes = Buffer.from(JSON.stringify(body), 'utf8');
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': bytes.length,
    ...(status === 413 ? { connection: 'close' } : {}),
    ...(status === 401 ? { 'www-authenticate': 'Bearer realm="driftline-feature-api"' } : {}),
  });
  res.end(bytes);
}

/**
 * Any failure → the HTTP error it is answered with (store outages are 503, store refusals 400).
 * A 503 or 500 body never carries the backend's text (addresses, user names, server messages):
 * that goes to the log only.
 */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof DriftlineError) {
    if (error.code === 'BAD_REQUEST') return badRequest(error.message);
    if (error.retriable) return new HttpError(503, 'SINK_UNAVAILABLE', 'online store unavailable');
  }
  return new HttpError(500, 'INTERNAL', 'internal error');
}

/**
 * `Authorization: Bearer <token>` against the configured token, in constant time (both sides are
 * hashed first, so neither content nor length leaks through timing). Throws a 401.
 */
export function checkBearer(header: string | undefined, expected: Buffer): void {
  const given = header?.startsWith('Bearer ') === true ? header.slice(7) : '';
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  if (!(timingSafeEqual(a, b) && given !== '')) {
    throw new HttpError(401, 'UNAUTHORIZED', 'missing or wrong bearer token');
  }
}
