// Kafka refusing the SASL login, on a private broker with a SASL_PLAINTEXT listener (PLAIN and
// SCRAM users; the shared stack has no authentication). One broker for the file (~30 s to start).
// At start-up a refusal is a configuration error naming DRIFTLINE_KAFKA_SASL_* (exit 78 in the CLI);
// at run time (a SCRAM credential deleted while the service runs) the consumer holds its input,
// not ready but live, and resumes once the credential is back: nothing lost, nothing dead-lettered.
// Before: the start-up line named no variable (a CONFIG_INVALID "creating topics … failed"), the
// SDK said a retriable "cannot connect", and the consumer crashed for good at the refusal (kafkajs
// marks it non-retriable) while /healthz stayed 200: it consumed nothing after the credential came back.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { ConfigError, type DriftlineError, silentLogger } from '@driftline/core';
import { committedOffsets, createKafkaClient, createProducer, type KafkaClient, topicOffsets } from '@driftline/kafka';
import { createRedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import { contracts, type FeatureEvent } from '@driftline/schemas';
import { createDriftlineProducer } from '@driftline/sdk';
import { type Runner, startRunner } from '@driftline/service';
import { alterScramUsers, eventually, type KafkaBroker, startKafkaBroker, uniqueName } from '@driftline/test-support';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { featureMaterializer } from '../src/index.js';
import { eventLog, offlineState, onlineState, writeViewsFile } from './helpers.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'driftline-sasl-broker-'));
/** Connections re-authenticate this often: a credential deleted is met within seconds, not at a reconnect. */
const REAUTH_MS = 15_000;

describe('Kafka refusing the SASL credentials (a private SASL broker)', () => {
  let broker: KafkaBroker;
  const cleanup: Array<() => Promise<unknown>> = [];
  beforeAll(async () => {
    broker = await startKafkaBroker({ dir, sasl: { plainUsers: { alice: 'alice-secret' }, reauthMs: REAUTH_MS } });
  }, 180_000);
  afterAll(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const scramUser = async (mechanism: 'scram-sha-256' | 'scram-sha-512') => {
    const user = { user: uniqueName('u'), mechanism, password: uniqueName('pw') };
    await alterScramUsers(broker.brokers[0]!, [user]);
    return user;
  };
  const saslEnv = (mechanism: string, username: string, password: string, vars: Record<string, string> = {}) => ({
    DRIFTLINE_KAFKA_BROKERS: broker.saslBrokers.join(','),
    DRIFTLINE_KAFKA_SASL_MECHANISM: mechanism,
    DRIFTLINE_KAFKA_SASL_USERNAME: username,
    DRIFTLINE_KAFKA_SASL_PASSWORD: password,
    DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
    DRIFTLINE_REDIS_URL: stack.redisUrl,
    DRIFTLINE_HTTP_PORT: '0',
    DRIFTLINE_FEATURE_VIEWS: writeViewsFile(),
    DRIFTLINE_TOPIC_PARTITIONS: '2',
    ...vars,
  });
  const startMaterializer = async (env: Record<string, string>): Promise<Runner> => {
    const runner = await startRunner({ services: [featureMaterializer as never], logger: silentLogger, env });
    cleanup.push(() => runner.stop());
    return runner;
  };

  it('refused at start-up: a configuration error naming DRIFTLINE_KAFKA_SASL_*, at once (service and SDK)', async () => {
    const scram = await scramUser('scram-sha-256');
    const cases: Array<[string, string, string, string]> = [
      ['wrong password', 'plain', 'alice', uniqueName('wrong')],
      ['unknown user', 'scram-sha-256', uniqueName('nobody'), uniqueName('pw')],
      ['the user has no credential for the mechanism', 'scram-sha-512', scram.user, scram.password],
      ['a SCRAM user over PLAIN', 'plain', scram.user, scram.password],
    ];
    for (const [what, mechanism, username, password] of cases) {
      const started = Date.now();
      const error = await startMaterializer(
        saslEnv(mechanism, username, password, { DRIFTLINE_FEATURE_KEY_PREFIX: uniqueName('fk') }),
      ).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, what).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).field, what).toBe('DRIFTLINE_KAFKA_SASL_USERNAME');
      expect((error as Error).message, what).toContain(`user ${JSON.stringify(username)}`);
      expect((error as Error).message, what).not.toContain(password);
      expect(Date.now() - started, what).toBeLessThan(10_000); // not retried for DRIFTLINE_STARTUP_TIMEOUT

      const sdk = await createDriftlineProducer({
        kafka: {
          brokers: broker.saslBrokers,
          clientId: 'sasl-test',
          ssl: false,
          sasl: { mechanism: mechanism as never, username, password },
        },
        registry: { url: stack.schemaRegistryUrl },
      }).then(
        async (p) => {
          await p.close();
          return undefined;
        },
        (e: unknown) => e,
      );
      // It was a retriable SINK_UNAVAILABLE "cannot connect to Kafka": a caller retried it for ever.
      expect(sdk, what).toBeInstanceOf(ConfigError);
      expect((sdk as DriftlineError).retriable, what).toBe(false);
    }
  }, 120_000);

  it('revoked while running: input held (not ready, still live), resumed without loss once restored', async () => {
    const reader = await scramUser('scram-sha-512');
    const writer = await scramUser('scram-sha-256');
    const keyPrefix = uniqueName('fk');
    const runner = await startMaterializer(
      saslEnv(reader.mechanism, reader.user, reader.password, { DRIFTLINE_FEATURE_KEY_PREFIX: keyPrefix }),
    );
    const kafka: KafkaClient = createKafkaClient({
      brokers: broker.saslBrokers,
      clientId: uniqueName('writer'),
      ssl: false,
      sasl: { mechanism: writer.mechanism, username: writer.user, password: writer.password },
    });
    const producer = await createProducer(kafka);
    cleanup.push(() => producer.disconnect());
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.feature, 'features.v1');
    const publish = async (log: readonly FeatureEvent[]) =>
      producer.send(
        'features.v1',
        await Promise.all(log.map(async (e) => ({ key: e.entity_id, value: await codec.encode(e) }))),
      );
    const store = createRedisOnlineStore({ url: stack.redisUrl, tls: false }, { use: 'online-read', keyPrefix });
    cleanup.push(() => store.close());
    await waitReady(store.client);
    const online = async (log: readonly FeatureEvent[]) => {
      const expected = offlineState(log);
      const got = await onlineState(store, expected);
      return [...expected.keys()].every((k) => JSON.stringify(got.get(k)) === JSON.stringify(expected.get(k)));
    };
    const status = async (path: string) => (await fetch(`http://127.0.0.1:${runner.httpPort}${path}`)).status;

    const before = eventLog(100, 10, 71).map((e) => ({ ...e, entity_id: `b:${e.entity_id}` }));
    await publish(before);
    await eventually(async () => ((await online(before)) ? true : undefined), 30_000, 200);

    await alterScramUsers(broker.brokers[0]!, [{ user: reader.user, mechanism: reader.mechanism, delete: true }]);
    // Met at the next re-authentication; kafkajs' retries (~25 s) and then the loop's restarts.
    await eventually(async () => (runner.ready() ? undefined : true), 90_000, 500);
    expect(await status('/readyz')).toBe(503);
    // Live: a restart would only meet the same refusal at start-up (exit 78), a crash loop.
    expect(await status('/healthz')).toBe(200);
    const during = eventLog(100, 10, 72).map((e) => ({ ...e, entity_id: `d:${e.entity_id}` }));
    await publish(during); // another user's credentials: accepted
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(await online(during)).toBe(false); // held
    expect(runner.ready()).toBe(false);

    await alterScramUsers(broker.brokers[0]!, [reader]);
    // Before: the consumer had crashed for good and never read `during`.
    await eventually(async () => ((await online(during)) ? true : undefined), 90_000, 500);
    await eventually(async () => (runner.ready() ? true : undefined), 30_000, 500);
    expect(await status('/healthz')).toBe(200);
    const ends = new Map((await topicOffsets(kafka, 'features.v1')).map((o) => [o.partition, o.high]));
    await eventually(async () => {
      const committed = await committedOffsets(kafka, 'driftline-feature-materializer', 'features.v1');
      return [...ends].every(([p, o]) => committed.get(p) === o) ? true : undefined;
    }, 30_000);
    // Nothing was dead-lettered for the refusal.
    const dlq = await topicOffsets(kafka, 'features.v1.dlq');
    expect(dlq.every((o) => o.high === o.low)).toBe(true);
  }, 300_000);
});
