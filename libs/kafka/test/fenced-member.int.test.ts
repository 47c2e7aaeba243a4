import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { committedOffsets, createProducer, describeGroup, ensureTopics, startConsumer } from '../src/index.js';

const stack = inject('stack');
const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));

type Report =
  | { event: 'ready' }
  | { event: 'revoked'; partitions: number[] }
  | { event: 'processed'; partition: number; values: string[] };

/** The fixture consumer in a process of its own (it is SIGSTOPped), with what it reports. */
function spawnMember(env: Record<string, string>): { child: ChildProcess; reports: Report[] } {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--conditions=source', 'libs/kafka/test/fixtures/revoke-reporting-consumer.ts'],
    { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const reports: Report[] = [];
  let pending = '';
  child.stdout?.on('data', (d: Buffer) => {
    const lines = (pending + d.toString()).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (line.trim() !== '') reports.push(JSON.parse(line) as Report);
  });
  return { child, reports };
}

describe('a member pushed out of its group (a pause past the session timeout)', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });

  it('has every partition it owned before revoked when it rejoins, also the ones assigned to it again (found by a review)', async () => {
    const topic = uniqueName('fenced');
    const group = uniqueName('group');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    const producer = await createProducer(kafka);
    cleanup.push(() => producer.disconnect());
    const produce = (from: number, count: number) =>
      producer.send(
        topic,
        Array.from({ length: count }, (_, k) => ({ key: `k${from + k}`, value: Buffer.from(`v${from + k}`) })),
      );
    const committed = async (offset: bigint) =>
      (await committedOffsets(kafka, group, topic)).get(0) === offset ? true : undefined;

    await produce(0, 5);
    const a = spawnMember({ BROKERS: stack.kafkaBrokers.join(','), TOPIC: topic, GROUP: group });
    cleanup.push(async () => {
      a.child.kill('SIGCONT');
      a.child.kill('SIGKILL');
    });
    await eventually(() => committed(5n), 25_000);

    // A freezes (a GC pause, a frozen VM) past its 6 s session: the broker evicts it.
    a.child.kill('SIGSTOP');
    await eventually(async () => ((await describeGroup(kafka, group)).members === 0 ? true : undefined), 20_000, 250);
    // Meanwhile B owns the partition, processes what was written since and commits it, then leaves.
    await produce(5, 5);
    const b = await startConsumer<string>({
      kafka: kafkaFor(stack.kafkaBrokers),
      groupId: group,
      topics: [topic],
      producer,
      logger: silentLogger,
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      processor: { decode: (r) => r.value!.toString(), async process() {} },
    });
    await eventually(() => committed(10n), 20_000);
    await b.stop();
    expect(a.reports.filter((r) => r.event === 'revoked')).toEqual([]);

    // A thaws, rejoins under a new member id and gets the same partition back: what it held in
    // memory from before the pause is stale (B committed past it), so the partition is revoked
    // first. Before, revoked() was never called: the partition was in both assignments.
    a.child.kill('SIGCONT');
    await eventually(async () => (a.reports.some((r) => r.event === 'revoked') ? true : undefined), 20_000);
    expect(a.reports.find((r) => r.event === 'revoked')).toEqual({ event: 'revoked', partitions: [0] });
    // And it goes on from B's commit.
    await produce(10, 1);
    await eventually(
      async () => (a.reports.some((r) => r.event === 'processed' && r.values.includes('v10')) ? true : undefined),
      20_000,
    );
    const afterRevoke = a.reports.slice(a.reports.findIndex((r) => r.event === 'revoked'));
    expect(afterRevoke.flatMap((r) => (r.event === 'processed' ? r.values : []))).toEqual(['v10']);
  }, 40_000);
});
