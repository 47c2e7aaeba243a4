import { SchemaRegistryCodec } from '@driftline/codec';
import { type Logger, silentLogger } from '@driftline/core';
import { committedOffsets, createProducer, ensureTopics, setGroupOffsets, topicOffsets } from '@driftline/kafka';
import { createRedisOnlineStore, type RedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import { contracts, type FeatureEvent } from '@driftline/schemas';
import { type Runner, startRunner } from '@driftline/service';
import { eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { featureMaterializer } from '../src/index.js';
import {
  differences,
  eventLog,
  materializerEnv,
  offlineState,
  onlineState,
  VIEWS_YAML,
  writeViewsFile,
} from './helpers.js';

const stack = inject('stack');

// The materializer's group carries DRIFTLINE_TOPIC_PREFIX like every other service's. Unprefixed,
// two deployments on one cluster shared it: kafkajs' round robin gave each member partitions of the
// other's topics, which it dropped, and those partitions were never read (a stable group, no error).
describe('feature-materializer consumer group and DRIFTLINE_TOPIC_PREFIX', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });
  const kafka = kafkaFor(stack.kafkaBrokers);

  function deployment(prefix: string, group: string, keyPrefix: string, logger: Logger, viewsFile = writeViewsFile()) {
    return async (): Promise<Runner> => {
      const runner = await startRunner({
        services: [featureMaterializer as never],
        logger,
        env: materializerEnv(stack, {
          DRIFTLINE_TOPIC_PREFIX: prefix,
          DRIFTLINE_TOPIC_PARTITIONS: '3',
          DRIFTLINE_FEATURE_VIEWS: viewsFile,
          DRIFTLINE_FEATURE_KEY_PREFIX: keyPrefix,
          DRIFTLINE_MATERIALIZER_GROUP: group,
        }),
      });
      cleanup.push(() => runner.stop());
      return runner;
    };
  }

  /** Sends the events to `topic` as it is (the SDK writes only to `<prefix>features.v1`). */
  async function publish(topic: string, log: readonly FeatureEvent[]): Promise<void> {
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.feature, topic);
    const producer = await createProducer(kafka);
    try {
      const messages = [];
      for (const e of log) messages.push({ key: e.entity_id, value: await codec.encode(e) });
      await producer.send(topic, messages);
    } finally {
      await producer.disconnect();
    }
  }

  async function reader(keyPrefix: string): Promise<RedisOnlineStore> {
    const store = createRedisOnlineStore({ url: stack.redisUrl, tls: false }, { use: 'online-read', keyPrefix });
    cleanup.push(() => store.close());
    await waitReady(store.client);
    return store;
  }

  /** Waits until every row of `log` is online as the offline computation has it. */
  async function materialized(store: RedisOnlineStore, log: readonly FeatureEvent[], timeoutMs = 30_000) {
    const expected = offlineState(log);
    await eventually(
      async () => (differences(expected, await onlineState(store, expected)).length === 0 ? true : undefined),
      timeoutMs,
      200,
    );
  }

  /** How many rows of `log` are online at all. */
  async function rowsOnline(store: RedisOnlineStore, log: readonly FeatureEvent[]): Promise<number> {
    return [...(await onlineState(store, offlineState(log))).values()].filter((row) => row !== undefined).length;
  }

  /** The topic's end offsets, as a group that read everything commits them. */
  async function ends(topic: string): Promise<Map<number, bigint>> {
    return new Map((await topicOffsets(kafka, topic)).map((o) => [o.partition, o.high]));
  }

  async function waitCommitted(group: string, topic: string, want: ReadonlyMap<number, bigint>): Promise<void> {
    await eventually(async () => {
      const got = await committedOffsets(kafka, group, topic);
      return [...want].every(([p, o]) => got.get(p) === o) ? true : undefined;
    }, 30_000);
  }

  const infoLines = (lines: string[]): Logger => {
    const logger: Logger = { ...silentLogger, info: (_obj, msg) => void lines.push(msg ?? ''), child: () => logger };
    return logger;
  };

  it('two deployments with other prefixes and the same group setting are isolated: each reads all its events', async () => {
    const group = uniqueName('materializer'); // as two deployments left at the default share it
    const [a, b] = [`${uniqueName('ga')}.`, `${uniqueName('gb')}.`];
    const [keysA, keysB] = [uniqueName('fka'), uniqueName('fkb')];
    await deployment(a, group, keysA, silentLogger)();
    await deployment(b, group, keysB, silentLogger)();
    const [logA, logB] = [eventLog(600, 60, 31), eventLog(600, 60, 32)];
    await publish(`${a}features.v1`, logA);
    await publish(`${b}features.v1`, logB);
    // Before: 74 of A's 120 rows never came, its partitions 0 and 2 assigned to B's member.
    await materialized(await reader(keysA), logA);
    await materialized(await reader(keysB), logB);
    await waitCommitted(`${a}${group}`, `${a}features.v1`, await ends(`${a}features.v1`));
    await waitCommitted(`${b}${group}`, `${b}features.v1`, await ends(`${b}features.v1`));
  });

  it('upgrading from the unprefixed group: its commits are taken once, nothing read again, nothing skipped', async () => {
    const group = uniqueName('materializer');
    const prefix = `${uniqueName('up')}.`;
    const topic = `${prefix}features.v1`;
    const keyPrefix = uniqueName('fku');
    await ensureTopics(kafka, [{ topic, partitions: 3 }]);
    // What the previous version left: its group `group` read the first events, then it stopped.
    const [before, after, later] = [eventLog(300, 30, 41), eventLog(300, 30, 42), eventLog(300, 30, 43)].map((log, i) =>
      log.map((e) => ({ ...e, entity_id: `${i}:${e.entity_id}` })),
    ) as [FeatureEvent[], FeatureEvent[], FeatureEvent[]];
    await publish(topic, before);
    const oldCommits = await ends(topic);
    await setGroupOffsets(kafka, group, topic, oldCommits);
    await publish(topic, after);

    const lines: string[] = [];
    const start = deployment(prefix, group, keyPrefix, infoLines(lines));
    const first = await start();
    const store = await reader(keyPrefix);
    await materialized(store, after); // nothing skipped
    await waitCommitted(`${prefix}${group}`, topic, await ends(topic));
    expect(await rowsOnline(store, before)).toBe(0); // nothing read again
    expect(lines.filter((l) => l.includes(`took over the offsets of ${group}`))).toHaveLength(1);

    // Once: the old group's commits (moved back, as a stale copy could be) are not taken again.
    await first.stop();
    await setGroupOffsets(kafka, group, topic, new Map([...oldCommits].map(([p]) => [p, 0n])));
    await start();
    await publish(topic, later);
    await materialized(store, later);
    expect(await rowsOnline(store, before)).toBe(0);
    expect(lines.filter((l) => l.includes('took over the offsets'))).toHaveLength(1);
  });

  it('with no topic prefix the group is the configured name: nothing taken, nothing read again', async () => {
    const group = uniqueName('materializer');
    // Its own source topic: the stack's unprefixed features.v1 is shared with other tests.
    const topic = `${uniqueName('np')}.features`;
    const keyPrefix = uniqueName('fkn');
    await ensureTopics(kafka, [{ topic, partitions: 3 }]);
    const [before, after] = [eventLog(200, 20, 51), eventLog(200, 20, 52)].map((log, i) =>
      log.map((e) => ({ ...e, entity_id: `${i}:${e.entity_id}` })),
    ) as [FeatureEvent[], FeatureEvent[]];
    await publish(topic, before);
    await setGroupOffsets(kafka, group, topic, await ends(topic));
    await publish(topic, after);
    const lines: string[] = [];
    const views = writeViewsFile(
      VIEWS_YAML.replaceAll('    entity: user_id\n', `    entity: user_id\n    source: ${topic}\n`),
    );
    await deployment('', group, keyPrefix, infoLines(lines), views)();
    const store = await reader(keyPrefix);
    await materialized(store, after);
    await waitCommitted(group, topic, await ends(topic));
    expect(await rowsOnline(store, before)).toBe(0);
    expect(lines.filter((l) => l.includes('took over the offsets'))).toEqual([]);
  });
});
