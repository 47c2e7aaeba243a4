import { connect, type Socket } from 'node:net';
import { connectionErrorCause, parseHostPort, printable } from '@driftline/core';
import type { ResourceConfigs } from './resource-config.js';

/** One server the started services need, as its variable names it (host and port only: no credentials). */
export interface Backend {
  /** What it is, for a person: `Kafka`, `the Schema Registry`, `ClickHouse`. */
  readonly kind: string;
  /** The variable that names it. */
  readonly variable: string;
  /** Its addresses (`host:port`; Kafka's bootstrap brokers): reachable when any one accepts. */
  readonly addresses: readonly string[];
}

/** A backend none of whose addresses took a TCP connection, with why for each. */
export interface UnreachableBackend extends Backend {
  readonly causes: readonly string[];
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
 * API answers 503 until it is up).
 */
export function backendsOf(configs: ResourceConfigs): Backend[] {
  const backends: Backend[] = [];
  const add = (kind: string, variable: string, addresses: ReadonlyArray<string | undefined>) => {
    const known = addresses.filter((a): a is string => a !== undefined);
    if (known.length > 0) backends.push({ kind, variable, addresses: known });
  };
  if (configs.kafka !== undefined) add('Kafka', 'DRIFTLINE_KAFKA_BROKERS', configs.kafka.brokers);
  if (configs.registry !== undefined)
    add('the Schema Registry', 'DRIFTLINE_SCHEMA_REGISTRY_URL', [urlAddress(configs.registry.url)]);
  if (configs.clickhouse?.mode === 'server')
    add('ClickHouse', 'DRIFTLINE_CLICKHOUSE_URL', [urlAddress(configs.clickhouse.url)]);
  return backends;
}

/** Why a TCP connection to `address` failed within `timeoutMs`, or undefined when it opened. */
function probe(address: string, timeoutMs: number): Promise<string | undefined> {
  const target = parseHostPort(address);
  if (target === undefined) return Promise.resolve('not host:port');
  return new Promise((resolve) => {
    const socket: Socket = connect(target);
    const done = (cause: string | undefined) => {
      socket.destroy();
      resolve(cause);
    };
    socket.setTimeout(timeoutMs, () => done('timed out'));
    socket.once('connect', () => done(undefined));
    socket.once('error', (error) => done(connectionErrorCause(error)));
  });
}

/**
 * The backends that take no TCP connection at any of their addresses (all probed at once, each
 * within `timeoutMs`). It says nothing of a server that takes connections and does not answer.
 */
export async function unreachableBackends(
  backends: readonly Backend[],
  timeoutMs: number,
): Promise<UnreachableBackend[]> {
  const results = await Promise.all(
    backends.map(async (b) => ({ ...b, causes: await Promise.all(b.addresses.map((a) => probe(a, timeoutMs))) })),
  );
  return results
    .filter((b) => b.causes.every((c) => c !== undefined))
    .map((b) => ({ ...b, causes: b.causes as string[] }));
}

/** `Kafka at 127.0.0.1:1 (connection refused)`, each address with its cause. */
export function describeUnreachable(b: UnreachableBackend): string {
  const at = b.addresses.map((a, i) => `${printable(a)} (${b.causes[i]})`).join(', ');
  return `${b.kind} at ${at}`;
}
