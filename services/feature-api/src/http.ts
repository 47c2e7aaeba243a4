import type { ServerResponse } from 'node:http';
import { DriftlineError, printable } from '@driftline/core';
import { type FeatureView, type FeatureViews, formatPath, isWellFormed, MAX_ENTITY_LENGTH } from '@driftline/features';
import { fieldType } from '@driftline/online-store';
import { badRequest, HttpError, oneLine, parseJsonBody, sendJson } from '@driftline/service/http';
import { z } from 'zod';

// Shared with the model-server: @driftline/service/http.
export { checkBearer, HttpError, oneLine, readBody, sendError } from '@driftline/service/http';

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

/**
 * Deepest nesting of a batch body (a valid one is 4 deep), checked before JSON.parse: 1 MiB of `[`
 * took 0.15–0.2 s of the event loop to parse, ten times as long as 1 MiB of flat JSON.
 */
export const MAX_BODY_DEPTH = 8;

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
  if (view === undefined) throw new HttpError(404, 'NOT_FOUND', `unknown feature view "${oneLine(name)}"`);
  return view;
}

function checkEntity(entity: string, where: string): void {
  const result = entityId.safeParse(entity);
  if (!result.success)
    throw badRequest(`${where}: ${schemaMessage(result.error.issues[0]?.message ?? 'invalid entity id')}`);
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
    if (seen.has(name)) throw badRequest(`${where}[${i}]: "${oneLine(name)}" is repeated`);
    seen.add(name);
    if (fieldType(view, name) === undefined) {
      throw badRequest(`${where}[${i}]: view "${view.name}" has no feature or aggregate "${oneLine(name)}"`);
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
    for (const key of params.keys())
      if (key !== 'features') throw badRequest(`unknown query parameter "${oneLine(key)}"`);
    const lists = params.getAll('features');
    // One list, not empty: a repeated parameter or `?features=` would otherwise answer a
    // different set than asked (the first list only, or no feature at all).
    if (lists.length > 1) throw badRequest('features: give the list once (comma-separated)');
    if (lists[0] !== undefined) {
      features = lists[0].split(',').filter((s) => s.length > 0);
      if (features.length === 0) throw badRequest('features: an empty list; omit the parameter for every feature');
    }
    checkFeatures(view, features, 'features', limits.maxFeatures);
  }
  return { view, entities: [entity], ...(features === undefined ? {} : { features }) };
}

/**
 * The limits that hold whatever the items are, checked on the parsed JSON before any item is
 * validated: validating each of the ~260,000 items a 1 MiB body can hold first took 100–170 ms.
 */
function checkCounts(json: unknown, limits: RequestLimits): void {
  const requests = (json as { requests?: unknown } | null)?.requests;
  if (!Array.isArray(requests)) return;
  if (requests.length > limits.maxBatchEntities) {
    throw badRequest(
      `requests: at most ${limits.maxBatchEntities} requests per batch (each names at least one entity), got ${requests.length}`,
    );
  }
  let total = 0;
  for (const [i, r] of requests.entries()) {
    const { entities, features } = (r ?? {}) as { entities?: unknown; features?: unknown };
    if (Array.isArray(entities)) total += entities.length;
    if (Array.isArray(features) && features.length > limits.maxFeatures) {
      throw badRequest(
        `requests[${i}].features: at most ${limits.maxFeatures} feature names per request, got ${features.length}`,
      );
    }
  }
  if (total > limits.maxBatchEntities) {
    throw badRequest(`requests: at most ${limits.maxBatchEntities} entities per batch, got ${total}`);
  }
}

/** The JSON body of a batch request → validated reads, within the entity limit. */
/**
 * A schema error made fit for one line: zod quotes the keys it did not expect as they came (a
 * newline, an ESC, a megabyte of keys), so control characters are escaped and the text cut.
 */
const schemaMessage = (text: string) => {
  const line = printable(text);
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
};

export function parseBatch(views: FeatureViews, text: string, limits: RequestLimits): ViewRead[] {
  // Valid bodies hold objects of at most 3 members and 4 key names: a wide object (60,000 keys cost
  // up to 190 ms to parse) is refused before JSON.parse.
  const json = parseJsonBody(text, MAX_BODY_DEPTH, { maxMembers: 16, maxKeys: 64 });
  checkCounts(json, limits);
  const parsed = batchSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw badRequest(schemaMessage(`${formatPath(issue?.path ?? [])}: ${issue?.message ?? 'invalid'}`));
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

/** The realm of the feature API's bearer token (WWW-Authenticate of a 401). */
export const REALM = 'driftline-feature-api';

export function send(res: ServerResponse, status: number, body: unknown): void {
  sendJson(res, status, body, REALM);
}

/**
 * Any failure → the HTTP error it is answered with (store outages are 503 SINK_UNAVAILABLE, an
 * overloaded store 503 OVERLOADED, store refusals 400; every 503 carries Retry-After).
 * A 503 or 500 body never carries the backend's text (addresses, user names, server messages):
 * that goes to the log only.
 */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof DriftlineError) {
    if (error.code === 'BAD_REQUEST') return badRequest(error.message);
    // More reads in flight than the store answers in time (StoreOverloadedError): load shedding.
    if (error.code === 'OVERLOADED') return new HttpError(503, 'OVERLOADED', 'online store overloaded; retry later');
    if (error.retriable) return new HttpError(503, 'SINK_UNAVAILABLE', 'online store unavailable');
  }
  return new HttpError(500, 'INTERNAL', 'internal error');
}
