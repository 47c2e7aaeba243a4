// A consumer group through a Kafka restart, on a stack of its own (it restarts the broker; the
// shared stack is never touched). The consumer crashes while the broker is down (kafkajs gives up
// retrying) and its LeaveGroup reaches no broker, so the restarted broker loads the group with the
// member still in it. kafkajs restarted the consumer as a new member, and the coordinator held
// that join until the old member's session timed out: nothing consumed for a session timeout after
// Kafka answered again (~30 s per group per broker restart in the chaos run). The patch
// (patches/kafkajs@2.2.4.patch) rejoins under the crashed member's id. A 60 s session here, far
// above the bound; the old code failed it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMetricsRegistry } from '@driftline/observability';
import { restartComponent, stackDown, stackUp } from '@driftline/stack';
import { brokerProxy, eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { createProducer, describeGroup, ensureTopics, startConsumer } from '../src/index.js';
import { it } from './per-test-cleanup.js';
import { recordingLogger } from './recording-logger.js';

const stateDir = mkdtempSync(join(tmpdir(), 'driftline-broker-restart-stack-'));
const SESSION_TIMEOUT_MS = 60_000;
/** Generous for a loaded 2-core machine, far below the session timeout the old code waited out. */
const RESUME_BOUND_MS = 25_000;

describe('a consumer group through a broker restart (a stack of its own)', () => {
  let brokers: string[];
  beforeAll(async () => {
    ({
      endpoints: { kafkaBrokers: brokers },
    } = await stackUp({ stateDir }));
  });
  afterAll(async () => {
    await stackDown({ stateDir });
    rmSync(stateDir, { recursive: true, force: true });
  }, 60_000);

  it('consumes again within the bound after Kafka answers, well under the 60 s session timeout, and leaves the group on stop', async ({
    cleanup,
  }) => {
    const kafka = kafkaFor(brokers);
    // The consumer's connections go through a proxy that stays closed until the consumer crashed,
    // however fast the broker comes back (its Kafka is the real one, restarted).
    const proxy = await brokerProxy(brokers[0]!);
    cleanup.push(() => proxy.close());
    const topic = uniqueName('restart');
    const groupId = uniqueName('restart-group');
    await ensureTopics(kafka, [{ topic, partitions: 1, replicationFactor: 1 }]);
    const producer = await createProducer(kafka);
    cleanup.push(() => producer.disconnect());
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const consumedAt: number[] = [];
    const lines: string[] = [];
    const handle = await startConsumer<Buffer>({
      kafka: kafkaFor([proxy.broker]),
      groupId,
      topics: [topic],
      sessionTimeoutMs: SESSION_TIMEOUT_MS,
      producer,
      logger: recordingLogger(lines),
      registry,
      processor: {
        decode: (r) => r.value ?? Buffer.alloc(0),
        process: async (items) => {
          if (items.length > 0) consumedAt.push(Date.now());
        },
      },
    });
    cleanup.push(() => handle.stop());
    // Steady traffic, through the outage too (sends then fail, retriable).
    let producing = true;
    const traffic = (async () => {
      for (let n = 0; producing; n++) {
        await producer.send(topic, [{ key: `k${n}`, value: Buffer.from(`v${n}`) }]).catch(() => {});
        await sleep(200);
      }
    })();
    cleanup.push(async () => {
      producing = false;
      await traffic;
    });
    await eventually(async () => (consumedAt.length > 0 ? true : undefined), 60_000);

    await proxy.refuse();
    await restartComponent('kafka', { stateDir });
    // The case at hand: kafkajs crashed the consumer while the broker was down (it gives up after
    // ~25 s of refused connections: startConsumer states kafkajs' retry timing in full, so
    // NODE_ENV=test runs the production timing, not kafkajs' test defaults' ~5 s).
    const restarts = async () =>
      Number(
        /^driftline_consumer_restarts_total\{[^}]*\} (\S+)$/m.exec(
          await registry.getSingleMetricAsString('driftline_consumer_restarts_total'),
        )?.[1] ?? 0,
      );
    await eventually(async () => ((await restarts()) > 0 ? true : undefined), 60_000);
    await proxy.restore();
    const answered = Date.now();
    while (!consumedAt.some((t) => t > answered) && Date.now() - answered < RESUME_BOUND_MS) await sleep(100);
    const resumedMs = (consumedAt.find((t) => t > answered) ?? Date.now()) - answered;
    expect(
      resumedMs,
      `ms from Kafka answering again to the first record consumed (session timeout ${SESSION_TIMEOUT_MS} ms); the consumer's lines:\n${lines.filter((l) => /crash|member id|recovered/.test(l)).join('\n')}\n`,
    ).toBeLessThan(RESUME_BOUND_MS);

    // A stop still leaves the group (it does not wait for the session to time out).
    await handle.stop();
    expect(await describeGroup(kafka, groupId)).toEqual({ state: 'Empty', members: 0 });
  }, 120_000);
});
