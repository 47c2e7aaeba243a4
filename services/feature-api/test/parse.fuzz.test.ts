import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { silentLogger } from '@driftline/core';
import { isWellFormed, parseFeatureViews } from '@driftline/features';
import { createMetricsRegistry } from '@driftline/observability';
import { fieldType, InMemoryOnlineStore } from '@driftline/online-store';
import { fuzzParameters, timedCall, timedCallAsync } from '@driftline/test-support/fuzz';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createFeatureHandler } from '../src/handler.js';
import { DEFAULT_LIMITS, HttpError, MAX_BODY_DEPTH, parseBatch, parseSingle, type ViewRead } from '../src/http.js';

/**
 * Property tests of the feature API's request parsing: the pure parsers (parseSingle for
 * `GET /v1/features/{view}/{entity}`, parseBatch for the batch body) and the whole handler over
 * the in-memory store, with any method, URL and body. Whatever the request: a read within every
 * limit, or a 4xx HttpError naming the problem, within 100 ms; never a 500, never an untyped throw.
 */

const views = parseFeatureViews({
  views: [
    { name: 'profile', entity: 'user_id', features: { age: 'double', country: 'string', premium: 'boolean' } },
    {
      name: 'spend',
      entity: 'user_id',
      features: { amount: 'double' },
      aggregates: [{ feature: 'amount', function: 'sum', window: '1h' }],
    },
  ],
});
const limits = { maxBatchEntities: 50, maxBodyBytes: 64 * 1024, maxFeatures: 4 };
const names = ['profile', 'spend', 'age', 'country', 'premium', 'amount', 'amount_sum_1h', 'nope', '__proto__'];

/** A read that passed: every bound it promises holds. */
function checkRead(read: ViewRead): void {
  expect(views.get(read.view.name)).toBe(read.view);
  for (const e of read.entities) {
    expect(e.length).toBeGreaterThan(0);
    expect(isWellFormed(e)).toBe(true);
  }
  if (read.features !== undefined) {
    expect(read.features.length).toBeLessThanOrEqual(limits.maxFeatures);
    expect(new Set(read.features).size).toBe(read.features.length);
    for (const f of read.features) expect(fieldType(read.view, f)).toBeDefined();
  }
}

/** The parser's verdict: reads that keep their promises, or a 400/404 HttpError; nothing else, never slow. */
function readsOrRefused(parse: () => ViewRead[]): boolean {
  const outcome = timedCall(parse);
  if (!outcome.threw) {
    for (const read of outcome.value) checkRead(read);
    expect(outcome.value.reduce((n, r) => n + r.entities.length, 0)).toBeLessThanOrEqual(limits.maxBatchEntities);
    return true;
  }
  expect(outcome.error).toBeInstanceOf(HttpError);
  expect([400, 404]).toContain((outcome.error as HttpError).status);
  return false;
}

/** Text with the characters that break naive parsing: separators, escapes, lone surrogates, NUL. */
const nasty = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.constantFrom(
    ...names,
    '',
    '%',
    '%zz',
    '%E0%A4%A',
    '%ED%A0%80',
    '%00',
    '%2F',
    '..',
    '/',
    ',',
    '\ud800',
    'é',
    'a'.repeat(1_100),
  ),
);
const encodedSegment = fc.oneof(
  nasty,
  nasty.map((s) => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, ''))),
);

const singlePath = fc.oneof(
  fc.tuple(encodedSegment, encodedSegment).map(([v, e]) => `/v1/features/${v}/${e}`),
  fc.array(encodedSegment, { maxLength: 6 }).map((parts) => `/v1/features/${parts.join('/')}`),
  fc.webPath().map((p) => `/v1/features${p}`),
);
const query = fc.option(
  fc.oneof(
    fc.array(fc.constantFrom(...names, '', 'age'), { maxLength: 8 }).map((l) => `features=${l.join(',')}`),
    fc.webQueryParameters(),
    nasty,
  ),
);

/** Batch bodies: structured (valid fields mixed with hostile values), random JSON, or raw text. */
const entity = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('u1', 'u2', 'a:b{c} é') },
  { weight: 1, arbitrary: nasty },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) },
);
const request = fc.record(
  {
    view: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom('profile', 'spend') },
      { weight: 1, arbitrary: nasty },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) },
    ),
    entities: fc.oneof(
      { weight: 6, arbitrary: fc.array(entity, { maxLength: 30 }) },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) },
    ),
    features: fc.oneof(
      { weight: 6, arbitrary: fc.array(fc.constantFrom(...names), { maxLength: 6 }) },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) },
    ),
    extra: fc.jsonValue({ maxDepth: 1 }),
  },
  { requiredKeys: ['view', 'entities'] },
);
const batchBody = fc.oneof(
  { weight: 4, arbitrary: fc.array(request, { maxLength: 4 }).map((requests) => JSON.stringify({ requests })) },
  { weight: 1, arbitrary: fc.json({ maxDepth: 4 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 64 }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 1, max: limits.maxBodyBytes / 2 }), fc.constantFrom('[', '{"requests":'))
      .map(([depth, open]) =>
        open === '[' ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${open.repeat(depth)}1${'}'.repeat(depth)}`,
      ),
  },
);

/** A request as node:http hands it over, and a response that records what was sent. */
function exchange(method: string, url: string, body: string | undefined, authorization?: string) {
  const req = Readable.from(body === undefined ? [] : [Buffer.from(body)]) as unknown as IncomingMessage;
  Object.assign(req, {
    method,
    url,
    headers: authorization === undefined ? {} : { authorization },
    socket: { destroyed: false },
  });
  const sent: { status?: number; body?: string } = {};
  const res = {
    writableFinished: false,
    once() {
      return this;
    },
    off() {
      return this;
    },
    writeHead(status: number) {
      sent.status = status;
      return this;
    },
    end(bytes: Buffer) {
      sent.body = bytes.toString('utf8');
      return this;
    },
  } as unknown as ServerResponse;
  return { req, res, sent };
}

describe('feature API request parsing under fuzzing (fast-check, seeded)', { timeout: 60_000 }, () => {
  it('GET paths and queries: a read within the limits, or 400/404, each within 100 ms', () => {
    let accepted = 0;
    fc.assert(
      fc.property(singlePath, query, (path, q) => {
        if (readsOrRefused(() => [parseSingle(views, path, q ?? undefined, limits)])) accepted++;
      }),
      fuzzParameters(1_000),
    );
    expect(accepted).toBeGreaterThan(0);
  });

  it('batch bodies: reads within the limits, or 400/404, each within 100 ms', () => {
    let accepted = 0;
    fc.assert(
      fc.property(batchBody, (text) => {
        if (readsOrRefused(() => parseBatch(views, text, limits))) accepted++;
      }),
      fuzzParameters(1_000),
    );
    expect(accepted).toBeGreaterThan(0);
  });

  it('refuses a wide object before parsing it (60,000 keys cost up to 190 ms): at most 16 members, 64 key names', () => {
    const keys = (n: number, prefix = 'k') =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, 1]));
    const read = { view: 'profile', entities: ['u1'] };
    expect(() =>
      parseBatch(views, JSON.stringify({ requests: [{ ...read, ...keys(60_000) }] }), DEFAULT_LIMITS),
    ).toThrow(expect.objectContaining({ status: 400, message: 'body: an object of more than 16 members' }));
    // Narrow objects of ever new key names: the distinct names are bounded too.
    const many = { requests: Array.from({ length: 20 }, (_, i) => ({ ...read, ...keys(5, `r${i}k`) })) };
    expect(() => parseBatch(views, JSON.stringify(many), DEFAULT_LIMITS)).toThrow(
      expect.objectContaining({
        status: 400,
        message: expect.stringMatching(/^body: more than 64 distinct object keys/),
      }),
    );
    expect(parseBatch(views, JSON.stringify({ requests: [read, read] }), DEFAULT_LIMITS)).toHaveLength(2);
  });

  it('the whole handler, any method, URL, body and token: 2xx/4xx with a JSON body, never 500', async () => {
    const store = new InMemoryOnlineStore();
    const handle = createFeatureHandler({
      store,
      views,
      registry: createMetricsRegistry({ service: 'fuzz', defaultMetrics: false }),
      logger: silentLogger,
      token: 'a-token-of-sixteen-chars',
      ...limits,
    });
    const url = fc.oneof(
      fc.tuple(singlePath, query).map(([p, q]) => (q === null ? p : `${p}?${q}`)),
      fc.constantFrom('/v1/features:batch', '/v1/features/batch', '/healthz', '/', '/v1/', '*'),
      fc.webUrl().map((u) => u.replace(/^[a-z]+:\/\/[^/]*/, '')),
      nasty,
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'OPTIONS'),
        url,
        fc.option(batchBody),
        fc.constantFrom(undefined, 'Bearer a-token-of-sixteen-chars', 'Bearer wrong', 'Basic x', ''),
        async (method, u, body, authorization) => {
          const { req, res, sent } = exchange(method, u, body ?? undefined, authorization);
          const outcome = await timedCallAsync(() => handle(req, res));
          if (outcome.threw) throw outcome.error;
          expect([200, 400, 401, 404, 405, 413]).toContain(sent.status);
          const answer = JSON.parse(sent.body!) as { error?: { code: string; message: string } };
          if (sent.status !== 200) expect(answer.error?.message.length).toBeGreaterThan(0);
        },
      ),
      fuzzParameters(500),
    );
  });

  it('counts entities, requests and feature names before validating each item (found by fuzzing)', () => {
    // 1 MiB bodies of 262,132 entities, 29,126 requests or 262,128 feature names took 100–170 ms
    // (median; up to 390 ms) to refuse: every item was validated before any count was checked.
    const fill = (item: unknown, n: number) => JSON.stringify(Array.from({ length: n }, () => item));
    const bodies = {
      entities: `{"requests":[{"view":"profile","entities":${fill('u', 262_132)}}]}`,
      requests: `{"requests":${fill({ view: 'profile', entities: ['u'] }, 29_126)}}`,
      features: `{"requests":[{"view":"profile","entities":["u"],"features":${fill('a', 262_128)}}]}`,
    };
    // The refusals are exact; their time is JSON.parse's (~15–40 ms for 1 MiB), not asserted here:
    // the properties above bound the time of every call on inputs of fuzzing size.
    const refusals = Object.values(bodies).map((text) => {
      expect(text.length).toBeLessThanOrEqual(DEFAULT_LIMITS.maxBodyBytes);
      try {
        parseBatch(views, text, DEFAULT_LIMITS);
        return 'accepted';
      } catch (error) {
        return (error as Error).message;
      }
    });
    expect(refusals).toEqual([
      'requests: at most 1000 entities per batch, got 262132',
      'requests: at most 1000 requests per batch (each names at least one entity), got 29126',
      'requests[0].features: at most 256 feature names per request, got 262128',
    ]);
    // A count is refused even when a later item is malformed: no item was looked at.
    const late = JSON.stringify({
      requests: [...Array(1_001).fill({ view: 'profile', entities: ['u'] }), { view: 5 }],
    });
    expect(() => parseBatch(views, late, DEFAULT_LIMITS)).toThrow(/at most 1000 requests per batch/);
  });

  it(`refuses a body nested deeper than ${MAX_BODY_DEPTH} levels before parsing it (found by fuzzing)`, () => {
    // 1 MiB of "[" (the default body limit) took 0.15–0.2 s of the event loop to parse, 10× flat JSON.
    const half = DEFAULT_LIMITS.maxBodyBytes / 2;
    const outcome = timedCall(() => parseBatch(views, `${'['.repeat(half)}${']'.repeat(half)}`, DEFAULT_LIMITS));
    expect(outcome.threw && outcome.error).toMatchObject({
      status: 400,
      message: `body: nesting deeper than ${MAX_BODY_DEPTH} levels`,
    });
    // What a client sends is 4 deep; brackets inside strings do not count.
    const reads = parseBatch(
      views,
      JSON.stringify({ requests: [{ view: 'profile', entities: ['[[[[[[[[[[{{{{{{{{'] }] }),
      DEFAULT_LIMITS,
    );
    expect(reads[0]!.entities).toEqual(['[[[[[[[[[[{{{{{{{{']);
  });
});
