import { PoisonRecordError, silentLogger } from '@driftline/core';
import {
  createProducer,
  DLQ_HEADERS,
  ensureTopics,
  REPLAYED_FROM_HEADER,
  startConsumer,
  topicOffsets,
} from '@driftline/kafka';
import { createMetricsRegistry } from '@driftline/observability';
import { brokerProxy, eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { dlqCommand, REPLAY_MARKER_HEADER } from '../src/commands/dlq.js';
import { describeError, EXIT } from '../src/describe-error.js';

const stack = inject('stack');
const kafka = kafkaFor(stack.kafkaBrokers);
const topic = uniqueName('dlq-tool');
const dlq = `${topic}.dlq`;
const big = 'x'.repeat(40_000);
const g1 = uniqueName('dlq-tool-group');
const g2 = uniqueName('dlq-tool-other');

/** Runs the command in this process; its stdout lines. */
async function driftline(...args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += chunk.toString();
    return true;
  });
  try {
    return { code: await dlqCommand(args), out };
  } finally {
    write.mockRestore();
  }
}

const high = async (t: string) => (await topicOffsets(kafka, t)).reduce((n, o) => n + Number(o.high), 0);

beforeAll(async () => {
  process.env.DRIFTLINE_KAFKA_BROKERS = stack.kafkaBrokers.join(',');
  await ensureTopics(kafka, [{ topic }, { topic: dlq }]);
  const producer = await createProducer(kafka);
  await producer.send(topic, [
    { key: 'a', value: Buffer.from('ok-1') },
    { key: 'b', value: Buffer.from('bad-1'), headers: { trace: 't-b' } },
    { key: 'c', value: Buffer.from('bug-1'), headers: { trace: 't-c' } },
    { key: 'd', value: Buffer.from('ok-2') },
    { key: 'e', value: Buffer.from('bug-2') },
    { key: 'f', value: Buffer.from(`bug-${big}`) },
    { key: 'g', value: Buffer.from('ok-3') },
  ]);
  await producer.disconnect();
  // The dead letters are written by the real loop: a poison record, two a processor bug fails among
  // records that pass (dead-lettered at once), and one too large for the DLQ (truncated).
  const dead = await createProducer(kafka);
  const handle = await startConsumer<string>({
    kafka,
    groupId: g1,
    topics: [topic],
    producer: dead,
    logger: silentLogger,
    registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
    deadLetter: { maxBatchBytes: 16 * 1024 },
    processor: {
      decode(record) {
        const v = record.value!.toString();
        if (v.startsWith('bad')) throw new PoisonRecordError('VALIDATION_FAILED', 'bad value');
        return v;
      },
      async process(items) {
        if (items.some((i) => i.value.startsWith('bug'))) throw new TypeError('x is undefined');
      },
    },
  });
  await eventually(async () => ((await high(dlq)) === 4 ? true : undefined), 30_000);
  await handle.stop();
  // A second group of the same topic dead-letters one of the same records: one DLQ serves both.
  const other = await startConsumer<string>({
    kafka,
    groupId: g2,
    topics: [topic],
    producer: dead,
    logger: silentLogger,
    registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
    processor: {
      decode: (record) => record.value!.toString(),
      async process(items) {
        if (items.some((i) => i.value === 'bug-1')) throw new TypeError('y is undefined');
      },
    },
  });
  await eventually(async () => ((await high(dlq)) === 5 ? true : undefined), 30_000);
  await other.stop();
  await dead.disconnect();
});

afterAll(() => {
  delete process.env.DRIFTLINE_KAFKA_BROKERS;
});

describe('driftline dlq', () => {
  it('list counts the dead letters by code and reason', async () => {
    const { code, out } = await driftline('list', '--topic', topic, '--json');
    expect(code).toBe(0);
    const groups = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { code: string; reason: string; count: number; truncated: number });
    expect(groups.map(({ code: c, reason, count, truncated }) => ({ c, reason, count, truncated }))).toEqual([
      { c: 'INTERNAL', reason: 'x is undefined', count: 3, truncated: 1 },
      { c: 'INTERNAL', reason: 'y is undefined', count: 1, truncated: 0 },
      { c: 'VALIDATION_FAILED', reason: 'bad value', count: 1, truncated: 0 },
    ]);
    const text = await driftline('list', '--topic', dlq, '--code', 'VALIDATION_FAILED');
    expect(text.out).toMatch(/^1 dead letter\(s\) of .*\.dlq selected, in 1 group\(s\)\n +1 +VALIDATION_FAILED/);
  });

  it('a broker slow to answer, within --connect-timeout, still lists (the bound waits for the first answer only)', async () => {
    // A hung path that heals: the brokers answer after 1.5 s, inside a 5 s bound.
    const proxy = await brokerProxy(stack.kafkaBrokers[0]!);
    proxy.stall();
    process.env.DRIFTLINE_KAFKA_BROKERS = proxy.broker;
    const resume = setTimeout(() => proxy.resume(), 1_500);
    try {
      const started = Date.now();
      const { code, out } = await driftline('list', '--topic', topic, '--json', '--connect-timeout', '5s');
      expect(code).toBe(0);
      expect(out.trim().split('\n')).toHaveLength(3);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_500);
    } finally {
      clearTimeout(resume);
      process.env.DRIFTLINE_KAFKA_BROKERS = stack.kafkaBrokers.join(',');
      await proxy.close();
    }
  });

  it('replay needs --group when the DLQ holds letters of several groups (a replay reaches every group)', async () => {
    const before = await high(topic);
    await expect(dlqCommand(['replay', '--topic', topic, '--code', 'INTERNAL'])).rejects.toThrow(
      /^--group: is needed: .* holds dead letters of 2 consumer groups/,
    );
    expect(await high(topic)).toBe(before);
  });

  it('replay --dry-run sends nothing; replay sends the selected ones back as they were, not the truncated', async () => {
    const before = await high(topic);
    const dry = await driftline('replay', '--topic', topic, '--code', 'INTERNAL', '--group', g1, '--dry-run');
    expect(dry.out).toMatch(/would replay 2 of 3 selected dead letter\(s\) \(5 read\).*1 truncated/);
    expect(await high(topic)).toBe(before);

    const done = await driftline('replay', '--topic', topic, '--code', 'INTERNAL', '--group', g1);
    expect(done.out).toMatch(/^replayed 2 of 3 selected/);
    const all = await readTopic(kafka, topic, before + 2);
    const replayed = all.slice(before);
    expect(replayed.map((r) => [r.key?.toString(), r.value?.toString()]).sort()).toEqual([
      ['c', 'bug-1'],
      ['e', 'bug-2'],
    ]);
    const c = replayed.find((r) => r.key?.toString() === 'c')!;
    expect(c.headers.trace?.toString()).toBe('t-c');
    expect(Object.keys(c.headers).filter((h) => h.startsWith('driftline.dlq.'))).toEqual([]);
    expect(c.headers[REPLAYED_FROM_HEADER]?.toString()).toMatch(new RegExp(`^${dlq.replaceAll('.', '\\.')}/0/\\d+$`));
    expect(DLQ_HEADERS.code.startsWith('driftline.dlq.')).toBe(true);
  });

  it('refuses a missing topic and a backwards range, naming the option', async () => {
    await expect(dlqCommand(['list'])).rejects.toThrow(/^--topic: is required/);
    await expect(dlqCommand(['replay', '--topic', topic, '--since', '1h', '--until', '2h'])).rejects.toThrow(
      /^--since: must be before --until/,
    );
    await expect(dlqCommand(['purge', '--topic', topic])).rejects.toThrow(/unknown subcommand "purge"/);
  });

  it('names a DLQ the brokers lack at once, and the prefixed one when it exists (found by a review)', async () => {
    // The review's case: `--topic labels.v1` under a prefix failed after 8 attempts with "does not
    // host this topic-partition", naming no topic.
    const prefix = `${uniqueName('pfx')}.`;
    const logical = uniqueName('labels');
    await ensureTopics(kafka, [{ topic: `${prefix}${logical}` }, { topic: `${prefix}${logical}.dlq` }]);
    process.env.DRIFTLINE_TOPIC_PREFIX = prefix;
    try {
      const started = Date.now();
      await expect(dlqCommand(['list', '--topic', logical])).rejects.toThrow(
        `--topic: topic ${logical}.dlq does not exist on the brokers; the services' topic is ${prefix}${logical}.dlq (DRIFTLINE_TOPIC_PREFIX=${prefix}): --topic ${prefix}${logical}`,
      );
      expect(Date.now() - started).toBeLessThan(10_000);
      // Without a prefixed one: the name alone. Replay checks the topic it sends to as well.
      await expect(dlqCommand(['list', '--topic', 'nowhere.v1'])).rejects.toThrow(
        /^--topic: topic nowhere\.v1\.dlq does not exist on the brokers$/,
      );
      // A name the brokers do not hold: exit 3, "check the names given", as for a model version
      // the warehouse lacks (it was exit 2, usage, while the README said 78).
      const missing = await dlqCommand(['list', '--topic', 'nowhere.v1']).catch((error: unknown) =>
        describeError(error, 'driftline dlq --help'),
      );
      expect(missing).toEqual({
        code: EXIT.data,
        line: '--topic: topic nowhere.v1.dlq does not exist on the brokers — check the names given',
      });
      const lone = uniqueName('dlq-only');
      await ensureTopics(kafka, [{ topic: `${lone}.dlq` }]);
      await expect(dlqCommand(['replay', '--topic', lone, '--dry-run'])).rejects.toThrow(
        `--topic: topic ${lone} does not exist on the brokers`,
      );
      expect((await driftline('list', '--topic', `${prefix}${logical}`)).out).toMatch(/^0 dead letter\(s\)/);
    } finally {
      delete process.env.DRIFTLINE_TOPIC_PREFIX;
    }
  });
});

describe('driftline dlq replay: each source record once, across failures and runs', () => {
  const source = uniqueName('dlq-once');
  const letters = `${source}.dlq`;
  const group = uniqueName('dlq-once-group');
  const letter = (offset: number, extra: Record<string, string> = {}) => ({
    key: 'k',
    value: Buffer.from('payload'),
    headers: {
      ...extra,
      [DLQ_HEADERS.topic]: source,
      [DLQ_HEADERS.partition]: '0',
      [DLQ_HEADERS.offset]: String(offset),
      [DLQ_HEADERS.group]: group,
      [DLQ_HEADERS.code]: 'INTERNAL',
      [DLQ_HEADERS.reason]: 'x is undefined',
      [DLQ_HEADERS.failedAt]: new Date().toISOString(),
    },
  });

  beforeAll(async () => {
    await ensureTopics(kafka, [
      { topic: source, partitions: 1 },
      { topic: letters, partitions: 1 },
    ]);
    const producer = await createProducer(kafka);
    // The record fails (letter at DLQ offset 0); an earlier replay sent it back (source offset 1,
    // naming that letter) and the copy failed again (letter at DLQ offset 1).
    await producer.send(source, [{ key: 'k', value: Buffer.from('payload') }]);
    await producer.send(letters, [letter(0)]);
    await producer.send(source, [
      { key: 'k', value: Buffer.from('payload'), headers: { [REPLAYED_FROM_HEADER]: `${letters}/0/0` } },
    ]);
    await producer.send(letters, [letter(1, { [REPLAYED_FROM_HEADER]: `${letters}/0/0` })]);
    await producer.disconnect();
  });

  it('sends a record dead-lettered twice once, and a second run sends nothing', async () => {
    expect(await high(source)).toBe(2);
    const first = await driftline('replay', '--topic', source, '--group', group);
    expect(first.out).toMatch(/^replayed 1 of 2 selected .*1 of a source record already sent/);
    expect(await high(source)).toBe(3);
    const second = await driftline('replay', '--topic', source, '--group', group);
    expect(second.out).toMatch(/^replayed 0 of 2 selected .*2 replayed by an earlier run/);
    expect(await high(source)).toBe(3);
    // The markers are not dead letters: list does not count them as foreign records.
    const listed = await driftline('list', '--topic', source);
    expect(listed.out).toMatch(/^2 dead letter\(s\)/);
  });
});

describe('driftline dlq replay: letters of records never written to the topic', () => {
  const source = uniqueName('dlq-unwritten');
  const letters = `${source}.dlq`;
  const group = uniqueName('dlq-unwritten-group');

  it('sends each one (source offset -1 is no record position: they were all one before)', async () => {
    await ensureTopics(kafka, [
      { topic: source, partitions: 1 },
      { topic: letters, partitions: 1 },
    ]);
    const producer = await createProducer(kafka);
    // The prediction log's dead letters: the record never reached the topic, so no source position.
    await producer.send(
      letters,
      ['p-1', 'p-2'].map((value) => ({
        key: value,
        value: Buffer.from(value),
        headers: {
          [DLQ_HEADERS.topic]: source,
          [DLQ_HEADERS.partition]: '-1',
          [DLQ_HEADERS.offset]: '-1',
          [DLQ_HEADERS.group]: group,
          [DLQ_HEADERS.code]: 'SINK_REJECTED',
          [DLQ_HEADERS.reason]: 'rejected',
          [DLQ_HEADERS.failedAt]: new Date().toISOString(),
        },
      })),
    );
    await producer.disconnect();
    const { out } = await driftline('replay', '--topic', source, '--group', group);
    expect(out).toMatch(/^replayed 2 of 2 selected/);
    expect((await readTopic(kafka, source, 2)).map((r) => r.value?.toString()).sort()).toEqual(['p-1', 'p-2']);
  });
});

describe('driftline dlq replay: a filtered run, then an unfiltered one', () => {
  const source = uniqueName('dlq-filtered');
  const letters = `${source}.dlq`;
  const group = uniqueName('dlq-filtered-group');
  const letter = (code: string, failedAt: number, extra: Record<string, string> = {}) => ({
    key: 'k',
    value: Buffer.from('X'),
    headers: {
      ...extra,
      [DLQ_HEADERS.topic]: source,
      [DLQ_HEADERS.partition]: '0',
      [DLQ_HEADERS.offset]: '0',
      [DLQ_HEADERS.group]: group,
      [DLQ_HEADERS.code]: code,
      [DLQ_HEADERS.reason]: 'boom',
      [DLQ_HEADERS.failedAt]: new Date(failedAt).toISOString(),
    },
  });

  it('sends a record once although its other letter was filtered out (1 → 2 → 2, never 3)', async () => {
    await ensureTopics(kafka, [
      { topic: source, partitions: 1 },
      { topic: letters, partitions: 1 },
    ]);
    const producer = await createProducer(kafka);
    await producer.send(source, [{ key: 'k', value: Buffer.from('X') }]);
    // Dead-lettered twice by one group (redelivered before the commit): INTERNAL, then SINK_REJECTED.
    await producer.send(letters, [letter('INTERNAL', Date.now() - 60_000), letter('SINK_REJECTED', Date.now())]);
    await producer.disconnect();
    expect(await high(source)).toBe(1);
    const filtered = await driftline('replay', '--topic', source, '--code', 'SINK_REJECTED');
    expect(filtered.out).toMatch(/^replayed 1 of 1 selected/);
    expect(await high(source)).toBe(2);
    for (let run = 0; run < 2; run++) {
      const all = await driftline('replay', '--topic', source);
      expect(all.out).toMatch(/^replayed 0 of 2 selected .*2 replayed by an earlier run/);
      expect(await high(source)).toBe(2);
    }

    // The copy fails again after the replay: its letter (naming the letter it was replayed from) is
    // replayable after the next fix, once; the letters from before the replay stay skipped.
    const copy = (await readTopic(kafka, source, 2))[1]!;
    const from = copy.headers[REPLAYED_FROM_HEADER]!.toString();
    const again = await createProducer(kafka);
    await again.send(letters, [letter('INTERNAL', Date.now(), { [REPLAYED_FROM_HEADER]: from })]);
    await again.disconnect();
    const afterFix = await driftline('replay', '--topic', source);
    expect(afterFix.out).toMatch(/^replayed 1 of 3 selected .*2 replayed by an earlier run/);
    expect(await high(source)).toBe(3);
    const last = await driftline('replay', '--topic', source);
    expect(last.out).toMatch(/^replayed 0 of 3 selected .*3 replayed by an earlier run/);
    expect(await high(source)).toBe(3);
  });

  it('still skips a letter named by a marker of the older kind (one marker per letter, no time)', async () => {
    const old = uniqueName('dlq-old-markers');
    const oldLetters = `${old}.dlq`;
    await ensureTopics(kafka, [
      { topic: old, partitions: 1 },
      { topic: oldLetters, partitions: 1 },
    ]);
    const producer = await createProducer(kafka);
    const oldLetter = letter('INTERNAL', Date.now());
    await producer.send(oldLetters, [
      { ...oldLetter, headers: { ...oldLetter.headers, [DLQ_HEADERS.topic]: old } },
      { key: `${oldLetters}/0/0`, value: null, headers: { [REPLAY_MARKER_HEADER]: `${oldLetters}/0/0` } },
    ]);
    await producer.disconnect();
    const { out } = await driftline('replay', '--topic', old);
    expect(out).toMatch(/^replayed 0 of 1 selected .*1 replayed by an earlier run/);
    expect(await high(old)).toBe(0);
  });
});
