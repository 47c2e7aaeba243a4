import { ConfigError, parseEnv, rejectUnknownEnv } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { kafkaEnvShape, toKafkaConfig } from '../src/config.js';

describe('kafka config', () => {
  it('parses brokers and defaults', () => {
    const env = parseEnv(kafkaEnvShape, { DRIFTLINE_KAFKA_BROKERS: 'a:9092, b:9092' });
    expect(toKafkaConfig(env)).toEqual({
      brokers: ['a:9092', 'b:9092'],
      clientId: 'driftline',
      ssl: false,
      deadLetter: { maxBatchBytes: 524_288, maxBatchRecords: 1_000 },
      faultHoldMs: 60_000,
    });
  });

  it('bounds the processor-fault hold (0 = dead-letter at once, at most 1h), naming the variable', () => {
    const hold = (v: string) =>
      toKafkaConfig(parseEnv(kafkaEnvShape, { DRIFTLINE_KAFKA_BROKERS: 'a:1', DRIFTLINE_KAFKA_FAULT_HOLD: v }))
        .faultHoldMs;
    expect(hold('0')).toBe(0);
    expect(hold('5m')).toBe(300_000);
    expect(() => hold('2h')).toThrow(/^DRIFTLINE_KAFKA_FAULT_HOLD: /);
    expect(() => hold('soon')).toThrow(/^DRIFTLINE_KAFKA_FAULT_HOLD: /);
  });

  it('bounds the dead-letter batches and names the variable out of range', () => {
    const env = parseEnv(kafkaEnvShape, {
      DRIFTLINE_KAFKA_BROKERS: 'a:1',
      DRIFTLINE_KAFKA_DLQ_MAX_BATCH_BYTES: '65536',
      DRIFTLINE_KAFKA_DLQ_MAX_BATCH_RECORDS: '200',
    });
    expect(toKafkaConfig(env).deadLetter).toEqual({ maxBatchBytes: 65_536, maxBatchRecords: 200 });
    expect(() =>
      parseEnv(kafkaEnvShape, { DRIFTLINE_KAFKA_BROKERS: 'a:1', DRIFTLINE_KAFKA_DLQ_MAX_BATCH_BYTES: '100' }),
    ).toThrow(/^DRIFTLINE_KAFKA_DLQ_MAX_BATCH_BYTES: /);
    expect(() =>
      parseEnv(kafkaEnvShape, { DRIFTLINE_KAFKA_BROKERS: 'a:1', DRIFTLINE_KAFKA_DLQ_MAX_BATCH_RECORDS: '0' }),
    ).toThrow(/^DRIFTLINE_KAFKA_DLQ_MAX_BATCH_RECORDS: /);
  });

  it('names the variable that is wrong', () => {
    expect(() => parseEnv(kafkaEnvShape, { DRIFTLINE_KAFKA_BROKERS: 'a:1', DRIFTLINE_KAFKA_SSL: 'maybe' })).toThrow(
      /^DRIFTLINE_KAFKA_SSL: must be true or false \(got "maybe"\)$/,
    );
    expect(() => parseEnv(kafkaEnvShape, {})).toThrow(/^DRIFTLINE_KAFKA_BROKERS: /);
  });

  it('refuses a broker that is not host:port, naming the variable (it was retried as an outage for minutes; found by a review)', () => {
    for (const brokers of ['localhost', 'a:9092,b', 'a:0', 'a:70000', 'a:x', 'a:9092:1'])
      expect(() => parseEnv(kafkaEnvShape, { DRIFTLINE_KAFKA_BROKERS: brokers }), brokers).toThrow(
        /^DRIFTLINE_KAFKA_BROKERS: .* is not host:port/,
      );
    const env = parseEnv(kafkaEnvShape, { DRIFTLINE_KAFKA_BROKERS: 'kafka-1:9092,10.0.0.2:19092,[::1]:9092' });
    expect(toKafkaConfig(env).brokers).toEqual(['kafka-1:9092', '10.0.0.2:19092', '[::1]:9092']);
  });

  it('refuses SASL credentials without a mechanism (they were ignored: an unauthenticated client)', () => {
    const env = parseEnv(kafkaEnvShape, {
      DRIFTLINE_KAFKA_BROKERS: 'a:1',
      DRIFTLINE_KAFKA_SASL_USERNAME: 'u',
      DRIFTLINE_KAFKA_SASL_PASSWORD: 'p',
    });
    expect(() => toKafkaConfig(env)).toThrow(/^DRIFTLINE_KAFKA_SASL_MECHANISM: required when/);
  });

  it('requires SASL credentials when a mechanism is set', () => {
    const env = parseEnv(kafkaEnvShape, { DRIFTLINE_KAFKA_BROKERS: 'a:1', DRIFTLINE_KAFKA_SASL_MECHANISM: 'plain' });
    expect(() => toKafkaConfig(env)).toThrow(ConfigError);
    expect(() => toKafkaConfig(env)).toThrow(/DRIFTLINE_KAFKA_SASL_USERNAME/);
  });

  it('rejects unknown variables with the prefix', () => {
    expect(() => rejectUnknownEnv('DRIFTLINE_', Object.keys(kafkaEnvShape), { DRIFTLINE_KAFKA_BROKER: 'x' })).toThrow(
      /^DRIFTLINE_KAFKA_BROKER: unknown variable/,
    );
  });
});

describe('kafka names (padding, commit 25e952a)', () => {
  it('refuses a padded or blank client id or SASL user, naming the variable', () => {
    const env = (extra: Record<string, string>) =>
      parseEnv(kafkaEnvShape, { DRIFTLINE_KAFKA_BROKERS: 'a:1', ...extra });
    expect(toKafkaConfig(env({ DRIFTLINE_KAFKA_CLIENT_ID: 'my app' })).clientId).toBe('my app');
    for (const name of ['DRIFTLINE_KAFKA_CLIENT_ID', 'DRIFTLINE_KAFKA_SASL_USERNAME']) {
      for (const bad of [' x', 'x ', '\tx', '   '])
        expect(() => env({ [name]: bad })).toThrow(new RegExp(`^${name}: `));
    }
  });
});
