import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import {
  counter,
  createLogger,
  createMetricsRegistry,
  gauge,
  MAX_LABEL_VALUES,
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

  it('leaves labels without a bound (values from configuration) as they are', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const plain = counter(registry, 'driftline_plain_total', 'p', ['topic']);
    for (let i = 0; i < 300; i++) plain.inc({ topic: `t${i}` });
    expect((await plain.get()).values).toHaveLength(300); // labels from configuration stay unbounded
  });
});
