// Kafka gone in the middle of `dlq list` or `replay`, after the first call (bounded by
// --connect-timeout) was answered: one line, exit 69, within readToEnd's bound of 15 s. Before, a
// hung broker listed "0 dead letter(s)" after 60 s with a note blaming transaction markers, exit 0,
// and a refusing one failed after 214 s with "the consumer crashed", exit 1 (found by the review of
// 7be691c).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createProducer, ensureTopics } from '@driftline/kafka';
import { type BrokerProxy, brokerProxy, kafkaFor, uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it } from 'vitest';
import { bundledCli } from './bundled-cli.js';

const stack = inject('stack');
const cwd = fileURLToPath(new URL('..', import.meta.url));
const cliMain = bundledCli('dlq-outage');

/**
 * readToEnd's bound on Kafka's silence (15 s), its leave after it (1 s), and the bundle's start-up on
 * a loaded machine (measured: 17.7 s in all, 20.9 s at a load average of 10; before, 63 s and more).
 */
const WITHIN_MS = 15_000 + 1_000 + 12_000;

/** Runs the bundled CLI with only DRIFTLINE_KAFKA_BROKERS of DRIFTLINE_*; its exit, output and time. */
function driftline(
  args: readonly string[],
  brokers: string,
): Promise<{ status: number | null; stdout: string; stderr: string; ms: number }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('DRIFTLINE_')));
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliMain(), ...args], {
      cwd,
      env: { ...clean, DRIFTLINE_KAFKA_BROKERS: brokers },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr, ms: Date.now() - started }));
  });
}

/**
 * Runs `action` on the proxy once a client opened its third connection through it: the topic check
 * (the first call, under --connect-timeout) uses two, the read's own calls come after it.
 */
function onceReading(proxy: BrokerProxy, action: () => void): () => void {
  const poll = setInterval(() => {
    if (proxy.connections() < 3) return;
    clearInterval(poll);
    action();
  }, 1);
  return () => clearInterval(poll);
}

describe.concurrent('driftline dlq: Kafka gone in the middle of the read', () => {
  /** A DLQ of 50 records of 100 KB (not dead letters: counted apart), read in several fetches. */
  async function bigDlq(): Promise<string> {
    const topic = uniqueName('dlq-outage');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq` }]);
    const producer = await createProducer(kafka);
    try {
      await producer.send(
        `${topic}.dlq`,
        Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, value: Buffer.alloc(100_000, i) })),
      );
    } finally {
      await producer.disconnect();
    }
    return topic;
  }

  const silentCases: ReadonlyArray<readonly [sub: 'list' | 'replay', options: readonly string[], after: string]> = [
    ['list', [], 'nothing listed'],
    [
      'replay',
      ['--dry-run'],
      'what was sent is marked, so a run once Kafka answers skips it \\(a batch in flight may be sent twice\\)',
    ],
  ];
  it.for(silentCases)(
    'a broker gone silent (%s): one line naming the topic and the silence, exit 69, nothing printed',
    { timeout: 90_000 },
    async ([sub, options, after], { onTestFinished }) => {
      const topic = await bigDlq();
      const proxy = await brokerProxy(stack.kafkaBrokers[0]!);
      onTestFinished(() => proxy.close());
      onTestFinished(onceReading(proxy, () => proxy.stall()));
      const run = await driftline(['dlq', sub, '--topic', topic, ...options], proxy.broker);
      expect(run.stderr).toMatch(
        new RegExp(
          `^driftline: reading ${topic}\\.dlq: no complete answer from Kafka for 15s \\(a broker hung or unreachable, or one fetch slower than that\\); \\d+ record\\(s\\) read before, the read is incomplete — ${after}; check that the brokers are up \\(DRIFTLINE_KAFKA_BROKERS\\) and run it again \\(a slow link: a longer --connect-timeout\\)\\n$`,
        ),
      );
      expect(run.stdout).toBe('');
      expect(run.status).toBe(69);
      expect(run.ms).toBeLessThan(WITHIN_MS);
    },
  );

  it('a broker refusing connections: one line, exit 69, nothing listed', async ({ onTestFinished }) => {
    const topic = await bigDlq();
    const proxy = await brokerProxy(stack.kafkaBrokers[0]!);
    onTestFinished(() => proxy.close());
    onTestFinished(onceReading(proxy, () => void proxy.refuse()));
    const run = await driftline(['dlq', 'list', '--topic', topic], proxy.broker);
    // kafkajs gives up on the refused connections first (its connect, or its fetch loop crashing),
    // or the bound ends the read.
    expect(run.stderr).toMatch(
      new RegExp(
        `^driftline: reading ${topic}\\.dlq: (no complete answer from Kafka for 15s|.*ECONNREFUSED).*; \\d+ record\\(s\\) read before, the read is incomplete — nothing listed; check that the brokers are up \\(DRIFTLINE_KAFKA_BROKERS\\) and run it again \\(a slow link: a longer --connect-timeout\\)\\n$`,
      ),
    );
    expect(run.stdout).toBe('');
    expect(run.status).toBe(69);
    expect(run.ms).toBeLessThan(WITHIN_MS);
  }, 90_000);
});
