// The prediction log on its worker thread through Kafka outages: a broker killed and restarted (a
// refused connection for seconds) and a broker paused with SIGSTOP (a hung one). Those run on a
// stack of its own (they restart Kafka), so they leave the shared stack alone and run beside the
// other integration files; the producer's deadline test needs a hung broker only, a proxy in front
// of the shared stack's that goes silent, and runs meanwhile.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { DriftlineError, type Logger } from '@driftline/core';
import { createProducer, ensureTopics, topicOffsets } from '@driftline/kafka';
import { createMetricsRegistry } from '@driftline/observability';
import { contracts } from '@driftline/schemas';
import { pauseComponent, restartComponent, type StackEndpoints, stackDown, stackUp } from '@driftline/stack';
import { brokerProxy, eventually, freePort, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { afterAll, beforeAll, describe, inject, it } from 'vitest';
import { startThreadLog } from '../src/log-thread.js';
import { loggedPrediction as prediction, writeVersion } from './fixtures.js';
import { deploymentTopics, spawnServer } from './stack-fixtures.js';

const stackDir = mkdtempSync(join(tmpdir(), 'driftline-log-outage-stack-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Bound and wait of the log under test: small, so an outage of seconds fills it. */
const MAX_BUFFERED = 3_000;
const MAX_WAIT_MS = 300;
const PER_REQUEST = 50;
const MAX_BATCH = 500;

/**
 * Appends PER_REQUEST records every ~10 ms (about 5,000 a second, as batch requests would) until
 * stopped; counts what was admitted and refused, and how long each refusal waited.
 */
function traffic(log: Awaited<ReturnType<typeof startThreadLog>>) {
  const admitted: number[] = [];
  const refusedIds: number[] = [];
  const refusalWaits: number[] = [];
  const unexpected: unknown[] = [];
  const notAlive: number[] = [];
  let next = 0;
  let running = true;
  const done = (async () => {
    while (running) {
      const ids = Array.from({ length: PER_REQUEST }, () => next++);
      const began = Date.now();
      if (!log.alive()) notAlive.push(began);
      try {
        await log.append(ids.map(prediction));
        admitted.push(...ids);
      } catch (error) {
        if (error instanceof DriftlineError && /prediction log backlog full/.test(error.message)) {
          refusedIds.push(...ids);
          refusalWaits.push(Date.now() - began);
        } else unexpected.push(error);
      }
      await sleep(10);
    }
  })();
  return {
    admitted,
    refusedIds,
    refusalWaits,
    unexpected,
    notAlive,
    async stop() {
      running = false;
      await done;
    },
  };
}

/** The log's own lines (kafkajs's included), kept for the message of a failed expectation. */
function recordingLogger(lines: string[], bindings: Record<string, unknown> = {}): Logger {
  const line = (level: string) => (obj: object, msg?: string) =>
    lines.push(`${new Date().toISOString()} ${level} ${msg ?? ''} ${JSON.stringify({ ...bindings, ...obj })}`);
  return {
    debug: () => {},
    info: line('info'),
    warn: line('warn'),
    error: line('error'),
    child: (more) => recordingLogger(lines, { ...bindings, ...more }),
  };
}

// The two suites run at once (each `describe.concurrent`); the tests of the stack of its own one
// after the other (`it.sequential`): they restart and pause its Kafka.
describe.concurrent('prediction log thread through Kafka outages (a stack of its own)', () => {
  let endpoints: StackEndpoints;
  beforeAll(async () => {
    ({ endpoints } = await stackUp({ stateDir: stackDir }));
  }, 180_000);
  afterAll(async () => {
    await stackDown({ stateDir: stackDir });
    rmSync(stackDir, { recursive: true, force: true });
  }, 60_000);

  it.sequential('holds records through a broker restart and a paused broker, refuses only beyond its bound, loses none', async ({
    expect,
  }) => {
    const kafka = kafkaFor(endpoints.kafkaBrokers);
    const topic = `${uniqueName('logoutage')}.predictions.v1`;
    await ensureTopics(kafka, [{ topic, partitions: 2 }]);
    const lost: number[] = [];
    const lines: string[] = [];
    const marks: string[] = [];
    const mark = (what: string) => marks.push(`${new Date().toISOString()} ${what}`);
    const log = await startThreadLog(
      {
        kafka: { brokers: endpoints.kafkaBrokers, clientId: 'log-outage-test', ssl: false },
        registry: { url: endpoints.schemaRegistryUrl },
        topic,
      },
      {
        maxBuffered: MAX_BUFFERED,
        maxWaitMs: MAX_WAIT_MS,
        flushIntervalMs: 20,
        maxBatch: MAX_BATCH,
        onLost: (n) => lost.push(n),
      },
      recordingLogger(lines),
    );
    // The first send connects, reads metadata and registers the schema: on a loaded machine that
    // outlasts the bound (0.6 s of traffic), so it happens before the traffic starts.
    await log.append([prediction(-1)]);
    expect(await log.drain(60_000)).toBe(0);
    const load = traffic(log);
    try {
      // Kafka up: the log keeps pace, a second without a refusal. Not the first second: a loaded
      // machine's broker may stall past the bound (0.6 s of traffic + the wait) now and then.
      await eventually(
        async () => {
          const before = load.refusedIds.length;
          await sleep(1_000);
          return load.refusedIds.length === before ? true : undefined;
        },
        30_000,
        0,
      );
      const refusedUp = load.refusedIds.length;
      // A crash: connections refused until the restarted broker answers.
      mark('kafka restart');
      await restartComponent('kafka', { stateDir: stackDir });
      mark('kafka restarted');
      const refusedByRestart = load.refusedIds.length;
      await sleep(2_000);
      // A hung broker: connections open, nothing answered.
      await pauseComponent('kafka', true, { stateDir: stackDir });
      mark('kafka paused');
      await sleep(5_000);
      await pauseComponent('kafka', false, { stateDir: stackDir });
      mark('kafka resumed');
      await sleep(3_000);
      await load.stop();
      mark('traffic stopped');
      const left = await log.drain(90_000);
      mark(`drained, ${left} left`);
      expect(left, [...marks, ...lines.slice(-60)].join('\n')).toBe(0);
      expect(refusedByRestart).toBeGreaterThan(refusedUp); // both outages outlasted the bound (3,000 ≈ 0.6 s of traffic)
      expect(load.refusedIds.length).toBeGreaterThan(refusedByRestart);
    } finally {
      await load.stop();
      await log.close(30_000);
    }
    expect(load.unexpected).toEqual([]);
    expect(load.notAlive).toEqual([]); // an outage is not a dead log thread: liveness holds
    expect(lost).toEqual([]);
    // A refusal comes only after the wait for room (back-pressure first), never before.
    expect(Math.min(...load.refusalWaits)).toBeGreaterThanOrEqual(MAX_WAIT_MS - 5);
    // Traffic was admitted again after each outage, not only before the first.
    expect(load.admitted.length).toBeGreaterThan(2 * MAX_BUFFERED);

    // Every admitted record is in the topic once; no refused one is.
    const total = (await topicOffsets(kafka, topic)).reduce((a, o) => a + Number(o.high), 0);
    const codec = new SchemaRegistryCodec({ url: endpoints.schemaRegistryUrl }).forTopic(contracts.prediction, topic);
    const records = await readTopic(kafka, topic, total, 60_000);
    const ids = await Promise.all(records.map(async (r) => (await codec.decode(r.value)).prediction_id));
    const seen = new Set(ids);
    const replaced = lines.filter((l) => l.includes('producer replaced by a fresh one'));
    process.stderr.write(
      `[log-outage] ${JSON.stringify({ admitted: load.admitted.length, refused: load.refusedIds.length, in_topic: ids.length, distinct: seen.size, producers_replaced: replaced.length, longest_refusal_wait_ms: Math.max(...load.refusalWaits) })}\n${replaced.length > 0 ? `${[...marks, ...replaced].join('\n')}\n` : ''}`,
    );
    const missing = load.admitted.filter((i) => !seen.has(`p-${i}`));
    expect(missing).toEqual([]);
    expect(load.refusedIds.filter((i) => seen.has(`p-${i}`))).toEqual([]);
    // The same producer's resend of a batch that landed before the broker died is dropped by the
    // broker (idempotence). Only a fresh producer (new id) can write a batch twice: one per replacement.
    expect(ids.length - seen.size).toBeLessThanOrEqual(replaced.length * MAX_BATCH);
    expect(seen.size).toBe(load.admitted.length + 1); // and the warm-up record
  }, 240_000);

  it.sequential('a broker restart does not fail the health of a server that keeps answering (its models.v1 follower rejoins)', async ({
    expect,
  }) => {
    const dir = mkdtempSync(join(tmpdir(), 'model-server-health-'));
    const prefix = `${uniqueName('mshealth')}.`;
    writeVersion(dir, 'fraud', 'v1', 21, 20, 4);
    await deploymentTopics(endpoints, prefix, dir).stage('fraud', 'PROMOTED', 'v1');
    const port = await freePort();
    const server = spawnServer(endpoints, dir, prefix, port, { DRIFTLINE_FEATURE_KEY_PREFIX: uniqueName('mshealth') });
    const base = `http://127.0.0.1:${port}`;
    const status = (path: string, init?: RequestInit) =>
      fetch(`${base}${path}`, init).then(
        (r) => r.status,
        () => 0,
      );
    const predict = () =>
      status('/v1/models/fraud:predict', {
        method: 'POST',
        body: JSON.stringify({ entity_id: 'u1', features: { f0: 0.5, f1: 1, f2: -0.2, f3: 1 } }),
      });
    try {
      // A hang guard: a process's start-up on a heavily loaded machine took over 60 s (load average 28).
      await eventually(
        async () => ((await status('/healthz')) === 200 && (await predict()) === 200 ? true : undefined),
        120_000,
        200,
      );
      await restartComponent('kafka', { stateDir: stackDir });
      // The old follower's session (30 s) runs out while it rejoins: the server answers throughout.
      const health: number[] = [];
      const answers: number[] = [];
      for (const until = Date.now() + 35_000; Date.now() < until; ) {
        health.push(await status('/healthz'));
        answers.push(await predict());
        await sleep(500);
      }
      expect(answers.filter((s) => s !== 200)).toEqual([]);
      expect(health.filter((s) => s !== 200)).toEqual([]); // it was 503 for ~30 s before
    } finally {
      server.child.kill('SIGKILL');
      await server.exit;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});

describe.concurrent('prediction log producer with Kafka hung (the shared stack, through a proxy)', () => {
  it("replaces the log's producer when a send or a connect goes unanswered past its deadline, and sends through the fresh one", async ({
    expect,
  }) => {
    const stack = inject('stack');
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = `${uniqueName('deadline')}.predictions.v1`;
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    const proxy = await brokerProxy(stack.kafkaBrokers[0]!);
    const registry = createMetricsRegistry({ service: 'log-outage-test', defaultMetrics: false });
    const producer = await createProducer(kafkaFor([proxy.broker]), {
      registry,
      health: { replaceAfterMs: 60_000, sendDeadlineMs: 2_000 },
    });
    const message = (i: number) => ({ key: `k${i}`, value: Buffer.from(`v${i}`) });
    try {
      await producer.send(topic, [message(0)]);
      proxy.stall(); // a hung broker: the send is never answered
      const unanswered = {
        code: 'SINK_UNAVAILABLE',
        retriable: true,
        message: expect.stringContaining('no answer from Kafka within 2000 ms'),
      };
      try {
        await expect(producer.send(topic, [message(1)])).rejects.toMatchObject(unanswered);
        // Still hung: the fresh producer's connect is never answered either (connections are
        // accepted), and fails at the same deadline instead of kafkajs's request timeouts.
        const started = performance.now();
        await expect(producer.send(topic, [message(1)])).rejects.toMatchObject(unanswered);
        expect(performance.now() - started).toBeLessThan(10_000); // the 2 s deadline, not kafkajs's 30 s; slack for a loaded run
      } finally {
        proxy.resume();
      }
      await producer.send(topic, [message(1), message(2)]); // through a fresh producer
    } finally {
      await producer.disconnect();
      await proxy.close();
    }
    const replaced = await registry.getSingleMetricAsString('driftline_producer_replaced_total');
    expect(replaced).toMatch(/^driftline_producer_replaced_total\{[^}]*\} 2$/m);
    // Everything sent is there; the abandoned send may have landed too (at-least-once).
    const total = (await topicOffsets(kafka, topic)).reduce((a, o) => a + Number(o.high), 0);
    const values = (await readTopic(kafka, topic, total, 30_000)).map((r) => r.value?.toString());
    expect(new Set(values)).toEqual(new Set(['v0', 'v1', 'v2']));
    expect(total).toBeLessThanOrEqual(4);
  }, 120_000);
});
