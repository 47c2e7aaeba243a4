import { ConfigError } from '@driftline/core';
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
    });
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
