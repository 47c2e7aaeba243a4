import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import {
  counter,
  createLogger,
  createMetricsRegistry,
  type ObservabilityServer,
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
