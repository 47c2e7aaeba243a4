import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createProducer, ensureTopics } from '../src/index.js';

const stack = inject('stack');
const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
/** Long, so that waiting for it is unmistakable: a dynamic member's restart waits about this long. */
const SESSION_MS = 45_000;

type Report =
  | { event: 'started' | 'joined' }
  | { event: 'config-error'; message: string }
  | { event: 'processed'; partition: number; values: string[] };

interface Member {
  readonly child: ChildProcess;
  readonly reports: Report[];
}

describe('static group membership (DRIFTLINE_KAFKA_INSTANCE_ID, KIP-345)', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });

  function spawnMember(env: Record<string, string>): Member {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions=source', 'libs/kafka/test/fixtures/static-member-consumer.ts'],
      {
        cwd: repoRoot,
        env: { ...process.env, BROKERS: stack.kafkaBrokers.join(','), SESSION_MS: String(SESSION_MS), ...env },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    cleanup.push(async () => {
      child.kill('SIGKILL');
    });
    const reports: Report[] = [];
    let pending = '';
    child.stdout?.on('data', (d: Buffer) => {
      const lines = (pending + d.toString()).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) if (line.trim() !== '') reports.push(JSON.parse(line) as Report);
    });
    return { child, reports };
  }

  const seen = (members: readonly Member[]) =>
    new Set(members.flatMap((m) => m.reports.flatMap((r) => (r.event === 'processed' ? r.values : []))));

  /**
   * Two members consume a topic of two partitions; the first is SIGKILLed and started again with
   * the same instance id (or none). Returns ms from the restart to every record written meanwhile
   * consumed (by whichever member).
   */
  async function killAndRestart(ids: { a?: string; b?: string }): Promise<number> {
    const topic = uniqueName('static');
    const group = uniqueName('group');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic, partitions: 2 }]);
    const producer = await createProducer(kafka);
    cleanup.push(() => producer.disconnect());
    const produce = (from: number, count: number) =>
      producer.send(
        topic,
        Array.from({ length: count }, (_, k) => ({ key: `k${from + k}`, value: Buffer.from(`v${from + k}`) })),
      );
    const withId = (id: string | undefined) => (id === undefined ? {} : { INSTANCE_ID: id });
    const joins = (m: Member) => m.reports.filter((r) => r.event === 'joined').length;
    const a = spawnMember({ TOPIC: topic, GROUP: group, ...withId(ids.a) });
    await eventually(async () => (joins(a) >= 1 ? true : undefined), 30_000, 100);
    const b = spawnMember({ TOPIC: topic, GROUP: group, ...withId(ids.b) });
    // b's join rebalances the group: a joins again, and each owns one partition.
    await eventually(async () => (joins(b) >= 1 && joins(a) >= 2 ? true : undefined), 30_000, 100);
    await produce(0, 20);
    await eventually(async () => (seen([a, b]).size === 20 ? true : undefined), 60_000, 100);
    const partitionsOf = (m: Member) =>
      new Set(m.reports.flatMap((r) => (r.event === 'processed' ? [r.partition] : [])));
    expect([partitionsOf(a).size, partitionsOf(b).size]).toEqual([1, 1]);

    a.child.kill('SIGKILL');
    await new Promise((resolve) => a.child.once('exit', resolve));
    await produce(20, 20);
    const restartedAt = Date.now();
    const a2 = spawnMember({ TOPIC: topic, GROUP: group, ...withId(ids.a) });
    const all = [a, b, a2];
    await eventually(async () => (seen(all).size === 40 ? true : undefined), SESSION_MS + 30_000, 100);
    const resumedMs = Date.now() - restartedAt;
    // Nothing lost: every record consumed.
    expect([...seen(all)].sort()).toEqual(Array.from({ length: 40 }, (_, k) => `v${k}`).sort());
    return resumedMs;
  }

  it('a member SIGKILLed and restarted with the same instance id consumes again at once, nothing lost', async () => {
    const resumedMs = await killAndRestart({ a: uniqueName('member-a'), b: uniqueName('member-b') });
    console.log(`static member: every record consumed ${resumedMs} ms after the restart (session ${SESSION_MS} ms)`);
    // A dynamic member's restart waits for the killed member's session timeout (45 s).
    expect(resumedMs).toBeLessThan(15_000);
  }, 120_000);

  it('without an instance id the restart waits about the session timeout (measured)', async () => {
    const resumedMs = await killAndRestart({});
    console.log(`dynamic member: every record consumed ${resumedMs} ms after the restart (session ${SESSION_MS} ms)`);
    expect(resumedMs).toBeGreaterThan(0);
  }, 150_000);

  it('two live processes with one instance id: the older one is fenced with a configuration error naming the variable', async () => {
    const topic = uniqueName('static-fence');
    const group = uniqueName('group');
    const id = uniqueName('dup');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic, partitions: 2 }]);
    const older = spawnMember({ TOPIC: topic, GROUP: group, INSTANCE_ID: id });
    await eventually(async () => (older.reports.some((r) => r.event === 'joined') ? true : undefined), 30_000, 100);
    const newer = spawnMember({ TOPIC: topic, GROUP: group, INSTANCE_ID: id });
    await eventually(async () => (newer.reports.some((r) => r.event === 'joined') ? true : undefined), 30_000, 100);
    await eventually(
      async () => (older.reports.some((r) => r.event === 'config-error') ? true : undefined),
      20_000,
      100,
    );
    const error = older.reports.find((r) => r.event === 'config-error');
    expect(error).toMatchObject({
      message: expect.stringContaining(`another process uses DRIFTLINE_KAFKA_INSTANCE_ID=${id}`),
    });
    // The newer one keeps consuming, and is not fenced in turn.
    const producer = await createProducer(kafka);
    cleanup.push(() => producer.disconnect());
    await producer.send(topic, [{ key: 'x', value: Buffer.from('after') }]);
    await eventually(async () => (seen([newer]).has('after') ? true : undefined), 20_000, 100);
    expect(newer.reports.some((r) => r.event === 'config-error')).toBe(false);
    expect(older.reports.filter((r) => r.event === 'config-error')).toHaveLength(1);
  }, 90_000);
});
