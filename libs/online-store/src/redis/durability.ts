import { ConfigError, DriftlineError, type Logger, type RedisConnectionConfig } from '@driftline/core';
import { ReplyError } from 'ioredis';
import { createRedisClient, type RedisClient } from './client.js';
import { classifyRedisError } from './errors.js';

/** A Redis setting that weakens what driftline can promise about the state it keeps there. */
export interface DurabilityFinding {
  readonly setting: string;
  readonly value: string;
  readonly expected: string;
  /** What is at risk, in words for the operator. */
  readonly risk: string;
}

export interface DurabilityReport {
  /** False when the server refused CONFIG GET (managed Redis often does): nothing could be checked. */
  readonly checked: boolean;
  readonly findings: readonly DurabilityFinding[];
  /** Why nothing could be checked. */
  readonly reason?: string;
}

const SETTINGS = ['maxmemory-policy', 'appendonly', 'appendfsync', 'save'] as const;

/**
 * What is at stake when Redis drops a state store's writes: the store (for the log line), its state
 * in words, and what an evicted entry silently costs.
 */
export interface DurabilityStakes {
  readonly store: string;
  readonly state: string;
  readonly evicted: string;
}

/** The label-joiner's join state. */
export const JOIN_STATE_STAKES: DurabilityStakes = {
  store: 'the label-joiner join store',
  state: 'join state',
  evicted: 'predictions lose their labels without an error',
};

/** The feature-materializer's online features. */
export const ONLINE_FEATURES_STAKES: DurabilityStakes = {
  store: 'the online feature store',
  state: 'online features',
  evicted:
    'entities lose their features (served as missing until their next event; then the aggregates of a windowed view count only the events kept since, until its longest window has passed), without an error',
};

/**
 * What a state store needs from Redis, from its CONFIG GET values: no eviction and an append-only
 * file synced at least every second (the consumer commits offsets once Redis has accepted a batch,
 * so what Redis loses on a crash after that is never replayed from Kafka). Pure.
 */
export function durabilityFindings(
  config: Readonly<Record<string, string>>,
  stakes: DurabilityStakes = JOIN_STATE_STAKES,
): DurabilityFinding[] {
  const findings: DurabilityFinding[] = [];
  const policy = config['maxmemory-policy'];
  if (policy !== undefined && policy !== 'noeviction') {
    findings.push({
      setting: 'maxmemory-policy',
      value: policy,
      expected: 'noeviction',
      risk: `under memory pressure Redis deletes ${stakes.state}: ${stakes.evicted}`,
    });
  }
  const aof = config.appendonly;
  if (aof !== undefined && aof !== 'yes') {
    const snapshots = (config.save ?? '').trim() !== '';
    findings.push({
      setting: 'appendonly',
      value: aof,
      expected: 'yes (with appendfsync everysec or always)',
      risk: snapshots
        ? `a Redis crash loses the ${stakes.state} written since the last RDB snapshot; those offsets are already committed`
        : `no persistence at all (no AOF, no RDB snapshots): a Redis restart loses all ${stakes.state}`,
    });
  } else if (aof === 'yes' && config.appendfsync === 'no') {
    findings.push({
      setting: 'appendfsync',
      value: 'no',
      expected: 'everysec or always',
      risk: `the OS decides when the AOF reaches disk: a machine crash can lose about 30 s of ${stakes.state}`,
    });
  }
  return findings;
}

/**
 * Reads the durability settings of a Redis server (CONFIG GET) and logs one warning line per
 * finding. A server that refuses CONFIG (managed Redis) is tolerated: one warning that it could
 * not be checked. Never throws for what it finds: the operator decides.
 */
export async function checkRedisDurability(
  redis: RedisClient,
  logger: Logger,
  stakes: DurabilityStakes = JOIN_STATE_STAKES,
): Promise<DurabilityReport> {
  const what = stakes.store;
  const config: Record<string, string> = {};
  try {
    for (const name of SETTINGS) {
      const reply = (await redis.config('GET', name)) as string[];
      for (let i = 0; i + 1 < reply.length; i += 2) config[reply[i]!] = reply[i + 1]!;
    }
  } catch (error) {
    const reason = (error as Error).message.split('\n')[0]!.slice(0, 200);
    logger.warn(
      { reason },
      `could not check the Redis durability of ${what} (CONFIG GET refused, e.g. managed Redis): make sure maxmemory-policy is noeviction and appendonly yes with appendfsync everysec`,
    );
    return { checked: false, findings: [], reason };
  }
  const findings = durabilityFindings(config, stakes);
  for (const f of findings) {
    logger.warn(
      { setting: f.setting, value: f.value, expected: f.expected },
      `Redis durability of ${what}: ${f.setting} is ${f.value}, expected ${f.expected}: ${f.risk}`,
    );
  }
  return { checked: true, findings };
}

/** The oldest Redis the join scripts, and the classification of their error replies, are tested on. */
export const MIN_REDIS_MAJOR = 7;

/**
 * Why a server's `INFO server` / `INFO cluster` text rules it out for driftline's scripts, or
 * undefined: older than MIN_REDIS_MAJOR, or a Redis Cluster (the scripts take keys of several slots:
 * CROSSSLOT on every write).
 */
export function unsupportedRedis(info: string): string | undefined {
  const version = /^redis_version:(\d+)\.(\d+)/m.exec(info);
  if (version !== null && Number(version[1]) < MIN_REDIS_MAJOR) {
    return `Redis ${version[1]}.${version[2]}: driftline needs ${MIN_REDIS_MAJOR}.0 or later`;
  }
  if (/^cluster_enabled:1\b/m.test(info)) {
    return 'a Redis Cluster: driftline needs a standalone Redis, or a primary with replicas behind one address';
  }
  return undefined;
}

/**
 * Fails start-up, naming DRIFTLINE_REDIS_URL, on a server driftline's scripts cannot run on (see
 * unsupportedRedis), or one that refused the URL's database (see checkRedisDatabase). A server
 * that refuses INFO with an error reply that cannot change (NOPERM, an unknown command: managed
 * Redis) is tolerated: nothing is known. A connection error or a timeout, while asking for the
 * database or for INFO, is a retriable error, not a verdict: the caller asks again when Redis
 * answers (tolerated, it let a cluster pass, never asked again: found by a review).
 */
export async function checkRedisServer(redis: RedisClient): Promise<void> {
  await checkSelectedDatabase(redis);
  let info: string;
  try {
    info = `${await redis.info('server')}\n${await redis.info('cluster')}`;
  } catch (error) {
    if (error instanceof ReplyError && !REPLY_THAT_CAN_CHANGE.test(replyText(error as Error))) return;
    throw classifyRedisError(error, 'INFO');
  }
  const problem = unsupportedRedis(info);
  if (problem !== undefined) throw new ConfigError('DRIFTLINE_REDIS_URL', problem);
}

/** How soon a server check that failed on a connection error (not a verdict) is tried again. */
const SERVER_CHECK_RETRY_MS = 5_000;

/**
 * {@link checkRedisServer}, run without holding a start: once `databaseAccepted` resolves (the
 * URL's database accepted, see checkRedisDatabase) and the client is ready, again on every
 * reconnection (the server behind the URL may have been replaced: a verdict is cleared when a check
 * passes), and 5 s after a connection error (an outage, not a verdict). A server driftline does not support is one error
 * line (`reason` names DRIFTLINE_REDIS_URL; `consequence` says what fails), and `supported()`
 * turns false — the services' liveness. One watcher for every service on online features (the
 * feature-materializer, the feature API, the model server, the skew monitor).
 */
export function watchRedisServer(options: {
  readonly client: RedisClient;
  readonly databaseAccepted: Promise<void>;
  readonly logger: Logger;
  /** The error line's message, e.g. `Redis cannot serve the feature reads: /healthz fails`. */
  readonly consequence: string;
}): { supported(): boolean; stop(): void } {
  const { client, logger } = options;
  let unsupported: string | undefined;
  let stopped = false;
  let accepted = false;
  let retry: NodeJS.Timeout | undefined;
  const check = () => {
    if (stopped || !accepted || client.status !== 'ready') return;
    checkRedisServer(client).then(
      () => {
        // A server replaced at the same address (a cluster by a standalone one) is usable again.
        if (unsupported !== undefined) logger.info({}, 'Redis server check passes again');
        unsupported = undefined;
      },
      (error: unknown) => {
        if (stopped) return;
        if (!(error instanceof ConfigError)) {
          clearTimeout(retry);
          retry = setTimeout(check, SERVER_CHECK_RETRY_MS).unref();
          return;
        }
        if (unsupported === undefined) logger.error({ reason: error.message }, options.consequence);
        unsupported = error.message;
      },
    );
  };
  // Every (re)connection checks again: the server behind the URL can be replaced while we run
  // (a standalone one by a cluster, or back), and a verdict must not outlive the server it judged.
  client.on('ready', check);
  void options.databaseAccepted.then(() => {
    accepted = true;
    check();
  });
  return {
    supported: () => unsupported === undefined,
    stop: () => {
      stopped = true;
      clearTimeout(retry);
      client.off('ready', check);
    },
  };
}

/** The database a Redis URL selects: its path (`/3`), 0 without one (redisUrlProblem checked it). */
function databaseIndex(url: string): number {
  return Number(new URL(url).pathname.slice(1) || 0);
}

/** How soon the database is asked again after a reply that can change, on a connection still up. */
const DATABASE_RETRY_MS = 1_000;

/** At most one warning per this long for replies asked again (the check asks every second). */
const DATABASE_WARNING_EVERY_MS = 60_000;

/** The background check of the database a Redis URL selects (see checkRedisDatabase). */
export interface RedisDatabaseCheck {
  /** Whether the server has accepted the database (at once without a path, or `/0`). */
  accepted(): boolean;
  /** Resolves once it has; never rejects (a refusal goes to `onRefused`). */
  readonly whenAccepted: Promise<void>;
  /** Stops asking and closes its connection (the service stops). */
  stop(): void;
}

export interface RedisDatabaseCheckOptions {
  /**
   * What a refusal does: a service passes `ctx.fatal` (the runner's one line naming
   * DRIFTLINE_REDIS_URL and exit 78); tests pass their own. A library never ends the process.
   */
  readonly onRefused: (error: ConfigError) => void;
  /** Where a reply asked again is reported (one warning a minute); without it, nowhere. */
  readonly logger?: Logger;
}

/**
 * Asks the server, when it first answers and again on every reconnect, whether it has the database
 * the URL selects, without holding the start: Redis being down is an outage the services back off
 * from (the feature API answers 503), never a reason to exit. ioredis only emits a refused SELECT
 * (`/99` where the server has `databases 16`, a Redis Cluster, an ACL user without SELECT) as an
 * error event and goes on in database 0, every read and write in the wrong database: an error
 * reply that cannot change (see judgeReply) calls `onRefused` with a ConfigError naming the
 * variable, as does an authentication refusal (the connection never becomes ready). A reply that
 * can change (BUSY, LOADING, …) is asked again every second, with one warning a minute; a
 * connection error or timeout is an outage, asked again on the next connection. The connection
 * stays open once the database is accepted: a server that replaced the accepted one (a restart
 * with fewer databases, a failover, a DNS move) drops it too, and the reconnect asks again.
 * Database 0 (no path) always exists: nothing is asked.
 */
export function checkRedisDatabase(
  config: RedisConnectionConfig,
  options: RedisDatabaseCheckOptions,
): RedisDatabaseCheck {
  const db = databaseIndex(config.url);
  if (db === 0) return { accepted: () => true, whenAccepted: Promise.resolve(), stop: () => {} };
  const { onRefused, logger } = options;
  const credentialsField = credentialsVariable(config.url);
  const client = createRedisClient(config, 'tooling', { name: 'driftline-database-check' });
  let accepted = false;
  let done = false;
  let retry: NodeJS.Timeout | undefined;
  let warnedAt = Number.NEGATIVE_INFINITY;
  let resolveAccepted: () => void = () => {};
  const whenAccepted = new Promise<void>((resolve) => {
    resolveAccepted = resolve;
  });
  const stop = () => {
    done = true;
    clearTimeout(retry);
    client.disconnect();
  };
  const refuse = (error: ConfigError) => {
    if (done) return;
    stop();
    onRefused(error);
  };
  const warn = (reply: string, command: string) => {
    const now = Date.now();
    if (now - warnedAt < DATABASE_WARNING_EVERY_MS) return;
    warnedAt = now;
    logger?.warn(
      { reply, command },
      `Redis answers ${command} with "${reply}", a state that can change: asked again (DRIFTLINE_REDIS_URL's database ${db} is not confirmed yet)`,
    );
  };
  // Replies to the connection's own commands (its SELECT at connect, AUTH, the ready check's INFO):
  // a refused password or INFO means the connection never becomes ready, and no 'ready' would ask.
  client.on('error', (error: Error) => {
    if (done || !(error instanceof ReplyError)) return; // a connection error: an outage
    const command = commandOf(error, db);
    const verdict = judgeReply(replyText(error), command, db, credentialsField);
    if (verdict === undefined) warn(replyText(error), command);
    else refuse(verdict);
  });
  const ask = () => {
    if (done) return;
    clearTimeout(retry);
    checkSelectedDatabase(client, credentialsField).then(
      () => {
        if (done || accepted) return;
        accepted = true;
        resolveAccepted();
      },
      (error: unknown) => {
        if (done) return;
        if (error instanceof ConfigError) return refuse(error);
        const cause = error instanceof DriftlineError ? error.cause : undefined;
        if (cause instanceof ReplyError) warn(replyText(cause as Error), `SELECT ${db}`);
        // A reply that can change, or a timeout, on a connection still up: no 'ready' would ask again.
        if (client.status === 'ready') retry = setTimeout(ask, DATABASE_RETRY_MS).unref();
      },
    );
  };
  client.on('ready', ask);
  return { accepted: () => accepted, whenAccepted, stop };
}

/**
 * The variable an authentication refusal names: the URL when it carries user info (ioredis prefers
 * it to DRIFTLINE_REDIS_PASSWORD), else DRIFTLINE_REDIS_PASSWORD.
 */
function credentialsVariable(url: string): string {
  const parsed = new URL(url);
  return parsed.username !== '' || parsed.password !== '' ? 'DRIFTLINE_REDIS_URL' : 'DRIFTLINE_REDIS_PASSWORD';
}

/** An error reply's first line, bounded (it goes into a log line). */
function replyText(error: Error): string {
  return error.message.split('\n')[0]!.slice(0, 200);
}

/** The command an error reply answered, as a log names it (never AUTH's arguments: the password). */
function commandOf(error: Error, db: number): string {
  const name = (error as Error & { command?: { name?: unknown } }).command?.name;
  if (typeof name !== 'string') return 'a command';
  return name.toLowerCase() === 'select' ? `SELECT ${db}` : name.toUpperCase();
}

/** The server's refusal of a database index: "ERR DB index is out of range" (older: "ERR invalid DB index"). */
const DATABASE_REFUSED = /^ERR (DB index is out of range|invalid DB index)/i;

/**
 * Replies that name a state of the server that ends on its own: a script past its busy threshold
 * (BUSY), a dataset being loaded (LOADING), a slot being migrated (TRYAGAIN), a replica cut off from
 * its primary (MASTERDOWN), a demoted primary until the address leads to the new one (READONLY),
 * the server's client limit (sent as the connection's first reply). Real Redis lets SELECT through
 * LOADING and MASTERDOWN (it is flagged `loading stale`); a proxy may not.
 */
const REPLY_THAT_CAN_CHANGE = /^(BUSY|LOADING|TRYAGAIN|MASTERDOWN|READONLY)\b|^ERR max number of clients reached/;

/** Authentication refused: no password given where one is required, or a wrong one (or user). */
const AUTH_REFUSED = /^(NOAUTH|WRONGPASS)\b|^ERR invalid password/;

/** Replies only a Redis Cluster node gives (CLUSTERDOWN: a cluster never has another database either). */
const CLUSTER_REPLY = /cluster mode|^(CLUSTERDOWN|MOVED|ASK)\b/i;

/**
 * What an error reply to the database check says: undefined for a reply that can change (asked
 * again), else the refusal. Every reply but those can never change while the server and the
 * configuration stay: a Redis Cluster ("ERR SELECT is not allowed in cluster mode"), a proxy or
 * Sentinel without SELECT ("ERR unknown command"), an ACL user without it (NOPERM), an index past
 * `databases`, a password refused. They were retried once a second, for ever and silently.
 */
function judgeReply(reply: string, command: string, db: number, credentialsField: string): ConfigError | undefined {
  if (REPLY_THAT_CAN_CHANGE.test(reply)) return undefined;
  if (AUTH_REFUSED.test(reply)) {
    return new ConfigError(credentialsField, `the server refuses to authenticate the connection: ${reply}`);
  }
  if (DATABASE_REFUSED.test(reply)) {
    return new ConfigError(
      'DRIFTLINE_REDIS_URL',
      `the server refuses database ${db} (${reply}): use an index below its \`databases\` setting (16 by default)`,
    );
  }
  const hint = CLUSTER_REPLY.test(reply) ? ' (a Redis Cluster has only database 0)' : '';
  return new ConfigError('DRIFTLINE_REDIS_URL', `the server refuses ${command}: ${reply}${hint}`);
}

/**
 * Selects the client's database again: the server accepts it, or refuses it (a ConfigError, see
 * judgeReply); a reply that can change, a connection error or a timeout is a retriable error.
 */
async function checkSelectedDatabase(redis: RedisClient, credentialsField = 'DRIFTLINE_REDIS_PASSWORD'): Promise<void> {
  const db = redis.options.db ?? 0;
  if (db === 0) return;
  try {
    await redis.select(db);
  } catch (error) {
    const refusal =
      error instanceof ReplyError
        ? judgeReply(replyText(error as Error), `SELECT ${db}`, db, credentialsField)
        : undefined;
    throw refusal ?? classifyRedisError(error, `SELECT ${db}`);
  }
}
