import { connect, type Socket } from 'node:net';
import { connectionErrorCause, parseHostPort, printable } from '@driftline/core';
import type { ResourceConfigs } from './resource-config.js';

/** One server the started services need, as its variable names it (host and port only: no credentials). */
export interface Backend {
  /** What it is, for a person: `Kafka`, `the Schema Registry`, `ClickHouse`. */
  readonly kind: string;
  /** The variable that names it. */
  readonly variable: string;
  /** Its addresses (`host:port`; Kafka's bootstrap brokers): reachable when any one is. */
  readonly addresses: readonly string[];
  /**
   * What a probe asks of an address: `tcp`, that it takes a connection; `kafka`, that it also
   * answers one Kafka request (ApiVersions v0) with a Kafka answer (see `probeKafka`).
   */
  readonly probe: 'tcp' | 'kafka';
}

/** A backend none of whose addresses is reachable (by its `probe`), with why for each. */
export interface UnreachableBackend extends Backend {
  readonly causes: readonly string[];
  /**
   * Whether an address took the TCP connection (a `kafka` probe: and then gave no Kafka answer:
   * silent, other bytes, closed or reset). False when none did: refused, not resolved, timed out.
   */
  readonly tookConnection: boolean;
}

/** The bounds of one probe of an address, in ms. */
export interface ProbeBounds {
  /** On its TCP connection (a `tcp` probe is just that). */
  readonly connectMs: number;
  /** On a `kafka` probe's answer, from the connection: a loaded broker may take seconds. */
  readonly answerMs: number;
}

const DEFAULT_PORTS: Readonly<Record<string, number>> = {
  'http:': 80,
  'https:': 443,
};

/** `host:port` of a URL (its scheme's port when it has none); undefined when it is not a URL. */
function urlAddress(url: string): string | undefined {
  try {
    const u = new URL(url);
    const port = u.port === '' ? DEFAULT_PORTS[u.protocol] : Number(u.port);
    return port === undefined || u.hostname === '' ? undefined : `${u.hostname}:${port}`;
  } catch {
    return undefined;
  }
}

/**
 * The servers a start waits for: those of the resource configs (present only when a started
 * service needs the resource; an embedded ClickHouse is no server), whose topics, schemas and
 * tables a start creates. Not Redis: the services that use it start while it is down (the feature
 * API answers 503 until it is up). Kafka is asked a Kafka request unless its connection is TLS or
 * SASL: a plain-TCP request to a TLS listener is never answered (a SASL one answers ApiVersions
 * before authentication, but a proxy in front of it need not), so those stay a TCP probe.
 */
export function backendsOf(configs: ResourceConfigs): Backend[] {
  const backends: Backend[] = [];
  const add = (
    kind: string,
    variable: string,
    addresses: ReadonlyArray<string | undefined>,
    probe: Backend['probe'] = 'tcp',
  ) => {
    const known = addresses.filter((a): a is string => a !== undefined);
    if (known.length > 0) backends.push({ kind, variable, addresses: known, probe });
  };
  const kafka = configs.kafka;
  if (kafka !== undefined)
    add('Kafka', 'DRIFTLINE_KAFKA_BROKERS', kafka.brokers, kafka.ssl || kafka.sasl !== undefined ? 'tcp' : 'kafka');
  if (configs.registry !== undefined)
    add('the Schema Registry', 'DRIFTLINE_SCHEMA_REGISTRY_URL', [urlAddress(configs.registry.url)]);
  if (configs.clickhouse?.mode === 'server')
    add('ClickHouse', 'DRIFTLINE_CLICKHOUSE_URL', [urlAddress(configs.clickhouse.url)]);
  return backends;
}

/** ApiVersions (key 18) v0 with a v1 request header: the first request of every Kafka client. */
function apiVersionsRequest(correlationId: number): Buffer {
  const clientId = Buffer.from('driftline-probe');
  const frame = Buffer.alloc(14 + clientId.length);
  frame.writeInt32BE(frame.length - 4, 0); // size of what follows
  frame.writeInt16BE(18, 4); // api key: ApiVersions
  frame.writeInt16BE(0, 6); // version 0: a broker answers a version it does not take with a v0 answer saying so
  frame.writeInt32BE(correlationId, 8);
  frame.writeInt16BE(clientId.length, 12);
  clientId.copy(frame, 14);
  return frame;
}

/**
 * Smallest and largest size of an ApiVersions v0 answer's frame: correlation id, error code and the
 * count of its array, then 6 bytes an API (about 90 today; 64 KiB is 10,000).
 */
const ANSWER_MIN_BYTES = 10;
const ANSWER_MAX_BYTES = 64 * 1024;

/**
 * What the first bytes of an answer say: `kafka` once a whole frame with our correlation id has
 * come, `more` while it may still come, or the bytes that are not Kafka's.
 */
function readAnswer(received: Buffer, correlationId: number): 'kafka' | 'more' | 'not kafka' {
  if (received.length < 8) return 'more';
  const size = received.readInt32BE(0);
  if (size < ANSWER_MIN_BYTES || size > ANSWER_MAX_BYTES || received.readInt32BE(4) !== correlationId)
    return 'not kafka';
  return received.length >= 4 + size ? 'kafka' : 'more';
}

/** What a probe of one address found: nothing wrong (`cause` undefined), or why not, and whether it connected. */
interface ProbeResult {
  readonly cause: string | undefined;
  readonly connected: boolean;
}

type Probe = (address: string, bounds: ProbeBounds) => Promise<ProbeResult>;

/** Why a TCP connection to `address` failed within `bounds.connectMs`, or no cause when it opened. */
const probeTcp: Probe = (address, bounds) => probeSocket(address, bounds, undefined);

/**
 * Why `address` is not a Kafka that answers (its connection within `bounds.connectMs`, then its
 * answer within `bounds.answerMs`), or no cause when it answered an ApiVersions v0 request with a
 * whole frame of the same correlation id (any error code: a broker that no longer takes v0 says so
 * in a v0 answer). A server that takes the connection and never answers (a hung or stopped broker,
 * whose kernel still accepts) or answers something else (another server on that port) is not
 * reachable: the start's own Kafka requests would each wait kafkajs' 30 s request timeout, 8 times
 * over. The answer has its own, longer bound: a loaded broker answered in 2.3 s, and a 2 s bound
 * cut healthy starts (found by a review).
 */
const probeKafka: Probe = (address, bounds) => {
  // Positive and below 2^31: an answer echoing it is the broker's, not some server's bytes.
  const correlationId = 1 + Math.floor(Math.random() * 0x7ffffffe);
  return probeSocket(address, bounds, { request: apiVersionsRequest(correlationId), correlationId });
};

function probeSocket(
  address: string,
  bounds: ProbeBounds,
  kafka: { readonly request: Buffer; readonly correlationId: number } | undefined,
): Promise<ProbeResult> {
  const target = parseHostPort(address);
  if (target === undefined) return Promise.resolve({ cause: 'not host:port', connected: false });
  return new Promise((resolve) => {
    const socket: Socket = connect(target);
    let connected = false;
    let received = Buffer.alloc(0);
    const done = (cause: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ cause, connected });
    };
    let timer = setTimeout(() => done('timed out'), bounds.connectMs);
    socket.once('connect', () => {
      connected = true;
      if (kafka === undefined) {
        done(undefined);
        return;
      }
      clearTimeout(timer);
      timer = setTimeout(
        () => done(`took the connection but answered no Kafka request in ${bounds.answerMs} ms`),
        bounds.answerMs,
      );
      socket.write(kafka.request);
    });
    socket.on('data', (chunk: Buffer) => {
      if (kafka === undefined) return;
      received = Buffer.concat([received, chunk]);
      const answer = readAnswer(received, kafka.correlationId);
      if (answer === 'kafka') done(undefined);
      else if (answer === 'not kafka')
        done(
          `took the connection but answered a Kafka request with bytes that are not Kafka's ("${printable(received.subarray(0, 16).toString('latin1'))}")`,
        );
    });
    socket.once('end', () => done('took the connection but closed it without answering a Kafka request'));
    socket.once('error', (error) =>
      done(
        connected
          ? `took the connection, then ${connectionErrorCause(error)} before answering a Kafka request`
          : connectionErrorCause(error),
      ),
    );
  });
}

/**
 * The backends not reachable at any of their addresses (all probed at once, each within `bounds`):
 * taking no TCP connection, or for a `kafka` probe answering no Kafka request. A `tcp` probe says
 * nothing of a server that takes connections and does not answer.
 */
export async function unreachableBackends(
  backends: readonly Backend[],
  bounds: ProbeBounds,
): Promise<UnreachableBackend[]> {
  const results = await Promise.all(
    backends.map(async (b) => {
      const probe = b.probe === 'kafka' ? probeKafka : probeTcp;
      return { backend: b, found: await Promise.all(b.addresses.map((a) => probe(a, bounds))) };
    }),
  );
  const unreachable: UnreachableBackend[] = [];
  for (const { backend, found } of results) {
    const causes = found.map((f) => f.cause);
    if (!causes.every((c): c is string => c !== undefined)) continue;
    unreachable.push({ ...backend, causes, tookConnection: found.some((f) => f.connected) });
  }
  return unreachable;
}

/** `Kafka at 127.0.0.1:1 (connection refused)`, each address with its cause. */
export function describeUnreachable(b: UnreachableBackend): string {
  const at = b.addresses.map((a, i) => `${printable(a)} (${b.causes[i]})`).join(', ');
  return `${b.kind} at ${at}`;
}
