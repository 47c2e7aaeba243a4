import { isIP, type Socket, connect as tcpConnect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import {
  ConfigError,
  connectionErrorCause,
  DURATION_HINT,
  isRetriable,
  parseDurationMs,
  parseHostPort,
  printable,
} from '@driftline/core';
import { UnavailableError } from '../describe-error.js';

/**
 * Default of `--connect-timeout`: how long a Kafka command waits for the brokers' first answer.
 * kcat waits 5 s for its first metadata (`-m`), Kafka's Java clients 30 s for a request
 * (`request.timeout.ms`); kafkajs' own retries took 210-219 s against a refused port (found by a
 * review). 15 s leaves kafkajs several connection retries (a broker restarting, a slow TLS and SASL
 * handshake) and is still an answer, not a silence; `--connect-timeout` takes up to 1 h.
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
const CONNECT_TIMEOUT_RANGE = [1_000, 3_600_000] as const;

/** `--connect-timeout`: a duration from 1s to 1h. */
export function parseConnectTimeout(value: string | undefined): number {
  if (value === undefined) return DEFAULT_CONNECT_TIMEOUT_MS;
  const ms = /^\d+$/.test(value.trim()) ? undefined : parseDurationMs(value);
  if (ms === undefined || ms < CONNECT_TIMEOUT_RANGE[0] || ms > CONNECT_TIMEOUT_RANGE[1]) {
    throw new ConfigError(
      '--connect-timeout',
      `must be ${DURATION_HINT}, from 1s to 1h (got ${JSON.stringify(printable(value.slice(0, 80)))})`,
    );
  }
  return ms;
}

/** The brokers a command talks to, as configured (DRIFTLINE_KAFKA_BROKERS, DRIFTLINE_KAFKA_SSL). */
export interface KafkaTarget {
  readonly brokers: readonly string[];
  readonly ssl: boolean;
}

/** What one probe of a broker found: it took a connection (and a TLS handshake), or why not. */
type Probe = { readonly reached: true } | { readonly reached: false; readonly cause: string; readonly tls: boolean };

/** Wait after the first contact starts before probing: a live cluster answers first, unprobed. */
const PROBE_GRACE_MS = 500;
/** Bound on one probe of one broker, and the pause between rounds. */
const PROBE_TIMEOUT_MS = 5_000;
const PROBE_INTERVAL_MS = 1_000;

/**
 * Opens a connection to `broker` as kafkajs does (TCP, or TLS with the host as server name unless it
 * is an address) and closes it: only to name the cause when Kafka does not answer.
 */
function probe(broker: string, ssl: boolean, timeoutMs: number, signal: AbortSignal): Promise<Probe> {
  const target = parseHostPort(broker);
  if (target === undefined) return Promise.resolve({ reached: false, cause: 'not host:port', tls: false });
  return new Promise((resolve) => {
    let connected = false;
    let settled = false;
    const socket: Socket = ssl
      ? tlsConnect({ ...target, ...(isIP(target.host) === 0 ? { servername: target.host } : {}) })
      : tcpConnect(target);
    const done = (result: Probe) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', abort);
      socket.destroy();
      resolve(result);
    };
    const failed = (cause: string) => done({ reached: false, cause, tls: ssl && connected });
    const abort = () => failed('probe stopped');
    signal.addEventListener('abort', abort);
    socket.setTimeout(timeoutMs, () => failed(connected ? 'TLS handshake timed out' : 'timed out'));
    socket.once('connect', () => {
      connected = true;
      if (!ssl) done({ reached: true });
    });
    socket.once('secureConnect', () => done({ reached: true }));
    socket.on('error', (error) =>
      failed(connected ? `TLS handshake failed: ${connectionErrorCause(error)}` : connectionErrorCause(error)),
    );
  });
}

/** The one line for brokers that did not answer within `timeoutMs`. */
function unreachableLine(target: KafkaTarget, probes: ReadonlyMap<string, Probe>, timeoutMs: number): string {
  const shown = target.brokers.slice(0, 5);
  const more = target.brokers.length - shown.length;
  const causes = shown.map((b) => {
    const p = probes.get(b);
    const cause = p === undefined ? 'no answer' : p.reached ? 'accepts connections, no Kafka answer yet' : p.cause;
    return `${printable(b)} (${cause})`;
  });
  const tls = [...probes.values()].some((p) => !p.reached && p.tls);
  const silent = [...probes.values()].some((p) => p.reached);
  const hint = tls
    ? 'check DRIFTLINE_KAFKA_SSL (is the listener TLS?) and the broker certificate'
    : silent
      ? 'check DRIFTLINE_KAFKA_BROKERS names a Kafka listener, DRIFTLINE_KAFKA_SSL and DRIFTLINE_KAFKA_SASL_* match it, and that the broker is up'
      : 'check DRIFTLINE_KAFKA_BROKERS and that a broker is running';
  const seconds = timeoutMs % 1000 === 0 ? `${timeoutMs / 1000}s` : `${timeoutMs}ms`;
  return `cannot reach Kafka at ${causes.join(', ')}${more > 0 ? ` and ${more} more` : ''} within ${seconds} (--connect-timeout) — ${hint}`;
}

/**
 * Runs `firstContact` (the command's first call to the brokers) bounded by `timeoutMs`: when no
 * broker has answered by then, or the call fails as an outage, it fails with one line naming each
 * broker and why it did not answer (`UnavailableError`, exit 69). Only the first contact is bounded:
 * once the cluster has answered, a long read that is making progress is never cut. The brokers are
 * probed (a TCP or TLS connection each, every second from 0.5 s on) only to name the cause: kafkajs
 * retries its connection failures out of sight. A failure that is not retriable is thrown as it
 * came; credentials Kafka refuses come retriable from libs/kafka (held at run time), so the caller
 * makes them a configuration error first (kafkaCredentialsError). The call itself is not cancelled: the command exits.
 */
export async function withinConnectTimeout<T>(
  target: KafkaTarget,
  timeoutMs: number,
  firstContact: () => Promise<T>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  const probes = new Map<string, Probe>();
  const stop = new AbortController();
  const probing = (async () => {
    await sleep(Math.min(PROBE_GRACE_MS, timeoutMs / 2), undefined, { signal: stop.signal });
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      const bound = Math.min(left, PROBE_TIMEOUT_MS);
      const round = await Promise.all(target.brokers.map((b) => probe(b, target.ssl, bound, stop.signal)));
      if (stop.signal.aborted) return;
      for (const [i, broker] of target.brokers.entries()) {
        const result = round[i]!;
        // A round begun just before the deadline is cut short by it: its "timed out" says nothing
        // against what an earlier round found (a fresh clone's loaded run named a listening broker
        // "timed out" that way).
        const cut = bound < PROBE_TIMEOUT_MS && !result.reached && result.cause.endsWith('timed out');
        if (!cut || !probes.has(broker)) probes.set(broker, result);
      }
      await sleep(Math.min(PROBE_INTERVAL_MS, Math.max(0, deadline - Date.now())), undefined, { signal: stop.signal });
    }
  })().catch(() => {}); // aborted
  type Outcome =
    | { readonly kind: 'answered'; readonly value: T }
    | { readonly kind: 'failed'; readonly error: unknown };
  // Settles once, never rejects: a failure after the deadline is no unhandled rejection.
  const contact: Promise<Outcome> = firstContact().then(
    (value) => ({ kind: 'answered', value }),
    (error: unknown) => ({ kind: 'failed', error }),
  );
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), timeoutMs);
  });
  const outcome = await Promise.race([contact, expired]);
  clearTimeout(timer);
  if (outcome?.kind === 'answered' || (outcome?.kind === 'failed' && !isRetriable(outcome.error))) {
    stop.abort();
    if (outcome.kind === 'answered') return outcome.value;
    throw outcome.error;
  }
  // Past the deadline the round in flight ends at once (each probe is bounded by the time left); an
  // outage reported earlier (kafkajs gave up first, under a long bound) names what was probed so far.
  if (outcome !== undefined) stop.abort();
  await probing;
  stop.abort();
  throw new UnavailableError(unreachableLine(target, probes, timeoutMs));
}
