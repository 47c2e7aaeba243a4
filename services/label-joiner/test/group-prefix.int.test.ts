import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { type Logger, silentLogger } from '@driftline/core';
import { createProducer, ensureTopics, setGroupOffsets, topicOffsets } from '@driftline/kafka';
import { contracts } from '@driftline/schemas';
import type { Runner } from '@driftline/service';
import { eventually, kafkaFor, removeTree, uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { consumedAll, fraudLabel, fraudPrediction } from './fixtures/events.js';
import { startJoiner } from './fixtures/runner.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'lj-group-prefix-'));

/** Join events the joiner read, by kind (`prediction`, `label`), whatever their outcome. */
async function eventsRead(runner: Runner): Promise<Record<string, number>> {
  const text = await runner.context.registry.getSingleMetricAsString('driftline_joiner_events_total');
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^driftline_joiner_events_total\{[^}]*kind="(\w+)"[^}]*\} (\d+)$/gm)) {
    out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
  }
  return out;
}

// The joiner's group carries DRIFTLINE_TOPIC_PREFIX like every other service's. Unprefixed, two
// deployments on one cluster shared it: kafkajs' round robin gave each member partitions of the
// other's topics, which it dropped, and those partitions were never read (a stable group, no error).
describe('label-joiner consumer group and DRIFTLINE_TOPIC_PREFIX (real Kafka, registry, Redis, ClickHouse)', () => {
  const runners: Runner[] = [];
  afterAll(async () => {
    for (const runner of runners.splice(0).reverse()) await runner.stop().catch(() => {});
    await removeTree(dir);
  });
  const kafka = kafkaFor(stack.kafkaBrokers);
  const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl });

  async function start(prefix: string, group: string, logger: Logger = silentLogger): Promise<Runner> {
    const database = uniqueName('ljgp').replaceAll('-', '_');
    const vars = {
      DRIFTLINE_TOPIC_PARTITIONS: '3',
      DRIFTLINE_JOINER_GROUP: group,
      DRIFTLINE_JOINER_MAX_LABEL_DELAY: '1h',
    };
    const runner = await startJoiner(stack, prefix, database, dir, vars, logger);
    runners.push(runner);
    return runner;
  }

  const topicsOf = (prefix: string) => [
    `${prefix}${contracts.prediction.defaultTopic}`,
    `${prefix}${contracts.label.defaultTopic}`,
  ];

  /** Predictions `<tag>-0` … `<tag>-<n-1>` and their labels, sent to the deployment's topics. */
  async function publish(prefix: string, tag: string, n: number): Promise<void> {
    const ids = Array.from({ length: n }, (_, i) => `${tag}-${i}`);
    const now = Date.now();
    const [predictionTopic, labelTopic] = topicsOf(prefix) as [string, string];
    const pc = codec.forTopic(contracts.prediction, predictionTopic);
    const lc = codec.forTopic(contracts.label, labelTopic);
    const producer = await createProducer(kafka);
    try {
      const predictions = ids.map(async (id) => ({
        key: id,
        value: await pc.encode(fraudPrediction(id, now - 60_000)),
      }));
      await producer.send(predictionTopic, await Promise.all(predictions));
      const labels = ids.map(async (id) => ({ key: id, value: await lc.encode(fraudLabel(id, now - 30_000)) }));
      await producer.send(labelTopic, await Promise.all(labels));
    } finally {
      await producer.disconnect();
    }
  }

  it('two deployments with other prefixes and the same group setting are isolated: each reads all its events', async () => {
    const group = uniqueName('joiner'); // as two deployments left at the default share it
    const [a, b] = [`${uniqueName('lga')}.`, `${uniqueName('lgb')}.`];
    const runnerA = await start(a, group);
    const runnerB = await start(b, group);
    await publish(a, 'a', 30);
    await publish(b, 'b', 30);
    // Before: the partitions kafkajs gave the other deployment's member were never read.
    for (const [runner, prefix] of [
      [runnerA, a],
      [runnerB, b],
    ] as const) {
      await eventually(async () => {
        const read = await eventsRead(runner);
        return read.prediction === 30 && read.label === 30 ? true : undefined;
      }, 30_000);
      for (const topic of topicsOf(prefix)) await consumedAll(kafka, `${prefix}${group}`, topic);
    }
  });

  it('upgrading from the unprefixed group: its commits are taken, nothing read again, nothing skipped', async () => {
    const group = uniqueName('joiner');
    const prefix = `${uniqueName('lgu')}.`;
    await ensureTopics(
      kafka,
      topicsOf(prefix).map((topic) => ({ topic, partitions: 3 })),
    );
    // What the previous version left: its group `group` read the first events, then it stopped.
    await publish(prefix, 'before', 20);
    for (const topic of topicsOf(prefix)) {
      const ends = new Map((await topicOffsets(kafka, topic)).map((o) => [o.partition, o.high]));
      await setGroupOffsets(kafka, group, topic, ends);
    }
    await publish(prefix, 'after', 20);
    const lines: string[] = [];
    const logger: Logger = { ...silentLogger, info: (_obj, msg) => void lines.push(msg ?? ''), child: () => logger };
    const runner = await start(prefix, group, logger);
    for (const topic of topicsOf(prefix)) await consumedAll(kafka, `${prefix}${group}`, topic);
    // Exactly the 20 sent since: none of the first 20 again, none of the last skipped.
    expect(await eventsRead(runner)).toEqual({ prediction: 20, label: 20 });
    expect(lines.filter((l) => l.includes(`took over the offsets of ${group}`))).toHaveLength(1);
  });
});
