import { createRequire } from 'node:module';
import { ConfigError } from '@driftline/core';

/**
 * Kafka refusing this client's SASL login, recognised by kafkajs' error class and the protocol's
 * error types, wherever it is wrapped (`cause`, `originalError`, `errors`, a DriftlineError's
 * `details.kafkaError`):
 * - `credentials`: the broker refused the user and password (SASL_AUTHENTICATION_FAILED; kafkajs'
 *   KafkaJSSASLAuthenticationError). Kafka does not say whether the user is unknown, the password
 *   wrong or the user has no credential for the mechanism.
 * - `mechanism`: the listener does not enable the configured mechanism (UNSUPPORTED_SASL_MECHANISM).
 * - `no-sasl-listener`: the listener speaks no SASL at all (ILLEGAL_SASL_STATE, the answer of a
 *   PLAINTEXT listener to a SASL handshake).
 *
 * Where it is met decides what it is (see the README, "Credentials"): at start-up a configuration
 * error (`kafkaCredentialsError`, exit 78, one line naming DRIFTLINE_KAFKA_SASL_*); at run time a
 * retriable refusal, held like an outage (a credential changed or deleted while the client runs is
 * mended by restoring it, and a process restarted meanwhile would only exit 78 again).
 */
export type SaslRefusal = 'credentials' | 'mechanism' | 'no-sasl-listener';

/** The kafkajs error type the consumer loop, the producer and the admin calls name a refusal of credentials by. */
export const SASL_REFUSED = 'SASL_AUTHENTICATION_FAILED';

const REFUSAL_OF_TYPE: Readonly<Record<string, SaslRefusal>> = {
  SASL_AUTHENTICATION_FAILED: 'credentials',
  UNSUPPORTED_SASL_MECHANISM: 'mechanism',
  ILLEGAL_SASL_STATE: 'no-sasl-listener',
};

/** Where saslAuthenticator keeps the broker's answer on kafkajs' login error (see there). */
const SASL_ANSWER = 'driftlineSaslAnswer';

/** The SASL refusal `error` is or wraps, if any. */
export function saslRefusalIn(error: unknown): SaslRefusal | undefined {
  return findRefusal(error, 0)?.refusal;
}

/** The refusal and the error that says it (kafkajs' own, not a wrapper's); undefined when none. */
function findRefusal(error: unknown, depth: number): { refusal: SaslRefusal; said: string } | undefined {
  if (error === null || typeof error !== 'object' || depth > 5) return undefined;
  const e = error as {
    name?: unknown;
    type?: unknown;
    message?: unknown;
    cause?: unknown;
    originalError?: unknown;
    errors?: unknown;
    details?: { kafkaError?: unknown };
  };
  const said = String(e.message ?? '').split('\n')[0] ?? '';
  if (e.name === 'KafkaJSSASLAuthenticationError') {
    // kafkajs throws this class for every failure of the login, a closed connection or a timeout
    // included (its providers catch all and keep no cause): a refusal only when the broker said so,
    // which saslAuthenticator keeps on it (SASL_ANSWER), or for kafkajs' own checks.
    if (/mechanism is not supported by the server/.test(said)) return { refusal: 'mechanism', said };
    if (/Invalid username or password/.test(said)) return { refusal: 'credentials', said };
    const answer = findRefusal((e as Record<string, unknown>)[SASL_ANSWER], depth + 1);
    return answer === undefined ? undefined : { refusal: answer.refusal, said };
  }
  if (typeof e.type === 'string' && REFUSAL_OF_TYPE[e.type] !== undefined)
    return { refusal: REFUSAL_OF_TYPE[e.type]!, said };
  for (const inner of [e.cause, e.originalError, ...(Array.isArray(e.errors) ? e.errors : [])]) {
    const found = findRefusal(inner, depth + 1);
    if (found !== undefined) return found;
  }
  // A refusal classified already, whose cause was not kept.
  const named = typeof e.details?.kafkaError === 'string' ? REFUSAL_OF_TYPE[e.details.kafkaError] : undefined;
  return named === undefined ? undefined : { refusal: named, said };
}

/** What a refusal's lines name of the connection (never the password). */
export interface SaslConnection {
  readonly brokers: readonly string[];
  readonly sasl?: { readonly mechanism: string; readonly username: string } | undefined;
}

/** A short line on a refusal met at run time, for warnings and retriable errors. */
export function saslRefusalLine(refusal: SaslRefusal): string {
  switch (refusal) {
    case 'credentials':
      return 'Kafka refuses the credentials of this client (DRIFTLINE_KAFKA_SASL_USERNAME, _PASSWORD, _MECHANISM)';
    case 'mechanism':
      return 'the Kafka listener does not enable the SASL mechanism of this client (DRIFTLINE_KAFKA_SASL_MECHANISM)';
    case 'no-sasl-listener':
      return 'the Kafka listener speaks no SASL (DRIFTLINE_KAFKA_SASL_MECHANISM set for a PLAINTEXT or SSL listener)';
  }
}

/**
 * The configuration error a SASL refusal met at start-up is (undefined when `error` is none): one
 * line naming the variable to fix, the brokers, the user and the mechanism, never the password.
 */
export function kafkaCredentialsError(error: unknown, connection: SaslConnection): ConfigError | undefined {
  const found = findRefusal(error, 0);
  if (found === undefined) return undefined;
  const { refusal } = found;
  const brokers = connection.brokers.join(', ');
  const sasl = connection.sasl;
  const mechanism = sasl?.mechanism.toUpperCase() ?? 'none';
  const said = found.said === '' ? '' : ` (${found.said})`;
  switch (refusal) {
    case 'credentials':
      return new ConfigError(
        'DRIFTLINE_KAFKA_SASL_USERNAME',
        `Kafka at ${brokers} refused the login of user ${JSON.stringify(sasl?.username ?? '')} with DRIFTLINE_KAFKA_SASL_PASSWORD over ${mechanism} (DRIFTLINE_KAFKA_SASL_MECHANISM)${said} — an unknown user, a wrong password or no ${mechanism} credential for the user: Kafka does not say which`,
        { cause: error },
      );
    case 'mechanism':
      return new ConfigError(
        'DRIFTLINE_KAFKA_SASL_MECHANISM',
        `the Kafka listener at ${brokers} does not enable ${mechanism}${said} — use a mechanism its sasl.enabled.mechanisms lists`,
        { cause: error },
      );
    case 'no-sasl-listener':
      return new ConfigError(
        'DRIFTLINE_KAFKA_SASL_MECHANISM',
        `the Kafka listener at ${brokers} speaks no SASL${said} — point DRIFTLINE_KAFKA_BROKERS at its SASL listener, or unset DRIFTLINE_KAFKA_SASL_*`,
        { cause: error },
      );
  }
}

/** kafkajs' built-in SASL providers, which kafkajs does not export (2.2.4 is pinned and patched). */
const BUILT_IN_PROVIDERS: Readonly<Record<string, string>> = {
  plain: 'plain',
  'scram-sha-256': 'scram256',
  'scram-sha-512': 'scram512',
};

type Authenticator = { authenticate(): Promise<void> };
type ProviderArgs = Record<string, unknown>;
type Provider = (args: ProviderArgs) => Authenticator;

/**
 * kafkajs' SASL options with the built-in authenticator of the mechanism wrapped, for every kafkajs
 * instance of a handle:
 * - the broker's answer to a failed login (a KafkaJSProtocolError, SASL_AUTHENTICATION_FAILED) is
 *   kept on kafkajs' KafkaJSSASLAuthenticationError, which keeps none: that class is
 *   thrown for a closed connection or a timeout during the login too, and only the answer tells a
 *   refusal of the credentials (configuration at start-up) from an outage (retried);
 * - `refusalRetriable`: a refusal, and a connection lost during the login, are made retriable.
 *   kafkajs marks every failed login non-retriable, and a consumer that met one (a credential
 *   deleted or changed while it ran, met at its next connection or re-authentication, after which
 *   the broker closes the connection) crashed for good: it never consumed again, also once the
 *   credential was restored. Retriable, it is retried like a broker outage and then restarted with
 *   the loop's backoff (restartAfterCrash). The consumer's instance only: elsewhere it is
 *   classified where met. A mechanism the listener does not enable stays non-retriable.
 */
export function saslAuthenticator<S extends { mechanism: string }>(
  sasl: S,
  options: { readonly refusalRetriable: boolean },
): S & { authenticationProvider: unknown } {
  const file = BUILT_IN_PROVIDERS[sasl.mechanism.toLowerCase()];
  if (file === undefined) throw new TypeError(`no built-in kafkajs SASL provider for ${sasl.mechanism}`);
  const builtIn = createRequire(import.meta.url)(`kafkajs/src/broker/saslAuthenticator/${file}`) as (
    options: S,
  ) => Provider;
  const provider = builtIn(sasl);
  return {
    ...sasl,
    authenticationProvider: (args: ProviderArgs): Authenticator => {
      let answer: unknown;
      const send = args.saslAuthenticate as (request: unknown) => Promise<unknown>;
      const authenticator = provider({
        ...args,
        saslAuthenticate: async (request: unknown) => {
          try {
            return await send(request);
          } catch (error) {
            answer = error;
            throw error;
          }
        },
      });
      return {
        async authenticate() {
          try {
            await authenticator.authenticate();
          } catch (error) {
            // Not as its `cause`: kafkajs restarts a crashed consumer by its deepest cause's
            // `retriable`, which the broker's answer would decide (false) instead of this error's.
            if (answer !== undefined && error instanceof Error) Object.assign(error, { [SASL_ANSWER]: answer });
            // kafkajs marks every failed login non-retriable. In the consumer's instance a refusal
            // is held and a connection lost during the login (the broker closes it after refusing a
            // re-authentication) is an outage: both retried. A mechanism the listener lacks stays.
            const refusal = findRefusal(error, 0)?.refusal;
            if (options.refusalRetriable && (refusal === undefined || refusal === 'credentials'))
              Object.assign(error as object, { retriable: true });
            throw error;
          }
        },
      };
    },
  };
}
