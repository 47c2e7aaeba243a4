import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface HealthCheck {
  /** Live: the process is working (not wedged). */
  healthy(): boolean;
  /** Ready: connected to its sources and sinks and able to make progress. */
  ready(): boolean;
  /**
   * Why it is unhealthy or unready, added to a 503 body (e.g. the stalled partitions). Only
   * driftline's own facts (names, counts, durations), never a backend's raw error text.
   */
  problems?(): Record<string, unknown>;
}

export interface ObservabilityServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves /metrics (Prometheus text), /healthz and /readyz (200 or 503 with a JSON body). */
export async function startObservabilityServer(options: {
  registry: Registry;
  health: HealthCheck;
  port?: number;
  host?: string;
}): Promise<ObservabilityServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (path === '/metrics') {
      options.registry
        .metrics()
        .then((body) => res.writeHead(200, { 'content-type': options.registry.contentType }).end(body))
        .catch((error: unknown) => res.writeHead(500).end(String(error)));
      return;
    }
    if (path === '/healthz' || path === '/readyz') {
      const ok = path === '/healthz' ? options.health.healthy() : options.health.ready();
      const problems = ok ? {} : (options.health.problems?.() ?? {});
      res
        .writeHead(ok ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ status: ok ? 'ok' : 'unavailable', ...problems }));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found' }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
