import { setTimeout as sleep } from 'node:timers/promises';
import { DriftlineError, type Logger } from '@driftline/core';
import { type ConfigResourceTypes, Kafka, logLevel } from 'kafkajs';
import { type BackoffPolicy, backoffDelay } from './backoff.js';
import { isSecured, type KafkaClient, kafkajsRetrying } from './client.js';
import { SASL_REFUSED, saslRefusalIn, saslRefusalLine } from './credentials.js';

export interface TopicSpec {
  readonly topic: string;
  readonly partitions?: number;
  /** Absent: the cluster's broker count capped at 3 (`autoReplication`). */
  readonly replicationFactor?: number;
  /** `min.insync.replicas`; absent: 2 when the replication factor is 3 or more, else 1. */
  readonly minInsyncReplicas?: number;
  /** Further topic configs (they win over the above). */
  readonly config?: Readonly<Record<string, string>>;
}

/** Replication defaults when a spec leaves them out: `acks=all` then survives one broker loss. */
export function autoReplication(
  brokers: number,
  spec: Pick<TopicSpec, 'replicationFactor' | 'minInsyncReplicas'> = {},
): { replicationFactor: number; minInsyncReplicas: number } {
  const replicationFactor = spec.replicationFactor ?? Math.max(1, Math.min(3, brokers));
  const minInsyncReplicas = spec.minInsyncReplicas ?? (replicationFactor >= 3 ? 2 : 1);
  return { replicationFactor, minInsyncReplicas };
}

/**
 * The admin clients' kafkajs retry timing, stated in full (what is left out kafkajs fills from its
 * defaults: 2x and up to 30 s apart in production, 1.5x and at most 1 s under NODE_ENV=test). It is
 * the cluster retry of their kafkajs instance ({@link adminKafkajs}), with which kafkajs connects
 * inside every admin call. With the client's (100 ms doubling, 8 retries) the last reconnects of a
 * refused connect came ~6 and ~13 s apart: a start-up step (topic checks, partition counts, a
 * consumer's positions) went on that long after Kafka answered again. A drift-monitor spawned
 * during a Kafka restart had its first admin call answered 6.6/6.7/13.0 s after the broker took
 * connections again and logged "started" a median 10.8 s after (2.8 s with this timing), while
 * consumers reconnect within ~2 s (CONSUMER_RETRY). At most 2 s apart; 16 retries keep ~25 s of
 * refused connections per attempt, as the client's timing did in production.
 */
export const ADMIN_RETRY = {
  initialRetryTime: 100,
  multiplier: 2,
  factor: 0.2,
  maxRetryTime: 2_000,
  retries: 16,
} as const;
const adminInstances = new WeakMap<KafkaClient, Kafka>();
/**
 * The kafkajs instance a handle's admin clients are made from: the handle's, with ADMIN_RETRY as its
 * cluster retry. One per handle (a test hooks its `admin`). Package-internal.
 */
export function adminKafkajs(client: KafkaClient): Kafka {
  let kafkajs = adminInstances.get(client);
  if (kafkajs === undefined) {
    kafkajs = kafkajsRetrying(client, ADMIN_RETRY);
    adminInstances.set(client, kafkajs);
  }
  return kafkajs;
}

/** Retries of topic admin calls: about 12 s in all, enough for a KRaft controller under load. */
export const adminBackoff: BackoffPolicy = { initialMs: 200, maxMs: 3_000, multiplier: 2, jitter: 0.2 };
const ADMIN_ATTEMPTS = 8;

// Broker answers that mean "not yet" rather than "never": a fresh topic whose metadata has not
// reached every broker, a controller move, or another process creating the same topic meanwhile.
const TRANSIENT_TYPES = new Set([
  'UNKNOWN_TOPIC_OR_PARTITION',
  'LEADER_NOT_AVAILABLE',
  'NOT_CONTROLLER',
  'TOPIC_ALREADY_EXISTS',
  'REQUEST_TIMED_OUT',
  'COORDINATOR_NOT_AVAILABLE',
  'COORDINATOR_LOAD_IN_PROGRESS',
]);

/** True for broker answers that mean "not yet" (package-internal: the consumer retries on them too). */
export function isTransient(error: unknown): boolean {
  if (error === null || typeof error !== 'object') return false;
  const e = error as { type?: unknown; retriable?: unknown; errors?: unknown; name?: unknown; cause?: unknown };
  if (Array.isArray(e.errors) && e.errors.length > 0) return e.errors.every(isTransient);
  if (typeof e.type === 'string' && TRANSIENT_TYPES.has(e.type)) return true;
  if (e.name === 'KafkaJSConnectionError' || e.name === 'KafkaJSRequestTimeoutError') return true;
  // kafkajs' coordinator look-up giving up (not retriable in kafkajs) while the brokers restart: a
  // chaos run's label-joiner exited 78 "configuration error" on it, taking over its old group's offsets.
  if (e.name === 'KafkaJSGroupCoordinatorNotFound') return true;
  if (e.retriable === true || /does not host this topic-partition|Timed out/i.test(String(error))) return true;
  // kafkajs' connection layer, giving up on a broker that takes TCP and never answers (its
  // ApiVersions handshake timed out): a plain Error, and a timeout on the broker's connect lock (not
  // retriable). Found by a review: a hung broker at start-up exited 78 "configuration error".
  if (error instanceof Error && error.constructor === Error && error.message === 'Broker not connected') return true;
  if (e.name === 'KafkaJSLockTimeout' && /connect to broker/.test(String(error))) return true;
  // kafkajs trips over its own state while a broker restarts ("Cannot read properties of null
  // (reading 'topicMetadata')": an empty metadata answer; found by make chaos, a service restarted
  // meanwhile exited 78 "configuration error"): an outage to retry, not a bad configuration.
  if (error instanceof TypeError) return true;
  // kafkajs gives up with KafkaJSNumberOfRetriesExceeded (never retriable itself) around the last
  // error: a broker that refused connections during a restart is an outage, not a bad config.
  return e.name === 'KafkaJSNumberOfRetriesExceeded' && e.cause !== error && isTransient(e.cause);
}

/**
 * An admin connection kept between calls, for a consumer's periodic reads (idle partitions' high
 * watermarks every 5 s, `positions()`): a fresh admin per call opened a TCP connection — with TLS
 * and SASL, a handshake — every few seconds per idle consumer. Connected on first use; a call that
 * fails drops it (the next connects again, so a restarted broker is never asked on a dead
 * socket); its owner closes it. Package-internal.
 */
export class AdminSession {
  private admin: Promise<AdminApi> | undefined;
  private closed = false;

  constructor(readonly client: KafkaClient) {}

  /** The connected admin, connecting it first if needed; undefined once closed. */
  acquire(): Promise<AdminApi> | undefined {
    if (this.closed) return undefined;
    if (this.admin === undefined) {
      const admin = adminKafkajs(this.client).admin();
      const connected = admin.connect().then(() => admin);
      this.admin = connected;
      connected.catch(() => this.drop(connected));
    }
    return this.admin;
  }

  /** Forgets a connection a call failed on and disconnects it. */
  drop(admin: Promise<AdminApi>): void {
    if (this.admin === admin) this.admin = undefined;
    void admin.then((a) => a.disconnect()).catch(() => {});
  }

  async close(): Promise<void> {
    this.closed = true;
    const admin = this.admin;
    this.admin = undefined;
    await admin?.then((a) => a.disconnect()).catch(() => {});
  }
}

/**
 * Runs an admin call, retrying transient failures with backoff: on a connection of its own (a
 * client), or on a session's kept one.
 */
async function withAdmin<T>(
  source: KafkaClient | AdminSession,
  what: string,
  call: (admin: AdminApi) => Promise<T>,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    let held: Promise<AdminApi> | undefined;
    let own: AdminApi | undefined;
    if (source instanceof AdminSession) {
      held = source.acquire();
      // Its owner stopped: nothing to retry.
      if (held === undefined) throw new DriftlineError('SOURCE_UNAVAILABLE', `${what}: the admin session is closed`);
    }
    try {
      if (held !== undefined) return await call(await held);
      own = adminKafkajs(source as KafkaClient).admin();
      await own.connect();
      return await call(own);
    } catch (error) {
      if (held !== undefined) (source as AdminSession).drop(held);
      // Credentials refused: a refusal named, retriable and not retried here (the caller's backoff
      // does; at start-up the runner makes it a configuration error naming DRIFTLINE_KAFKA_SASL_*).
      // It was a CONFIG_INVALID naming no variable, also at run time.
      const refused = saslRefusalIn(error);
      if (refused !== undefined) {
        throw new DriftlineError(
          'SOURCE_UNAVAILABLE',
          `${what} failed: ${saslRefusalLine(refused)}: ${(error as Error).message}`,
          {
            cause: error,
            retriable: true,
            details: { kafkaError: SASL_REFUSED },
          },
        );
      }
      const transient = isTransient(error);
      if (!transient || attempt >= ADMIN_ATTEMPTS - 1) {
        const message = `${what} failed${transient ? ` after ${attempt + 1} attempts` : ''}: ${(error as Error).message}`;
        throw transient
          ? new DriftlineError('SOURCE_UNAVAILABLE', message, { cause: error, retriable: true })
          : new DriftlineError('CONFIG_INVALID', message, { cause: error });
      }
      await sleep(backoffDelay(adminBackoff, attempt));
    } finally {
      await own?.disconnect().catch(() => {});
    }
  }
}

type AdminApi = ReturnType<Kafka['admin']>;

/**
 * Creates the topics that do not exist yet (never alters existing ones: an existing one whose configs
 * differ from its spec's `config` gets a warning with the command that fixes it). Idempotent and safe
 * to race with other processes. Transient broker answers (a fresh topic's lagging metadata, a
 * controller move, a concurrent creation) are retried here, so callers need no retry loop.
 */
export async function ensureTopics(client: KafkaClient, topics: readonly TopicSpec[]): Promise<void> {
  if (topics.length === 0) return;
  let existingWithConfig: TopicSpec[] = [];
  await withAdmin(client, `creating topics ${topics.map((t) => t.topic).join(', ')}`, async (admin) => {
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t.topic));
    existingWithConfig = topics.filter((t) => existing.has(t.topic) && Object.keys(t.config ?? {}).length > 0);
    if (missing.length > 0) {
      const brokers = missing.some((t) => t.replicationFactor === undefined)
        ? (await admin.describeCluster()).brokers.length
        : 0;
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((t) => {
          const { replicationFactor, minInsyncReplicas } = autoReplication(brokers, t);
          if (minInsyncReplicas > replicationFactor) {
            throw new DriftlineError(
              'CONFIG_INVALID',
              `topic ${t.topic}: min.insync.replicas ${minInsyncReplicas} exceeds the replication factor ${replicationFactor}`,
            );
          }
          const config = { 'min.insync.replicas': String(minInsyncReplicas), ...t.config };
          return {
            topic: t.topic,
            numPartitions: t.partitions ?? 1,
            replicationFactor,
            configEntries: Object.entries(config).map(([name, value]) => ({ name, value })),
          };
        }),
      });
    }
    // Done only when the metadata shows every topic with its partitions: a consumer subscribing or a
    // producer sending right after would otherwise meet "does not host this topic-partition".
    const meta = await admin.fetchTopicMetadata({ topics: topics.map((t) => t.topic) });
    // Also one created by another process a moment ago (no waitForLeaders here): every partition needs a leader.
    const unready = topics.filter((t) => {
      const partitions = meta.topics.find((m) => m.name === t.topic)?.partitions ?? [];
      return partitions.length === 0 || partitions.some((p) => p.leader < 0);
    });
    if (unready.length > 0) {
      throw Object.assign(new Error(`no leader in metadata yet for ${unready.map((t) => t.topic).join(', ')}`), {
        retriable: true,
      });
    }
  });
  await warnOnConfigDrift(client, existingWithConfig);
}

/** A config a topic's spec requires that the broker reports with another value. */
export interface ConfigMismatch {
  readonly key: string;
  readonly found: string;
  readonly required: string;
}

/** The properties file a printed kafka-configs.sh command names for a TLS or SASL cluster. */
const CLIENT_PROPERTIES = 'client.properties';

/**
 * The configs of `required` that `found` (the topic's values as the broker reports them) holds with
 * another value, and the `kafka-configs.sh` command that sets them; undefined when none differs. A
 * key the broker does not report is left out: nothing to compare. A cluster reached with TLS or SASL
 * needs the tool's own client settings: the command then names a properties file to fill in.
 * Package-internal.
 */
export function configDrift(
  topic: string,
  required: Readonly<Record<string, string>>,
  found: ReadonlyMap<string, string>,
  brokers: readonly string[],
  secured = false,
): { mismatches: ConfigMismatch[]; command: string } | undefined {
  const mismatches: ConfigMismatch[] = [];
  for (const [key, value] of Object.entries(required)) {
    const current = found.get(key);
    if (current !== undefined && current !== value) mismatches.push({ key, found: current, required: value });
  }
  if (mismatches.length === 0) return undefined;
  // kafka-configs.sh takes a value holding commas as [a,b]; the whole list is one shell word.
  const assignments = mismatches.map((m) => `${m.key}=${m.required.includes(',') ? `[${m.required}]` : m.required}`);
  const command =
    `kafka-configs.sh --bootstrap-server ${brokers.join(',')}` +
    (secured ? ` --command-config ${CLIENT_PROPERTIES}` : '') +
    ` --alter --entity-type topics --entity-name ${topic} --add-config '${assignments.join(',').replaceAll("'", `'\\''`)}'`;
  return { mismatches, command };
}

/**
 * Drifts already warned of in this process (brokers, topic, command): a start-up retried on an
 * outage ensures its topics again, and repeated the same warning on every attempt.
 */
const warnedDrifts = new Set<string>();

/** How long the config check of existing topics may hold a start (kafkajs retries its connect). */
export const CONFIG_CHECK_TIMEOUT_MS = 10_000;

/**
 * ensureTopics never alters an existing topic, so a config a later release requires (models.v1 kept
 * for good) is missing where the topic predates it: one warning line per such topic with the command
 * that sets it. Not altered here: kafkajs' alterConfigs replaces every config of the topic (it is
 * not incremental). A failed or unanswered read only skips the check (a debug line): it must not
 * stop a start. Package-internal.
 */
export async function warnOnConfigDrift(
  client: KafkaClient,
  specs: readonly TopicSpec[],
  timeoutMs = CONFIG_CHECK_TIMEOUT_MS,
): Promise<void> {
  if (specs.length === 0) return;
  const kafka = adminKafkajs(client);
  // The client's logger, the one its creator passed (callers of ensureTopics pass none); this
  // namespace lets a debug line through the client's WARN level, and the logger still filters.
  const log = kafka.logger().namespace('topic-configs', logLevel.DEBUG);
  const admin = kafka.admin();
  let timer: NodeJS.Timeout | undefined;
  const describe = (async () => {
    await admin.connect();
    return admin.describeConfigs({
      resources: specs.map((t) => ({
        type: 2 as ConfigResourceTypes,
        name: t.topic,
        configNames: Object.keys(t.config ?? {}),
      })),
      includeSynonyms: false,
    });
  })();
  try {
    const { resources } = await Promise.race([
      describe,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    for (const spec of specs) {
      const entries = resources.find((r) => r.resourceName === spec.topic)?.configEntries ?? [];
      const found = new Map<string, string>();
      // A sensitive config's value is reported as null: nothing to compare.
      for (const e of entries) if (typeof e.configValue === 'string') found.set(e.configName, e.configValue);
      const drift = configDrift(spec.topic, spec.config ?? {}, found, client.brokers, isSecured(client));
      if (drift === undefined) continue;
      const key = `${client.brokers.join(',')}\0${spec.topic}\0${drift.command}`;
      if (warnedDrifts.has(key)) continue;
      warnedDrifts.add(key);
      const differences = drift.mismatches.map((m) => `${m.key} is ${m.found}, required ${m.required}`).join('; ');
      log.warn(
        `topic ${spec.topic} exists with other configs than it requires: ${differences}; not altered automatically, run: ${drift.command}` +
          (isSecured(client) ? ` (${CLIENT_PROPERTIES}: your cluster's TLS/SASL client settings)` : ''),
        { topic: spec.topic, mismatches: drift.mismatches, command: drift.command },
      );
    }
  } catch (error) {
    // Not `error`: the client's log router reads that field for a deleted topic's broker answer.
    log.debug('could not read the configs of existing topics; not checked', {
      topics: specs.map((t) => t.topic),
      reason: (error as Error).message,
    });
  } finally {
    clearTimeout(timer);
    // After a timeout the connect may still be retrying: disconnect once it has given up.
    void describe.catch(() => {}).finally(() => admin.disconnect().catch(() => {}));
  }
}

/**
 * Partition count of an existing topic. Metadata of a topic created a moment ago may not have
 * reached every broker yet, so an unknown topic is retried before NOT_FOUND is thrown.
 */
export async function partitionCount(client: KafkaClient, topic: string): Promise<number> {
  try {
    return await withAdmin(client, `reading the metadata of ${topic}`, async (admin) => {
      const meta = await admin.fetchTopicMetadata({ topics: [topic] });
      const n = meta.topics[0]?.partitions.length ?? 0;
      if (n === 0) throw Object.assign(new Error(`topic ${topic} has no partitions yet`), { retriable: true });
      return n;
    });
  } catch (error) {
    if (error instanceof DriftlineError && error.retriable && unknownTopic(error.cause)) {
      throw new DriftlineError('NOT_FOUND', `topic ${topic} does not exist or has no partitions`, { cause: error });
    }
    throw error;
  }
}

/**
 * Whether the last failure of a metadata read says the topic is unknown (or has no partitions
 * yet), not that Kafka did not answer: every retriable failure was NOT_FOUND, and a broker that
 * never answers named an existing topic missing after 253 s (found by a review).
 */
export function unknownTopic(cause: unknown): boolean {
  const e = (cause ?? {}) as { type?: unknown; message?: unknown };
  return (
    e.type === 'UNKNOWN_TOPIC_OR_PARTITION' ||
    (typeof e.message === 'string' && /has no partitions yet|does not host this topic-partition/.test(e.message))
  );
}

/** Committed offset per partition of a group (-1 when nothing is committed). */
export async function committedOffsets(
  client: KafkaClient | AdminSession,
  groupId: string,
  topic: string,
): Promise<Map<number, bigint>> {
  return withAdmin(client, `reading the offsets of ${groupId} on ${topic}`, async (admin) => {
    const [result] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return new Map((result?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
  });
}

/**
 * Whether the group has committed an offset on any partition of these topics (it consumed before).
 * Reads the group's commits of every topic at once: asked per topic, a topic not created yet (a
 * first start) failed with an unknown partition after every retry.
 */
export async function groupHasCommitted(
  client: KafkaClient,
  groupId: string,
  topics: readonly string[],
): Promise<boolean> {
  const wanted = new Set(topics);
  return withAdmin(client, `reading the offsets of ${groupId}`, async (admin) =>
    (await admin.fetchOffsets({ groupId })).some(
      (t) => wanted.has(t.topic) && t.partitions.some((p) => BigInt(p.offset) >= 0n),
    ),
  );
}

/**
 * Commits `offsets` (partition → the next offset to read) for a group that has no active member
 * (Kafka refuses it otherwise): where a new group starts instead of its `fromBeginning` default.
 */
export async function setGroupOffsets(
  client: KafkaClient,
  groupId: string,
  topic: string,
  offsets: ReadonlyMap<number, bigint>,
): Promise<void> {
  if (offsets.size === 0) return;
  const partitions = [...offsets].map(([partition, offset]) => ({ partition, offset: offset.toString() }));
  await withAdmin(client, `setting the offsets of ${groupId} on ${topic}`, (admin) =>
    admin.setOffsets({ groupId, topic, partitions }),
  );
}

/** A partition's commit one group took over from another. */
export interface AdoptedOffset {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
}

/**
 * A group renamed from `from` to `to` (the label-joiner's and the feature-materializer's now carry
 * the topic prefix): before `to`'s first member joins, `to` takes `from`'s commits on the
 * partitions of `topics` it has none of, so it neither starts over from its default nor skips. A
 * partition `to` committed is never touched (on later starts nothing is left to take), and
 * neither is a group with running members (they started where they did already). Idempotent: a
 * start that failed halfway takes the rest on its retry. Another instance adopting at the same
 * moment (Kafka refuses a group with a member) is retried, then seen done. Logs one line when it
 * took anything, and returns what it took.
 */
export async function adoptGroupOffsets(
  client: KafkaClient,
  options: { readonly from: string; readonly to: string; readonly topics: readonly string[]; readonly logger: Logger },
): Promise<AdoptedOffset[]> {
  const { from, to, topics } = options;
  if (from === to || topics.length === 0) return [];
  const wanted = new Set(topics);
  const adopted = await withAdmin(client, `taking over the offsets of ${from} for ${to}`, async (admin) => {
    const committed = (entries: Awaited<ReturnType<AdminApi['fetchOffsets']>>) =>
      entries
        .filter((t) => wanted.has(t.topic))
        .flatMap((t) =>
          t.partitions
            .map((p) => ({ topic: t.topic, partition: p.partition, offset: BigInt(p.offset) }))
            .filter((p) => p.offset >= 0n),
        );
    const own = new Set(committed(await admin.fetchOffsets({ groupId: to })).map((p) => `${p.topic}\0${p.partition}`));
    const missing = committed(await admin.fetchOffsets({ groupId: from })).filter(
      (p) => !own.has(`${p.topic}\0${p.partition}`),
    );
    if (missing.length === 0) return [];
    const [group] = (await admin.describeGroups([to])).groups;
    if (group !== undefined && group.state !== 'Empty' && group.state !== 'Dead') return [];
    for (const topic of new Set(missing.map((p) => p.topic))) {
      const partitions = missing
        .filter((p) => p.topic === topic)
        .map((p) => ({ partition: p.partition, offset: p.offset.toString() }));
      try {
        await admin.setOffsets({ groupId: to, topic, partitions });
      } catch (error) {
        // A member joined meanwhile (another instance adopting, or started): asked again, it is seen.
        if (!/no running instances/.test(String(error))) throw error;
        throw Object.assign(new Error(`${to} gained a member: ${(error as Error).message}`), { retriable: true });
      }
    }
    return missing;
  });
  if (adopted.length > 0) {
    options.logger.info(
      { group: to, from, partitions: adopted.length, topics: [...new Set(adopted.map((p) => p.topic))] },
      `consumer group ${to} took over the offsets of ${from} (the group name now carries the topic prefix): it resumes where ${from} stopped`,
    );
  }
  return adopted;
}

/** Deletes an empty consumer group and whatever offsets it stored. */
export async function deleteGroup(client: KafkaClient, groupId: string): Promise<void> {
  await withAdmin(client, `deleting group ${groupId}`, (admin) => admin.deleteGroups([groupId]));
}

/** Names of every consumer group of the cluster. */
export async function listGroups(client: KafkaClient): Promise<string[]> {
  return withAdmin(client, 'listing groups', async (admin) => (await admin.listGroups()).groups.map((g) => g.groupId));
}

/** State and member count of a consumer group ("Dead" with no members when it does not exist). */
export async function describeGroup(client: KafkaClient, groupId: string): Promise<{ state: string; members: number }> {
  return withAdmin(client, `describing group ${groupId}`, async (admin) => {
    const [group] = (await admin.describeGroups([groupId])).groups;
    return { state: group?.state ?? 'Dead', members: group?.members.length ?? 0 };
  });
}

/** Low and high watermark per partition (high − low = records currently held). */
export async function topicOffsets(
  client: KafkaClient | AdminSession,
  topic: string,
): Promise<Array<{ partition: number; low: bigint; high: bigint }>> {
  return withAdmin(client, `reading the offsets of ${topic}`, async (admin) =>
    (await admin.fetchTopicOffsets(topic)).map((o) => ({
      partition: o.partition,
      low: BigInt(o.low),
      high: BigInt(o.high),
    })),
  );
}

/**
 * How a topic is stored: its replication factor (replicas of partition 0) and the configs set on
 * the topic itself rather than inherited from the broker (e.g. `min.insync.replicas`).
 */
export async function describeTopic(
  client: KafkaClient,
  topic: string,
): Promise<{ replicationFactor: number; overrides: Record<string, string> }> {
  return withAdmin(client, `describing topic ${topic}`, async (admin) => {
    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    const replicationFactor = meta.topics[0]?.partitions[0]?.replicas.length ?? 0;
    const { resources } = await admin.describeConfigs({
      // kafkajs' CommonJS index hides ConfigResourceTypes from ESM named imports: TOPIC is 2.
      resources: [{ type: 2 as ConfigResourceTypes, name: topic }],
      includeSynonyms: false,
    });
    const overrides: Record<string, string> = {};
    for (const entry of resources[0]?.configEntries ?? []) {
      // configSource 1 = DYNAMIC_TOPIC_CONFIG: set on this topic, not a broker default.
      if ((entry as { configSource?: number }).configSource === 1) overrides[entry.configName] = entry.configValue;
    }
    return { replicationFactor, overrides };
  });
}

/** Names of every topic of the cluster. */
export async function listTopics(client: KafkaClient): Promise<string[]> {
  return withAdmin(client, 'listing topics', (admin) => admin.listTopics());
}

/** Deletes topics (for cleaning up after benchmarks and tools; services never delete topics). */
export async function deleteTopics(client: KafkaClient, topics: readonly string[]): Promise<void> {
  if (topics.length === 0) return;
  await withAdmin(client, `deleting topics ${topics.join(', ')}`, (admin) =>
    admin.deleteTopics({ topics: [...topics] }),
  );
}

/**
 * One quick readiness probe (no retries): resolves when the cluster answers metadata with at least
 * one broker and an active controller. For start-up checks of tools, not for services.
 */
export async function probeCluster(brokers: readonly string[], options: { timeoutMs?: number } = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const kafka = new Kafka({
    clientId: 'driftline-probe',
    brokers: [...brokers],
    logLevel: logLevel.NOTHING,
    connectionTimeout: Math.min(2_000, timeoutMs),
    requestTimeout: timeoutMs,
    retry: { retries: 0 },
  });
  const admin = kafka.admin({ retry: { retries: 0 } });
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    if (cluster.brokers.length === 0) throw new Error('no brokers in metadata yet');
    if (cluster.controller === null || cluster.controller < 0) throw new Error('no active controller yet');
  } finally {
    await admin.disconnect().catch(() => {});
  }
}
