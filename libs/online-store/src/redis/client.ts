import { DriftlineError, type RedisConnectionConfig } from '@driftline/core';
import { Redis, ReplyError } from 'ioredis';

/** The one Redis client type of driftline (ioredis' client, named here so nobody else imports ioredis). */
export type RedisClient = Redis;

/** What a connection is for; each use has one policy in {@link REDIS_POLICIES}. */
export type RedisUse = 'online-write' | 'online-read' | 'join-store' | 'tooling';

export interface RedisClientPolicy {
  /** false = a command issued while disconnected fails at once instead of waiting in a queue. */
  readonly enableOfflineQueue: boolean;
  /** Reconnections a command survives before it fails. */
  readonly maxRetriesPerRequest: number;
  /** Deadline of every command (pipelined commands included), from the moment it is sent. */
  readonly commandTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** Concurrent commands share round trips (for many small independent reads). */
  readonly autoPipelining: boolean;
  /** Longest pause between reconnection attempts (linear from 50 ms). */
  readonly reconnectMaxDelayMs: number;
}

/**
 * Policy per use; its timeouts are defaults the operator may override (DRIFTLINE_REDIS_*_TIMEOUT,
 * see {@link configuredTimeouts}). Every policy fails fast and bounds every command: an outage must
 * surface as a retriable error to the caller (the consumer loop backs off and retries the whole
 * idempotent batch; the feature API answers 503), never as a promise that waits for the server to
 * come back.
 * Commands half-sent when a connection drops are never resent by the client on its own
 * (`autoResendUnfulfilledCommands: false`): the caller's retry is the only retry.
 */
export const REDIS_POLICIES: Readonly<Record<RedisUse, RedisClientPolicy>> = {
  // The materializer's pipelines: one batch of scripts, up to thousands of entities.
  'online-write': {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeoutMs: 10_000,
    connectTimeoutMs: 5_000,
    autoPipelining: false,
    reconnectMaxDelayMs: 500,
  },
  // The feature API: small HMGETs on the serving path; a slow store is a fast 503. No
  // auto-pipelining: ioredis defers an auto-pipelined command to setImmediate, one more event-loop
  // turn per read (a batch request is already one explicit pipeline).
  'online-read': {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeoutMs: 2_000,
    connectTimeoutMs: 2_000,
    autoPipelining: false,
    reconnectMaxDelayMs: 500,
  },
  // The label-joiner's state: batch scripts, like the materializer's writes.
  'join-store': {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeoutMs: 10_000,
    connectTimeoutMs: 5_000,
    autoPipelining: false,
    reconnectMaxDelayMs: 1_000,
  },
  // Tests, benchmarks and tools: commands may be issued before the connection is up (they wait
  // in the queue at most commandTimeoutMs), so a script needs no ready handshake.
  tooling: {
    enableOfflineQueue: true,
    maxRetriesPerRequest: 1,
    commandTimeoutMs: 10_000,
    connectTimeoutMs: 5_000,
    autoPipelining: false,
    reconnectMaxDelayMs: 500,
  },
};

export interface RedisClientOptions {
  /** CLIENT SETNAME, visible in CLIENT LIST (default `driftline-<use>`). */
  readonly name?: string;
  /** Overrides of the use's policy (tests of timeouts, benchmarks). */
  readonly policy?: Partial<RedisClientPolicy>;
}

/**
 * The timeouts the operator set for a use: feature reads (`online-read`, a latency budget) take
 * DRIFTLINE_REDIS_READ_TIMEOUT, every other use (batches of scripts, checks) the command timeout;
 * the connect timeout is the network path's, the same for all. Absent ones: the use's defaults.
 */
function configuredTimeouts(config: RedisConnectionConfig, use: RedisUse): Partial<RedisClientPolicy> {
  const command = use === 'online-read' ? config.readTimeoutMs : config.commandTimeoutMs;
  return {
    ...(command === undefined ? {} : { commandTimeoutMs: command }),
    ...(config.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: config.connectTimeoutMs }),
  };
}

/**
 * The one Redis client factory: URL, password, TLS and the configured timeouts from libs/core's
 * RedisConnectionConfig, everything else from the policy of the use (`options.policy` overrides
 * both). Connects at once; `status === 'ready'` when usable.
 */
export function createRedisClient(
  config: RedisConnectionConfig,
  use: RedisUse,
  options: RedisClientOptions = {},
): RedisClient {
  const policy = { ...REDIS_POLICIES[use], ...configuredTimeouts(config, use), ...options.policy };
  return new Redis(config.url, {
    ...(config.password === undefined ? {} : { password: config.password }),
    ...(config.tls ? { tls: {} } : {}),
    connectionName: options.name ?? `driftline-${use}`,
    enableOfflineQueue: policy.enableOfflineQueue,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: policy.maxRetriesPerRequest,
    commandTimeout: policy.commandTimeoutMs,
    connectTimeout: policy.connectTimeoutMs,
    enableAutoPipelining: policy.autoPipelining,
    retryStrategy: (times) => Math.min(50 * times, policy.reconnectMaxDelayMs),
    // A server-side error reply warrants no reconnect, but READONLY: the node was demoted under a
    // connection it kept open (a switchover with REPLICAOF, a Service or DNS name moved to the new
    // primary), and every retry on this socket hit the replica again, until the stall restart.
    // 1: reconnect without resending (the caller's retry is the only retry).
    reconnectOnError: (error) => (error.message.startsWith('READONLY') ? 1 : false),
  });
}

/** How long {@link waitReady} waits by default, at least. */
const READY_WAIT_MS = 10_000;

/**
 * Resolves once the client is ready; rejects after `timeoutMs` with a retriable error: Redis not
 * answering yet is an outage (start-up waits for it, DRIFTLINE_STARTUP_TIMEOUT), not a defect.
 * By default it waits 10 s, or twice the client's connect timeout when that is longer: a connect
 * may take its whole timeout and the handshake on so slow a path about as long again (a fixed
 * 10 s would cut a longer DRIFTLINE_REDIS_CONNECT_TIMEOUT short, failing every start-up attempt).
 */
export function waitReady(
  client: RedisClient,
  timeoutMs = Math.max(READY_WAIT_MS, 2 * (client.options.connectTimeout ?? 0)),
): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      reject(
        new DriftlineError('SOURCE_UNAVAILABLE', `Redis not ready within ${timeoutMs} ms (status ${client.status})`, {
          retriable: true,
        }),
      );
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    client.once('ready', onReady);
  });
}

/** Consecutive command timeouts after which {@link StallWatch} drops a connection and reconnects. */
export const STALLED_AFTER_TIMEOUTS = 3;

/** The message of ioredis' command timeout (`commandTimeout`). */
export const COMMAND_TIMED_OUT = 'Command timed out';

/**
 * Notices a connection that stopped answering without closing: a blackholed peer (a proxy that
 * stops replying, a host gone without a reset) keeps the socket open until TCP gives up (~15 min);
 * every command times out while the client's status stays `ready`, and it never reconnects (a
 * review: 7 timed-out reads, one connection, /healthz 200). The store passes every command's
 * outcome to {@link observe}:
 * - a timeout counts only when no command of the connection was answered within the command
 *   timeout before it: a blackhole answers nothing, while an overloaded connection (a queue of
 *   reads longer than the timeout) keeps answering the commands ahead of the ones that time out.
 *   Counting those dropped the connection under load, failing every read in flight on it and
 *   failing readiness (a review: 128 clients of 1,000-entity batches, 90 % 503s);
 * - after {@link STALLED_AFTER_TIMEOUTS} consecutive counted timeouts it drops the connection and
 *   reconnects (`disconnect(true)`; a new connection through the blackhole then fails its connect
 *   or handshake timeout, and the client keeps retrying);
 * - from the first counted timeout until a command is answered, the connection is stalled:
 *   {@link ready} is false. While stalled and connected, `ready()` sends a PING (one at a time), so health
 *   checks drive the count and the recovery when no read comes (a reader taken out of service by
 *   its failing readiness would otherwise stay out for ever); on a new connection it is answered.
 */
export class StallWatch {
  private timeouts = 0;
  private probing = false;
  /** When a command was last answered (performance.now()); -Infinity: never. */
  private answeredAt = Number.NEGATIVE_INFINITY;
  /** A timeout with an answer less than this long before it is overload, not a stall. */
  private readonly windowMs: number;

  constructor(
    private readonly client: RedisClient,
    readonly limit = STALLED_AFTER_TIMEOUTS,
    private readonly now: () => number = () => performance.now(),
  ) {
    // (Not the socket's 'data' events: a second listener on ioredis' socket halved the model
    // server's throughput at 8 clients of 1,000-instance batches, 9 -> 4.7 requests a second.)
    this.windowMs = client.options.commandTimeout ?? 0;
  }

  /** Whether the last commands timed out and none was answered since. */
  get stalled(): boolean {
    return this.timeouts > 0;
  }

  /**
   * Counts a command's outcome: null (answered) or its error. An error reply is an answer too;
   * other errors (not connected, connection closed) say nothing about a stall, nor does a timeout
   * within the command timeout of an answer (overload: see the class).
   */
  observe(error: unknown): void {
    if (error === null || error instanceof ReplyError) {
      this.timeouts = 0;
      this.answeredAt = this.now();
    } else if (error instanceof Error && error.message === COMMAND_TIMED_OUT) {
      // Answers arrived while this command waited: the connection is slow, not gone. (Nine
      // tenths: an answer just before the command was sent says nothing of the connection since.)
      if (this.now() - this.answeredAt < 0.9 * this.windowMs) return;
      this.timeouts++;
      if (this.timeouts % this.limit !== 0) return;
      // Decided once the event loop has read its sockets: a loop late by more than the timeout
      // (a starved process) runs its timers before its reads, and the replies waiting in the
      // socket (those of commands sent since, still awaited) would have been taken for silence.
      const at = this.now();
      setImmediate(() => {
        if (this.answeredAt >= at) this.timeouts = 0;
        else this.client.disconnect(true);
      });
    }
  }

  /** Whether the connection is up and not stalled; while stalled, probes it with a PING. */
  ready(): boolean {
    if (this.client.status !== 'ready') return false;
    if (this.timeouts === 0) return true;
    if (!this.probing) {
      this.probing = true;
      this.client
        .ping()
        .then(
          () => this.observe(null),
          (error: unknown) => this.observe(error),
        )
        .finally(() => {
          this.probing = false;
        });
    }
    return false;
  }
}
