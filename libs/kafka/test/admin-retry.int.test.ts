// An admin call through a Kafka outage, with production's kafkajs timing: kafkajs reconnects inside
// every admin call with its instance's cluster retry, which was the client's (100 ms doubling, 8
// retries; the rest from kafkajs' defaults). In production its reconnects grew to ~6 and ~13 s
// apart (up to 30 s), and a service's start-up went on that long after Kafka answered again: a
// drift-monitor spawned during a Kafka restart logged "started" a median 10.8 s after the broker
// took connections again, 2.8 s with ADMIN_RETRY. The call runs in a process of its own with
// NODE_ENV unset: under vitest kafkajs fills unstated fields from its test defaults (at most 1 s
// apart), where the old timing never showed. Not timed: kafkajs logs each refused connect of the
// seed broker with its retry count and the wait before the next one, and those are checked.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { brokerProxy, kafkaFor, uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it } from 'vitest';
import { ADMIN_RETRY } from '../src/admin.js';
import { topicOffsets } from '../src/index.js';

const stack = inject('stack');
const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
/** The client's own cluster retry count: past it, its chain of reconnects had given up. */
const CLIENT_RETRIES = 8;

interface Line {
  readonly t: number;
  readonly msg: string;
  readonly retryCount?: number;
  readonly retryTime?: number;
}

describe('an admin call through a Kafka outage (a proxy in front of the shared broker)', () => {
  it('reconnects at most ADMIN_RETRY.maxRetryTime apart, past the client retry count, and succeeds once Kafka answers', async ({
    onTestFinished,
  }) => {
    const proxy = await brokerProxy(stack.kafkaBrokers[0]!);
    onTestFinished(() => proxy.close());
    await proxy.refuse(0);
    const topic = uniqueName('admin-outage');
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env))
      if (k !== 'NODE_ENV' && !k.startsWith('DRIFTLINE_') && v !== undefined) env[k] = v;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions=source', 'libs/kafka/test/fixtures/admin-through-outage.ts'],
      { cwd: repoRoot, env: { ...env, BROKERS: proxy.broker, TOPIC: topic }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    onTestFinished(() => {
      child.kill('SIGKILL');
    });
    const lines: Line[] = [];
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    let restored: Promise<void> | undefined;
    let pending = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      for (let i = pending.indexOf('\n'); i !== -1; i = pending.indexOf('\n')) {
        const line = JSON.parse(pending.slice(0, i)) as Line;
        pending = pending.slice(i + 1);
        lines.push(line);
        // Kafka back once the refusal has outlasted the client's retry count, or at once when a
        // wait longer than the stated maximum shows (the old timing: its next reconnect may be 30 s off).
        if (
          restored === undefined &&
          line.msg.startsWith('Failed to connect to seed broker') &&
          ((line.retryCount ?? 0) >= CLIENT_RETRIES || (line.retryTime ?? 0) > ADMIN_RETRY.maxRetryTime)
        )
          restored = proxy.restore();
      }
    });
    const status = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', resolve);
    });
    await restored;
    const retries = lines.filter((l) => l.msg.startsWith('Failed to connect to seed broker'));
    const seen = JSON.stringify(retries.map((l) => [l.retryCount, l.retryTime]));
    expect(status, stderr).toBe(0);
    expect(lines.at(-1)?.msg).toBe('done');
    // Every wait before the next reconnect within the stated maximum (the client's: the 8th ≥ 2.1 s).
    expect(Math.max(...retries.map((l) => l.retryTime ?? Number.NaN)), seen).toBeLessThanOrEqual(
      ADMIN_RETRY.maxRetryTime,
    );
    // One chain of reconnects rode the refusal out, past the client's count: 0, 1, 2, … with no restart.
    expect(
      retries.map((l) => l.retryCount),
      seen,
    ).toEqual(retries.map((_, i) => i));
    expect(retries.length, seen).toBeGreaterThan(CLIENT_RETRIES);
    // The call's work was done once Kafka answered.
    expect(await topicOffsets(kafkaFor(stack.kafkaBrokers), topic)).toHaveLength(1);
  }, 90_000);
});
