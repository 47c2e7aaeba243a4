// Kafka gone in the middle of `dlq list` or `replay`, after the first call (bounded by
// --connect-timeout) was answered: one line, exit 69, within readToEnd's bound of 15 s. Before, a
// hung broker listed "0 dead letter(s)" after 60 s with a note blaming transaction markers, exit 0,
// and a refusing one failed after 214 s with "the consumer crashed", exit 1 (found by the review of
// 7be691c).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createProducer, DLQ_HEADERS, ensureTopics, type OutboundMessage, topicOffsets } from '@driftline/kafka';
import { type BrokerProxy, brokerProxy, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it } from 'vitest';
import { bundledCli } from './bundled-cli.js';

const stack = inject('stack');
const cwd = fileURLToPath(new URL('..', import.meta.url));
const cliMain = bundledCli('dlq-outage');

/**
 * readToEnd's bound on Kafka's silence (15 s), its leave after it (1 s), and the bundle's start-up on
 * a loaded machine (measured: 17.7 s in all, 20.9 s at a load average of 10, 28.7 s in a fresh clone
 * beside five helpers, 55–58 s in one at a load average of 25; before, a refused read failed after
 * 214 s, and a hung one ended after 60 s with exit 0, which the line and status checks catch).
 */
const WITHIN_MS = 15_000 + 1_000 + 45_000;

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
    ['replay', ['--dry-run'], 'nothing was sent \\(--dry-run\\)'],
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

// Kafka gone while `dlq replay` writes (the records it sends back, or their markers): it exited 1
// with the producer's bare line ("producing to X failed: …", or "no answer from Kafka within 60000
// ms" after a minute), while a listing against the same broker exited 69. Now one line, exit 69,
// naming Kafka and the cause and saying what was marked, what was in flight and what a run after
// it does — checked by doing that run: every letter reaches the topic, none lost, and only those
// of the batch in flight can come twice.
// Beside the reads above (which mostly wait on a silent proxy), but the two replays of 12,000 letters
// one after the other: both at once load the machine their bounds are timed on.
describe.concurrent('driftline dlq replay: Kafka gone while it writes', () => {
  let replaying: Promise<unknown> = Promise.resolve();
  /** Runs `work` once every replay started before it has ended (passed or failed). */
  function oneReplayAtATime(work: () => Promise<void>): Promise<void> {
    const mine = replaying.then(work);
    replaying = mine.catch(() => {});
    return mine;
  }

  /** Dead letters per DLQ: small ones, so one fetch (1 MB) makes a batch of thousands, sent in 100s. */
  const LETTERS = 12_000;
  /**
   * The send's bound (15 s, as the read's), the bundle's start and the first pass over the DLQ; the
   * read's leave is not waited for (it added 10 s, the producer's disconnect 5 s more). Measured:
   * 21 s for the command at a load average of 17 (33 s with node's start), 54 s at 25; before, 60 s
   * for the send alone, and exit 1 with the producer's bare line (the line and status checks).
   */
  const WRITE_WITHIN_MS = 15_000 + 45_000;

  /** A topic and its DLQ of `count` letters of one group, each of its own source record (`v-<i>`). */
  async function replayable(count: number, topicConfig: Record<string, string> = {}): Promise<string> {
    const topic = uniqueName('dlq-replay-outage');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [
      { topic, partitions: 1, config: topicConfig },
      { topic: `${topic}.dlq`, partitions: 1 },
    ]);
    const failedAt = new Date().toISOString();
    const letter = (i: number): OutboundMessage => ({
      key: `k${i}`,
      value: Buffer.from(`v-${i}`),
      headers: {
        [DLQ_HEADERS.topic]: topic,
        [DLQ_HEADERS.partition]: '0',
        [DLQ_HEADERS.offset]: String(i),
        [DLQ_HEADERS.group]: 'replay-outage-group',
        [DLQ_HEADERS.code]: 'INTERNAL',
        [DLQ_HEADERS.reason]: 'x is undefined',
        [DLQ_HEADERS.failedAt]: failedAt,
      },
    });
    const producer = await createProducer(kafka);
    try {
      for (let i = 0; i < count; i += 2_000) {
        await producer.send(
          `${topic}.dlq`,
          Array.from({ length: Math.min(2_000, count - i) }, (_, j) => letter(i + j)),
        );
      }
    } finally {
      await producer.disconnect();
    }
    return topic;
  }

  /**
   * Runs `action` once the replay's records passed `after` on `topic` (read on the stack, not the
   * proxy): past the first batch (the producer above wrote 2,000 letters a record batch, and a
   * fetch takes one), the second batch is being sent and the first one is marked.
   */
  function onceSending(topic: string, action: () => void, after = 2_000): () => void {
    const kafka = kafkaFor(stack.kafkaBrokers);
    let stopped = false;
    void (async () => {
      while (!stopped) {
        const high = await topicOffsets(kafka, topic).then(
          (o) => o.reduce((n, p) => n + Number(p.high), 0),
          () => 0,
        );
        if (high > after) {
          action();
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    return () => {
      stopped = true;
    };
  }

  /** What the run after the stopped one does: exit 0, and the source topic then holds every letter. */
  async function rerunHoldsEveryLetter(topic: string, marked: number, unmarked: number): Promise<void> {
    const rerun = await driftline(['dlq', 'replay', '--topic', topic], stack.kafkaBrokers.join(','));
    expect(rerun.stderr).toBe('');
    expect(rerun.status).toBe(0);
    const sent = /^replayed (\d+) of (\d+) selected/.exec(rerun.stdout);
    expect(sent?.[2]).toBe(String(LETTERS));
    if (marked > 0) expect(rerun.stdout).toContain(`; ${marked} replayed by an earlier run (skipped)`);
    expect(Number(sent?.[1])).toBe(LETTERS - marked);
    const kafka = kafkaFor(stack.kafkaBrokers);
    const high = (await topicOffsets(kafka, topic)).reduce((n, p) => n + Number(p.high), 0);
    const values = (await readTopic(kafka, topic, high, 60_000)).map((r) => r.value?.toString());
    const seen = new Map<string, number>();
    for (const v of values) seen.set(String(v), (seen.get(String(v)) ?? 0) + 1);
    // No letter lost; twice at most, and only as many as the line said were in flight unmarked.
    expect(seen.size).toBe(LETTERS);
    const twice = [...seen.values()].filter((n) => n > 1);
    expect(twice.every((n) => n === 2)).toBe(true);
    expect(twice.length).toBeLessThanOrEqual(unmarked);
  }

  /** The line's counts: sent back and marked, and in flight unmarked. */
  const progressOf = (line: string) => {
    const counts = /— (\d+) sent back and marked before; (\d+) of the batch in flight are not marked/.exec(line);
    return { marked: Number(counts?.[1]), unmarked: Number(counts?.[2]) };
  };

  const after = (topic: string) =>
    `(\\d+) sent back and marked before; (\\d+) of the batch in flight are not marked and may have reached ${topic}; no dead letter is lost: a run once Kafka answers skips the \\1 marked and sends the rest, those \\2 possibly a second time; check that the brokers are up \\(DRIFTLINE_KAFKA_BROKERS\\) and run it again \\(a slow link: a longer --connect-timeout\\)`;

  /** A fault on the proxy once the replay sends, and the line it must give (`broker`: the proxy's address). */
  interface SendFault {
    readonly name: string;
    readonly act: (proxy: BrokerProxy) => void;
    readonly line: (topic: string, broker: string) => RegExp;
    /** Whether some of the batch in flight must be unmarked (a stall holds the write's answer). */
    readonly unmarkedSeen: boolean;
    /** The command's bound: a hang guard, not a speed check. */
    readonly withinMs: number;
  }
  const sendFaults: readonly SendFault[] = [
    {
      name: 'gone silent',
      act: (proxy) => proxy.stall(),
      line: (topic, broker) =>
        new RegExp(
          `^driftline: replaying ${topic}\\.dlq to ${topic}: Kafka at ${broker} did not take the write: producing to ${topic}(?:\\.dlq)?: no answer from Kafka within 15000 ms — ${after(topic)}\\n$`,
        ),
      unmarkedSeen: true,
      withinMs: WRITE_WITHIN_MS,
    },
    {
      name: 'refusing connections',
      act: (proxy) => void proxy.refuse(),
      // The write fails on the refused connections, or the read does first (its consumer crashing):
      // either way one line, exit 69, with what was marked and what a rerun does.
      line: (topic, broker) =>
        new RegExp(
          `^driftline: (?:replaying ${topic}\\.dlq to ${topic}: Kafka at ${broker} did not take the write: producing to ${topic}(?:\\.dlq)?.*|reading ${topic}\\.dlq: .*; \\d+ record\\(s\\) read before, the read is incomplete) — ${after(topic)}\\n$`,
        ),
      unmarkedSeen: false,
      // Refused connections run kafkajs' reconnect retries (and the read's consumer may crash and
      // restart first) before the line: 57 s once in a fresh-clone run, against 40 s for a stall.
      withinMs: WRITE_WITHIN_MS + 50_000,
    },
  ];
  it.for(sendFaults)(
    'a broker $name while the replay sends: one line, exit 69; a rerun sends the rest',
    {
      // Its own time and the replay's before it (180 s each).
      timeout: 360_000,
    },
    (fault, { onTestFinished }) =>
      oneReplayAtATime(async () => {
        const topic = await replayable(LETTERS);
        const proxy = await brokerProxy(stack.kafkaBrokers[0]!);
        onTestFinished(() => proxy.close());
        onTestFinished(onceSending(topic, () => fault.act(proxy)));
        const run = await driftline(['dlq', 'replay', '--topic', topic], proxy.broker);
        expect(run.stderr).toMatch(fault.line(topic, proxy.broker));
        expect(run.stdout).toBe('');
        expect(run.status).toBe(69);
        expect(run.ms).toBeLessThan(fault.withinMs);
        const { marked, unmarked } = progressOf(run.stderr);
        if (fault.unmarkedSeen) expect(unmarked).toBeGreaterThan(0);
        await rerunHoldsEveryLetter(topic, marked, unmarked);
      }),
  );

  it('a letter the topic refuses as too large: exit 1 with the reason, not 69 (retrying cannot help)', {
    timeout: 120_000,
  }, async () => {
    const topic = await replayable(3, { 'max.message.bytes': '100' });
    const run = await driftline(['dlq', 'replay', '--topic', topic], stack.kafkaBrokers.join(','));
    expect(run.stderr).toMatch(
      new RegExp(
        `^driftline: replaying ${topic}\\.dlq to ${topic}: Kafka at ${stack.kafkaBrokers.join(', ')} refused the write: producing to ${topic} refused \\((MESSAGE_TOO_LARGE|RECORD_LIST_TOO_LARGE)\\): .* — 0 sent back and marked before; 3 of the batch in flight are not marked and may have reached ${topic}; no dead letter is lost: a run after a fix skips the 0 marked and sends the rest, those 3 possibly a second time; a run before the fix is refused again .*\\n$`,
      ),
    );
    expect(run.status).toBe(1);
  });
});
