import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, DriftlineError, silentLogger } from '@driftline/core';
import { eventually, freePort, recordingLogger } from '@driftline/test-support';
import { describe, it } from 'vitest';
import {
  defineService,
  type RunnerOptions,
  type ServiceContext,
  type ServiceDefinition,
  type ServiceNeed,
  StartupTimeoutError,
  startRunner,
} from '../src/index.js';
import {
  httpListener,
  kafkaAnsweringListener,
  type Listener,
  roundRobinWithOneClosed,
  silentListener,
} from './fixtures/listeners.js';

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

/**
 * A service needing Kafka whose start waits until its broker takes a TCP connection (as kafkajs'
 * connection retries do), then `workMs` more (its own work: a venv install, a migration).
 */
function startsOnceReachable(broker: string, workMs = 0) {
  const at = broker.lastIndexOf(':');
  const reachable = () =>
    new Promise<boolean>((resolve) => {
      const socket = connect({ host: broker.slice(0, at), port: Number(broker.slice(at + 1)) });
      const done = (ok: boolean) => {
        socket.destroy();
        resolve(ok);
      };
      socket.once('connect', () => done(true));
      socket.once('error', () => done(false));
      socket.setTimeout(1_000, () => done(false));
    });
  const calls = { starts: 0, stops: 0, startedAt: 0 };
  const definition = defineService({
    name: 'reaches-kafka',
    description: 'test service whose start waits for its broker, then works',
    needs: ['kafka'],
    envShape: {},
    configure: () => undefined,
    async start() {
      calls.starts++;
      while (!(await reachable())) await sleep(50);
      await sleep(workMs);
      calls.startedAt = Date.now();
      return { ready: () => true, stop: async () => void calls.stops++ };
    },
  }) as unknown as ServiceDefinition<never, unknown>;
  return { definition, calls };
}

const unreachable = () =>
  new DriftlineError('SOURCE_UNAVAILABLE', 'connect ECONNREFUSED 127.0.0.1:9092', { retriable: true });
const env = { DRIFTLINE_HTTP_PORT: '0' };

/**
 * The production bounds (probe every 1 s, 2 s for its connection and 5 s for a Kafka answer, cut
 * after 10 s unreachable) a fifth as long, so that these tests wait seconds, not minutes; every
 * time below is the first version's × 0.2 (its slacks at least 1 s: a loaded machine). The
 * production values themselves: "production defaults".
 */
const probes = {
  intervalMs: 200,
  timeoutMs: 400,
  answerTimeoutMs: 1_000,
  refusalGraceMs: 2_000,
} satisfies RunnerOptions['startupProbes'];

// Upper bounds allow 3 s of slack: the unit project shares 2 cores with the other files. The seconds
// a message names ("gave up after 3s") allow as much.
// Each group runs its tests at once (and the groups at once: sibling concurrent suites), each
// waiting out real seconds; at most 5 tests of a group run at a time (vitest's maxConcurrency).
describe.concurrent('start-up waits for an unreachable backend (DRIFTLINE_STARTUP_TIMEOUT)', () => {
  it('retries a retriable start-up failure with backoff until the backend answers', async ({ expect }) => {
    const { definition, calls } = startsAfter(2, unreachable);
    const runner = await startRunner({ services: [definition], env, logger: silentLogger });
    try {
      expect(calls.starts).toBe(3);
      expect(runner.ready()).toBe(true);
    } finally {
      await runner.stop();
    }
  });

  it('gives up after the timeout with the backend error (0 = one attempt)', async ({ expect }) => {
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

  it('a short or 0 timeout does not cut a start under way while every backend takes connections', async ({
    expect,
  }) => {
    const { definition, release } = startsWhenReleased('slow-but-healthy');
    const releasing = setTimeout(release, 1_500);
    try {
      const runner = await startRunner({
        services: [definition],
        env: { ...env, DRIFTLINE_STARTUP_TIMEOUT: '0' },
        logger: silentLogger,
      });
      expect(runner.ready()).toBe(true);
      await runner.stop();
    } finally {
      clearTimeout(releasing);
    }
  });

  it('serves /healthz (live) and /readyz (503, starting) while start-up waits for a backend (found by a review)', async ({
    expect,
  }) => {
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
    try {
      expect((await probe('/readyz')).status).toBe(200);
    } finally {
      await runner.stop();
    }
  });

  it('starts no service when the health port cannot be bound, and names its variable (exit 78, not a bug)', async ({
    expect,
  }) => {
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

  it('never retries a config error', async ({ expect }) => {
    const { definition, calls } = startsAfter(5, () => new ConfigError('DRIFTLINE_X', 'is wrong'));
    await expect(startRunner({ services: [definition], env, logger: silentLogger })).rejects.toThrow(/^DRIFTLINE_X/);
    expect(calls.starts).toBe(1);
  });

  it('stops waiting at once when asked to stop', async ({ expect }) => {
    const { definition, calls } = startsAfter(100, unreachable);
    const stop = new AbortController();
    const started = Date.now();
    setTimeout(() => stop.abort(), 100);
    await expect(
      startRunner({ services: [definition], env, logger: silentLogger, signal: stop.signal }),
    ).rejects.toThrow(/ECONNREFUSED/);
    // The first backoff is 1 s from the first failure: a stop that waited for it ends past 1 s. Asked
    // at 100 ms (not 300), a loaded run has 0.9 s of slack.
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(calls.starts).toBe(1);
  });
});

// Past DRIFTLINE_STARTUP_TIMEOUT the backends are probed (every 1 s; here `probes`), and the
// attempt in flight is cut only for one unreachable at every probe for 10 s
// (STARTUP_REFUSAL_GRACE_MS; here 2 s). The first version cut any attempt at max(timeout, 30 s)
// from the process start, and at once for a backend down at the deadline (found by a review).
describe.concurrent('past DRIFTLINE_STARTUP_TIMEOUT: cut only for a backend down the grace', () => {
  it('a broker that refuses connections for the grace past the timeout ends the start, naming it (found by a review: 211 s, exit 1)', async ({
    expect,
  }) => {
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
      startupProbes: probes,
    }).catch((error: unknown) => error);
    const waited = Date.now() - started;
    expect(failure).toBeInstanceOf(StartupTimeoutError);
    expect((failure as Error).message).toMatch(
      new RegExp(
        `^Kafka at 127\\.0\\.0\\.1:${closed} \\(connection refused\\): not reachable, start-up gave up after [3-6]s \\(DRIFTLINE_STARTUP_TIMEOUT=1s\\) — check DRIFTLINE_KAFKA_BROKERS and that it is running$`,
      ),
    );
    expect(waited).toBeGreaterThanOrEqual(1_000 + probes.refusalGraceMs);
    expect(waited).toBeLessThan(1_000 + probes.refusalGraceMs + 3_000);
    // The attempt cut cannot be cancelled: what it starts afterwards is stopped at once.
    release();
    await eventually(async () => (calls.stops === 1 ? true : undefined), 5_000);
    expect(calls.starts).toBe(1);
  });

  it('names every backend that is not reachable, and only those (a broker of several answering is enough)', async ({
    expect,
  }) => {
    const closed = await freePort();
    const answering = await kafkaAnsweringListener();
    try {
      const { definition, release } = startsWhenReleased('waits-for-registry', ['kafka', 'registry']);
      const failure = await startRunner({
        services: [definition],
        env: {
          ...env,
          DRIFTLINE_STARTUP_TIMEOUT: '0',
          DRIFTLINE_KAFKA_BROKERS: `127.0.0.1:${closed},${answering.address}`,
          DRIFTLINE_SCHEMA_REGISTRY_URL: `http://user:secret@127.0.0.1:${closed}/apis/ccompat/v7`,
        },
        logger: silentLogger,
        startupProbes: probes,
      }).catch((error: unknown) => error);
      release();
      expect((failure as Error).message).toMatch(
        new RegExp(
          `^the Schema Registry at 127\\.0\\.0\\.1:${closed} \\(connection refused\\): not reachable, start-up gave up after [2-5]s \\(DRIFTLINE_STARTUP_TIMEOUT=0\\) — check DRIFTLINE_SCHEMA_REGISTRY_URL and that it is running$`,
        ),
      );
    } finally {
      await answering.close();
    }
  });

  it('a broker that takes connections and never answers is not reachable: cut after the grace, saying so (found by a review: 253 s)', async ({
    expect,
  }) => {
    // A hung or stopped broker (the kernel still accepts): the TCP probe found it up, never cut,
    // and topic creation's 8 requests each waited kafkajs' 30 s. Now the probe asks ApiVersions.
    const broker = await silentListener();
    const { definition, release } = startsWhenReleased('waits-for-a-silent-kafka', ['kafka']);
    const warnings: Array<{ obj: object; msg?: string }> = [];
    const started = Date.now();
    try {
      const failure = await startRunner({
        services: [definition],
        env: { ...env, DRIFTLINE_STARTUP_TIMEOUT: '0', DRIFTLINE_KAFKA_BROKERS: broker.address },
        logger: recordingLogger('warn', warnings),
        startupProbes: probes,
      }).catch((error: unknown) => error);
      const waited = Date.now() - started;
      expect(failure).toBeInstanceOf(StartupTimeoutError);
      expect((failure as Error).message).toMatch(
        new RegExp(
          `^Kafka at ${broker.address.replaceAll('.', '\\.')} \\(took the connection but answered no Kafka request in 1000 ms\\): not reachable, start-up gave up after [3-6]s \\(DRIFTLINE_STARTUP_TIMEOUT=0\\) — check DRIFTLINE_KAFKA_BROKERS and that it is running$`,
        ),
      );
      // The first probe finds it silent at the end of the answer's bound (1 s); the cut is at the
      // first probe that begins the grace later, and ends that bound after it.
      expect(waited).toBeGreaterThanOrEqual(probes.refusalGraceMs + probes.answerTimeoutMs);
      expect(waited).toBeLessThan(probes.refusalGraceMs + probes.answerTimeoutMs + 3_000);
      expect(warnings.filter((w) => w.msg?.startsWith('start-up still under way')).length).toBe(1);
    } finally {
      release();
      await broker.close();
    }
  });

  it('a broker port that answers a Kafka request with something else is not reachable, naming what it said', async ({
    expect,
  }) => {
    const server = await httpListener();
    const { definition, release } = startsWhenReleased('waits-for-kafka-on-an-http-port', ['kafka']);
    const started = Date.now();
    try {
      const failure = await startRunner({
        services: [definition],
        env: { ...env, DRIFTLINE_STARTUP_TIMEOUT: '0', DRIFTLINE_KAFKA_BROKERS: server.address },
        logger: silentLogger,
        startupProbes: probes,
      }).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(StartupTimeoutError);
      expect((failure as Error).message).toMatch(
        new RegExp(
          `^Kafka at ${server.address.replaceAll('.', '\\.')} \\(took the connection but answered a Kafka request with bytes that are not Kafka's \\("HTTP/1\\.1 400 Bad"\\)\\): not reachable, start-up gave up after [2-5]s`,
        ),
      );
      expect(Date.now() - started).toBeLessThan(probes.refusalGraceMs + 3_000);
    } finally {
      release();
      await server.close();
    }
  });

  it('a broker that answered, then went silent, is cut the grace after its last answer', async ({ expect }) => {
    // Proof of life lasts the grace, no longer: 1 answer in 3 for 7 requests (3 answers), then
    // silent for good. (With every failure counted as a refusal, it was cut a grace after its
    // first silence, between two answers.)
    let lastAnswerAt = 0;
    const broker = await kafkaAnsweringListener(0, {
      answers: (request) => {
        if (request % 3 !== 0 || request >= 7) return false;
        lastAnswerAt = Date.now();
        return true;
      },
    });
    const { definition, release } = startsWhenReleased('waits-for-a-fading-kafka', ['kafka']);
    try {
      const failure = await startRunner({
        services: [definition],
        env: { ...env, DRIFTLINE_STARTUP_TIMEOUT: '0', DRIFTLINE_KAFKA_BROKERS: broker.address },
        logger: silentLogger,
        startupProbes: probes,
      }).catch((error: unknown) => error);
      const afterLastAnswer = Date.now() - lastAnswerAt;
      expect(failure).toBeInstanceOf(StartupTimeoutError);
      expect(broker.connections()).toBeGreaterThanOrEqual(8);
      // The answer is received a moment after its probe began; the cut ends an answer's bound
      // after the first probe begun the grace after that.
      expect(afterLastAnswer).toBeGreaterThanOrEqual(probes.refusalGraceMs);
      expect(afterLastAnswer).toBeLessThan(probes.refusalGraceMs + probes.answerTimeoutMs + 3_000);
      expect((failure as Error).message).toMatch(
        /^Kafka at .* \(took the connection but answered no Kafka request in 1000 ms\): not reachable/,
      );
    } finally {
      release();
      await broker.close();
    }
  });

  it('a start-up attempt given up on cannot end the process later through ctx.fatal (found by a review: exit 78)', async ({
    expect,
  }) => {
    // What checkRedisDatabase(…, onRefused: ctx.fatal) does once Redis answers, in an attempt that
    // kafkajs kept running after the cut: the embedder had carried on, and its process exited 78.
    const closed = await freePort();
    const { definition, release } = startsWhenReleased('checks-redis-late', ['kafka']);
    let held: ServiceContext | undefined;
    const keeping = defineService({
      name: 'keeps-its-context',
      description: 'test service that keeps its context for a late fatal',
      needs: ['kafka'],
      envShape: {},
      configure: () => undefined,
      async start(ctx) {
        held = ctx;
        return { ready: () => true, stop: async () => {} };
      },
    }) as unknown as ServiceDefinition<never, unknown>;
    const fatals: string[] = [];
    const failure = await startRunner({
      services: [keeping, definition],
      env: { ...env, DRIFTLINE_STARTUP_TIMEOUT: '0', DRIFTLINE_KAFKA_BROKERS: `127.0.0.1:${closed}` },
      logger: silentLogger,
      onFatal: (error) => void fatals.push(error.field),
      startupProbes: probes,
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(StartupTimeoutError);
    held?.fatal(new ConfigError('DRIFTLINE_REDIS_DB', 'refused by the server'));
    release();
    expect(held).toBeDefined();
    expect(fatals).toEqual([]);
  });
});

describe.concurrent('past DRIFTLINE_STARTUP_TIMEOUT: a backend back in time, or always reachable, is not cut', () => {
  it('a 0 timeout rides out a broker whose port opens half the grace in (found by a review: it failed at 0 s)', async ({
    expect,
  }) => {
    const port = await freePort();
    const { definition, calls } = startsOnceReachable(`127.0.0.1:${port}`);
    const started = Date.now();
    let listener: Listener | undefined;
    const opening = sleep(probes.refusalGraceMs / 2).then(async () => {
      listener = await kafkaAnsweringListener(port);
    });
    try {
      const runner = await startRunner({
        services: [definition],
        env: { ...env, DRIFTLINE_STARTUP_TIMEOUT: '0', DRIFTLINE_KAFKA_BROKERS: `127.0.0.1:${port}` },
        logger: silentLogger,
        startupProbes: probes,
      });
      expect(runner.ready()).toBe(true);
      expect(calls.startedAt - started).toBeGreaterThanOrEqual(probes.refusalGraceMs / 2);
      await runner.stop();
    } finally {
      await opening;
      await listener?.close();
    }
  });

  it('a backend that comes back for 3 probes in a row stops the count: down again, it gets the grace again', async ({
    expect,
  }) => {
    // Refused from 0, answering from 0.8 s to 1.8 s (5 probes), refused again: cut at about
    // 1.8 s + the grace, not at the grace.
    const port = await freePort();
    const { definition, release } = startsWhenReleased('waits-for-returning-kafka', ['kafka']);
    const started = Date.now();
    const flapping = (async () => {
      await sleep(800);
      const listener = await kafkaAnsweringListener(port);
      await sleep(1_000);
      await listener.close();
    })();
    try {
      const failure = await startRunner({
        services: [definition],
        env: { ...env, DRIFTLINE_STARTUP_TIMEOUT: '0', DRIFTLINE_KAFKA_BROKERS: `127.0.0.1:${port}` },
        logger: silentLogger,
        startupProbes: probes,
      }).catch((error: unknown) => error);
      const waited = Date.now() - started;
      expect(failure).toBeInstanceOf(StartupTimeoutError);
      expect((failure as Error).message).toMatch(/^Kafka at .* \(connection refused\): not reachable/);
      expect(waited).toBeGreaterThanOrEqual(1_800 + probes.refusalGraceMs);
      expect(waited).toBeLessThan(1_800 + probes.refusalGraceMs + 3_000);
    } finally {
      release();
      await flapping;
    }
  });

  it('a crash-looping broker (up 1.2 probe intervals of every 3.6) is cut as a down one, with one warning (found by a review: 194 s, 65 warnings)', async ({
    expect,
  }) => {
    // One probe that found it reachable started the count over, so it never reached the grace
    // (the review's broker was up 400 ms of every 3 s). Here probes every 300 ms and a 3 s grace
    // (the production ones × 0.3: a wider margin against 3 probes in a row on a loaded machine),
    // and the broker up 360 ms of every 1.08 s: a probe finds it up once, at most twice in a row.
    const slower = { intervalMs: 300, timeoutMs: 600, answerTimeoutMs: 1_500, refusalGraceMs: 3_000 };
    const port = await freePort();
    const { definition, release } = startsWhenReleased('waits-for-crash-looping-kafka', ['kafka']);
    let flapping = true;
    const flaps = (async () => {
      while (flapping) {
        await sleep(720);
        const up = await kafkaAnsweringListener(port);
        await sleep(360);
        await up.close();
      }
    })();
    const warnings: Array<{ obj: object; msg?: string }> = [];
    const started = Date.now();
    const starting = startRunner({
      services: [definition],
      env: { ...env, DRIFTLINE_STARTUP_TIMEOUT: '0', DRIFTLINE_KAFKA_BROKERS: `127.0.0.1:${port}` },
      logger: recordingLogger('warn', warnings),
      startupProbes: slower,
    });
    try {
      const outcome = await Promise.race([starting.catch((error: unknown) => error), sleep(5_400, 'still starting')]);
      expect(outcome).toBeInstanceOf(StartupTimeoutError);
      expect((outcome as Error).message).toMatch(/^Kafka at .* \(connection refused\): not reachable/);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(warnings.filter((w) => w.msg?.startsWith('start-up still under way')).length).toBe(1);
    } finally {
      // Down for good (the old code then cut it the grace later), and the attempt's late start stopped.
      flapping = false;
      await flaps;
      await starting.then((runner) => runner.stop()).catch(() => {});
      release();
    }
  });

  it('a start that works long past timeout + grace while every backend answers is not cut (found by a review: the trainer venv install, exit 69)', async ({
    expect,
  }) => {
    // A broker that answers the probes and a start of its own work: 4 s, a second past the earliest
    // cut (the 1 s timeout and the grace), 5 probes. The first version cut it at max(timeout, 30 s), blaming "a hung server": the
    // trainer's first start (pip, allowed 15 min) at 120 s, its install orphaned.
    const broker = await kafkaAnsweringListener();
    const { definition, calls } = startsOnceReachable(broker.address, 1_000 + probes.refusalGraceMs + 1_000);
    try {
      const runner = await startRunner({
        services: [definition],
        env: { ...env, DRIFTLINE_STARTUP_TIMEOUT: '1s', DRIFTLINE_KAFKA_BROKERS: broker.address },
        logger: silentLogger,
        startupProbes: probes,
      });
      expect(runner.ready()).toBe(true);
      expect(calls).toMatchObject({ starts: 1, stops: 0 });
      await runner.stop();
    } finally {
      await broker.close();
    }
  });

  // A Kafka answer is proof of life. With one 2 s bound on connection and answer, and a broker that
  // took the connection and then failed counted as refused (3 probes reachable in a row to start
  // over), healthy starts were cut past timeout + grace (found by a review, with real kafkajs
  // creating the topic each time: a loaded broker answering in 2.3 s cut at 13 s; 1 answer in 3
  // late at 17 s; a load balancer with 1 backend of 3 gone at 14 s).
  it('a broker that answers every probe later than the connection bound but within the answer bound is not cut (found by a review: a loaded broker)', async ({
    expect,
  }) => {
    const broker = await kafkaAnsweringListener(0, { delayMs: 600 });
    const { definition, calls } = startsOnceReachable(broker.address, 1_000 + probes.refusalGraceMs + 2_000);
    try {
      const runner = await startRunner({
        services: [definition],
        env: { ...env, DRIFTLINE_STARTUP_TIMEOUT: '1s', DRIFTLINE_KAFKA_BROKERS: broker.address },
        logger: silentLogger,
        startupProbes: probes,
      });
      expect(runner.ready()).toBe(true);
      expect(calls).toMatchObject({ starts: 1, stops: 0 });
      await runner.stop();
    } finally {
      await broker.close();
    }
  });

  it('a broker that answers 1 probe in 3 and is silent on the others is not cut (found by a review)', async ({
    expect,
  }) => {
    // Two silent probes take two answer bounds (2 s, the grace): the probe after them answers.
    const broker = await kafkaAnsweringListener(0, { answers: (request) => request % 3 === 0 });
    const { definition, calls } = startsOnceReachable(broker.address, 1_000 + probes.refusalGraceMs + 2_000);
    try {
      const runner = await startRunner({
        services: [definition],
        env: { ...env, DRIFTLINE_STARTUP_TIMEOUT: '1s', DRIFTLINE_KAFKA_BROKERS: broker.address },
        logger: silentLogger,
        startupProbes: probes,
      });
      expect(runner.ready()).toBe(true);
      expect(calls).toMatchObject({ starts: 1, stops: 0 });
      await runner.stop();
    } finally {
      await broker.close();
    }
  });

  it('a load balancer with 1 broker of 3 gone (each third connection closed) is not cut (found by a review)', async ({
    expect,
  }) => {
    const balancer = await roundRobinWithOneClosed();
    const { definition, calls } = startsOnceReachable(balancer.address, 1_000 + probes.refusalGraceMs + 2_000);
    try {
      const runner = await startRunner({
        services: [definition],
        env: { ...env, DRIFTLINE_STARTUP_TIMEOUT: '1s', DRIFTLINE_KAFKA_BROKERS: balancer.address },
        logger: silentLogger,
        startupProbes: probes,
      });
      expect(runner.ready()).toBe(true);
      expect(calls).toMatchObject({ starts: 1, stops: 0 });
      // Probed all along (every 200 ms for 4 s), a third of them closed.
      expect(balancer.connections()).toBeGreaterThan(10);
      await runner.stop();
    } finally {
      await balancer.close();
    }
  });

  it('a Kafka on TLS or SASL is probed by its TCP connection only: one that never answers is not cut', async ({
    expect,
  }) => {
    // A plain-TCP ApiVersions request to a TLS listener is never answered: asking it would cut
    // every start that runs past the timeout. What such a start does against a hung broker is
    // left to kafkajs' own timeouts, as before the probe asked anything.
    const broker = await silentListener();
    const tls = startsWhenReleased('waits-for-a-tls-kafka', ['kafka']);
    const sasl = startsWhenReleased('waits-for-a-sasl-kafka', ['kafka']);
    const releasing = setTimeout(() => {
      tls.release();
      sasl.release();
    }, probes.refusalGraceMs + 500);
    try {
      const kafkaEnv = { ...env, DRIFTLINE_STARTUP_TIMEOUT: '0', DRIFTLINE_KAFKA_BROKERS: broker.address };
      const runners = await Promise.all([
        startRunner({
          services: [tls.definition],
          env: { ...kafkaEnv, DRIFTLINE_KAFKA_SSL: 'true' },
          logger: silentLogger,
          startupProbes: probes,
        }),
        startRunner({
          services: [sasl.definition],
          env: {
            ...kafkaEnv,
            DRIFTLINE_KAFKA_SASL_MECHANISM: 'plain',
            DRIFTLINE_KAFKA_SASL_USERNAME: 'u',
            DRIFTLINE_KAFKA_SASL_PASSWORD: 'p',
          },
          logger: silentLogger,
          startupProbes: probes,
        }),
      ]);
      for (const runner of runners) {
        expect(runner.ready()).toBe(true);
        await runner.stop();
      }
      // Probed all along (every 200 ms for 2.5 s, two runners), not skipped.
      expect(broker.connections()).toBeGreaterThan(10);
    } finally {
      clearTimeout(releasing);
      await broker.close();
    }
  });

  it('/healthz stays 200 while a start runs on past the timeout (found by a review: 503 at twice a short timeout)', async ({
    expect,
  }) => {
    // It went 503 at the timeout and as much grace (at most 1 min; with 0 at once) while the start
    // was still allowed to run, and a liveness probe would have killed it.
    const port = await freePort();
    const { definition, release } = startsWhenReleased('works-a-while');
    const starting = startRunner({
      services: [definition],
      env: { DRIFTLINE_HTTP_PORT: String(port), DRIFTLINE_HTTP_HOST: '127.0.0.1', DRIFTLINE_STARTUP_TIMEOUT: '1s' },
      logger: silentLogger,
    });
    try {
      const live = async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status;
      expect(await eventually(live, 10_000)).toBe(200);
      await sleep(3_000);
      expect(await live()).toBe(200);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(ready.status).toBe(503);
    } finally {
      release();
      await (await starting).stop();
    }
  });
});

describe.concurrent('past DRIFTLINE_STARTUP_TIMEOUT: the production bounds when none is given', () => {
  it('a Kafka that never answers: its answer waited 5 s, cut after 10 s', async ({ expect }) => {
    // The warning says both: the probe's bound in its cause, the grace in giveUpInMs. The start is
    // then let through (its backend "back"), not waited out: the integration tests wait the 10 s.
    const broker = await silentListener();
    const { definition, release } = startsWhenReleased('waits-with-the-default-bounds', ['kafka']);
    const warnings: Array<{ obj: object; msg?: string }> = [];
    const starting = startRunner({
      services: [definition],
      env: { ...env, DRIFTLINE_STARTUP_TIMEOUT: '0', DRIFTLINE_KAFKA_BROKERS: broker.address },
      logger: recordingLogger('warn', warnings),
    });
    try {
      const warning = await eventually(
        async () => warnings.find((w) => w.msg?.startsWith('start-up still under way')),
        10_000,
        20,
      );
      expect(warning.obj).toEqual({
        backend: `Kafka at ${broker.address} (took the connection but answered no Kafka request in 5000 ms)`,
        variable: 'DRIFTLINE_KAFKA_BROKERS',
        giveUpInMs: 10_000,
      });
    } finally {
      release();
      await (await starting).stop();
      await broker.close();
    }
  });

  it('a Kafka that answers is probed once a second', async ({ expect }) => {
    const broker = await kafkaAnsweringListener();
    const { definition, release } = startsWhenReleased('probed-with-the-default-interval', ['kafka']);
    const starting = startRunner({
      services: [definition],
      env: { ...env, DRIFTLINE_STARTUP_TIMEOUT: '0', DRIFTLINE_KAFKA_BROKERS: broker.address },
      logger: silentLogger,
    });
    try {
      await eventually(async () => (broker.connections() > 0 ? true : undefined), 5_000, 20);
      await sleep(2_500);
      // Probes at 0, 1 and 2 s: 3 (2 to 4 on a loaded machine); every 200 ms would be 13.
      const probed = broker.connections();
      expect(probed).toBeGreaterThanOrEqual(2);
      expect(probed).toBeLessThanOrEqual(4);
    } finally {
      release();
      await (await starting).stop();
      await broker.close();
    }
  });
});
