import { createServer } from 'node:net';
import { ConfigError, DEFAULT_EVENT_TIME_BOUNDS } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { connectionFromEnv, createDriftlineProducer } from '../src/index.js';

describe('SDK connection settings', () => {
  it('reads the same Kafka settings as the services, TLS and SASL included', () => {
    expect(
      connectionFromEnv({
        DRIFTLINE_KAFKA_BROKERS: 'b1:9093,b2:9093',
        DRIFTLINE_KAFKA_CLIENT_ID: 'shop',
        DRIFTLINE_KAFKA_SSL: 'true',
        DRIFTLINE_KAFKA_SASL_MECHANISM: 'scram-sha-512',
        DRIFTLINE_KAFKA_SASL_USERNAME: 'u',
        DRIFTLINE_KAFKA_SASL_PASSWORD: 'p',
        DRIFTLINE_SCHEMA_REGISTRY_URL: 'https://registry.example/apis/ccompat/v7',
        DRIFTLINE_SCHEMA_REGISTRY_USERNAME: 'r',
      }),
    ).toEqual({
      kafka: {
        brokers: ['b1:9093', 'b2:9093'],
        clientId: 'shop',
        ssl: true,
        sasl: { mechanism: 'scram-sha-512', username: 'u', password: 'p' },
        deadLetter: { maxBatchBytes: 524_288, maxBatchRecords: 1_000 },
        faultHoldMs: 60_000,
      },
      registry: { url: 'https://registry.example/apis/ccompat/v7', username: 'r', timeoutMs: 10_000 },
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      topicPrefix: '',
    });
  });

  // A review: DRIFTLINE_TOPIC_PREFIX was not read (an SDK beside prefixed services wrote to the
  // unprefixed topics), and a bad `topicPrefix` was taken, its sends retried as "invalid topic" for ever.
  it("reads the services' topic prefix with their rule, and refuses a bad prefix naming it", async () => {
    const connection = { DRIFTLINE_KAFKA_BROKERS: 'b:1', DRIFTLINE_SCHEMA_REGISTRY_URL: 'http://r' };
    expect(connectionFromEnv({ ...connection, DRIFTLINE_TOPIC_PREFIX: 'acme-prod_1.' }).topicPrefix).toBe(
      'acme-prod_1.',
    );
    const bad = () => connectionFromEnv({ ...connection, DRIFTLINE_TOPIC_PREFIX: 'bad prefix/' });
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/^DRIFTLINE_TOPIC_PREFIX: letters, digits, dot, dash, underscore only \(got "bad prefix\/"\)$/);
    // Refused before any connection is tried (brokers nobody listens on).
    for (const topicPrefix of ['bad prefix/', 'tenant:a.', 'é.', 'x'.repeat(232)]) {
      await expect(
        createDriftlineProducer({
          kafka: { brokers: ['127.0.0.1:1'], clientId: 'x', ssl: false },
          registry: { url: 'http://r' },
          topicPrefix,
        }),
      ).rejects.toMatchObject({ name: 'ConfigError', code: 'CONFIG_INVALID', field: 'topicPrefix' });
    }
    await expect(
      createDriftlineProducer({
        kafka: { brokers: ['127.0.0.1:1'], clientId: 'x', ssl: false },
        registry: { url: 'http://r' },
        topicPrefix: 'x'.repeat(232),
      }),
    ).rejects.toThrow(/^topicPrefix: at most 231 characters, so that its topics stay within Kafka's 249 \(got 232\)$/);
  });

  // A deployment that narrowed the services' bounds had SDKs accepting events the services then
  // dead-lettered; one that widened them for a backfill had SDKs refusing the backfill (a review).
  it("reads the services' event-time bounds, with their rules and messages", () => {
    const connection = { DRIFTLINE_KAFKA_BROKERS: 'b:1', DRIFTLINE_SCHEMA_REGISTRY_URL: 'http://r' };
    expect(
      connectionFromEnv({
        ...connection,
        DRIFTLINE_EVENT_TIME_MIN: '2020-01-01',
        DRIFTLINE_EVENT_TIME_MAX_FUTURE: '5m',
      }).eventTime,
    ).toEqual({ minMs: Date.UTC(2020, 0, 1), maxFutureMs: 300_000 });
    expect(connectionFromEnv({ ...connection, DRIFTLINE_EVENT_TIME_MIN: '1950-06-01' }).eventTime).toEqual({
      minMs: Date.UTC(1950, 5, 1),
      maxFutureMs: DEFAULT_EVENT_TIME_BOUNDS.maxFutureMs,
    });
    expect(() => connectionFromEnv({ ...connection, DRIFTLINE_EVENT_TIME_MIN: '2024-02-30' })).toThrow(
      /^DRIFTLINE_EVENT_TIME_MIN: must be a valid ISO date: that day or time does not exist/,
    );
    expect(() => connectionFromEnv({ ...connection, DRIFTLINE_EVENT_TIME_MIN: '2999-01-01' })).toThrow(
      /^DRIFTLINE_EVENT_TIME_MIN: must not be in the future/,
    );
    expect(() => connectionFromEnv({ ...connection, DRIFTLINE_EVENT_TIME_MAX_FUTURE: '400d' })).toThrow(
      /^DRIFTLINE_EVENT_TIME_MAX_FUTURE: must be at most 366d/,
    );
  });

  it('names a missing variable', () => {
    expect(() => connectionFromEnv({ DRIFTLINE_SCHEMA_REGISTRY_URL: 'http://r' })).toThrow(ConfigError);
    expect(() => connectionFromEnv({ DRIFTLINE_SCHEMA_REGISTRY_URL: 'http://r' })).toThrow(
      /^DRIFTLINE_KAFKA_BROKERS: /,
    );
    expect(() => connectionFromEnv({ DRIFTLINE_KAFKA_BROKERS: 'b:1' })).toThrow(/^DRIFTLINE_SCHEMA_REGISTRY_URL: /);
  });

  it('refuses a padded registry URL, naming it (a trailing space made every schema fetch a 404)', () => {
    expect(() =>
      connectionFromEnv({
        DRIFTLINE_KAFKA_BROKERS: 'b:1',
        DRIFTLINE_SCHEMA_REGISTRY_URL: 'http://r:8080/apis/ccompat/v7 ',
      }),
    ).toThrow(/^DRIFTLINE_SCHEMA_REGISTRY_URL: must not start or end with white space/);
  });

  it('refuses to start without a Kafka connection', async () => {
    await expect(
      createDriftlineProducer({ kafka: { brokers: [], clientId: 'x', ssl: false }, registry: { url: 'http://r' } }),
    ).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });

  // A review: with Kafka down at creation, kafkajs' own KafkaJSNumberOfRetriesExceeded came out (no code).
  it('fails with a retriable SINK_UNAVAILABLE naming the brokers when no broker accepts a connection', async () => {
    const port = await closedPort();
    const failure = await createDriftlineProducer({
      kafka: { brokers: [`127.0.0.1:${port}`], clientId: 'x', ssl: false },
      registry: { url: 'http://r' },
    }).then(
      () => 'created',
      (error: unknown) => error,
    );
    expect(failure).toMatchObject({
      name: 'DriftlineError',
      code: 'SINK_UNAVAILABLE',
      retriable: true,
      message: expect.stringMatching(
        new RegExp(`^driftline SDK: cannot connect to Kafka \\(127\\.0\\.0\\.1:${port}\\): `),
      ),
      details: { brokers: [`127.0.0.1:${port}`] },
    });
  }, 60_000);
});

/** A loopback port nobody listens on (one just freed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
