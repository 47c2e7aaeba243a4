import { SchemaRegistryCodec } from '@driftline/codec';
import type { Logger } from '@driftline/core';
import { parseFeatureViewsText } from '@driftline/features';
import { createProducer, DLQ_HEADERS, topicOffsets } from '@driftline/kafka';
import { createRedisOnlineStore, type RedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import { contracts, type FeatureEvent } from '@driftline/schemas';
import { type Runner, startRunner } from '@driftline/service';
import { eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { featureMaterializer } from '../src/index.js';
import { materializerEnv, writeViewsFile } from './helpers.js';

const stack = inject('stack');

const WITH_OLD = 'views:\n  - name: profile\n    entity: user_id\n    features: { x: double, old: double }\n';
const WITHOUT_OLD = 'views:\n  - name: profile\n    entity: user_id\n    features: { x: double }\n';
const OLD_REMOVED = `${WITHOUT_OLD}    removed_features: [old]\n`;

interface Line {
  readonly level: string;
  readonly fields: Record<string, unknown>;
  readonly msg: string;
}

function recordingLogger(lines: Line[]): Logger {
  const at =
    (level: string) =>
    (fields: object, msg?: string): void =>
      void lines.push({ level, fields: fields as Record<string, unknown>, msg: msg ?? '' });
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    warn: at('warn'),
    error: at('error'),
    child: () => logger,
  };
  return logger;
}

// A feature removed from a view while producers still send it (or sent by a producer before every
// materializer has the view file that declares it): the event was dead-lettered whole, so the
// entity's row froze at its last event before the change (found by a review).
describe('feature-materializer across a change of its view file', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });
  const kafka = kafkaFor(stack.kafkaBrokers);
  // Each test its own topics, group and keys (set by `isolate`).
  let prefix = '';
  let keyPrefix = '';
  let topic = '';
  function isolate(): void {
    prefix = `${uniqueName('vchange')}.`;
    keyPrefix = uniqueName('vchange').replaceAll('-', '_');
    topic = `${prefix}features.v1`;
  }

  async function start(views: string, logger: Logger): Promise<Runner> {
    const runner = await startRunner({
      services: [featureMaterializer as never],
      logger,
      env: materializerEnv(stack, {
        DRIFTLINE_TOPIC_PREFIX: prefix,
        DRIFTLINE_TOPIC_PARTITIONS: '1',
        DRIFTLINE_FEATURE_VIEWS: writeViewsFile(views),
        DRIFTLINE_FEATURE_KEY_PREFIX: keyPrefix,
      }),
    });
    cleanup.push(() => runner.stop());
    return runner;
  }

  async function publish(events: ReadonlyArray<Omit<FeatureEvent, 'view'>>): Promise<void> {
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.feature, topic);
    const producer = await createProducer(kafka);
    try {
      const messages = [];
      for (const e of events) messages.push({ key: e.entity_id, value: await codec.encode({ ...e, view: 'profile' }) });
      await producer.send(topic, messages);
    } finally {
      await producer.disconnect();
    }
  }

  async function reader(): Promise<RedisOnlineStore> {
    const store = createRedisOnlineStore({ url: stack.redisUrl, tls: false }, { use: 'online-read', keyPrefix });
    cleanup.push(() => store.close());
    await waitReady(store.client);
    return store;
  }

  const dlqCount = async () =>
    (await topicOffsets(kafka, `${topic}.dlq`).catch(() => [])).reduce((n, o) => n + Number(o.high), 0);

  it('values of a feature the view no longer declares are ignored, counted and warned of; the declared ones are written', async () => {
    isolate();
    const store = await reader();
    const v1 = parseFeatureViewsText(WITH_OLD).get('profile')!;
    const v2 = parseFeatureViewsText(WITHOUT_OLD).get('profile')!;
    const now = Date.now();

    const first = await start(WITH_OLD, recordingLogger([]));
    await publish([{ event_id: 'e1', entity_id: 'u1', event_time: now - 5_000, features: { x: 1, old: 2 } }]);
    await eventually(async () => ((await store.read(v1, 'u1'))?.features.old === 2 ? true : undefined), 30_000);
    await first.stop();

    // Restarted (same group) with "old" removed from the view; the producer still sends it.
    const lines: Line[] = [];
    const second = await start(WITHOUT_OLD, recordingLogger(lines));
    await publish([
      { event_id: 'e2', entity_id: 'u1', event_time: now - 1_000, features: { x: 5, old: 2 } },
      // Only undeclared names: nothing to write (written, it would blank u2's row): poison.
      { event_id: 'e3', entity_id: 'u2', event_time: now - 1_000, features: { old: 3 } },
      { event_id: 'e4', entity_id: 'u3', event_time: now - 1_000, features: { x: 7, old: 4 } },
    ]);
    // One partition, in order: u3's row written means e2 and e3 were handled.
    await eventually(async () => ((await store.read(v2, 'u3'))?.features.x === 7 ? true : undefined), 30_000);
    expect(await store.read(v2, 'u1')).toMatchObject({ eventTime: now - 1_000, features: { x: 5 } });
    expect((await store.read(v2, 'u1'))?.features).toEqual({ x: 5 });
    expect(await store.read(v2, 'u2')).toBeUndefined();

    const dead = await readTopic(kafka, `${topic}.dlq`, 1);
    expect(dead.map((d) => d.headers[DLQ_HEADERS.reason]?.toString())).toEqual([
      'no value of a feature of view "profile" in the event: "old" not declared',
    ]);
    expect(dead.map((d) => d.headers[DLQ_HEADERS.code]?.toString())).toEqual(['VALIDATION_FAILED']);
    expect(await dlqCount()).toBe(1);

    const metrics = await second.context.registry.metrics();
    expect(metrics).toMatch(/driftline_feature_values_ignored_total\{view="profile",feature="old"[^}]*\} 2\n/);
    expect(metrics).toMatch(/driftline_records_dlq_total\{[^}]*code="VALIDATION_FAILED"[^}]*\} 1\n/);
    const warned = () => lines.filter((l) => l.level === 'warn' && l.fields.feature === 'old');
    expect(warned()).toEqual([
      {
        level: 'warn',
        fields: { view: 'profile', feature: 'old', values: expect.any(Number) },
        msg: expect.stringMatching(/^events carry feature "old", which view "profile" does not declare/),
      },
    ]);

    // Rate-limited: more of the same are counted, not written again.
    await publish([{ event_id: 'e5', entity_id: 'u1', event_time: now, features: { x: 6, old: 2 } }]);
    await eventually(async () => ((await store.read(v2, 'u1'))?.features.x === 6 ? true : undefined), 30_000);
    expect(await second.context.registry.metrics()).toMatch(
      /driftline_feature_values_ignored_total\{view="profile",feature="old"[^}]*\} 3\n/,
    );
    expect(warned()).toHaveLength(1);
    expect(await dlqCount()).toBe(1);

    // A declared name carried as null beside an undeclared one has no value to write: poison too
    // (written, it blanked u1's row to {x: null}; found by a review).
    await publish([
      { event_id: 'e6', entity_id: 'u1', event_time: now + 1, features: { x: null, old: 9 } },
      { event_id: 'e7', entity_id: 'u3', event_time: now + 1, features: { x: 8 } },
    ]);
    await eventually(async () => ((await store.read(v2, 'u3'))?.features.x === 8 ? true : undefined), 30_000);
    expect(await store.read(v2, 'u1')).toMatchObject({ eventTime: now, features: { x: 6 } });
    expect(await dlqCount()).toBe(2);
  });
  // The same change with `old` listed in removed_features: a producer still sending it could not
  // set x to missing (`{x: null, old}` was dead-lettered, the row kept a stale x until its TTL),
  // and every `{x, old}` counted as an ignored value, so the alert fired on a planned removal
  // (found by a review).
  it('values of a feature listed in removed_features are dropped: a declared null beside one is written, nothing is dead-lettered or counted as ignored', async () => {
    isolate();
    const store = await reader();
    const v1 = parseFeatureViewsText(WITH_OLD).get('profile')!;
    const v2 = parseFeatureViewsText(OLD_REMOVED).get('profile')!;
    const now = Date.now();

    const first = await start(WITH_OLD, recordingLogger([]));
    await publish([{ event_id: 'e1', entity_id: 'u1', event_time: now - 5_000, features: { x: 1, old: 2 } }]);
    await eventually(async () => ((await store.read(v1, 'u1'))?.features.old === 2 ? true : undefined), 30_000);
    await first.stop();

    const lines: Line[] = [];
    const second = await start(OLD_REMOVED, recordingLogger(lines));
    // Before any event: the series is there, at 0 (so "no value since" is a flat series).
    expect(await second.context.registry.metrics()).toMatch(
      /driftline_feature_values_removed_total\{view="profile",feature="old"[^}]*\} 0\n/,
    );
    await publish([
      { event_id: 'e2', entity_id: 'u1', event_time: now - 1_000, features: { x: null, old: 4 } },
      { event_id: 'e3', entity_id: 'u2', event_time: now - 1_000, features: { x: 5, old: 4 } },
      // Only a removed name: a row of absent values, as `{}` (and as before `old` was removed).
      { event_id: 'e4', entity_id: 'u3', event_time: now - 1_000, features: { old: 6 } },
      { event_id: 'e5', entity_id: 'u4', event_time: now - 1_000, features: { x: 7 } },
    ]);
    // One partition, in order: u4's row written means e2 to e4 were handled.
    await eventually(async () => ((await store.read(v2, 'u4'))?.features.x === 7 ? true : undefined), 30_000);
    expect(await store.read(v2, 'u1')).toMatchObject({ eventTime: now - 1_000, eventId: 'e2', features: { x: null } });
    expect(await store.read(v2, 'u2')).toMatchObject({ eventTime: now - 1_000, features: { x: 5 } });
    expect(await store.read(v2, 'u3')).toMatchObject({ eventTime: now - 1_000, eventId: 'e4', features: { x: null } });
    expect(await dlqCount()).toBe(0);

    const metrics = await second.context.registry.metrics();
    expect(metrics).toMatch(/driftline_feature_values_removed_total\{view="profile",feature="old"[^}]*\} 3\n/);
    expect(metrics).not.toMatch(/driftline_feature_values_ignored_total\{/);
    expect(metrics).not.toMatch(/driftline_records_dlq_total\{[^}]*\} [1-9]/);
    // No warning of the name (the stack's own start-up warnings aside).
    expect(lines.filter((l) => l.fields.feature === 'old' || l.msg.includes('"old"'))).toEqual([]);
  });
});
