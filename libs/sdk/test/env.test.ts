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
    });
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
});
