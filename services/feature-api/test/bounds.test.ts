import { connect } from 'node:net';
import { DriftlineError, type Logger, SinkUnavailableError, silentLogger } from '@driftline/core';
import { MAX_STRING_FEATURE_LENGTH, parseFeatureViews, planWrites, validateFeatureEvent } from '@driftline/features';
import { createMetricsRegistry } from '@driftline/observability';
import { InMemoryOnlineStore, type RowRequest } from '@driftline/online-store';
import { SeededRandom } from '@driftline/test-support/random';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type FeatureApiOptions, type FeatureApiServer, startFeatureApi } from '../src/api.js';
import { jsonStringBytes, MAX_ANSWER_FEATURE_BYTES } from '../src/handler.js';

// Bounds of the feature API (issue 11, defects 5 and 9): every limit answers 400 naming itself,
// the optional bearer token, the header timeout, and 503 bodies without backend text.

const views = parseFeatureViews({
  views: [{ name: 'profile', entity: 'user_id', features: { age: 'double', country: 'string', premium: 'boolean' } }],
});

/** The in-memory store, counting the fields it is asked to read. */
class CountingStore extends InMemoryOnlineStore {
  fieldReads = 0;
  override async readBatch(requests: readonly RowRequest[]) {
    for (const r of requests) this.fieldReads += r.entities.length * (r.features?.length ?? 3);
    return super.readBatch(requests);
  }
}

/** Stores entity u1 of the profile view with `features`, as the materializer would. */
async function writeU1(store: InMemoryOnlineStore, features: Record<string, number | string>): Promise<void> {
  await store.write(
    planWrites([
      validateFeatureEvent(views, { event_id: 'e1', view: 'profile', entity_id: 'u1', event_time: 1_000, features }),
    ]),
  );
}

async function serve(store: InMemoryOnlineStore, over: Partial<FeatureApiOptions> = {}) {
  const server = await startFeatureApi({
    store,
    views,
    registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
    logger: silentLogger,
    ...over,
  });
  const base = `http://127.0.0.1:${server.port}`;
  const call = async (path: string, init?: RequestInit) => {
    const res = await fetch(`${base}${path}`, init);
    return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
  };
  return { server, call };
}

const post = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers,
  body: typeof body === 'string' ? body : JSON.stringify(body),
});

describe('feature API request bounds', () => {
  const store = new CountingStore();
  let server: FeatureApiServer;
  let call: Awaited<ReturnType<typeof serve>>['call'];
  beforeAll(async () => {
    await writeU1(store, { age: 30 });
    ({ server, call } = await serve(store, { maxFeatures: 2 }));
  });
  afterAll(async () => {
    await server.close();
    await store.close();
  });

  it('refuses the amplification request of the issue (1,000 entities × 60,000 repeated names) without reading', async () => {
    const { server: big, call: bigCall } = await serve(store);
    try {
      const body = JSON.stringify({
        requests: [
          {
            view: 'profile',
            entities: Array.from({ length: 1_000 }, (_, i) => `u${i}`),
            features: Array.from({ length: 60_000 }, () => 'age'),
          },
        ],
      });
      expect(body.length).toBeLessThan(1_048_576);
      const before = store.fieldReads;
      const started = performance.now();
      const res = await bigCall('/v1/features:batch', post(body));
      const ms = performance.now() - started;
      expect(res.status).toBe(400);
      expect(res.body).toEqual({
        error: {
          code: 'BAD_REQUEST',
          message: 'requests[0].features: at most 256 feature names per request, got 60000',
        },
      });
      expect(store.fieldReads - before).toBe(0);
      expect(ms).toBeLessThan(5_000); // refused before any read (the reads above tell); slack for a loaded run
    } finally {
      await big.close();
    }
  });

  it('refuses repeated feature names, in a batch and in a single read', async () => {
    expect(
      (
        await call(
          '/v1/features:batch',
          post({ requests: [{ view: 'profile', entities: ['u1'], features: ['age', 'age'] }] }),
        )
      ).body,
    ).toEqual({
      error: { code: 'BAD_REQUEST', message: 'requests[0].features[1]: "age" is repeated' },
    });
    expect((await call('/v1/features/profile/u1?features=age,age')).body).toEqual({
      error: { code: 'BAD_REQUEST', message: 'features[1]: "age" is repeated' },
    });
  });

  it('answers a key it does not expect in one escaped line, cut at 300 characters', async () => {
    const res = await call(
      '/v1/features:batch',
      post({ requests: [{ view: 'profile', entities: ['u1'], 'x\n\u001b[2Jy': 1 }], [`k${'z'.repeat(5_000)}`]: 1 }),
    );
    expect(res.status).toBe(400);
    const message = (res.body as { error: { message: string } }).error.message;
    expect([...message].some((c) => c.charCodeAt(0) < 0x20)).toBe(false); // no control character
    expect(message.length).toBeLessThanOrEqual(301);
    expect(message).toMatch(/^(requests\[0\])?: /);
  });

  it('refuses a features parameter given twice or empty (it would answer another set than asked)', async () => {
    expect((await call('/v1/features/profile/u1?features=age&features=country')).body).toEqual({
      error: { code: 'BAD_REQUEST', message: 'features: give the list once (comma-separated)' },
    });
    for (const q of ['features=', 'features=,']) {
      expect((await call(`/v1/features/profile/u1?${q}`)).body).toEqual({
        error: { code: 'BAD_REQUEST', message: 'features: an empty list; omit the parameter for every feature' },
      });
    }
    const wrong = await call('/healthz', { method: 'POST' });
    expect(wrong.status).toBe(405);
  });

  it('refuses more feature names than the limit, naming it', async () => {
    expect((await call('/v1/features/profile/u1?features=age,country,premium')).body).toEqual({
      error: { code: 'BAD_REQUEST', message: 'features: at most 2 feature names per request, got 3' },
    });
    expect((await call('/v1/features/profile/u1?features=age,country')).status).toBe(200);
  });

  it('refuses a body over the limit with 413 naming the limit', async () => {
    const { server: small, call: smallCall } = await serve(store, { maxBodyBytes: 1_024 });
    try {
      const res = await smallCall(
        '/v1/features:batch',
        post({ requests: [{ view: 'profile', entities: ['x'.repeat(1_000), 'y'] }] }),
      );
      expect(res.status).toBe(413);
      expect(res.body).toEqual({ error: { code: 'BAD_REQUEST', message: 'request body larger than 1024 bytes' } });
    } finally {
      await small.close();
    }
  });
});

describe('feature API bearer token', () => {
  const store = new InMemoryOnlineStore();
  const token = 'a-long-enough-token-0123456789';
  let server: FeatureApiServer;
  let call: Awaited<ReturnType<typeof serve>>['call'];
  beforeAll(async () => {
    ({ server, call } = await serve(store, { token }));
  });
  afterAll(async () => {
    await server.close();
    await store.close();
  });

  it('answers 401 without the token or with a wrong one, on both routes', async () => {
    for (const headers of [
      {},
      { authorization: 'Bearer nope' },
      { authorization: `Basic ${token}` },
      { authorization: `Bearer ${token}x` },
    ]) {
      const single = await call('/v1/features/profile/u1', { headers });
      expect(single.status).toBe(401);
      expect(single.headers.get('www-authenticate')).toBe('Bearer realm="driftline-feature-api"');
      expect(single.body).toEqual({ error: { code: 'UNAUTHORIZED', message: 'missing or wrong bearer token' } });
      expect((await call('/v1/features:batch', post({ requests: [] }, headers))).status).toBe(401);
    }
  });

  it('serves a request that carries it; /healthz needs none', async () => {
    const ok = await call('/v1/features/profile/u1', { headers: { authorization: `Bearer ${token}` } });
    expect(ok).toMatchObject({ status: 200, body: { found: false } });
    expect((await call('/healthz')).status).toBe(200);
  });
});

describe('feature API store outage', () => {
  it('answers 503 with no backend error text in the body', async () => {
    class DownStore extends InMemoryOnlineStore {
      override async read(): Promise<undefined> {
        throw new SinkUnavailableError('redis 10.1.2.3:6379: NOAUTH Authentication required (user driftline)');
      }
    }
    const store = new DownStore();
    const { server, call } = await serve(store);
    try {
      const res = await call('/v1/features/profile/u1');
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ error: { code: 'SINK_UNAVAILABLE', message: 'online store unavailable' } });
    } finally {
      await server.close();
      await store.close();
    }
  });
});

describe('feature API store fault', () => {
  it('answers 500 and logs it at most once a second, with the count of 500s since (as a 503)', async () => {
    // A Redis Cluster failed every batch read with CROSSSLOT: one error line per request.
    class FaultyStore extends InMemoryOnlineStore {
      override async readBatch(): Promise<never> {
        throw new DriftlineError(
          'CONFIG_INVALID',
          "Redis refused batch read: CROSSSLOT Keys in request don't hash to the same slot",
        );
      }
    }
    const errors: Array<{ obj: object; msg?: string }> = [];
    const logger: Logger = {
      ...silentLogger,
      error: (obj, msg) => void errors.push(msg === undefined ? { obj } : { obj, msg }),
      child: () => logger,
    };
    let clock = 10_000;
    vi.spyOn(Date, 'now').mockImplementation(() => clock);
    const store = new FaultyStore();
    const { server, call } = await serve(store, { logger });
    const batch = post({ requests: [{ view: 'profile', entities: ['u1', 'u2'] }] });
    try {
      for (let i = 0; i < 20; i++) expect((await call('/v1/features:batch', batch)).status).toBe(500);
      expect(errors).toHaveLength(1); // was 20, one per request
      expect(errors[0]).toEqual({
        obj: expect.objectContaining({ requests: 1 }),
        msg: 'feature API request failed; answered 500',
      });
      clock += 1_000;
      expect((await call('/v1/features:batch', batch)).status).toBe(500);
      expect(errors).toHaveLength(2);
      expect(errors[1]?.obj).toMatchObject({ requests: 20 }); // the 19 not logged, and this one
    } finally {
      vi.restoreAllMocks();
      await server.close();
      await store.close();
    }
  });
});

describe('feature API server timeouts', () => {
  it('disconnects a client that sends its headers too slowly (slow loris)', async () => {
    const store = new InMemoryOnlineStore();
    const { server } = await serve(store, { headersTimeoutMs: 300, requestTimeoutMs: 600 });
    try {
      const socket = connect(server.port, '127.0.0.1');
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.write('GET /v1/features/profile/u1 HTTP/1.1\r\nHost: x\r\n');
      let answer = '';
      socket.on('data', (d: Buffer) => {
        answer += d.toString();
      });
      socket.on('error', () => {});
      // One header byte every 100 ms, never the blank line that ends the headers.
      const drip = setInterval(() => socket.writable && socket.write('X'), 100);
      const started = performance.now();
      const closed = await Promise.race([
        new Promise<boolean>((resolve) => socket.once('close', () => resolve(true))),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 15_000)),
      ]);
      clearInterval(drip);
      socket.destroy();
      expect(closed).toBe(true);
      expect(performance.now() - started).toBeLessThan(10_000); // 300 and 600 ms, not node's; slack for a loaded run
      expect(answer).toMatch(/^HTTP\/1\.1 408/);
    } finally {
      await server.close();
      await store.close();
    }
  });
});

describe('feature API answer size', () => {
  it('reads an entity named many times once, and refuses an answer beyond its bound with one 400 line', async () => {
    const store = new CountingStore();
    // The longest value a feature event may carry.
    const long = 'x'.repeat(MAX_STRING_FEATURE_LENGTH);
    await writeU1(store, { country: long });
    const { server, call } = await serve(store);
    try {
      const ask = (n: number) =>
        call('/v1/features:batch', post({ requests: [{ view: 'profile', entities: Array(n).fill('u1') }] }));
      const fine = await ask(10);
      expect(fine.status).toBe(200);
      expect((fine.body.results as Array<{ rows: unknown[] }>)[0]!.rows).toHaveLength(10);
      expect(store.fieldReads).toBe(3); // one entity read once, not ten times
      // 1,000 × 65,536 characters: 64 Mi characters (500, after a gigabyte, with a longer value, before).
      const tooBig = await ask(1_000);
      expect(tooBig.status).toBe(400);
      expect((tooBig.body.error as { message: string }).message).toMatch(
        /^the answer would hold \d+ bytes of feature values as JSON, more than 33554432/,
      );
    } finally {
      await server.close();
      await store.close();
    }
  });

  it('bounds the answer in bytes of JSON: values of control characters (6 bytes each escaped) count 6 times', async () => {
    const store = new CountingStore();
    const control = '\u0001'.repeat(MAX_STRING_FEATURE_LENGTH);
    await writeU1(store, { country: control });
    const { server } = await serve(store);
    try {
      const ask = (n: number) =>
        fetch(
          `http://127.0.0.1:${server.port}/v1/features:batch`,
          post({ requests: [{ view: 'profile', entities: Array(n).fill('u1'), features: ['country'] }] }),
        );
      // 80 rows: 5,242,880 characters, 31.5 MB of JSON: answered.
      const fine = await ask(80);
      expect(fine.status).toBe(200);
      expect(Buffer.byteLength(await fine.text())).toBeLessThan(MAX_ANSWER_FEATURE_BYTES + 80 * 100);
      // 100 rows: 6,553,600 characters (a fifth of the old bound in characters), 39 MB of JSON.
      const tooBig = await ask(100);
      expect(tooBig.status).toBe(400);
      const message = ((await tooBig.json()) as { error: { message: string } }).error.message;
      const counted = Number(/would hold (\d+) bytes/.exec(message)?.[1]);
      expect(counted).toBe(100 * Buffer.byteLength(JSON.stringify({ country: control })));
    } finally {
      await server.close();
      await store.close();
    }
  });

  it('counts the bytes of JSON.stringify exactly for any string (escapes, UTF-8, surrogate pairs, lone surrogates)', () => {
    const samples = [
      '',
      'plain',
      '"\\/',
      '\b\t\n\f\r\u0000\u001f\u007f',
      'é€𝄞',
      '\ud800',
      'a\udc00b',
      '\ud83d\ude00\ud83d',
    ];
    const random = new SeededRandom(7);
    for (let i = 0; i < 200; i++) {
      let text = '';
      for (let j = random.int(21); j > 0; j--) text += String.fromCharCode(random.int(0x10000));
      samples.push(text);
    }
    for (const text of samples) expect(jsonStringBytes(text)).toBe(Buffer.byteLength(JSON.stringify(text)));
  });

  it('a feature event with a string value longer than the bound is poison (to the DLQ), naming the feature', () => {
    const event = {
      event_id: 'e1',
      view: 'profile',
      entity_id: 'u1',
      event_time: 1_000,
      features: { country: 'x'.repeat(MAX_STRING_FEATURE_LENGTH + 1) },
    };
    expect(() => validateFeatureEvent(views, event)).toThrow(
      'feature "country" of view "profile" is 65537 characters, more than 65536',
    );
  });
});
