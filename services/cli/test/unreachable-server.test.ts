// A server a command needs that does not answer: one line naming it, the cause and the variable to
// check, exit 69, within the bound. `dlq list --topic predictions.v1` against a refused port printed
// nothing for 219 s (replay 210 s), then "listing topics failed after 8 attempts", exit 1 (found by a
// review). No Kafka or ClickHouse here: ports nothing listens on, and listeners that never answer.
import { spawn } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { connectionErrorCause, DriftlineError, SinkUnavailableError } from '@driftline/core';
import { toWarehouseError } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dlqReadOf, isWriteOutage } from '../src/commands/dlq.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, parseConnectTimeout } from '../src/commands/kafka-reach.js';
import { describeError, EXIT, UnavailableError } from '../src/describe-error.js';
import { bundledCli } from './bundled-cli.js';

const cwd = fileURLToPath(new URL('..', import.meta.url));
const fixture = fileURLToPath(new URL('fixtures/table.csv', import.meta.url));
const cliMain = bundledCli('unreachable-server');

/** Runs the CLI (a bundle of the current sources) with only `env` of DRIFTLINE_*; its exit, stderr and time. */
function driftline(
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ status: number | null; signal: NodeJS.Signals | null; stderr: string; ms: number }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('DRIFTLINE_')));
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliMain(), ...args], {
      cwd,
      env: { ...clean, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stderr, ms: Date.now() - started }));
  });
}

const sockets: Socket[] = [];
const listen = async (onConnection: (socket: Socket) => void): Promise<Server> => {
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
};
const portOf = (server: Server) => (server.address() as { port: number }).port;
const close = (server: Server) => new Promise((resolve) => server.close(resolve));

let refused: string; // a port nothing listens on: bound, then closed
let silent: Server; // takes connections, never answers (a hung broker, a wrong port of a quiet service)
let plain: Server; // answers in clear text (an HTTP server): no TLS

beforeAll(async () => {
  const once = await listen(() => {});
  refused = `127.0.0.1:${portOf(once)}`;
  await close(once);
  silent = await listen(() => {});
  plain = await listen((socket) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await Promise.all([close(silent), close(plain)]);
});

/**
 * Bundle start-up and the line's write, on a loaded machine (where a process start takes seconds);
 * the old code took 210-219 s.
 */
const SLACK_MS = 15_000;

describe('dlq: brokers that do not answer are one line within --connect-timeout, exit 69', () => {
  it.each([
    ['list', ['dlq', 'list', '--topic', 'predictions.v1']],
    ['replay', ['dlq', 'replay', '--topic', 'predictions.v1', '--group', 'g', '--dry-run']],
  ])('a refused port (%s)', async (_name, args) => {
    const run = await driftline([...args, '--connect-timeout', '1s'], { DRIFTLINE_KAFKA_BROKERS: refused });
    expect(run.stderr).toBe(
      `driftline: cannot reach Kafka at ${refused} (connection refused) within 1s (--connect-timeout) — check DRIFTLINE_KAFKA_BROKERS and that a broker is running\n`,
    );
    expect(run.status).toBe(69);
    expect(run.ms).toBeGreaterThanOrEqual(1_000);
    expect(run.ms).toBeLessThan(1_000 + SLACK_MS);
  });

  it('a listener that never answers, a host name that does not resolve, and a refused port: each named with its cause', async () => {
    const quiet = `127.0.0.1:${portOf(silent)}`;
    const run = await driftline(['dlq', 'list', '--topic', 'predictions.v1', '--connect-timeout', '2s'], {
      DRIFTLINE_KAFKA_BROKERS: `${quiet},kafka.nowhere.invalid:9092,${refused}`,
    });
    expect(run.stderr).toMatch(
      new RegExp(
        `^driftline: cannot reach Kafka at ${quiet} \\(accepts connections, no Kafka answer yet\\), kafka\\.nowhere\\.invalid:9092 \\(name not resolved[^)]*\\), ${refused} \\(connection refused\\) within 2s \\(--connect-timeout\\) — check DRIFTLINE_KAFKA_BROKERS names a Kafka listener, DRIFTLINE_KAFKA_SSL and DRIFTLINE_KAFKA_SASL_\\* match it, and that the broker is up\\n$`,
      ),
    );
    expect(run.status).toBe(69);
    expect(run.ms).toBeLessThan(2_000 + SLACK_MS);
  });

  it('DRIFTLINE_KAFKA_SSL against a listener without TLS: the handshake is named', async () => {
    const broker = `127.0.0.1:${portOf(plain)}`;
    const run = await driftline(['dlq', 'list', '--topic', 'predictions.v1', '--connect-timeout', '1s'], {
      DRIFTLINE_KAFKA_BROKERS: broker,
      DRIFTLINE_KAFKA_SSL: 'true',
    });
    expect(run.stderr).toBe(
      `driftline: cannot reach Kafka at ${broker} (TLS handshake failed: the listener does not speak TLS) within 1s (--connect-timeout) — check DRIFTLINE_KAFKA_SSL (is the listener TLS?) and the broker certificate\n`,
    );
    expect(run.status).toBe(69);
  });

  // Side by side (no time is measured here): the runs above and below are timed, one at a time.
  it.concurrent.each(['0s', '500ms', '2h', '30', 'soon'])(
    '--connect-timeout %s is a usage error, before anything is reached',
    async (value) => {
      const run = await driftline(['dlq', 'list', '--topic', 'predictions.v1', '--connect-timeout', value], {
        DRIFTLINE_KAFKA_BROKERS: refused,
      });
      expect(run.stderr).toBe(
        `driftline: --connect-timeout: must be a duration such as 500ms, 30s, 5m, 1h, 7d or 2w, from 1s to 1h (got "${value}") — see driftline dlq --help\n`,
      );
      expect(run.status).toBe(2);
    },
  );
});

describe('run: backends that do not answer at start-up are one line within DRIFTLINE_STARTUP_TIMEOUT, exit 69', () => {
  it("a broker, a registry and a ClickHouse server that refuse connections (found by a review: 211 s, then exit 1 with kafkajs' line)", async () => {
    // A ClickHouse server, not the embedded engine: nothing here loads chdb (whose signal handlers
    // once turned an exit under load into a kill).
    const run = await driftline(['run', 'retrain-trigger'], {
      DRIFTLINE_KAFKA_BROKERS: refused,
      DRIFTLINE_SCHEMA_REGISTRY_URL: `http://${refused}/apis/ccompat/v7`,
      DRIFTLINE_CLICKHOUSE_URL: `http://${refused}`,
      DRIFTLINE_HTTP_PORT: '0',
      DRIFTLINE_STARTUP_TIMEOUT: '3s',
    });
    expect(run.stderr.trim().split('\n').at(-1)).toMatch(
      new RegExp(
        `^driftline: Kafka at ${refused} \\(connection refused\\); the Schema Registry at ${refused} \\(connection refused\\); ClickHouse at ${refused} \\(connection refused\\): not reachable, start-up gave up after \\d+s \\(DRIFTLINE_STARTUP_TIMEOUT=3s\\) — check DRIFTLINE_KAFKA_BROKERS, DRIFTLINE_SCHEMA_REGISTRY_URL, DRIFTLINE_CLICKHOUSE_URL and that they are running$`,
      ),
    );
    expect(run.status, `signal ${run.signal}`).toBe(69);
    expect(run.ms).toBeLessThan(3_000 + 2 * SLACK_MS);
  }, 60_000);
});

describe('ClickHouse server that does not answer: one line naming DRIFTLINE_CLICKHOUSE_URL, exit 69 (it was exit 1)', () => {
  it.each([
    ['report', ['report', '--model', 'm', '--out', '/dev/null']],
    ['model-card', ['model-card', '--model', 'm', '--version', 'v1']],
    ['reference', ['reference', '--model', 'm', '--version', 'v1', '--file', fixture]],
    ['model stage', ['model', 'stage', '--model', 'm', '--version', 'v1', '--to', 'candidate', '--by', 'tester']],
  ])('%s, a refused port', async (_name, args) => {
    const run = await driftline(args, { DRIFTLINE_CLICKHOUSE_URL: `http://${refused}` });
    expect(run.stderr).toBe(
      `driftline: clickhouse connect: ECONNREFUSED: connect ECONNREFUSED ${refused} — check DRIFTLINE_CLICKHOUSE_URL and that the ClickHouse server is running\n`,
    );
    expect(run.status).toBe(69);
    expect(run.ms).toBeLessThan(SLACK_MS);
  });
});

describe('the pieces', () => {
  it('--connect-timeout defaults to 15 s', () => {
    expect(parseConnectTimeout(undefined)).toBe(DEFAULT_CONNECT_TIMEOUT_MS);
    expect(DEFAULT_CONNECT_TIMEOUT_MS).toBe(15_000);
    expect(parseConnectTimeout('1m')).toBe(60_000);
  });

  it('causes in words', () => {
    const coded = (code: string, message = code) => Object.assign(new Error(message), { code });
    expect(connectionErrorCause(coded('ECONNREFUSED'))).toBe('connection refused');
    expect(connectionErrorCause(coded('ENOTFOUND'))).toBe('name not resolved');
    expect(connectionErrorCause(coded('EAI_AGAIN'))).toBe('name not resolved: DNS did not answer');
    expect(connectionErrorCause(coded('ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', 'ssl3_read_bytes:…'))).toBe(
      'sslv3 alert handshake failure',
    );
    expect(connectionErrorCause(coded('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate'))).toBe(
      'self-signed certificate',
    );
  });

  it('exit 69 for an unreachable server; other ClickHouse failures stay internal (1)', () => {
    expect(describeError(new UnavailableError('cannot reach Kafka at …'), 'driftline dlq --help')).toEqual({
      line: 'cannot reach Kafka at …',
      code: EXIT.unavailable,
    });
    expect(EXIT.unavailable).toBe(69);
    const timedOut = new SinkUnavailableError('clickhouse connect: timed out after 30000 ms', {
      details: { clickhouse: { category: 'unavailable', name: 'TIMEOUT' } },
    });
    expect(describeError(timedOut, 'driftline report --help').code).toBe(69);
    const slowQuery = new SinkUnavailableError('clickhouse query: timed out after 30000 ms', {
      details: { clickhouse: { category: 'unavailable', name: 'TIMEOUT' } },
    });
    expect(describeError(slowQuery, 'driftline report --help').code).toBe(EXIT.internal);
    const refusedQuery = toWarehouseError(
      'query',
      new Error("Code: 60. DB::Exception: Unknown table expression identifier 'x'. (UNKNOWN_TABLE)"),
      'server',
    );
    expect(describeError(refusedQuery, 'driftline report --help').code).toBe(EXIT.internal);
  });

  it("a proxy's page with no ClickHouse code is 69 on any call, not only the first (found by a review: 1 one call later)", () => {
    const page = new Error('<html><body>502 Bad Gateway</body></html>');
    for (const operation of ['connect', 'command', 'query'] as const) {
      const error = toWarehouseError(operation, page, 'server');
      expect(describeError(error, 'driftline model --help').code, operation).toBe(69);
    }
  });
});

describe("replay's writes: an outage (69) or a refusal (1)", () => {
  // kafkajs' errors as libs/kafka's producer wraps them (a retriable SINK_UNAVAILABLE for all but
  // "too large"): the protocol error sits in the cause chain, under kafkajs' retrier's wrapper.
  const protocol = (type: string, retriable: boolean) =>
    Object.assign(new Error(type), { name: 'KafkaJSProtocolError', type, retriable });
  const wrapped = (inner: Error) =>
    new DriftlineError('SINK_UNAVAILABLE', `producing to t failed: ${inner.message}`, {
      retriable: true,
      cause: Object.assign(new Error(inner.message), {
        name: 'KafkaJSNonRetriableError',
        retriable: false,
        cause: inner,
      }),
    });
  it('an unreachable or hung broker, or too few in-sync replicas, is an outage', () => {
    const refused = Object.assign(new Error('Connection error: connect ECONNREFUSED'), {
      name: 'KafkaJSConnectionError',
      retriable: true,
    });
    expect(isWriteOutage(new DriftlineError('SINK_UNAVAILABLE', 'no answer', { retriable: true }))).toBe(true);
    expect(isWriteOutage(wrapped(refused))).toBe(true);
    expect(isWriteOutage(wrapped(protocol('NOT_ENOUGH_REPLICAS', true)))).toBe(true);
    // The producer's lost sequence state: a fresh producer, that is the next run, gets through.
    expect(isWriteOutage(wrapped(protocol('OUT_OF_ORDER_SEQUENCE_NUMBER', false)))).toBe(true);
    expect(isWriteOutage(refused)).toBe(true);
  });
  // Found by a review: every kafkajs protocol error marked non-retriable counted as a refusal,
  // these among them (exit 1, "a run before the fix is refused again"; a script stopped retrying).
  it.each([
    'BROKER_NOT_AVAILABLE',
    'UNKNOWN', // an unknown server error
    'INVALID_PRODUCER_ID_MAPPING', // producer state: a fresh producer mends it
    'NOT_LEADER_FOR_PARTITION',
    'CORRUPT_MESSAGE', // a CRC mismatch on the way
  ])('%s is an outage (69), whatever kafkajs marks it', (type) => {
    expect(isWriteOutage(wrapped(protocol(type, false)))).toBe(true);
    expect(isWriteOutage(wrapped(protocol(type, true)))).toBe(true);
  });
  it("the producer's connect given up by kafkajs' retrier is an outage (69), not a refusal", () => {
    // createProducer's connect rejects with kafkajs' own error, not wrapped by libs/kafka.
    const timedOut = Object.assign(new Error('Connection timeout'), {
      name: 'KafkaJSNumberOfRetriesExceeded',
      retriable: false,
      cause: Object.assign(new Error('Connection timeout'), { name: 'KafkaJSConnectionError', retriable: true }),
    });
    expect(isWriteOutage(timedOut)).toBe(true);
    // A bug of ours stays a bug (1).
    expect(isWriteOutage(new TypeError("Cannot read properties of undefined (reading 'x')"))).toBe(false);
  });
  it.each([
    'TOPIC_AUTHORIZATION_FAILED',
    'CLUSTER_AUTHORIZATION_FAILED',
    'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
    'SASL_AUTHENTICATION_FAILED',
    'MESSAGE_TOO_LARGE',
    'RECORD_LIST_TOO_LARGE',
    'INVALID_RECORD',
    'INVALID_TIMESTAMP',
    'INVALID_TOPIC_EXCEPTION',
    // Found by a review: these were 69, and a script retrying on 69 looped for ever.
    'UNSUPPORTED_FOR_MESSAGE_FORMAT', // a pre-0.11 topic refuses the replay's headers
    'UNSUPPORTED_COMPRESSION_TYPE',
    'INVALID_REQUIRED_ACKS',
    'UNSUPPORTED_VERSION',
    'DELEGATION_TOKEN_AUTHORIZATION_FAILED',
    'DELEGATION_TOKEN_EXPIRED',
  ])('%s is a refusal retrying cannot mend (1)', (type) => {
    expect(isWriteOutage(wrapped(protocol(type, false)))).toBe(false);
  });
  it("libs/kafka's own refusals and a failed SASL authentication are refusals (1)", () => {
    expect(isWriteOutage(new DriftlineError('SINK_REJECTED', 'producing to t refused (MESSAGE_TOO_LARGE)'))).toBe(
      false,
    );
    expect(
      isWriteOutage(new DriftlineError('SINK_REJECTED', 'producing to t refused: partition 7 does not exist')),
    ).toBe(false);
    const sasl = Object.assign(new Error('SASL PLAIN authentication failed'), {
      name: 'KafkaJSSASLAuthenticationError',
      retriable: false,
    });
    expect(isWriteOutage(sasl)).toBe(false);
    // A broker too old for an API kafkajs needs (found by a review: 69, retried for ever).
    const tooOld = Object.assign(new Error('The Kafka server does not support the requested API version'), {
      name: 'KafkaJSServerDoesNotSupportApiKey',
      retriable: false,
    });
    expect(isWriteOutage(tooOld)).toBe(false);
    expect(isWriteOutage(wrapped(tooOld))).toBe(false);
  });
});

describe("the DLQ read's bound on an answer", () => {
  it('is --connect-timeout when longer than 15 s (a 1 MB fetch over a slow link took longer: found by a review)', () => {
    expect(dlqReadOf(2_000)).toEqual({ answerTimeoutMs: 15_000 });
    expect(dlqReadOf(60_000)).toEqual({ answerTimeoutMs: 60_000 });
  });
});
