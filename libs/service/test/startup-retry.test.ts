import { ConfigError, DriftlineError, silentLogger } from '@driftline/core';
import { eventually, freePort } from '@driftline/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import {
  defineService,
  type Runner,
  type ServiceDefinition,
  type ServiceNeed,
  StartupTimeoutError,
  startRunner,
} from '../src/index.js';

/** A service whose start fails with `failure()` the first `failures` times (a backend still down). */
function startsAfter(failures: number, failure: () => Error) {
  const calls = { starts: 0, stops: 0 };
  const definition = defineService({
    name: 'late-backend',
    description: 'test service whose backend comes up late',
    needs: [],
    envShape: {},
    configure: () => undefined,
    async start() {
      calls.starts++;
      if (calls.starts <= failures) throw failure();
      return { ready: () => true, stop: async () => void calls.stops++ };
    },
  });
  return { definition: definition as unknown as ServiceDefinition<never, unknown>, calls };
}

/** A service whose start waits until `release()` (a backend that answers late, or never). */
function startsWhenReleased(name: string, needs: ServiceNeed[] = []) {
  let release = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const calls = { starts: 0, stops: 0 };
  const definition = defineService({
    name,
    description: 'test service whose start waits to be released',
    needs,
    envShape: {},
    configure: () => undefined,
    async start() {
      calls.starts++;
      await gate;
      return { ready: () => true, stop: async () => void calls.stops++ };
    },
  }) as unknown as ServiceDefinition<never, unknown>;
  return { definition, release: () => release(), calls };
}

const unreachable = () =>
  new DriftlineError('SOURCE_UNAVAILABLE', 'connect ECONNREFUSED 127.0.0.1:9092', { retriable: true });
const env = { DRIFTLINE_HTTP_PORT: '0' };

describe('start-up waits for an unreachable backend (DRIFTLINE_STARTUP_TIMEOUT)', () => {
  const runners: Runner[] = [];
  afterEach(async () => {
    for (const r of runners.splice(0)) await r.stop();
  });

  it('retries a retriable start-up failure with backoff until the backend answers', async () => {
    const { definition, calls } = startsAfter(2, unreachable);
    const runner = await startRunner({ services: [definition], env, logger: silentLogger });
    runners.push(runner);
    expect(calls.starts).toBe(3);
    expect(runner.ready()).toBe(true);
  });

  it('gives up after the timeout with the backend error (0 = one attempt)', async () => {
    const { definition, calls } = startsAfter(5, unreachable);
    const failure = await startRunner({
      services: [definition],
      env: { ...env, DRIFTLINE_STARTUP_TIMEOUT: '0' },
      logger: silentLogger,
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(StartupTimeoutError);
    expect(failure).toMatchObject({
      retriable: true,
      message: 'connect ECONNREFUSED 127.0.0.1:9092; start-up gave up after 0s (DRIFTLINE_STARTUP_TIMEOUT=0)',
    });
    expect(calls.starts).toBe(1);
  });

  it('a start still waiting at DRIFTLINE_STARTUP_TIMEOUT for a broker that refuses connections gives up then, naming it (found by a review: 211 s, exit 1)', async () => {
    // The review's case: `driftline run retrain-trigger` against a refused port. kafkajs retries
    // each connection inside each of topic creation's 8 attempts, and the one attempt took 211 s
    // before it failed; the timeout only bounded when a new attempt could begin.
    const closed = await freePort();
    const { definition, release, calls } = startsWhenReleased('waits-for-kafka', ['kafka']);
    const started = Date.now();
    const failure = await startRunner({
      services: [definition],
      env: { ...env, DRIFTLINE_STARTUP_TIMEOUT: '1s', DRIFTLINE_KAFKA_BROKERS: `127.0.0.1:${closed}` },
      logger: silentLogger,
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(StartupTimeoutError);
    expect((failure as Error).message).toBe(
      `Kafka at 127.0.0.1:${closed} (connection refused): not reachable, start-up gave up after 1s (DRIFTLINE_STARTUP_TIMEOUT=1s) — check DRIFTLINE_KAFKA_BROKERS and that it is running`,
    );
    expect(Date.now() - started).toBeLessThan(1_000 + 2_500);
    // The attempt cut cannot be cancelled: what it starts afterwards is stopped at once.
    release();
    await eventually(async () => (calls.stops === 1 ? true : undefined), 5_000);
    expect(calls.starts).toBe(1);
  });

  it('names every backend that takes no connection, and only those (a broker of several answering is enough)', async () => {
    const closed = await freePort();
    const { createServer } = await import('node:net');
    const listening = createServer((socket) => socket.destroy());
    await new Promise<void>((r) => listening.listen(0, '127.0.0.1', r));
    const open = (listening.address() as { port: number }).port;
    try {
      const { definition, release } = startsWhenReleased('waits-for-registry', ['kafka', 'registry']);
      const failure = await startRunner({
        services: [definition],
        env: {
          ...env,
          DRIFTLINE_STARTUP_TIMEOUT: '0',
          DRIFTLINE_KAFKA_BROKERS: `127.0.0.1:${closed},127.0.0.1:${open}`,
          DRIFTLINE_SCHEMA_REGISTRY_URL: `http://user:secret@127.0.0.1:${closed}/apis/ccompat/v7`,
        },
        logger: silentLogger,
      }).catch((error: unknown) => error);
      release();
      expect((failure as Error).message).toBe(
        `the Schema Registry at 127.0.0.1:${closed} (connection refused): not reachable, start-up gave up after 0s (DRIFTLINE_STARTUP_TIMEOUT=0) — check DRIFTLINE_SCHEMA_REGISTRY_URL and that it is running`,
      );
    } finally {
      await new Promise((r) => listening.close(r));
    }
  });

  it('a short or 0 timeout does not cut a start under way while every backend takes connections', async () => {
    const { definition, release } = startsWhenReleased('slow-but-healthy');
    const releasing = setTimeout(release, 1_500);
    try {
      const runner = await startRunner({
        services: [definition],
        env: { ...env, DRIFTLINE_STARTUP_TIMEOUT: '0' },
        logger: silentLogger,
      });
      runners.push(runner);
      expect(runner.ready()).toBe(true);
    } finally {
      clearTimeout(releasing);
    }
  });

  it('serves /healthz (live) and /readyz (503, starting) while start-up waits for a backend (found by a review)', async () => {
    // No probe was answered until every service had started: a liveness probe killed a process
    // that was waiting out DRIFTLINE_STARTUP_TIMEOUT for a broker.
    const port = await freePort();
    const { definition, release } = startsWhenReleased('slow-backend');
    const starting = startRunner({
      services: [definition],
      env: { DRIFTLINE_HTTP_PORT: String(port), DRIFTLINE_HTTP_HOST: '127.0.0.1' },
      logger: silentLogger,
    });
    const probe = async (path: string) => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const live = await eventually(async () => (await probe('/healthz').catch(() => undefined))?.status, 10_000);
    expect(live).toBe(200);
    expect(await probe('/readyz')).toMatchObject({ status: 503, body: { starting: ['slow-backend'] } });
    release();
    const runner = await starting;
    runners.push(runner);
    expect((await probe('/readyz')).status).toBe(200);
  });

  it('a start that hangs stops reporting live once the start-up timeout (and as much grace) has passed', async () => {
    const port = await freePort();
    const { definition, release } = startsWhenReleased('hung-start');
    const starting = startRunner({
      services: [definition],
      env: { DRIFTLINE_HTTP_PORT: String(port), DRIFTLINE_HTTP_HOST: '127.0.0.1', DRIFTLINE_STARTUP_TIMEOUT: '1s' },
      logger: silentLogger,
    });
    const live = async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status;
    expect(await eventually(live, 10_000)).toBe(200);
    expect(await eventually(async () => ((await live()) === 503 ? 503 : undefined), 10_000)).toBe(503);
    release();
    runners.push(await starting);
  });

  it('starts no service when the health port cannot be bound, and names its variable (exit 78, not a bug)', async () => {
    const { createServer } = await import('node:net');
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      const { definition, calls } = startsAfter(0, unreachable);
      const failure = await startRunner({
        services: [definition],
        env: { DRIFTLINE_HTTP_PORT: String(port), DRIFTLINE_HTTP_HOST: '127.0.0.1' },
        logger: silentLogger,
      }).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(ConfigError);
      expect(failure).toMatchObject({
        field: 'DRIFTLINE_HTTP_PORT',
        message: `DRIFTLINE_HTTP_PORT: cannot listen on 127.0.0.1:${port}: the port is in use by another process (pick another, or 0 for any free one)`,
      });
      // The port is bound first: nothing started, nothing left running without a health endpoint.
      expect(calls).toEqual({ starts: 0, stops: 0 });
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });

  it('never retries a config error', async () => {
    const { definition, calls } = startsAfter(5, () => new ConfigError('DRIFTLINE_X', 'is wrong'));
    await expect(startRunner({ services: [definition], env, logger: silentLogger })).rejects.toThrow(/^DRIFTLINE_X/);
    expect(calls.starts).toBe(1);
  });

  it('stops waiting at once when asked to stop', async () => {
    const { definition, calls } = startsAfter(100, unreachable);
    const stop = new AbortController();
    const started = Date.now();
    setTimeout(() => stop.abort(), 300);
    await expect(
      startRunner({ services: [definition], env, logger: silentLogger, signal: stop.signal }),
    ).rejects.toThrow(/ECONNREFUSED/);
    expect(Date.now() - started).toBeLessThan(900); // the first backoff is 1 s
    expect(calls.starts).toBe(1);
  });
});
