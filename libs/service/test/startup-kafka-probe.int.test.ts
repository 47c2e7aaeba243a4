import { connect, createServer, type Socket } from 'node:net';
import { parseHostPort, silentLogger } from '@driftline/core';
import { recordingLogger, uniqueName } from '@driftline/test-support';
import { describe, inject, it } from 'vitest';
import { unreachableBackends } from '../src/backend-reach.js';
import { defineService, type ServiceDefinition, StartupTimeoutError, startRunner } from '../src/index.js';
import { httpListener, type Listener, silentListener } from './fixtures/listeners.js';

const stack = inject('stack');

/** A service whose start creates a topic, and then works `workMs` more: kafkajs' admin requests. */
function createsTopic(topic: string, workMs = 0) {
  const calls = { starts: 0, stops: 0 };
  const definition = defineService({
    name: 'creates-a-topic',
    description: 'test service whose start creates a topic',
    needs: ['kafka'],
    envShape: {},
    configure: () => undefined,
    async start(ctx) {
      calls.starts++;
      await ctx.ensureTopics([{ topic, partitions: 1 }]);
      await new Promise((resolve) => setTimeout(resolve, workMs));
      return { ready: () => true, stop: async () => void calls.stops++ };
    },
  }) as unknown as ServiceDefinition<never, unknown>;
  return { definition, calls };
}

const TIMEOUT_MS = 1_000;
/**
 * STARTUP_REFUSAL_GRACE_MS, STARTUP_PROBE_TIMEOUT_MS and STARTUP_PROBE_ANSWER_TIMEOUT_MS: the
 * production bounds, none given here.
 */
const GRACE_MS = 10_000;
const CONNECT_MS = 2_000;
const ANSWER_MS = 5_000;
/** Past the cut, for a loaded run: the cut is at the lower bounds below, the defect took 253 s. */
const SLACK_MS = 10_000;

/**
 * A start creating its topics against `broker`: how long until it gave up, and what it said. With
 * the production bounds (no `startupProbes`).
 */
async function startAgainst(broker: Listener) {
  const { definition } = createsTopic(uniqueName('never-created'));
  const warnings: Array<{ obj: object; msg?: string }> = [];
  const started = Date.now();
  const failure = await startRunner({
    services: [definition],
    env: { DRIFTLINE_HTTP_PORT: '0', DRIFTLINE_STARTUP_TIMEOUT: '1s', DRIFTLINE_KAFKA_BROKERS: broker.address },
    logger: recordingLogger('warn', warnings),
  }).catch((error: unknown) => error);
  return {
    failure,
    waited: Date.now() - started,
    cutWarnings: warnings.filter((w) => w.msg?.startsWith('start-up still under way')),
  };
}

// kafkajs against a server that takes connections and answers no Kafka request: each of topic
// creation's 8 admin attempts waited its 30 s request timeout, and the runner's TCP probe found the
// broker up, so nothing cut it: 253 s with a 2 s DRIFTLINE_STARTUP_TIMEOUT (found by a review).
describe.concurrent('start-up against a Kafka that takes connections and does not answer (real kafkajs)', () => {
  it('a broker that never answers ends the start at the timeout + the 10 s grace + a probe, naming DRIFTLINE_KAFKA_BROKERS', async ({
    expect,
  }) => {
    const broker = await silentListener();
    try {
      const { failure, waited, cutWarnings } = await startAgainst(broker);
      expect(failure).toBeInstanceOf(StartupTimeoutError);
      expect(failure).toMatchObject({ retriable: true }); // the CLI's exit 69
      expect((failure as Error).message).toMatch(
        new RegExp(
          `^Kafka at ${broker.address.replaceAll('.', '\\.')} \\(took the connection but answered no Kafka request in ${ANSWER_MS} ms\\): not reachable, start-up gave up after (1[6-9]|2\\d)s \\(DRIFTLINE_STARTUP_TIMEOUT=1s\\) — check DRIFTLINE_KAFKA_BROKERS and that it is running$`,
        ),
      );
      // First probe at the timeout, silent at the end of the answer's bound; the cut at the first
      // probe begun the grace later, at the end of its bound.
      expect(waited).toBeGreaterThanOrEqual(TIMEOUT_MS + GRACE_MS + ANSWER_MS);
      expect(waited).toBeLessThan(TIMEOUT_MS + GRACE_MS + ANSWER_MS + SLACK_MS);
      expect(cutWarnings).toHaveLength(1);
    } finally {
      await broker.close();
    }
  }, 60_000);

  it('a broker port where another server answers ends the start the same way, naming what it answered', async ({
    expect,
  }) => {
    const server = await httpListener();
    try {
      const { failure, waited } = await startAgainst(server);
      expect(failure).toBeInstanceOf(StartupTimeoutError);
      expect((failure as Error).message).toMatch(
        new RegExp(
          `^Kafka at ${server.address.replaceAll('.', '\\.')} \\(took the connection but answered a Kafka request with bytes that are not Kafka's \\("HTTP/1\\.1 400 Bad"\\)\\): not reachable, start-up gave up after \\d+s \\(DRIFTLINE_STARTUP_TIMEOUT=1s\\) — check DRIFTLINE_KAFKA_BROKERS and that it is running$`,
        ),
      );
      expect(waited).toBeLessThan(TIMEOUT_MS + GRACE_MS + CONNECT_MS + SLACK_MS);
    } finally {
      await server.close();
    }
  }, 60_000);

  it('the running broker answers the probe: reachable, and a start working past the grace against it is not cut', async ({
    expect,
  }) => {
    const kafka = { kind: 'Kafka', variable: 'DRIFTLINE_KAFKA_BROKERS', probe: 'kafka' as const };
    const bounds = { connectMs: CONNECT_MS, answerMs: ANSWER_MS };
    expect(await unreachableBackends([{ ...kafka, addresses: stack.kafkaBrokers }], bounds)).toEqual([]);
    // Each broker by itself, under the same bounds (a 100 ms bound failed in CI under the suite's load:
    // how fast a loaded broker answers is not this test's claim, that it answers is).
    for (const broker of stack.kafkaBrokers) {
      expect(await unreachableBackends([{ ...kafka, addresses: [broker] }], bounds)).toEqual([]);
    }
    // Probed under the same bounds (500 ms ones are the same speed check), with a short grace; the
    // start works past the earliest cut of a broker taken for silent (the grace + an answer's bound).
    const probes = { intervalMs: 100, timeoutMs: CONNECT_MS, answerTimeoutMs: ANSWER_MS, refusalGraceMs: 500 };
    const { definition, calls } = createsTopic(
      uniqueName('probe-reachable'),
      probes.refusalGraceMs + ANSWER_MS + 1_000,
    );
    const runner = await startRunner({
      services: [definition],
      env: {
        DRIFTLINE_HTTP_PORT: '0',
        DRIFTLINE_STARTUP_TIMEOUT: '0',
        DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
      },
      logger: silentLogger,
      startupProbes: probes,
    });
    try {
      expect(runner.ready()).toBe(true);
      expect(calls).toEqual({ starts: 1, stops: 0 });
    } finally {
      await runner.stop();
    }
  }, 60_000);

  it('a loaded broker answering 2.3 s late (past the connection bound, within the answer bound) does not cut a start working past the grace (found by a review: cut at 13 s)', async ({
    expect,
  }) => {
    // A proxy in front of the running broker that holds each of its answers 2.3 s: kafkajs still
    // creates the topic (the brokers it finds in the metadata it then reaches directly), and the
    // probe, which goes through the proxy, waits for its answer instead of calling it silence.
    const broker = parseHostPort(stack.kafkaBrokers[0] ?? '');
    if (broker === undefined) throw new Error(`not host:port: ${stack.kafkaBrokers[0]}`);
    const sockets = new Set<Socket>();
    const proxy = createServer((client) => {
      const upstream = connect(broker);
      for (const s of [client, upstream]) sockets.add(s.on('close', () => sockets.delete(s)));
      client.on('data', (d) => upstream.write(d));
      upstream.on('data', (d) => setTimeout(() => client.writable && client.write(d), 2_300));
      client.on('error', () => {}).on('close', () => upstream.destroy());
      upstream.on('error', () => {}).on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(proxy.address() as { port: number }).port}`;
    // Work enough to run past the earliest cut of a broker that never answers (timeout + grace +
    // an answer's bound), whenever kafkajs is done.
    const { definition, calls } = createsTopic(uniqueName('probe-slow-broker'), GRACE_MS + ANSWER_MS);
    const warnings: Array<{ obj: object; msg?: string }> = [];
    try {
      const runner = await startRunner({
        services: [definition],
        env: { DRIFTLINE_HTTP_PORT: '0', DRIFTLINE_STARTUP_TIMEOUT: '1s', DRIFTLINE_KAFKA_BROKERS: address },
        logger: recordingLogger('warn', warnings),
      });
      try {
        expect(runner.ready()).toBe(true);
        expect(calls).toEqual({ starts: 1, stops: 0 });
        expect(warnings.filter((w) => w.msg?.startsWith('start-up still under way'))).toEqual([]);
      } finally {
        await runner.stop();
      }
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    }
  }, 90_000);
});
