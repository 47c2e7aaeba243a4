import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import type { Logger } from '@driftline/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  BOUNDED_LABEL_IDLE_MS,
  counter,
  createLogger,
  createMetricsRegistry,
  gauge,
  histogram,
  MAX_LABEL_VALUES,
  MAX_OBSERVABILITY_CONNECTIONS,
  MAX_OBSERVABILITY_PIPELINED,
  MAX_SERIES_PER_METRIC,
  OBSERVABILITY_TIMEOUTS,
  type ObservabilityServer,
  OTHER_LABEL_VALUE,
  startObservabilityServer,
} from '../src/index.js';

describe('observability server', () => {
  let server: ObservabilityServer | undefined;
  afterEach(async () => server?.close());

  it('serves metrics, health and readiness', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    counter(registry, 'driftline_things_total', 'things', ['topic']).inc({ topic: 'a' }, 3);
    let ready = false;
    server = await startObservabilityServer({ registry, health: { healthy: () => true, ready: () => ready } });
    const base = `http://127.0.0.1:${server.port}`;
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('driftline_things_total{topic="a",service="test"} 3');
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    ready = true;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });

  /** Connects and resolves with what the server sent and how long until it closed the connection. */
  function hold(port: number, bytes = ''): Promise<{ got: string; closedAfterMs: number }> {
    return new Promise((resolve) => {
      const started = Date.now();
      let got = '';
      const socket = connect(port, '127.0.0.1', () => {
        if (bytes !== '') socket.write(bytes);
      });
      socket.on('data', (d) => {
        got += String(d);
      });
      socket.on('error', () => {});
      socket.on('close', () => resolve({ got, closedAfterMs: Date.now() - started }));
    });
  }

  it("closes idle and slow-loris connections at listenHttp's timeouts, not node's 90 s", async () => {
    expect(OBSERVABILITY_TIMEOUTS).toEqual({
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 30_000,
      keepAliveTimeoutMs: 65_000,
      writeTimeoutMs: 30_000,
    });
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    server = await startObservabilityServer({
      registry,
      health: { healthy: () => true, ready: () => true },
      timeouts: { headersTimeoutMs: 300, requestTimeoutMs: 600 },
    });
    const [idle, loris] = await Promise.all([
      hold(server.port),
      hold(server.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n'),
    ]);
    for (const c of [idle, loris]) {
      expect(c.got).toMatch(/^HTTP\/1\.1 408/);
      expect(c.closedAfterMs).toBeLessThan(10_000); // 300 and 600 ms, not node's 90 s; slack for a loaded run
    }
  });

  /** Raw bytes a socket receives until the server closes it (or `ms` pass). */
  function received(socket: Socket, ms = 3_000): Promise<{ text: string; closedByServer: boolean }> {
    return new Promise((resolve) => {
      let text = '';
      socket.on('data', (d) => {
        text += d.toString('latin1');
      });
      const timer = setTimeout(() => {
        socket.destroy();
        resolve({ text, closedByServer: false });
      }, ms);
      socket.on('close', () => {
        clearTimeout(timer);
        resolve({ text, closedByServer: true });
      });
      socket.on('error', () => {});
    });
  }
  const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));

  it('at maxConnections a new connection closes the longest-idle one: probes work under a flood (it was refused)', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    server = await startObservabilityServer({
      registry,
      health: { healthy: () => true, ready: () => true },
      maxConnections: 3,
    });
    expect(MAX_OBSERVABILITY_CONNECTIONS).toBe(64);
    // Three keep-alive connections, each answered once and then idle (the flood of the review).
    const idle: Array<{ socket: Socket; seen: Promise<{ text: string; closedByServer: boolean }> }> = [];
    for (let i = 0; i < 3; i++) {
      const socket = connect(server.port, '127.0.0.1');
      const seen = received(socket, 5_000);
      let got = '';
      await new Promise<void>((resolve) => {
        socket.on('data', (d) => {
          got += String(d);
          if (got.includes('"ok"')) resolve();
        });
        socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      });
      idle.push({ socket, seen });
    }
    // A probe on a new connection is answered; the longest-idle connection made room for it.
    const probe = await fetch(`http://127.0.0.1:${server.port}/healthz`);
    expect(probe.status).toBe(200);
    expect((await idle[0]!.seen).closedByServer).toBe(true);
    expect(idle[1]!.socket.destroyed).toBe(false);
    expect(await registry.metrics()).toContain(
      'driftline_http_connections_shed_total{listener="observability",reason="evicted_idle",service="test"} 1',
    );
    for (const c of idle) c.socket.destroy();
  });

  it(`answers at most ${MAX_OBSERVABILITY_PIPELINED} pipelined requests of one connection at once; then a 503 that closes it`, async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    server = await startObservabilityServer({ registry, health: { healthy: () => true, ready: () => true } });
    const socket = connect(server.port, '127.0.0.1');
    const seen = received(socket);
    socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(50));
    const { text, closedByServer } = await seen;
    const got = statuses(text);
    expect(got.slice(0, MAX_OBSERVABILITY_PIPELINED)).toEqual(Array(MAX_OBSERVABILITY_PIPELINED).fill(200));
    expect(got[MAX_OBSERVABILITY_PIPELINED]).toBe(503);
    expect(got.filter((s) => s === 200)).toHaveLength(MAX_OBSERVABILITY_PIPELINED);
    expect(text).toContain('retry-after: 1');
    expect(text).toContain('"code":"OVERLOADED"');
    expect(closedByServer).toBe(true);
  });

  it('answers every error in the one JSON shape, and a bad request closes its connection', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    server = await startObservabilityServer({ registry, health: { healthy: () => true, ready: () => false } });
    const shape = /\r\n\r\n\{"error":\{"code":"[A-Z_]+","message":"[^"\n]+"\}\}$/;
    for (const [request, status, closes] of [
      ['GET /healthz HTTP/1.1\r\n\r\n', 400, true], // no Host
      [
        'GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: foo\r\nContent-Length: 35\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
        417,
        true,
      ],
      ['NOT HTTP AT ALL\r\n\r\n', 400, true],
      ['POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n', 405, true],
      ['GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 404, true],
    ] as const) {
      const socket = connect(server.port, '127.0.0.1');
      const seen = received(socket);
      socket.write(request);
      const { text, closedByServer } = await seen;
      // One answer: the body of the 417 is never parsed as a request of its own.
      expect(statuses(text)).toEqual([status]);
      expect(text).toMatch(shape);
      expect(closedByServer).toBe(closes);
    }
    const unready = await fetch(`http://127.0.0.1:${server.port}/readyz`);
    expect(unready.status).toBe(503);
    expect(unready.headers.get('retry-after')).toBe('1');
  });

  it('answers HEAD like GET without a body, other methods 405 with Allow', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    server = await startObservabilityServer({ registry, health: { healthy: () => true, ready: () => false } });
    const base = `http://127.0.0.1:${server.port}`;
    const head = await fetch(`${base}/healthz`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    expect((await fetch(`${base}/readyz`, { method: 'HEAD' })).status).toBe(503);
    expect((await fetch(`${base}/metrics`, { method: 'HEAD' })).status).toBe(200);
    const post = await fetch(`${base}/healthz`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('answers a failed /metrics collection with a generic 500 and logs the error', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    registry.registerMetric({
      name: 'driftline_broken',
      get: () => Promise.reject(new Error('backend said: redis://:hunter2@r:6379 refused')),
      reset() {},
    } as never);
    const logged: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, cb) {
        logged.push(String(chunk));
        cb();
      },
    });
    const logger = createLogger({ service: 'test', destination });
    server = await startObservabilityServer({ registry, health: { healthy: () => true, ready: () => true }, logger });
    const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    expect(res.status).toBe(500);
    const body = await res.text();
    expect(body).toBe('metrics collection failed\n');
    expect(logged.join('')).toContain('/metrics collection failed');
    expect(logged.join('')).toContain('backend said');
    expect(logged.join('')).not.toContain('hunter2');
  });

  it('returns the same metric for the same name', () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    expect(counter(registry, 'driftline_x_total', 'x', [])).toBe(counter(registry, 'driftline_x_total', 'x', []));
  });
});

describe('logger', () => {
  it('writes JSON lines with the service and redacts secrets', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const log = createLogger({ service: 'svc', level: 'info', destination });
    log.child({ topic: 't' }).info({ kafka: { sasl: { password: 'hunter2' } }, password: 'p' }, 'hello');
    const entry = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
    expect(entry).toMatchObject({ service: 'svc', topic: 't', msg: 'hello', level: 'info', password: '[redacted]' });
    expect(lines[0]).not.toContain('hunter2');
  });

  /** The log lines `write` produced, parsed. */
  function capture(write: (log: ReturnType<typeof createLogger>) => void): Record<string, unknown>[] {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    write(createLogger({ service: 'svc', level: 'info', destination }));
    return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  it("drops an ioredis ReplyError's command (a refused AUTH's args are [user, password]) and redacts its text", () => {
    // The shape ioredis' DataHandler.returnError builds: a ReplyError with the command it answered.
    const reply = Object.assign(new Error('WRONGPASS invalid username-password pair, url redis://:pw1@r:6379'), {
      name: 'ReplyError',
      command: { name: 'auth', args: ['default', 'hunter2-secret'] },
    });
    const [raw, wrapped, text] = capture((log) => {
      log.warn({ err: reply }, 'raw');
      log.warn({ err: new Error('read failed', { cause: reply }) }, 'wrapped');
      log.warn({ err: 'connect rediss://u:pw2@r:6380 refused', error: 'HTTP 401 from https://bot:pw3@h/x' }, 'text');
    });
    expect(raw?.err).toMatchObject({ name: 'ReplyError', message: expect.stringContaining('WRONGPASS') });
    expect(raw?.err).not.toHaveProperty('command');
    expect(JSON.stringify([raw, wrapped, text])).not.toMatch(/hunter2|pw1|pw2|pw3/);
    expect(text).toMatchObject({ err: 'connect rediss://***@r:6380 refused', error: 'HTTP 401 from https://***@h/x' });
  });

  it('redacts secrets nested in config, authorization headers and the credentials of a url', () => {
    const [entry] = capture((log) =>
      log.info(
        {
          connections: { kafka: { sasl: { password: 'k-secret' } }, registry: { password: 'r-secret' } },
          receiver: { headers: { authorization: 'Bearer t-secret' } },
          headers: { Authorization: 'Basic b-secret' },
          url: 'redis://:u-secret@redis:6379/0',
        },
        'config',
      ),
    );
    expect(JSON.stringify(entry)).not.toContain('secret');
    expect(entry).toMatchObject({
      connections: { kafka: { sasl: { password: '[redacted]' } }, registry: { password: '[redacted]' } },
      receiver: { headers: { authorization: '[redacted]' } },
      url: 'redis://***@redis:6379/0',
    });
  });
});

describe('bounded labels', () => {
  it('keeps at most MAX_LABEL_VALUES values of a bounded label, the rest under __other__', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const requests = counter(registry, 'driftline_requests_total', 'r', ['model', 'outcome'], { bounded: ['model'] });
    const coverage = gauge(registry, 'driftline_coverage', 'c', ['model', 'version'], {
      bounded: ['model', 'version'],
    });
    // 10,000 distinct model names and versions, as a flood of hostile events would bring.
    for (let i = 0; i < 10_000; i++) {
      requests.inc({ model: `model-${i}`, outcome: i % 2 === 0 ? 'ok' : 'failed' });
      coverage.set({ model: `model-${i}`, version: `v${i}` }, 0.5);
      coverage.labels(`model-${i}`, `v${i}`).set(0.25);
    }
    const series = async (name: string) => ((await registry.getSingleMetric(name)?.get())?.values ?? []).length;
    // 100 models (one outcome each), plus __other__ × 2 outcomes.
    expect(await series('driftline_requests_total')).toBe(MAX_LABEL_VALUES + 2);
    expect(await series('driftline_coverage')).toBe(MAX_LABEL_VALUES + 1);
    const text = await registry.metrics();
    expect(text).toContain(`driftline_requests_total{model="model-0",outcome="ok",service="test"} 1`);
    expect(text).toContain(`driftline_requests_total{model="${OTHER_LABEL_VALUE}",outcome="ok",service="test"} 4950`);
    expect(text).not.toContain('model-100"');
    // A value seen before the bound keeps its own series.
    requests.inc({ model: 'model-5', outcome: 'ok' });
    expect(await registry.metrics()).toContain(
      'driftline_requests_total{model="model-5",outcome="ok",service="test"} 1',
    );
  });

  it('lets a value seen after the bound in once a place has been idle for idleMs, its series removed', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
      const requests = counter(registry, 'driftline_requests_total', 'r', ['model', 'outcome'], { bounded: ['model'] });
      // The first 100 names: junk that never comes back.
      for (let i = 0; i < MAX_LABEL_VALUES; i++) requests.inc({ model: `junk-${i}`, outcome: 'failed' });
      vi.advanceTimersByTime(BOUNDED_LABEL_IDLE_MS - 1);
      requests.inc({ model: 'junk-7', outcome: 'failed' }); // still updated: keeps its place
      requests.inc({ model: 'fraud', outcome: 'trained' });
      expect(await registry.metrics()).toContain(
        `driftline_requests_total{model="${OTHER_LABEL_VALUE}",outcome="trained"`,
      );
      vi.advanceTimersByTime(1);
      requests.inc({ model: 'fraud', outcome: 'trained' });
      requests.inc({ model: 'churn', outcome: 'trained' });
      const text = await registry.metrics();
      expect(text).toContain('driftline_requests_total{model="fraud",outcome="trained",service="test"} 1');
      expect(text).toContain('driftline_requests_total{model="churn",outcome="trained",service="test"} 1');
      // The least recently updated went first, with their series; the one updated since stayed.
      expect(text).not.toContain('model="junk-0"');
      expect(text).not.toContain('model="junk-1"');
      expect(text).toContain('model="junk-7"');
      expect(((await requests.get()).values ?? []).length).toBe(MAX_LABEL_VALUES + 1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('takes a place only for a recorded value: remove() and labels() alone take none', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const g = gauge(registry, 'driftline_g', 'g', ['model'], { bounded: ['model'], max: 2 });
    g.remove({ model: 'never-set-1' });
    g.remove('never-set-2');
    g.labels('never-used');
    g.set({ model: 'real' }, 1);
    g.labels('other-real').set(2);
    expect((await g.get()).values.map((v) => v.labels.model).sort()).toEqual(['other-real', 'real']);
    // Removing a recorded value frees its place for the next one.
    g.remove({ model: 'real' });
    g.set({ model: 'third' }, 3);
    expect((await g.get()).values.map((v) => v.labels.model).sort()).toEqual(['other-real', 'third']);
    // Removing a value without a place never removes the shared __other__ series.
    g.set({ model: 'fourth' }, 4);
    g.remove({ model: 'fourth' });
    expect((await g.get()).values.map((v) => v.labels.model)).toContain(OTHER_LABEL_VALUE);
  });

  it('refuses a metric asked again with other limits than it was created with', () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    counter(registry, 'driftline_y_total', 'y', ['model']);
    expect(() => counter(registry, 'driftline_y_total', 'y', ['model'], { bounded: ['model'], max: 1 })).toThrow(
      /^metric driftline_y_total requested bounded \[model\], max 1, idle 600000 ms, series 2000, but it exists unbounded$/,
    );
    const bounded = gauge(registry, 'driftline_z', 'z', ['model'], { bounded: ['model'] });
    expect(gauge(registry, 'driftline_z', 'z', ['model'], { bounded: ['model'] })).toBe(bounded);
    expect(() => gauge(registry, 'driftline_z', 'z', ['model'], { bounded: ['model'], max: 5 })).toThrow(
      expect.objectContaining({ code: 'INTERNAL' }),
    );
    expect(() => gauge(registry, 'driftline_z', 'z', ['model'])).toThrow(/exists bounded \[model\]/);
    expect(() => gauge(registry, 'driftline_z', 'z', ['model'], { bounded: ['model'], maxSeries: 10 })).toThrow(
      /requested bounded \[model\], max 100, idle 600000 ms, series 10, but it exists/,
    );
  });

  /** A logger that keeps its warnings. */
  function warningsLogger() {
    const warnings: Array<Record<string, unknown>> = [];
    const logger: Logger = {
      debug: () => {},
      info: () => {},
      warn: (obj) => void warnings.push({ ...obj }),
      error: () => {},
      child: () => logger,
    };
    return { logger, warnings };
  }

  it('caps the series of a metric, not only each label: new combinations past the cap share __other__, counted, warned once', async () => {
    const { logger, warnings } = warningsLogger();
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false, logger });
    const statistic = counter(registry, 'driftline_stat_total', 's', ['model', 'feature'], {
      bounded: ['model', 'feature'],
    });
    const coverage = gauge(registry, 'driftline_cov', 'c', ['model', 'model_version'], {
      bounded: ['model', 'model_version'],
    });
    const dropped = async (metric: string) =>
      (await registry.getSingleMetric('driftline_metric_series_dropped_total')?.get())?.values.find(
        (v) => v.labels.metric === metric,
      )?.value;
    // At 0 before any fold: Prometheus' increase() skips a series' first sample, so the alert on
    // this counter missed a first fold that created the series.
    expect(await dropped('driftline_stat_total')).toBe(0);
    expect(await dropped('driftline_cov')).toBe(0);
    // 150 × 150 combinations: each label alone within its bound made (100 + 1)² = 10,201 series.
    const names = 150;
    for (let m = 0; m < names; m++) {
      for (let f = 0; f < names; f++) {
        statistic.inc({ model: `m${m}`, feature: `f${f}` });
        coverage.set({ model: `m${m}`, model_version: `v${f}` }, 1);
      }
    }
    const other = { model: OTHER_LABEL_VALUE, feature: OTHER_LABEL_VALUE };
    const valuesOf = async () => (await statistic.get()).values;
    const overflow = async () =>
      (await valuesOf()).find((v) => v.labels.model === other.model && v.labels.feature === other.feature)?.value;
    // The series with a bounded value of their own, plus the one all-__other__ series.
    expect(await valuesOf()).toHaveLength(MAX_SERIES_PER_METRIC + 1);
    expect((await coverage.get()).values).toHaveLength(MAX_SERIES_PER_METRIC + 1);
    // Nothing lost: every recording is in some series; those past the cap are in __other__, and counted.
    const recorded = async () => (await valuesOf()).reduce((sum, v) => sum + v.value, 0);
    expect(await recorded()).toBe(names * names);
    const overflowBefore = await overflow();
    expect(overflowBefore).toBeGreaterThan(0);
    expect(await dropped('driftline_stat_total')).toBe(overflowBefore);
    expect(await dropped('driftline_cov')).toBeGreaterThan(0);
    // A series recorded before the cap keeps its own; a new combination of values that each have
    // a place (a series of their own) is folded.
    const own = (await valuesOf()).filter((v) => v.labels.model !== OTHER_LABEL_VALUE);
    const seen = new Set(own.map((v) => `${v.labels.model}/${v.labels.feature}`));
    const models = [...new Set(own.map((v) => String(v.labels.model)))];
    const features = [...new Set(own.map((v) => String(v.labels.feature)))].filter((f) => f !== OTHER_LABEL_VALUE);
    const combinations = models.flatMap((model) => features.map((feature) => ({ model, feature })));
    const fresh = combinations.find((l) => !seen.has(`${l.model}/${l.feature}`));
    if (fresh === undefined) throw new Error('every combination of placed values has a series');
    statistic.inc({ model: 'm0', feature: 'f0' });
    statistic.inc(fresh);
    const m0f0 = (await valuesOf()).find((v) => v.labels.model === 'm0' && v.labels.feature === 'f0');
    expect(m0f0?.value).toBe(2);
    expect(await overflow()).toBe((overflowBefore ?? 0) + 1);
    // Removing a folded combination removes nothing: not the shared __other__ series.
    statistic.remove(fresh);
    expect(await overflow()).toBe((overflowBefore ?? 0) + 1);
    // One warning per metric, however many recordings it folded.
    expect(warnings.map((w) => w.metric).sort()).toEqual(['driftline_cov', 'driftline_stat_total']);
    expect(warnings[0]).toMatchObject({ maxSeries: MAX_SERIES_PER_METRIC });
  });

  it('at the series cap, a new combination takes the room of a value idle for idleMs', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const registry = createMetricsRegistry({
        service: 'test',
        defaultMetrics: false,
        logger: warningsLogger().logger,
      });
      const statistic = counter(registry, 'driftline_stat_total', 's', ['model', 'feature'], {
        bounded: ['model', 'feature'],
        maxSeries: 4,
      });
      // Junk combinations fill the cap while each label is far from its own bound.
      for (const model of ['junk-a', 'junk-b']) for (const feature of ['x', 'y']) statistic.inc({ model, feature });
      statistic.inc({ model: 'fraud', feature: 'amount' });
      const own = async () => (await statistic.get()).values.filter((v) => v.labels.model !== OTHER_LABEL_VALUE);
      expect((await own()).map((v) => v.labels.model)).not.toContain('fraud');
      vi.advanceTimersByTime(BOUNDED_LABEL_IDLE_MS);
      statistic.inc({ model: 'fraud', feature: 'amount' });
      const models = (await own()).map((v) => `${v.labels.model}/${v.labels.feature}`);
      // The least recently updated value went, with its series; the cap holds.
      expect(models.sort()).toEqual(['fraud/amount', 'junk-b/x', 'junk-b/y']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('admits a timer with the labels it ends with, not the partial ones it started with (found by a review)', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false, logger: warningsLogger().logger });
    const latency = histogram(registry, 'driftline_req_seconds', 'r', ['model', 'outcome'], [1], {
      bounded: ['model'],
      maxSeries: 2,
    });
    const counts = async () =>
      (await latency.get()).values
        .filter((v) => v.metricName === 'driftline_req_seconds_count')
        .map((v) => `${v.labels.model}/${v.labels.outcome}=${v.value}`)
        .sort();
    // Below the cap: the timer's start labels ({ model }) take no series of their own.
    latency.startTimer({ model: 'a' })({ outcome: 'ok' });
    latency.observe({ model: 'b', outcome: 'ok' }, 0.1);
    expect(await counts()).toEqual(['a/ok=1', 'b/ok=1']);
    // At the cap: a timer whose merged labels have a series is recorded there, not under __other__.
    latency.startTimer({ model: 'a' })({ outcome: 'ok' });
    latency.labels({ model: 'b' }).startTimer()({ outcome: 'ok' });
    expect(await counts()).toEqual(['a/ok=2', 'b/ok=2']);
    const dropped = async () =>
      (await registry.getSingleMetric('driftline_metric_series_dropped_total')?.get())?.values.map((v) => v.value);
    expect(await dropped()).toEqual([0]);
    // A new combination ending a timer at the cap is still folded, and counted.
    latency.startTimer({ model: 'c' })({ outcome: 'ok' });
    expect(await counts()).toEqual([`${OTHER_LABEL_VALUE}/ok=1`, 'a/ok=2', 'b/ok=2']);
    expect(await dropped()).toEqual([1]);
  });

  it('leaves labels without a bound (values from configuration) as they are', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const plain = counter(registry, 'driftline_plain_total', 'p', ['topic']);
    for (let i = 0; i < 300; i++) plain.inc({ topic: `t${i}` });
    expect((await plain.get()).values).toHaveLength(300); // labels from configuration stay unbounded
  });
});
