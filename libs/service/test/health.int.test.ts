import { SinkUnavailableError, silentLogger } from '@driftline/core';
import {
  committedOffsets,
  createProducer,
  describeGroup,
  describeTopic,
  type KafkaClient,
  topicOffsets,
} from '@driftline/kafka';
import { eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { defineService, type Runner, type ServiceDefinition, startRunner } from '../src/index.js';

const stack = inject('stack');

/** A service whose sink fails while `failing.on` is set (a retriable outage, like Redis down). */
function flakySink(topic: string, group: string, failing: { on: boolean }) {
  const definition = defineService({
    name: 'flaky',
    description: 'test service with a sink that can fail',
    needs: ['kafka'],
    envShape: {},
    configure: () => undefined,
    async start(ctx) {
      const consumer = await ctx.consume<string>({
        groupId: group,
        topics: [topic],
        backoff: { initialMs: 100, maxMs: 300, multiplier: 2, jitter: 0 },
        processor: {
          decode: (r) => r.value?.toString() ?? '',
          async process() {
            if (failing.on) throw new SinkUnavailableError('the sink is down');
          },
        },
      });
      return { ready: () => consumer.ready(), stop: () => consumer.stop() };
    },
  });
  return definition as unknown as ServiceDefinition<never, unknown>;
}

/**
 * A service whose sink call hangs until `release()` (a call without a deadline: wedged in this
 * process), after failing retriably `failuresFirst` times (an outage, then a hang).
 */
function hangingSink(topic: string, group: string, failuresFirst = 0) {
  let failures = failuresFirst;
  let release = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const definition = defineService({
    name: 'hanging',
    description: 'test service whose sink call hangs',
    needs: ['kafka'],
    envShape: {},
    configure: () => undefined,
    async start(ctx) {
      const consumer = await ctx.consume<string>({
        groupId: group,
        topics: [topic],
        backoff: { initialMs: 100, maxMs: 200, multiplier: 2, jitter: 0 },
        processor: {
          decode: (r) => r.value?.toString() ?? '',
          process: async () => {
            if (failures-- > 0) throw new SinkUnavailableError('the sink is down');
            await released;
          },
        },
      });
      return { ready: () => consumer.ready(), stop: () => consumer.stop() };
    },
  });
  return { service: definition as unknown as ServiceDefinition<never, unknown>, release: () => release() };
}

async function status(runner: Runner, path: '/healthz' | '/readyz') {
  const res = await fetch(`http://127.0.0.1:${runner.httpPort}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function lagMetric(runner: Runner): Promise<string> {
  return (await fetch(`http://127.0.0.1:${runner.httpPort}/metrics`).then((r) => r.text()))
    .split('\n')
    .filter((l) => l.startsWith('driftline_consumer_lag{'))
    .join('\n');
}

describe('health tells the truth about a stuck partition', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });

  it('a sink failing longer than DRIFTLINE_STALL_TIMEOUT fails readiness, not liveness: a restart cures no sink', async () => {
    const prefix = `${uniqueName('stall')}.`;
    const topic = `${prefix}events`;
    const group = `${prefix}group`;
    const failing = { on: true };
    const runner = await startRunner({
      services: [flakySink(topic, group, failing)],
      env: {
        DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
        DRIFTLINE_TOPIC_PREFIX: prefix,
        // Two partitions: the one retried, and one waiting behind it (kafkajs hands the loop one
        // partition's batch at a time), whose lag is read from the group's offsets.
        DRIFTLINE_TOPIC_PARTITIONS: '2',
        DRIFTLINE_HTTP_PORT: '0',
        DRIFTLINE_STALL_TIMEOUT: '2s',
      },
      logger: silentLogger,
    });
    cleanup.push(() => runner.stop());
    const kafka: KafkaClient = kafkaFor(stack.kafkaBrokers);
    // Created through the context: min.insync.replicas set on the topic (auto = 1 on the local single broker).
    expect((await describeTopic(kafka, topic)).overrides['min.insync.replicas']).toBe('1');
    const producer = await createProducer(kafka);
    for (const partition of [0, 1])
      await producer.send(
        topic,
        Array.from({ length: 5 }, (_, i) => ({ key: `k${i}`, value: Buffer.from(`v${i}`), partition })),
      );
    await producer.disconnect();

    await eventually(async () => ((await status(runner, '/readyz')).status === 503 ? true : undefined), 20_000);
    // Every member restarted at the stall timeout through a long outage, into a start-up that
    // needed the same sink: a crash loop (found by a review).
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    expect((await status(runner, '/healthz')).status).toBe(200);
    expect((await status(runner, '/readyz')).status).toBe(503);
    const metrics = await fetch(`http://127.0.0.1:${runner.httpPort}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(
      new RegExp(`driftline_consumer_backing_off\\{group="${group}",topic="${topic}",partition="\\d"[^}]*\\} 1`),
    );
    expect(metrics).not.toMatch(/driftline_consumer_stalled\{[^}]*\} 1/);
    // Lag on the committed offset (nothing committed: all 5 of each), labelled with the consumer group.
    for (const partition of [0, 1])
      expect(await lagMetric(runner)).toMatch(
        new RegExp(`driftline_consumer_lag\\{group="${group}",topic="${topic}",partition="${partition}"[^}]*\\} 5`),
      );

    failing.on = false;
    await eventually(async () => ((await status(runner, '/healthz')).status === 200 ? true : undefined), 20_000);
    await eventually(async () => ((await status(runner, '/readyz')).status === 200 ? true : undefined), 20_000);
    const [high] = await topicOffsets(kafka, topic);
    expect((await committedOffsets(kafka, group, topic)).get(0)).toBe(high?.high);
    expect(await lagMetric(runner)).toMatch(/\} 0$/m);
  });

  it.each([
    ['at once', 0],
    ['after failing retriably (a retry that hangs: the outage no longer hid it)', 3],
  ])(
    '/healthz turns 503 when a sink call hangs past DRIFTLINE_STALL_TIMEOUT %s, and recovers when it returns',
    async (_when, failuresFirst) => {
      const prefix = `${uniqueName('hang')}.`;
      const topic = `${prefix}events`;
      const hanging = hangingSink(topic, `${prefix}group`, failuresFirst);
      cleanup.push(async () => hanging.release());
      const runner = await startRunner({
        services: [hanging.service],
        env: {
          DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
          DRIFTLINE_TOPIC_PREFIX: prefix,
          DRIFTLINE_TOPIC_PARTITIONS: '1',
          DRIFTLINE_HTTP_PORT: '0',
          DRIFTLINE_STALL_TIMEOUT: '2s',
        },
        logger: silentLogger,
      });
      cleanup.push(() => runner.stop());
      const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
      await producer.send(
        topic,
        Array.from({ length: 5 }, (_, i) => ({ key: `k${i}`, value: Buffer.from(`v${i}`) })),
      );
      await producer.disconnect();
      const started = Date.now();
      const stalled = await eventually(async () => {
        const h = await status(runner, '/healthz');
        return h.status === 503 ? h : undefined;
      }, 20_000);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_500);
      expect(stalled.body).toMatchObject({ status: 'unavailable', stalled: [{ topic, partition: 0, lag: 5 }] });
      hanging.release();
      await eventually(async () => ((await status(runner, '/healthz')).status === 200 ? true : undefined), 20_000);
    },
  );

  it("a service's log lines carry each key once (the consumer's `component` repeated the runner's)", async () => {
    const { PassThrough } = await import('node:stream');
    const { createLogger } = await import('@driftline/observability');
    const prefix = `${uniqueName('logs')}.`;
    const topic = `${prefix}events`;
    const lines: string[] = [];
    const out = new PassThrough();
    out.on('data', (chunk: Buffer) =>
      lines.push(
        ...chunk
          .toString()
          .split('\n')
          .filter((l) => l !== ''),
      ),
    );
    const failing = { on: true };
    const runner = await startRunner({
      services: [flakySink(topic, `${prefix}group`, failing)],
      env: {
        DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
        DRIFTLINE_TOPIC_PREFIX: prefix,
        DRIFTLINE_TOPIC_PARTITIONS: '1',
        DRIFTLINE_HTTP_PORT: '0',
      },
      logger: createLogger({ service: 'driftline', level: 'info', destination: out }),
    });
    cleanup.push(() => runner.stop());
    const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
    await producer.send(topic, [{ key: 'k', value: Buffer.from('v') }]);
    await producer.disconnect();
    // The consumer's own line: a failed batch, retried.
    await eventually(async () => (lines.some((l) => l.includes('batch failed')) ? true : undefined), 20_000);
    failing.on = false;
    for (const line of lines) {
      const keys = [...line.matchAll(/[{,]"([^"]+)":/g)].map((m) => m[1]);
      expect(keys.length, line).toBe(new Set(keys).size);
    }
    expect(lines.find((l) => l.includes('batch failed'))).toMatch(/"component":"flaky".*"stage":"consumer"/);
  });

  it('models.v1, whoever creates it, keeps its events for good (stages are rebuilt from all of it)', async () => {
    const prefix = `${uniqueName('retain')}.`;
    const runner = await startRunner({
      services: [flakySink(`${prefix}models.v1`, `${prefix}group`, { on: false })],
      env: {
        DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
        DRIFTLINE_TOPIC_PREFIX: prefix,
        DRIFTLINE_TOPIC_PARTITIONS: '1',
        DRIFTLINE_HTTP_PORT: '0',
      },
      logger: silentLogger,
    });
    cleanup.push(() => runner.stop());
    const overrides = (await describeTopic(kafkaFor(stack.kafkaBrokers), `${prefix}models.v1`)).overrides;
    expect([overrides['retention.ms'], overrides['retention.bytes']]).toEqual(['-1', '-1']);
  });

  it('a service whose start fails after it started a consumer leaves no member in the group (found by a review)', async () => {
    const prefix = `${uniqueName('failed-start')}.`;
    const group = `${prefix}group`;
    const failing = defineService({
      name: 'half-started',
      description: 'starts a consumer, then fails its start',
      needs: ['kafka'],
      envShape: {},
      configure: () => undefined,
      async start(ctx) {
        const consumer = await ctx.consume<string>({
          groupId: group,
          topics: [`${prefix}in`],
          processor: { decode: (r) => r.value?.toString() ?? '', async process() {} },
        });
        await eventually(async () => (consumer.ready() ? true : undefined));
        throw new SinkUnavailableError('the second consumer could not start');
      },
    }) as unknown as ServiceDefinition<never, unknown>;
    await expect(
      startRunner({
        services: [failing],
        env: {
          DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
          DRIFTLINE_TOPIC_PREFIX: prefix,
          DRIFTLINE_TOPIC_PARTITIONS: '1',
          DRIFTLINE_HTTP_PORT: '0',
          // A retriable failure: start-up is retried (every attempt left a consumer behind) until this.
          DRIFTLINE_STARTUP_TIMEOUT: '15s',
        },
        logger: silentLogger,
      }),
    ).rejects.toThrow(/could not start/);
    const kafka = kafkaFor(stack.kafkaBrokers);
    expect((await describeGroup(kafka, group)).members).toBe(0);
  }, 60_000);

  it('/healthz and /readyz turn 503 naming a service that says it is broken for good', async () => {
    const state = { healthy: true };
    const broken = defineService({
      name: 'broken',
      description: 'test service whose worker can die',
      needs: [],
      envShape: {},
      configure: () => undefined,
      async start() {
        return { ready: () => true, healthy: () => state.healthy, stop: async () => {} };
      },
    }) as unknown as ServiceDefinition<never, unknown>;
    const runner = await startRunner({ services: [broken], env: { DRIFTLINE_HTTP_PORT: '0' }, logger: silentLogger });
    cleanup.push(() => runner.stop());
    expect((await status(runner, '/healthz')).status).toBe(200);
    state.healthy = false;
    const h = await status(runner, '/healthz');
    expect(h.status).toBe(503);
    expect(JSON.stringify(h.body)).toContain('"unhealthy":["broken"]');
    expect((await status(runner, '/readyz')).status).toBe(503);
  });

  it('an idle consumer with nothing to catch up on stays healthy past the stall timeout', async () => {
    const prefix = `${uniqueName('idle')}.`;
    const runner = await startRunner({
      services: [flakySink(`${prefix}events`, `${prefix}group`, { on: true })],
      env: {
        DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
        DRIFTLINE_TOPIC_PREFIX: prefix,
        DRIFTLINE_HTTP_PORT: '0',
        DRIFTLINE_STALL_TIMEOUT: '1s',
      },
      logger: silentLogger,
    });
    cleanup.push(() => runner.stop());
    // Joined first: a sleep from before the join proved nothing about the stall check.
    await eventually(async () => (runner.ready() ? true : undefined), 20_000);
    await new Promise((r) => setTimeout(r, 2_000));
    expect((await status(runner, '/healthz')).status).toBe(200);
  });
});
