import { createRequire } from 'node:module';
import { ConfigError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { kafkaCredentialsError, saslAuthenticator, saslRefusalIn } from '../src/credentials.js';

// kafkajs' own error classes and its answer for an error code, as its connection raises them.
const kafkajsRequire = createRequire(createRequire(import.meta.url).resolve('kafkajs'));
const errors = kafkajsRequire('./src/errors') as {
  KafkaJSConnectionClosedError: new (message: string, options: { host: string; port: number }) => Error;
  KafkaJSRequestTimeoutError: new (message: string) => Error;
  KafkaJSSASLAuthenticationError: new (message: string) => Error;
};
const { createErrorFromCode } = kafkajsRequire('./src/protocol/error') as {
  createErrorFromCode: (code: number) => Error;
};
const SASL_AUTHENTICATION_FAILED = 58;

const silent = { debug() {}, info() {}, warn() {}, error() {} };

/** Logs in with kafkajs' built-in provider of `mechanism`, the broker's side answering with `fail`. */
async function login(mechanism: string, fail: () => Error, refusalRetriable = false): Promise<Error> {
  const sasl = saslAuthenticator({ mechanism, username: 'alice', password: 'secret' }, { refusalRetriable });
  const provider = sasl.authenticationProvider as (args: Record<string, unknown>) => { authenticate(): Promise<void> };
  try {
    await provider({
      host: '127.0.0.1',
      port: 9093,
      logger: silent,
      saslAuthenticate: async () => {
        throw fail();
      },
    }).authenticate();
  } catch (error) {
    return error as Error;
  }
  throw new Error('the login succeeded');
}

const connection = { brokers: ['127.0.0.1:9093'], sasl: { mechanism: 'plain', username: 'alice' } };

describe('SASL refusals are told from outages by the broker answer (found by a review)', () => {
  for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512']) {
    it(`${mechanism}: the broker refusing the login is a refusal of the credentials`, async () => {
      const error = await login(mechanism, () => createErrorFromCode(SASL_AUTHENTICATION_FAILED));
      expect(error.name).toBe('KafkaJSSASLAuthenticationError');
      expect(saslRefusalIn(error)).toBe('credentials');
      expect(kafkaCredentialsError(error, connection)).toBeInstanceOf(ConfigError);
    });

    it(`${mechanism}: a connection closed or a timeout during the login is no refusal (it was taken for one)`, async () => {
      // kafkajs wraps both in the same KafkaJSSASLAuthenticationError, with no cause of its own.
      for (const fail of [
        () => new errors.KafkaJSConnectionClosedError('Closed connection', { host: '127.0.0.1', port: 9093 }),
        () => new errors.KafkaJSRequestTimeoutError('Request SaslAuthenticate(key: 36, version: 1) timed out'),
      ]) {
        const error = await login(mechanism, fail);
        expect(error.name).toBe('KafkaJSSASLAuthenticationError');
        expect(saslRefusalIn(error)).toBeUndefined();
        expect(kafkaCredentialsError(error, connection)).toBeUndefined();
      }
    });
  }

  it("the consumer's instance retries a refusal and a connection lost during the login; other instances do not", async () => {
    const refused = await login('plain', () => createErrorFromCode(SASL_AUTHENTICATION_FAILED), true);
    expect((refused as Error & { retriable?: boolean }).retriable).toBe(true);
    const refusedElsewhere = await login('plain', () => createErrorFromCode(SASL_AUTHENTICATION_FAILED), false);
    expect((refusedElsewhere as Error & { retriable?: boolean }).retriable).toBe(false);
    // A connection the broker closes during the login (it does after refusing a re-authentication)
    // is an outage there: retried too. Left non-retriable, it crashed the consumer for good.
    const closed = await login(
      'scram-sha-512',
      () => new errors.KafkaJSConnectionClosedError('Closed connection', { host: '127.0.0.1', port: 9093 }),
      true,
    );
    expect((closed as Error & { retriable?: boolean }).retriable).toBe(true);
  });

  it("kafkajs' own checks keep their meaning: an unsupported mechanism, missing credentials", () => {
    const mechanism = new errors.KafkaJSSASLAuthenticationError('SASL PLAIN mechanism is not supported by the server');
    expect(saslRefusalIn(mechanism)).toBe('mechanism');
    const missing = new errors.KafkaJSSASLAuthenticationError('SASL Plain: Invalid username or password');
    expect(saslRefusalIn(missing)).toBe('credentials');
    // Wrapped by a caller (a DriftlineError's cause), still found.
    expect(saslRefusalIn(new Error('creating topics failed', { cause: missing }))).toBe('credentials');
  });
});
