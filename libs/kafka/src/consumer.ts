import { setTimeout as sleep } from 'node:timers/promises';
import {
  admitLine,
  DriftlineError,
  formatDuration,
  type Logger,
  toDriftlineError,
  withDeadline,
} from '@driftline/core';
import { counter, gauge, histogram, type Registry } from '@driftline/observability';
import type { Batch, Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import {
  AdminSession,
  adminBackoff,
  committedOffsets,
  deleteGroup,
  isTransient,
  listTopics,
  topicOffsets,
} from './admin.js';
import { type BackoffPolicy, backoffDelay, defaultBackoff } from './backoff.js';
import { deliverWithBisect, isProcessorFaultCode, suspectsProcessor } from './bisect.js';
import {
  deadLetterConfigOf,
  faultHoldOf,
  type KafkaClient,
  kafkajsRetrying,
  onOffsetReset,
  onUnknownTopicPartition,
} from './client.js';
import { type CrashStreak, crashLooping as crashStreakLooping, recordCrash } from './crash-streak.js';
import { saslRefusalIn, saslRefusalLine } from './credentials.js';
import { type DeadLetterLimits, defaultDeadLetterLimits, sendDeadLetters } from './dead-letters.js';
import {
  acceptDeferral,
  type Deferral,
  type DeferralEvent,
  type DeferralWait,
  earlierDeferral,
  type HeldDeferral,
  processedUpTo,
  stepDeferral,
  waitsBehind,
  waitsOnDeferral,
} from './deferral.js';
import { type Membership, watchMembership } from './group-membership.js';
import { type IdlePartition, LagKnowledge, refreshIdleLag } from './idle-lag.js';
import {
  type BatchCheck,
  commitsForward,
  type Decision,
  initialLogPosition,
  type LastRecord,
  type LogMode,
  type LogPosition,
  type MarkerReads,
  markerReadDue,
  type Observation,
  readsMarker,
  rejoinedUnderNewId,
  restartFound,
  step,
} from './log-position.js';
import { partitionKey } from './partition-key.js';
import type { EventProducer } from './producer.js';
import { recordFingerprint } from './record-fingerprint.js';
import {
  capText,
  type DeadLetter,
  type DecodedRecord,
  deadLetterMessage,
  type InboundRecord,
  toBufferHeaders,
} from './records.js';
import { committedLag, ProgressTracker, type Stall } from './stall.js';

/** Default of `stallTimeoutMs` (DRIFTLINE_STALL_TIMEOUT): a partition with lag whose commit has not moved for this long is stalled. */
export const DEFAULT_STALL_TIMEOUT_MS = 5 * 60_000;
/**
 * kafkajs' maxWaitTimeInMs: how long the broker holds a fetch that finds no records, so also how
 * long a resumed partition may wait for the fetch it joins (the deferral grace), and how long
 * `stop()` waits for the fetch in flight — kafkajs' disconnect cannot cut a long poll short. At
 * kafkajs' default of 5 s every stop of an idle consumer took 5 s (a SIGTERM, each rebalance-free
 * restart, every test's stop); 500 ms is the Java client's default `fetch.max.wait.ms`: an idle
 * consumer asks each broker twice a second, a busy one is answered as soon as records exist.
 */
const FETCH_MAX_WAIT_MS = 500;
/** Default of `faultHoldMs`: under the stall timeout, so a lone record the processor cannot take never stalls a partition. */
export const DEFAULT_FAULT_HOLD_MS = 60_000;
/**
 * How often a partition that backs off reads its topic's high watermark for the lag gauge; also
 * how often, at most, the idle partitions' topics are read (one read per topic), and how long a
 * partition must have had no batch to count as idle.
 */
const LAG_REFRESH_MS = 5_000;
/**
 * Readiness turns false once an owned topic's lag has been unknown for the stall timeout, never
 * sooner than this: a quiet topic's offsets are read only every 5 to 10 s.
 */
const LAG_UNKNOWN_MIN_MS = 4 * LAG_REFRESH_MS;
/** How often the member heartbeats, also while a batch is processed (a tenth of the default session). */
const HEARTBEAT_INTERVAL_MS = 3_000;
/**
 * Default of `metadataMaxAgeMs`: how old kafkajs lets its topic metadata get. Partitions added to
 * a topic are seen (and the group rebalanced onto them) only at the next refresh; kafkajs' own
 * default of 5 minutes left them unread and unreported that long. The cost is one metadata request
 * of the subscribed topics per 30 s per consumer.
 */
export const DEFAULT_METADATA_MAX_AGE_MS = 30_000;
/** Restarts after kafkajs crashed the consumer (a deleted input topic): it restarted every 100 ms. */
const crashBackoff: BackoffPolicy = { initialMs: 1_000, maxMs: 30_000, multiplier: 2, jitter: 0.2 };
/**
 * The consumer's kafkajs retry timing, stated in full so tests run what production runs: under
 * NODE_ENV=test (vitest) kafkajs fills what is left out from its test defaults (1.5x, at most 1 s
 * apart: a crash after ~4 s of refused connections), in production from its own (2x, up to 30 s).
 * It is also the cluster retry of the consumer's kafkajs instance ({@link consumerKafkajs}), which
 * reconnects to the brokers inside every fetch: with the client's timing those reconnects grew to
 * ~13 s apart, and a member that did not crash consumed again up to ~19 s after Kafka answered.
 * At most 2 s apart; 16 retries keep ~25 s of refused connections before kafkajs crashes it.
 */
const CONSUMER_RETRY = { initialRetryTime: 100, multiplier: 2, factor: 0.2, maxRetryTime: 2_000, retries: 16 } as const;
const consumerInstances = new WeakMap<KafkaClient, Kafka>();
/**
 * The kafkajs instance a handle's consumers are made from: the handle's, with CONSUMER_RETRY as
 * its cluster retry. One per handle, as the handle's own was (a test hooks its `consumer`).
 * Package-internal.
 */
export function consumerKafkajs(client: KafkaClient): Kafka {
  let kafkajs = consumerInstances.get(client);
  if (kafkajs === undefined) {
    // A refusal of the credentials is retried and restarts the consumer with backoff (it crashed it
    // for good: a credential deleted while it ran and restored later left it consuming nothing).
    kafkajs = kafkajsRetrying(client, CONSUMER_RETRY, { saslRefusalsRetriable: true });
    consumerInstances.set(client, kafkajs);
  }
  return kafkajs;
}
/** A crash this long after the last one (or a join or a batch processed meanwhile) starts a new crash streak. */
const CRASH_QUIET_MS = 120_000;
/**
 * How long `stop()` may take: the batch in hand, leaving the group, and deleting an ephemeral
 * group. With the brokers slow or unreachable a SIGTERM took 87 s to 3.5 minutes (kafkajs' request
 * timeouts and retries). Past it, stop() returns: the batch in hand is not committed (redelivered),
 * the broker drops the member at its session timeout, and an ephemeral group, empty and holding no
 * offsets, is forgotten by the broker.
 */
export const STOP_DEADLINE_MS = 10_000;
/** During a crash streak, at most one error line per this interval (the others are counted). */
const CRASH_LOG_INTERVAL_MS = 60_000;

/** What a service plugs into the loop: how to read a record, and how to hand a batch to its sink. */
export interface BatchProcessor<T> {
  /** Throws PoisonRecordError for a record that can never be processed (it goes to the DLQ). */
  decode(record: InboundRecord): Promise<T> | T;
  /**
   * Writes the batch to the sink; resolves only once the sink has durably accepted it.
   * Throw a retriable error when the sink is unavailable (the loop backs off and retries),
   * a non-retriable one when a record is unacceptable (the loop isolates it into the DLQ).
   */
  process(items: ReadonlyArray<DecodedRecord<T>>, context: BatchContext): Promise<void | ProcessResult>;
  /** Called when partitions are no longer owned (rebalance or stop): drop their in-memory state. */
  revoked?(partitions: ReadonlyArray<{ topic: string; partition: number }>): void;
  /** After every join of the group (a rebalance: members or the topics' partitions changed). */
  rebalanced?(): void;
  /**
   * The partition's log started over (its topic was deleted and created again): its offsets now
   * name other records, from the start of the new log. Called once per restart found, before the
   * first batch of the new log is handed over. A processor that skips offsets it already applied
   * (a replay guard) forgets them for this partition; what it holds in memory stays.
   */
  logRestarted?(topic: string, partition: number): void;
}

/**
 * A stateful processor (windows) may hold records in memory that its sink has not seen yet. It
 * returns the offset it is safe to commit — the first offset whose effects are not yet durable —
 * and the loop commits no further, so a restart replays exactly what was only in memory.
 */
export interface ProcessResult {
  readonly commitOffset?: string;
  /**
   * Records of these items the processor refused while processing (a bound its state enforces):
   * dead-lettered with their reason like a record `decode` refuses, before any commit. A batch
   * retried (a failed attempt, a DLQ outage) must name them again: they are sent only once the
   * whole batch has succeeded.
   */
  readonly deadLetters?: readonly DeadLetter[];
  /**
   * Not yet: the items from `defer.offset` on are not processed now (the ones before it are).
   * The loop commits nothing from that offset on, pauses only this partition for `defer.delayMs`
   * and returns, so the other partitions of the process are fetched and processed meanwhile; then
   * the partition is fetched again from that offset and its records offered again. The wait counts
   * as a known one: no stall, `driftline_consumer_deferred` 1. A rebalance or a stop ends it early
   * (the partition's next owner starts from the commit and asks the processor again).
   */
  readonly defer?: Deferral;
}

export interface BatchContext {
  readonly topic: string;
  readonly partition: number;
  readonly highWatermark: string;
  /**
   * Keeps the group membership alive during long processing (e.g. training), and counts as
   * progress for the stall check (`/healthz`); may throw on rebalance.
   */
  heartbeat?(): Promise<void>;
}

export interface ConsumerOptions<T> {
  readonly kafka: KafkaClient;
  readonly groupId: string;
  readonly topics: readonly string[];
  readonly processor: BatchProcessor<T>;
  /** Producer used for dead letters (`<topic>.dlq`). */
  readonly producer: EventProducer;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly fromBeginning?: boolean;
  readonly backoff?: BackoffPolicy;
  readonly sessionTimeoutMs?: number;
  /** Partitions processed concurrently by this instance (each still strictly in order). */
  readonly partitionsConsumedConcurrently?: number;
  /**
   * Fetch size per partition (default 1 MiB). A soft limit: a record larger than it is still
   * fetched (the broker always returns at least the first record batch), it is never unfetchable.
   */
  readonly maxBytesPerPartition?: number;
  /** Bounds of dead-letter sends; defaults from the client's config, then `defaultDeadLetterLimits`. */
  readonly deadLetter?: Partial<DeadLetterLimits>;
  /**
   * A partition with lag on its committed offset whose commit has not moved for this long is
   * stalled: `healthy()` turns false (default `DEFAULT_STALL_TIMEOUT_MS`). A processor that holds
   * commits back on purpose (open windows) needs at least its longest hold added.
   */
  readonly stallTimeoutMs?: number;
  /**
   * How long a batch is held (retried with backoff, nothing committed) when every record offered to
   * the processor fails and at least one with an unclassified error (`INTERNAL`) or a refusal of the
   * deployment's own schema or config (`SCHEMA_INCOMPATIBLE`, `CONFIG_INVALID`): a fault of the
   * processor, not bad records. Past the hold the oldest such record is dead-lettered and the rest
   * retried, each next record with a hold of its own. 0 dead-letters at once. Default from the
   * client's config (`DRIFTLINE_KAFKA_FAULT_HOLD`), else `DEFAULT_FAULT_HOLD_MS`.
   */
  readonly faultHoldMs?: number;
  /**
   * A follower that keeps no position (every instance reads the whole topic on every start, from
   * `fromBeginning`): it commits no offsets, so its group stores nothing on the broker and is
   * forgotten as soon as it is empty (even after a SIGKILL), and `stop()` deletes it. Give such a
   * reader a group id of its own per process.
   */
  readonly ephemeral?: boolean;
  /** How old kafkajs' topic metadata may get (default `DEFAULT_METADATA_MAX_AGE_MS`): the delay before added partitions are read. */
  readonly metadataMaxAgeMs?: number;
}

export interface ConsumerHandle {
  /**
   * Finishes the batch in hand (or abandons a retry without committing), commits, leaves the group;
   * returns within STOP_DEADLINE_MS whatever Kafka does (what is not done by then is left undone).
   */
  stop(): Promise<void>;
  /**
   * True while joined to the group, not backing off on a failing sink, not stalled, and the lag of
   * every owned topic known within the stall timeout (Kafka answering).
   */
  ready(): boolean;
  /**
   * False while a partition is stalled (lag on the committed offset and no commit for
   * `stallTimeoutMs`, not backing off on a failing sink), and for good once kafkajs gave up on the
   * consumer (a crash it does not restart).
   */
  healthy(): boolean;
  /** The stalled partitions now (for the health endpoint's body and logs). */
  stalls(): Stall[];
  /**
   * The partitions this member owns now, each with whether it has read and processed everything
   * written to it (reads the topics' high watermarks, and the group's commits for partitions that
   * had no batch yet). Empty before the group is joined and once stopping.
   */
  positions(): Promise<PartitionPosition[]>;
  /**
   * This member's group membership now: the partitions of its current generation (none while it
   * rejoins, after a crash, once stopping) and when the coordinator last confirmed it
   * (`leasedPartitions` makes a lease of it).
   */
  membership(): Membership;
}

export interface PartitionPosition {
  readonly topic: string;
  readonly partition: number;
  /** Every record below the high watermark read at the call has been processed (not backing off). */
  readonly caughtUp: boolean;
}

function byOffset(a: DeadLetter, b: DeadLetter): number {
  return BigInt(a.record.offset) < BigInt(b.record.offset) ? -1 : 1;
}

function laterOf(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** The record a batch was deferred at, as an ephemeral consumer keeps it (log-position.ts). */
function deferredRecord(batch: Batch, deferral: HeldDeferral | undefined): LastRecord | undefined {
  if (deferral === undefined) return undefined;
  const message = batch.messages.find((m) => BigInt(m.offset) === deferral.offset);
  return message && { offset: deferral.offset, fingerprint: recordFingerprint(message), deferred: true };
}

function toInbound(batch: Batch, message: Batch['messages'][number]): InboundRecord {
  return {
    topic: batch.topic,
    partition: batch.partition,
    offset: message.offset,
    key: message.key,
    value: message.value,
    headers: toBufferHeaders(message.headers),
    timestamp: Number(message.timestamp),
  };
}

/**
 * The at-least-once batch loop every driftline consumer runs on:
 * decode → sink → dead letters → commit, in that order, per partition batch.
 * Nothing is committed before the sink and the DLQ have acknowledged; while a sink fails the
 * partition stops advancing and the batch is retried with backoff (heartbeats keep the membership).
 */
export async function startConsumer<T>(options: ConsumerOptions<T>): Promise<ConsumerHandle> {
  const { kafka, groupId, processor, producer, registry } = options;
  // `stage`, not `component`: the runner names the service `component` (a key twice in one line).
  const logger = options.logger.child({ stage: 'consumer', group: groupId });
  const policy = options.backoff ?? defaultBackoff;
  const deadLetterLimits: DeadLetterLimits = {
    ...defaultDeadLetterLimits,
    ...deadLetterConfigOf(kafka),
    ...options.deadLetter,
  };
  const metrics = {
    in: counter(registry, 'driftline_records_in_total', 'Records received from Kafka', ['topic']),
    out: counter(registry, 'driftline_records_out_total', 'Records accepted by the sink and committed', ['topic']),
    failed: counter(
      registry,
      'driftline_records_failed_total',
      'Records in batch attempts that failed and were retried',
      ['topic'],
    ),
    dlq: counter(registry, 'driftline_records_dlq_total', 'Records sent to the dead-letter topic', ['topic', 'code']),
    lag: gauge(
      registry,
      'driftline_consumer_lag',
      'High watermark minus committed offset (what a restart would read again)',
      ['group', 'topic', 'partition'],
    ),
    lagAge: gauge(
      registry,
      'driftline_consumer_lag_age_seconds',
      "Seconds since the lag of the topic's partitions was last known (a batch fetched, or a read of its offsets that answered); grows while Kafka does not answer, when the lag gauges keep their last values",
      ['group', 'topic'],
    ),
    backingOff: gauge(registry, 'driftline_consumer_backing_off', '1 while a partition waits on a failing sink', [
      'group',
      'topic',
      'partition',
    ]),
    stalled: gauge(
      registry,
      'driftline_consumer_stalled',
      '1 while a partition has lag and its commit has not moved for the stall timeout',
      ['group', 'topic', 'partition'],
    ),
    deferred: gauge(
      registry,
      'driftline_consumer_deferred',
      "1 while a partition waits on its processor's deferral (paused, to be fetched again from the deferred record)",
      ['group', 'topic', 'partition'],
    ),
    fault: gauge(
      registry,
      'driftline_consumer_processor_fault',
      "1 while every record of a partition's batch fails with a processor fault (held, not dead-lettered)",
      ['group', 'topic', 'partition'],
    ),
    batchSeconds: histogram(registry, 'driftline_batch_duration_seconds', 'Time to decode, sink and commit one batch', [
      'topic',
    ]),
    skipped: counter(
      registry,
      'driftline_consumer_records_skipped_total',
      'Records never processed because the fetch position was moved past them (offset out of range: removed by retention before they were read)',
      ['group', 'topic', 'partition', 'reason'],
    ),
    logRestarts: counter(
      registry,
      'driftline_consumer_log_restarts_total',
      'Partition logs found started over (topic deleted and created again): read again from their start',
      ['group', 'topic', 'partition'],
    ),
    restarts: counter(
      registry,
      'driftline_consumer_restarts_total',
      'Restarts after the Kafka client crashed the consumer',
      ['group'],
    ),
    latency: histogram(
      registry,
      'driftline_record_latency_seconds',
      'Kafka arrival to committed',
      ['topic'],
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    ),
  };

  const consumer: Consumer = consumerKafkajs(kafka).consumer({
    groupId,
    sessionTimeout: options.sessionTimeoutMs ?? 30_000,
    heartbeatInterval: HEARTBEAT_INTERVAL_MS,
    maxBytesPerPartition: options.maxBytesPerPartition ?? 1_048_576,
    maxWaitTimeInMs: FETCH_MAX_WAIT_MS,
    allowAutoTopicCreation: false,
    metadataMaxAge: options.metadataMaxAgeMs ?? DEFAULT_METADATA_MAX_AGE_MS,
    // kafkajs restarts a crashed consumer after 100 ms, for ever: a deleted input topic made a hot
    // loop (10 restarts/s, hundreds of error lines with stacks a minute, healthy all along).
    retry: { ...CONSUMER_RETRY, restartOnFailure: (error: Error) => restartAfterCrash(error) },
  });
  const groupMembership = watchMembership(consumer);
  let joined = false;
  let stopping = false;
  const backingOff = new Set<string>();
  /**
   * Per partition (kept through rebalances), what this process knows of its position: its
   * commits, what it processed, the signals that its log may have started over (log-position.ts
   * decides; checkPosition does the reads, seeks and logs).
   */
  const logs = new Map<string, LogPosition>();
  const mode: LogMode = { ephemeral: options.ephemeral === true, fromBeginning: options.fromBeginning ?? true };
  const logOf = (key: string): LogPosition => logs.get(key) ?? initialLogPosition;
  /** Folds an observation into a partition's state; returns what to do. */
  const observeLog = (key: string, observation: Observation): Decision => {
    const { state, decision } = step(logOf(key), observation, mode);
    logs.set(key, state);
    return decision;
  };
  /**
   * The group's commits per topic, read as soon as the group is joined (undefined: the read
   * failed): where kafkajs starts fetching. Read then because kafkajs commits its default offset
   * over the old commit when it resets an out-of-range position, before the next batch; read again
   * after a "does not host" answer, and after such a reset (whether its -2 still stands).
   */
  const joinCommits = new Map<string, Promise<Map<number, bigint> | undefined>>();
  /**
   * The commit a stateful processor last held back per partition (below its batch's end): a later
   * batch that never reaches the processor (every record poison) must not commit past it — the
   * held records live in the processor's memory only, and a crash would lose them.
   */
  const heldBack = new Map<string, bigint>();
  /** Per partition, the offset after the last batch processed since it was assigned here. */
  const processedTo = (key: string) => logs.get(key)?.processedTo;
  const stallTimeoutMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  const faultHoldMs = options.faultHoldMs ?? faultHoldOf(kafka) ?? DEFAULT_FAULT_HOLD_MS;
  /** Per partition, when its held processor fault (or the current record's hold) began. */
  const faultSince = new Map<string, number>();
  /** Partitions with an attempt in flight now, and when it began. */
  const inFlight = new Map<string, number>();
  /** Per partition, when a batch of it last began or ended here (since it was assigned). */
  const lastBatchAt = new Map<string, number>();
  /** Per partition in a retry loop, when its last attempt began or failed. */
  const retrying = new Map<string, number>();
  const progress = new ProgressTracker(stallTimeoutMs);
  const lagKnown = new LagKnowledge();
  /** Sets the lag age gauges of the owned topics. */
  const observeLagAge = (now: number) => {
    for (const { topic, ageMs } of lagKnown.ages(now)) metrics.lagAge.set({ group: groupId, topic }, ageMs / 1000);
  };
  /** Records what is committed and the lag on it, and the time the commit last moved. */
  const observe = (topic: string, partition: number, committed: bigint, highWatermark: string, caughtUp = false) => {
    const p = progress.observe(
      topic,
      partition,
      { committed, highWatermark: BigInt(highWatermark), caughtUp },
      Date.now(),
    );
    metrics.lag.set({ group: groupId, topic, partition: String(partition) }, committedLag(p));
  };
  /**
   * A partition that backs off fetches nothing, so the high watermark of its batch goes stale and
   * the lag gauge would freeze through an outage while producers keep writing. Its topic's high
   * watermark is read instead, at most every LAG_REFRESH_MS per partition and off the retry path.
   */
  const lastLagRefresh = new Map<string, number>();
  const lagRefreshing = new Set<string>();
  /** One admin connection for these periodic reads, kept until stop (see AdminSession). */
  const admin = new AdminSession(kafka);
  /** Partitions that had a batch since they were assigned (the others have no gauge of their own). */
  const fetched = new Set<string>();
  const freshHigh = new Map<string, bigint>();
  /** The newer of a batch's high watermark and the one read while backing off. */
  const highOf = (key: string, batchHigh: string) => {
    const fresh = freshHigh.get(key);
    return fresh !== undefined && fresh > BigInt(batchHigh) ? fresh.toString() : batchHigh;
  };
  /**
   * Where a partition that had no batch here starts reading: the group's commit, else the start of
   * the partition for a group that reads from the beginning (undefined: a group that starts at the
   * end and never committed).
   */
  const startOf = (stored: bigint | undefined, low: bigint): bigint | undefined =>
    stored !== undefined && stored >= 0n ? stored : (options.fromBeginning ?? true) ? low : undefined;
  /** Lag gauges of a topic's owned partitions that had no batch yet, from the group's commits. */
  const observeWaiting = async (topic: string, offsets: Awaited<ReturnType<typeof topicOffsets>>) => {
    const waiting = offsets.filter(
      (o) => owned.has(partitionKey(topic, o.partition)) && !fetched.has(partitionKey(topic, o.partition)),
    );
    if (waiting.length === 0) return;
    const commits = await committedOffsets(admin, groupId, topic);
    for (const o of waiting) {
      const from = startOf(commits.get(o.partition), o.low);
      // Unknown (a group that starts at the end and never committed), or a batch came meanwhile.
      if (from === undefined || fetched.has(partitionKey(topic, o.partition))) continue;
      observe(topic, o.partition, from, o.high.toString());
    }
  };
  const refreshLag = (topic: string, partition: number, committed: () => bigint) => {
    const key = partitionKey(topic, partition);
    const now = Date.now();
    // One refresh at a time per partition: during a Kafka outage one takes minutes (the admin
    // client's retries), and a new one every 5 s piled up reconnecting admin clients.
    if (lagRefreshing.has(key) || now - (lastLagRefresh.get(key) ?? 0) < LAG_REFRESH_MS) return;
    lastLagRefresh.set(key, now);
    lagRefreshing.add(key);
    void (async () => {
      const offsets = await topicOffsets(admin, topic);
      lagKnown.known(topic, now);
      const high = offsets.find((o) => o.partition === partition)?.high;
      // Owned still: a refresh that ends after a rebalance must not bring back a lost partition's gauge.
      if (high !== undefined && backingOff.has(key) && owned.has(key)) {
        freshHigh.set(key, high);
        observe(topic, partition, committed(), high.toString());
      }
      // Partitions owned here that wait behind the failing one (kafkajs hands this loop one
      // partition's batch at a time), of this topic and of the others, have had no batch, so no
      // gauge: their lag is read from the group's committed offsets (or, never committed, where
      // the group starts).
      await observeWaiting(topic, offsets);
      const others = new Set<string>();
      for (const [k, p] of owned) if (p.topic !== topic && !fetched.has(k)) others.add(p.topic);
      for (const other of others) {
        const at = Date.now();
        const offsets = await topicOffsets(admin, other);
        lagKnown.known(other, at);
        await observeWaiting(other, offsets);
      }
    })()
      .catch(() => {}) // Kafka itself may be what is down: the gauges keep their last values
      .finally(() => lagRefreshing.delete(key));
  };
  const abort = new AbortController();
  /** The partitions assigned to this member, by partitionKey. */
  let owned = new Map<string, { readonly topic: string; readonly partition: number }>();
  /** The member id of the last join: kafkajs rejoins under a new one only after it was out of the group. */
  let memberId: string | undefined;
  /** Joins so far: a batch that began before the last one may no longer be this member's to pause. */
  let joins = 0;
  /** Per partition, the record it last deferred at (its repeated deferrals log at debug). */
  const lastDeferredAt = new Map<string, bigint>();
  /**
   * Partitions waiting on a processor's deferral (ProcessResult.defer), by partitionKey: their wait
   * (deferral.ts decides) and the timer that ends its pause.
   */
  const deferred = new Map<
    string,
    { readonly topic: string; readonly partition: number; wait: DeferralWait; timer: NodeJS.Timeout | undefined }
  >();
  /** Whether a partition waits on a deferral now: no stall (resumed, its batch must come within the stall timeout and a fetch's wait). */
  const waitsDeferred = (key: string, now: number) =>
    waitsOnDeferral(deferred.get(key)?.wait, now, stallTimeoutMs, FETCH_MAX_WAIT_MS);
  /** Lets kafkajs fetch a partition again. */
  const resumeFetching = (topic: string, partition: number) => {
    try {
      consumer.resume([{ topic, partitions: [partition] }]);
    } catch {
      // kafkajs restarted after a crash: a new consumer group, nothing of it paused
    }
  };
  /** Folds an event into a partition's deferral (stepDeferral) and does what it says. */
  const onDeferral = (topic: string, partition: number, event: DeferralEvent): void => {
    const key = partitionKey(topic, partition);
    const entry = deferred.get(key);
    const now = Date.now();
    const next = stepDeferral(entry?.wait, event, now);
    if (next.wait === undefined) {
      clearTimeout(entry?.timer);
      deferred.delete(key);
    } else deferred.set(key, { topic, partition, wait: next.wait, timer: entry?.timer });
    if (next.pause) consumer.pause([{ topic, partitions: [partition] }]);
    if (next.recheckLog) {
      joinCommits.delete(topic);
      observeLog(key, { kind: 'topicMissing' });
    }
    if (next.resume) resumeFetching(topic, partition);
    if (next.restartStallClock) progress.working(topic, partition, now);
    if (next.wait === undefined && entry !== undefined)
      metrics.deferred.set({ group: groupId, topic, partition: String(partition) }, 0);
  };
  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    joined = true;
    joins++;
    // A deferral ends at a join: a partition kept is fetched again from the group's commit (its
    // processor asks again), one lost is its next owner's, who starts from that commit and waits there itself.
    for (const { topic, partition } of [...deferred.values()]) onDeferral(topic, partition, { kind: 'joined' });
    // Joined again after crashes: recovered (an idle topic has no batch to say so, and healthy()
    // stayed false up to CRASH_QUIET_MS after a recreated topic).
    crashRecovered();
    // Tell a stateful processor which partitions it lost in this rebalance.
    const now = new Map<string, { readonly topic: string; readonly partition: number }>();
    for (const [topic, partitions] of Object.entries(event.payload.memberAssignment)) {
      for (const partition of partitions) now.set(partitionKey(topic, partition), { topic, partition });
    }
    // A new member id: this member was out of the group (evicted past its session timeout by a
    // pause — GC, a frozen VM, CPU starvation — or by a crash restart that came too late), so the
    // generations in between went on without it and another member may have processed and
    // committed its partitions. Every partition owned before is lost, also one assigned again:
    // kept, its state from before the pause was folded with records past the other member's
    // commit. (A member that keeps its id took part in every generation: kafkajs' join payload has
    // no generation. A crash restart rejoins under its id, patches/kafkajs@2.2.4.patch, and the
    // coordinator takes it only while the member is still in the group.)
    const previousMemberId = memberId;
    memberId = event.payload.memberId;
    const rejoined = rejoinedUnderNewId(previousMemberId, memberId, mode);
    const lost = [...owned].filter(([k]) => rejoined || !now.has(k));
    if (rejoined && owned.size > 0) {
      logger.info(
        { previousMemberId, memberId, partitions: lost.map(([k]) => k) },
        'rejoined the group under a new member id (it was out of the group): every partition owned before is revoked, also those assigned again',
      );
    }
    owned = now;
    for (const topic of lagKnown.assigned(new Set([...now.values()].map((p) => p.topic)), Date.now()))
      metrics.lagAge.remove({ group: groupId, topic });
    observeLagAge(Date.now()); // the gauge from the join on, not from the first tick of the watch
    for (const [k, { topic, partition }] of lost) {
      // Assigned again: its progress is the other member's commit now, not what was observed here.
      progress.forget(topic, partition);
      heldBack.delete(k);
      fetched.delete(k);
      lastBatchAt.delete(k);
      // A partition lost while backing off (its retry left at the rebalance) is no longer this
      // member's to wait on: kept, it held readiness false for good.
      backingOff.delete(k);
      freshHigh.delete(k);
      lastLagRefresh.delete(k);
      faultSince.delete(k);
      retrying.delete(k);
      markerReads.delete(k);
      lastDeferredAt.delete(k);
    }
    const lostKeys = new Set(lost.map(([k]) => k));
    for (const k of logs.keys()) observeLog(k, { kind: 'joined', assigned: now.has(k), revoked: lostKeys.has(k) });
    joinCommits.clear();
    if (options.ephemeral !== true)
      for (const topic of new Set([...now.values()].map((p) => p.topic))) void commitsOf(topic);
    progress.retain((topic, partition) => now.has(partitionKey(topic, partition)));
    for (const [, { topic, partition }] of lost) {
      const labels = { group: groupId, topic, partition: String(partition) };
      metrics.lag.remove(labels);
      metrics.backingOff.remove(labels);
      metrics.stalled.remove(labels);
      metrics.fault.remove(labels);
      metrics.deferred.remove(labels);
    }
    if (lost.length > 0 && processor.revoked !== undefined) processor.revoked(lost.map(([, p]) => p));
    processor.rebalanced?.();
  });
  /** kafkajs gave up on this consumer (a crash it does not restart): nothing is consumed any more. */
  let dead = false;
  consumer.on(consumer.events.CRASH, (event) => {
    joined = false;
    // A restart is logged by restartAfterCrash (with backoff); one refused while stopping is no crash.
    if (event.payload.restart !== false || stopping) return;
    dead = true;
    logger.error(
      { err: event.payload.error, restart: false },
      'consumer crashed and will not restart: /healthz fails, restart the process',
    );
  });
  /** The current crash streak: when it began, the last crash, how many, when last logged and how many lines were left out since. */
  let crashes: CrashStreak | undefined;
  /** Ends a crash streak: the consumer joined its group or processed a batch again. */
  const crashRecovered = () => {
    if (crashes === undefined) return;
    logger.info({ crashes: crashes.count }, 'consumer recovered from its crashes');
    crashes = undefined;
  };
  /**
   * Crashes naming a missing input topic for the stall timeout make the consumer unhealthy (a
   * restart may cure it); crashes while the brokers are unreachable do not (a Kafka outage).
   */
  const crashLooping = () => crashStreakLooping(crashes, Date.now(), stallTimeoutMs, CRASH_QUIET_MS);
  /** Which of the input topics are missing now (undefined when that cannot be read). */
  const missingTopics = async (): Promise<string[] | undefined> => {
    try {
      const existing = new Set(await listTopics(kafka));
      return options.topics.filter((t) => !existing.has(t));
    } catch {
      return undefined;
    }
  };
  /** kafkajs' restartOnFailure: logs the crash (rate-limited), waits with capped backoff, then restarts. */
  async function restartAfterCrash(error: Error): Promise<boolean> {
    joined = false;
    const now = Date.now();
    const streak = recordCrash(crashes, error, now, CRASH_QUIET_MS);
    crashes = streak;
    metrics.restarts.inc({ group: groupId });
    const delay = backoffDelay(crashBackoff, streak.count - 1);
    const linesLeftOut = admitLine(streak, now, CRASH_LOG_INTERVAL_MS);
    if (linesLeftOut !== undefined) {
      const refused = saslRefusalIn(error);
      const missing = refused === undefined ? await missingTopics() : undefined;
      const first = streak.count === 1;
      logger.error(
        {
          // The stack once per streak: the same one repeated is noise.
          err: first ? error : error.message,
          crashes: streak.count,
          crashingForMs: now - streak.since,
          linesLeftOut,
          restartInMs: delay,
          ...(missing === undefined ? {} : { missingTopics: missing }),
        },
        refused !== undefined
          ? `consumer crashed: ${saslRefusalLine(refused)}; its input is held (nothing committed, not ready) and it restarts with backoff until they are accepted`
          : missing !== undefined && missing.length > 0
            ? `consumer crashed: input topic ${missing.join(', ')} does not exist; restarting with backoff until it does`
            : 'consumer crashed; restarting with backoff',
      );
    }
    try {
      await sleep(delay, undefined, { signal: abort.signal });
    } catch {
      return false; // stopping
    }
    return !stopping;
  }

  /** Ends a partition's processor-fault hold (a record got through, an outage, the batch left). */
  function clearFault(key: string, labels: Record<string, string>, why: string): void {
    if (!faultSince.delete(key)) return;
    metrics.fault.set(labels, 0);
    logger.info({ group: groupId, key }, why);
  }

  /** Sends dead letters (bounded requests; a DLQ outage throws retriable: nothing is committed) and logs each. */
  async function deadLetterAll(batch: Batch, letters: readonly DeadLetter[]): Promise<void> {
    const fields = (d: DeadLetter) => ({
      topic: batch.topic,
      partition: batch.partition,
      offset: d.record.offset,
      code: d.code,
      reason: capText(d.reason, deadLetterLimits.maxReasonBytes),
    });
    if (letters.length === 0) return;
    const now = Date.now();
    // Bounded produce requests; a record too large for the DLQ lands there truncated (flagged).
    await sendDeadLetters(
      letters,
      (d, bounds) => deadLetterMessage(d, groupId, now, bounds),
      (messages) => producer.send(`${batch.topic}.dlq`, messages),
      deadLetterLimits,
    );
    for (const d of letters) {
      metrics.dlq.inc({ topic: batch.topic, code: d.code });
      logger.warn(fields(d), `record sent to ${batch.topic}.dlq`);
    }
  }

  /**
   * One attempt at the batch's records from index `from`. `skipped`: a suspected processor fault
   * was held for `faultHoldMs`, and the records before `next` are now dead-lettered. `deferral`:
   * the processor said "not yet" from that record on; nothing from it on is dead-lettered here.
   */
  async function attemptBatch(
    batch: Batch,
    from: number,
    heartbeat: () => Promise<void>,
  ): Promise<
    | {
        readonly kind: 'done';
        readonly commitOffset: string | undefined;
        readonly processed: boolean;
        readonly deferral: HeldDeferral | undefined;
      }
    | { readonly kind: 'skipped'; readonly next: number }
  > {
    const decoded: Array<DecodedRecord<T>> = [];
    const dead: DeadLetter[] = [];
    const messages = from === 0 ? batch.messages : batch.messages.slice(from);
    for (const [i, message] of messages.entries()) {
      // A batch whose records are slow to decode one by one (a registry look-up each) advances:
      // not a stall (the stall check had restarted a process in the middle of such a batch).
      if (i % 1_000 === 999) progress.working(batch.topic, batch.partition, Date.now());
      const record = toInbound(batch, message);
      try {
        decoded.push({ record, value: await processor.decode(record) });
      } catch (thrown) {
        const error = toDriftlineError(thrown);
        if (error.retriable) throw error; // e.g. the registry is down: retry the whole batch later
        dead.push({ record, code: error.code, reason: error.message });
      }
    }
    const context: BatchContext = {
      topic: batch.topic,
      partition: batch.partition,
      highWatermark: batch.highWatermark,
      heartbeat,
    };
    let commitOffset: string | undefined;
    let processed = false;
    const refused: DeadLetter[] = [];
    let deferral: HeldDeferral | undefined;
    const offered = await deliverWithBisect(decoded, async (items) => {
      // Bisection goes on in offset order: the halves after a deferral wait behind it, unoffered.
      if (waitsBehind(deferral, items[0]!.record.offset)) return;
      let result: Awaited<ReturnType<typeof processor.process>> | undefined;
      try {
        result = await processor.process(items, context);
      } finally {
        // Each answer, a refusal too, is progress: bisecting a batch the sink refuses whole is 2N−1
        // calls before the commit, and 10,000 records at 15 ms a call were taken for a stall at the
        // default timeout (a liveness probe then restarted it for ever). A call that hangs still stalls.
        progress.working(batch.topic, batch.partition, Date.now());
      }
      processed = true;
      if (result?.defer !== undefined)
        deferral = earlierDeferral(
          deferral,
          acceptDeferral(
            items.map((i) => i.record.offset),
            result.defer,
          ),
        );
      if (result?.deadLetters !== undefined) refused.push(...result.deadLetters);
      const offered = result?.commitOffset;
      if (offered !== undefined && (commitOffset === undefined || BigInt(offered) < BigInt(commitOffset))) {
        commitOffset = offered;
      }
    });
    const key = partitionKey(batch.topic, batch.partition);
    const labels = { group: groupId, topic: batch.topic, partition: String(batch.partition) };
    // The records from a deferral on are offered again when the partition is fetched again: none
    // of them is dead-lettered now (a refusal there would be sent once per redelivery).
    const dueNow = (d: DeadLetter) => !waitsBehind(deferral, d.record.offset);
    const rejected = offered.filter(dueNow);
    // Decode failures count too: a TypeError in a processor's decode fails every record as well.
    const failed = dead.length === 0 ? rejected : [...dead.filter(dueNow), ...rejected].sort(byOffset);
    // A deferral is an answer of the processor: the deferred record counts as one that got through.
    const tried =
      deferral === undefined ? messages.length : messages.filter((m) => !waitsBehind(deferral, m.offset)).length + 1;
    if (faultHoldMs > 0 && suspectsProcessor(tried, failed)) {
      const oldest = failed.find((r) => isProcessorFaultCode(r.code)) as DeadLetter;
      const now = Date.now();
      const since = faultSince.get(key) ?? now;
      if (!faultSince.has(key)) {
        faultSince.set(key, now);
        metrics.fault.set(labels, 1);
        logger.error(
          {
            topic: batch.topic,
            partition: batch.partition,
            offset: oldest.record.offset,
            records: decoded.length,
            reason: capText(oldest.reason, deadLetterLimits.maxReasonBytes),
            faultHoldMs,
          },
          "every record of the batch failed with a processor fault (a bug, or the deployment's schema or config): held, not dead-lettered",
        );
      }
      if (now - since < faultHoldMs) {
        throw new DriftlineError('INTERNAL', `processor fault suspected: ${oldest.reason}`, {
          retriable: true,
          details: { processorFault: true },
        });
      }
      // Held for the whole hold: the record may be what the processor cannot take (a lone hostile
      // event). The oldest it fails on goes to the DLQ and the rest is tried again, each next
      // record with a hold of its own: a broken processor drains one record per hold, not a topic.
      const through = BigInt(oldest.record.offset);
      const held = `held ${formatDuration(faultHoldMs)} as a processor fault: ${oldest.reason}`;
      await deadLetterAll(
        batch,
        failed
          .filter((d) => BigInt(d.record.offset) <= through)
          .map((d) => (d === oldest ? { ...d, reason: held } : d)),
      );
      faultSince.set(key, Date.now());
      return { kind: 'skipped', next: from + messages.findIndex((m) => BigInt(m.offset) === through) + 1 };
    }
    // Cleared by a record that got through (an attempt on nothing, the end of a batch consumed by
    // skips, says nothing: the gauge flapped at every batch boundary).
    if (deferral !== undefined || decoded.length > rejected.length) clearFault(key, labels, 'processor fault cleared');
    // A DLQ outage throws a retriable error: the batch is retried and nothing is committed.
    await deadLetterAll(batch, [...dead.filter(dueNow), ...rejected, ...refused.filter(dueNow)]);
    return { kind: 'done', commitOffset, processed, deferral };
  }

  /** The group's commits of a topic: read once per join (or after a topic went missing), shared by its partitions. */
  function commitsOf(topic: string): Promise<Map<number, bigint> | undefined> {
    let pending = joinCommits.get(topic);
    if (pending === undefined) {
      pending = committedOffsets(admin, groupId, topic).then(
        (commits) => {
          rememberCommits(topic, commits);
          return commits;
        },
        (error: unknown) => {
          logger.debug({ topic, err: error }, 'reading the group commits failed');
          return undefined;
        },
      );
      joinCommits.set(topic, pending);
    }
    return pending;
  }

  /** Keeps the real commits of a read (not kafkajs' -2 of a reset, nor -1 for none). */
  function rememberCommits(topic: string, commits: ReadonlyMap<number, bigint>): void {
    for (const [partition, stored] of commits)
      observeLog(partitionKey(topic, partition), { kind: 'commitRead', stored });
  }

  /** One partition's start and end now; undefined when unreadable or not listed. */
  function partitionOffsets(topic: string, partition: number): Promise<{ low: bigint; high: bigint } | undefined> {
    return topicOffsets(admin, topic).then(
      (offsets) => offsets.find((o) => o.partition === partition),
      () => undefined,
    );
  }

  /**
   * Checks where a batch starts against what this process knows (log-position.ts decides), before
   * anything of it is processed: reads what the decision needs, then seeks, logs and counts. False
   * when the partition was sought elsewhere and this batch must be dropped. A restarted log is
   * forgotten here too and handed to the processor's `logRestarted`, before any batch of it.
   */
  async function checkPosition(batch: Batch): Promise<boolean> {
    const { topic, partition } = batch;
    const key = partitionKey(topic, partition);
    const first = BigInt(batch.firstOffset() ?? batch.messages[0]?.offset ?? batch.highWatermark);
    let check: BatchCheck = { first, highWatermark: BigInt(batch.highWatermark) };
    for (;;) {
      const decision = observeLog(key, { kind: 'batch', check });
      switch (decision.kind) {
        case 'read':
          check =
            decision.read === 'fingerprint' // at once: nothing may come between the check's steps
              ? { ...decision.check, fingerprint: recordFingerprint(batch.messages[0]!) }
              : await readFor(batch, decision.read, decision.check);
          continue;
        case 'seek':
          consumer.seek({ topic, partition, offset: decision.offset.toString() });
          return false;
        case 'restarted': {
          heldBack.delete(key);
          progress.forget(topic, partition);
          metrics.logRestarts.inc({ group: groupId, topic, partition: String(partition) });
          logger.error(
            {
              topic,
              partition,
              ...decision.found.evidence,
              fetchOffset: first.toString(),
              startOfLog: decision.startOfLog.toString(),
            },
            `${restartFound[decision.found.reason]} (its topic was deleted and created again): reading it from the start of its log`,
          );
          processor.logRestarted?.(topic, partition);
          if (decision.seekTo === undefined) return true;
          consumer.seek({ topic, partition, offset: decision.seekTo.toString() });
          return false;
        }
        case 'skipped':
          if (decision.count > 0n) {
            metrics.skipped.inc(
              { group: groupId, topic, partition: String(partition), reason: 'offset_out_of_range' },
              Number(decision.count),
            );
          }
          logger.error(
            {
              topic,
              partition,
              from: decision.from?.toString(),
              to: first.toString(),
              skipped: decision.count.toString(),
            },
            decision.count > 0n
              ? 'offset out of range: the fetch position was reset forward and the records between were never processed (removed by retention before they were read)'
              : 'offset out of range: the fetch position was reset to the default offset',
          );
          if (decision.movedBackwards !== undefined) movedBackwards(batch, first, decision.movedBackwards);
          return true;
        case 'movedBackwards':
          movedBackwards(batch, first, decision.lastCommitted);
          return true;
        case 'process':
        case 'none':
          return true;
      }
    }
  }

  /** A batch starting below the last commit: committed from its position again (the commit state is forgotten). */
  function movedBackwards(batch: Batch, first: bigint, lastCommitted: bigint): void {
    const { topic, partition } = batch;
    logger.warn(
      { topic, partition, lastCommitted: lastCommitted.toString(), firstOffset: first.toString() },
      'offsets moved backwards (a reset, or the log restarted): committing from the new position',
    );
    heldBack.delete(partitionKey(topic, partition));
    progress.forget(topic, partition);
  }

  /** Answers a batch check's read from Kafka: the log's start or end now, the group's commit. */
  async function readFor(
    batch: Batch,
    what: 'logEnd' | 'logStart' | 'groupCommit',
    check: BatchCheck,
  ): Promise<BatchCheck> {
    const { topic, partition } = batch;
    switch (what) {
      case 'groupCommit': {
        const commits = await commitsOf(topic);
        return { ...check, groupCommit: commits === undefined ? 'unreadable' : { stored: commits.get(partition) } };
      }
      case 'logEnd':
        return { ...check, logEnd: (await partitionOffsets(topic, partition))?.high ?? null };
      case 'logStart':
        return { ...check, logStart: (await partitionOffsets(topic, partition))?.low ?? null };
    }
  }

  async function eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    if (batch.messages.length === 0) return;
    const started = process.hrtime.bigint();
    const key = partitionKey(batch.topic, batch.partition);
    const joinsBefore = joins;
    // The deferred records are back: the wait, a known one, is over; this batch's own stall clock starts.
    onDeferral(batch.topic, batch.partition, { kind: 'batch' });
    if (!(await checkPosition(batch))) return; // sought elsewhere: nothing of this batch is processed
    fetched.add(key);
    lastBatchAt.set(key, Date.now());
    lagKnown.known(batch.topic, Date.now());
    const labels = { group: groupId, topic: batch.topic, partition: String(batch.partition) };
    metrics.in.inc({ topic: batch.topic }, batch.messages.length);
    // Before any commit of this process, the fetch started at the committed offset: the first record's.
    const committedBefore = () =>
      progress.committed(batch.topic, batch.partition) ?? BigInt(batch.messages[0]?.offset ?? batch.highWatermark);
    observe(batch.topic, batch.partition, committedBefore(), batch.highWatermark);
    let commitOffset: string | undefined;
    let deferral: HeldDeferral | undefined;
    // kafkajs heartbeats only between batches: a batch whose sink calls outlast the session timeout
    // (a ClickHouse that hangs to its deadline call after call, a webhook retried for a minute) had
    // the member evicted, the group rebalancing and the batch redelivered, on every attempt; so did
    // a backoff sleep longer than a short session. This keeps the membership through the attempts
    // and the sleeps between them (not the stall check: that waits for progress). A rebalance it
    // meets is left to the commit below, which kafkajs then answers by rejoining.
    // Every third of the interval: kafkajs sends a heartbeat only when the interval has passed since
    // its last request, so a timer of the interval itself skipped every other beat (6 s apart).
    const membership = setInterval(() => void payload.heartbeat().catch(() => {}), HEARTBEAT_INTERVAL_MS / 3);
    /** Never moves a commit backwards, nor past what a stateful processor still holds in memory only. */
    const commitUpTo = async (next: bigint, offered: string | undefined): Promise<bigint> => {
      const safe = offered !== undefined && BigInt(offered) < next ? BigInt(offered) : next;
      if (commitsForward(logOf(key), safe)) {
        // Through the batch's own commit (the consumer group's, unwrapped): kafkajs' consumer-level
        // commitOffsets returned without committing once stop() had begun (a batch finished during
        // a SIGTERM was redelivered on every start), and wrapped a rebalance error so kafkajs no
        // longer recognised it: it crashed without restarting, the process up, healthy, consuming
        // nothing.
        if (options.ephemeral !== true) {
          await payload.commitOffsetsIfNecessary({
            topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: safe.toString() }] }],
          });
        }
        observeLog(key, { kind: 'committed', offset: safe });
      }
      return safe;
    };
    /** Records before this index were dead-lettered after a held processor fault. */
    let from = 0;
    let settled = false;
    try {
      for (let attempt = 0; ; attempt++) {
        if (stopping || !payload.isRunning() || payload.isStale()) return; // not committed: redelivered later
        inFlight.set(key, Date.now());
        if (attempt > 0) {
          // A retry is a known wait: its own stall clock starts now (an attempt that then hangs is
          // a stall), and it keeps the partitions behind it from counting as stalled meanwhile.
          const now = Date.now();
          progress.working(batch.topic, batch.partition, now);
          retrying.set(key, now);
        }
        try {
          const result = await attemptBatch(batch, from, async () => {
            progress.working(batch.topic, batch.partition, Date.now());
            try {
              await payload.heartbeat();
            } catch (cause) {
              // Not the records' fault: kafkajs marks a rebalance non-retriable, and the batch had
              // been split in halves and dead-lettered record by record as if it were poison.
              throw new DriftlineError(
                'SOURCE_UNAVAILABLE',
                `consumer group ${groupId}: heartbeat failed (a rebalance, or the coordinator is away); the batch is redelivered`,
                { retriable: true, cause },
              );
            }
          });
          if (result.kind === 'skipped') {
            from = result.next;
            // Resolved too: kafkajs fetches from its resolved offsets, not its commits, so a batch left
            // before its end (a failed heartbeat) dead-lettered the skipped records a second time.
            payload.resolveOffset(batch.messages[from - 1]!.offset);
            const safe = await commitUpTo(
              BigInt(batch.messages[from - 1]?.offset ?? 0) + 1n,
              heldBack.get(key)?.toString(),
            );
            observe(batch.topic, batch.partition, laterOf(safe, committedBefore()), highOf(key, batch.highWatermark));
            continue; // the next record's hold starts now
          }
          const offered = result.commitOffset === undefined ? undefined : BigInt(result.commitOffset);
          if (result.processed) {
            if (offered !== undefined && offered <= BigInt(batch.lastOffset())) heldBack.set(key, offered);
            else heldBack.delete(key);
            commitOffset = result.commitOffset;
          } else {
            // Nothing reached the processor: what it held back before is still held.
            const held = heldBack.get(key);
            commitOffset = held === undefined ? undefined : held.toString();
          }
          deferral = result.deferral;
          settled = true;
          break;
        } catch (thrown) {
          inFlight.delete(key);
          retrying.set(key, Date.now());
          const error = toDriftlineError(thrown);
          // An outage between held attempts is no time of the hold: the clock and the critical
          // gauge ran on through hours of a sink down, and the first fault after it dead-lettered at once.
          if (error.details.processorFault !== true) clearFault(key, labels, 'processor fault hold reset (an outage)');
          metrics.failed.inc({ topic: batch.topic }, batch.messages.length);
          backingOff.add(key);
          metrics.backingOff.set(labels, 1);
          observe(batch.topic, batch.partition, committedBefore(), highOf(key, batch.highWatermark));
          refreshLag(batch.topic, batch.partition, committedBefore);
          const delay = backoffDelay(policy, attempt);
          logger.warn(
            {
              topic: batch.topic,
              partition: batch.partition,
              attempt,
              delayMs: delay,
              code: error.code,
              err: error.message,
            },
            'batch failed; pausing the partition and retrying',
          );
          try {
            await sleep(delay, undefined, { signal: abort.signal });
            await payload.heartbeat();
          } catch {
            return; // stopping, or the group is rebalancing: leave the batch uncommitted
          }
        }
      }
    } finally {
      clearInterval(membership);
      inFlight.delete(key);
      retrying.delete(key);
      if (owned.has(key)) lastBatchAt.set(key, Date.now());
      if (!settled) {
        // Left without finishing (stopping, stale, a rebalance): no wait of this partition remains.
        clearFault(key, labels, 'processor fault hold left with the batch');
        if (backingOff.delete(key)) metrics.backingOff.set(labels, 0);
      }
    }
    if (backingOff.delete(key)) {
      freshHigh.delete(key);
      lastLagRefresh.delete(key);
      metrics.backingOff.set(labels, 0);
      logger.info({ topic: batch.topic, partition: batch.partition }, 'sink recovered; partition resumed');
    }
    // Deferred: processed up to the deferred record only; nothing from it on is resolved (kafkajs
    // fetches from there once the partition is resumed) nor committed.
    const done =
      deferral === undefined ? batch.messages : batch.messages.filter((m) => !waitsBehind(deferral, m.offset));
    // Commit only now that the sink and the DLQ hold everything up to `next` — or less, when a
    // stateful processor still holds part of it in memory only. Never move a commit backwards.
    const next = processedUpTo(BigInt(batch.lastOffset()), deferral);
    payload.resolveOffset((next - 1n).toString());
    const lastMessage = done[done.length - 1];
    // The offset after what was processed: the redelivery from a deferred record starts there, an
    // ordinary replay of the same offsets, neither a restart nor a reset (log-position.ts).
    observeLog(
      key,
      lastMessage === undefined
        ? { kind: 'processedNone', at: next, deferred: mode.ephemeral ? deferredRecord(batch, deferral) : undefined }
        : {
            kind: 'processed',
            next,
            // A fingerprint costs a hash: kept by an ephemeral consumer only (its only evidence of a recreated topic).
            lastRecord: mode.ephemeral
              ? { offset: BigInt(lastMessage.offset), fingerprint: recordFingerprint(lastMessage) }
              : undefined,
          },
    );
    const safe = await commitUpTo(next, commitOffset);
    const before = committedBefore();
    observe(
      batch.topic,
      batch.partition,
      laterOf(safe, before),
      batch.highWatermark,
      next >= BigInt(batch.highWatermark),
    );
    const now = Date.now();
    metrics.out.inc({ topic: batch.topic }, done.length);
    crashRecovered();
    metrics.batchSeconds.observe({ topic: batch.topic }, Number(process.hrtime.bigint() - started) / 1e9);
    for (const message of done)
      metrics.latency.observe({ topic: batch.topic }, Math.max(0, now - Number(message.timestamp)) / 1000);
    if (deferral !== undefined) deferPartition(batch, deferral, joinsBefore);
  }

  /**
   * Pauses a partition whose processor deferred its records (ProcessResult.defer) until the delay
   * is over: kafkajs then fetches it again from the deferred record (resolved up to it), while the
   * other partitions are fetched and processed meanwhile. Not after a join since the batch began
   * (the partition may be another member's; kept, it is fetched again from the group's commit), nor
   * while stopping.
   */
  function deferPartition(batch: Batch, deferral: HeldDeferral, joinsBefore: number): void {
    const { topic, partition } = batch;
    const key = partitionKey(topic, partition);
    const current = !stopping && joins === joinsBefore && owned.has(key);
    onDeferral(topic, partition, { kind: 'deferred', offset: deferral.offset, current });
    const entry = deferred.get(key);
    if (!current || entry === undefined) return;
    clearTimeout(entry.timer);
    const timer = setTimeout(() => {
      // Still a known wait until its next batch begins (the fetch may take kafkajs' maxWaitTime).
      if (deferred.get(key)?.timer === timer) onDeferral(topic, partition, { kind: 'delayPassed' });
    }, deferral.delayMs);
    timer.unref();
    entry.timer = timer;
    metrics.deferred.set({ group: groupId, topic, partition: String(partition) }, 1);
    const fields = {
      topic,
      partition,
      offset: deferral.offset.toString(),
      delayMs: deferral.delayMs,
      reason: deferral.reason,
    };
    // One info line when a partition starts waiting on a record; its further deferrals at debug.
    if (lastDeferredAt.get(key) === deferral.offset) logger.debug(fields, 'partition deferred again');
    else
      logger.info(
        fields,
        'processor deferred the partition: paused, fetched again from the deferred record after the delay',
      );
    lastDeferredAt.set(key, deferral.offset);
  }

  let reported = new Map<string, Stall>();
  /** The stalled partitions now; keeps the gauge current and logs each stall once when it starts. */
  function stalls(): Stall[] {
    if (stopping) return [];
    // A partition retrying a failing sink knows why it waits, and so do the partitions waiting
    // behind it (kafkajs hands the loop one partition's batch at a time); a restart would not cure
    // the sink: every member restarted at the stall timeout through a long outage, and a start-up
    // that needs the same sink then failed into a crash loop (found by a review). Readiness and
    // driftline_consumer_backing_off report it. While a retry loop is alive (an attempt began or
    // failed within the stall timeout), only partitions with an attempt in flight can be stalled:
    // each retry starts its own stall clock, so an attempt that hangs is still a stall.
    const now = Date.now();
    const waiting = [...retrying.values()].some((t) => now - t < stallTimeoutMs);
    // A partition waiting on its processor's deferral waits on purpose (ProcessResult.defer).
    const found = progress
      .stalls(now)
      .filter(
        (s) =>
          !waitsDeferred(partitionKey(s.topic, s.partition), now) &&
          (!waiting || inFlight.has(partitionKey(s.topic, s.partition))),
      );
    const keys = new Map(found.map((s) => [partitionKey(s.topic, s.partition), s]));
    for (const s of found) {
      const labels = { group: groupId, topic: s.topic, partition: String(s.partition) };
      metrics.stalled.set(labels, 1);
      if (!reported.has(partitionKey(s.topic, s.partition))) {
        logger.error(
          { topic: s.topic, partition: s.partition, lag: s.lag, stalledForMs: s.stalledForMs, stallTimeoutMs },
          'partition stalled: lag and no commit for the stall timeout; reporting unhealthy',
        );
      }
    }
    for (const [k, { topic, partition }] of reported) {
      if (keys.has(k)) continue;
      metrics.stalled.set({ group: groupId, topic, partition: String(partition) }, 0);
      logger.info({ topic, partition }, 'partition no longer stalled');
    }
    reported = keys;
    return found;
  }

  async function positions(): Promise<PartitionPosition[]> {
    if (!joined || stopping) return [];
    const byTopic = new Map<string, number[]>();
    for (const { topic, partition } of owned.values()) {
      const list = byTopic.get(topic);
      if (list === undefined) byTopic.set(topic, [partition]);
      else list.push(partition);
    }
    const out: PartitionPosition[] = [];
    for (const [topic, partitions] of byTopic) {
      const offsets = new Map((await topicOffsets(admin, topic)).map((o) => [o.partition, o]));
      let commits: Map<number, bigint> | undefined;
      for (const partition of partitions) {
        const key = partitionKey(topic, partition);
        const o = offsets.get(partition);
        if (o === undefined) continue;
        let next = processedTo(key);
        if (next === undefined) {
          // No batch yet: where it starts reading; a group starting at the end has nothing before it.
          commits ??= await committedOffsets(admin, groupId, topic);
          next = startOf(commits.get(partition), o.low) ?? o.high;
        }
        out.push({ topic, partition, caughtUp: !backingOff.has(key) && next >= o.high });
      }
    }
    // A rebalance during the reads: only what is still owned here.
    return out.filter((p) => owned.has(partitionKey(p.topic, p.partition)));
  }

  /**
   * A fetch that wedges once caught up hands over no batch again while producers keep writing:
   * the lag gauge stayed at 0 and no stall clock ran (`/healthz` healthy, nothing consumed). The
   * partitions with no attempt in flight, no retry loop and no batch for LAG_REFRESH_MS read their
   * topic's high watermark instead (one read per topic, at most every LAG_REFRESH_MS, one at a time,
   * never on the batch path): records written past what was processed here show as lag, and a
   * partition whose commit then does not move for the stall timeout is stalled.
   */
  let idleRefreshing = false;
  let lastIdleRefresh = 0;
  const idlePartitions = (): IdlePartition[] => {
    if (!joined || stopping) return [];
    return [...owned].map(([key, { topic, partition }]) => ({
      topic,
      partition,
      processedTo: processedTo(key),
      committed: progress.committed(topic, partition),
      lastBatchAt: lastBatchAt.get(key),
      busy: inFlight.has(key) || retrying.has(key) || backingOff.has(key),
    }));
  };
  const refreshIdle = () => {
    const now = Date.now();
    if (!joined || stopping || idleRefreshing || now - lastIdleRefresh < LAG_REFRESH_MS) return;
    lastIdleRefresh = now;
    idleRefreshing = true;
    void refreshIdleLag(
      {
        now: () => Date.now(),
        partitions: idlePartitions,
        readOffsets: (topic) => topicOffsets(admin, topic),
        readCommits: (topic) => committedOffsets(admin, groupId, topic),
        startOf,
        observe: (topic, partition, o) =>
          observe(topic, partition, o.committed, o.highWatermark.toString(), o.caughtUp),
        // Waiting behind a batch in hand for a while (a training run), or behind a retry loop: a
        // known cause, like the partitions behind one backing off; their clock restarts.
        blocked: (at) =>
          [...inFlight.values()].some((t) => at - t >= LAG_REFRESH_MS) ||
          [...retrying.values()].some((t) => at - t < stallTimeoutMs),
        working: (topic, partition, at) => progress.working(topic, partition, at),
        failed: (topic, error) =>
          logger.debug({ topic, err: error }, 'reading the high watermark of idle partitions failed'),
        known: (topic, at) => lagKnown.known(topic, at),
        stale: (at) => lagKnown.stale(at, LAG_REFRESH_MS),
      },
      LAG_REFRESH_MS,
    )
      .catch((error: unknown) => logger.debug({ err: error }, 'refreshing the lag of idle partitions failed'))
      .finally(() => {
        idleRefreshing = false;
      });
  };

  const stopResets = onOffsetReset(kafka, (reset) => {
    if (reset.groupId !== groupId) return;
    // The next batch reads the group's commit again: whether kafkajs' reset still stands.
    joinCommits.delete(reset.topic);
    observeLog(partitionKey(reset.topic, reset.partition), { kind: 'offsetReset' });
  });
  /** Per partition, the marker reads of its pending reset so far (see markerReadDue). */
  const markerReads = new Map<string, MarkerReads>();
  const stopUnknowns = onUnknownTopicPartition(kafka, () => {
    // Some topic was missing a moment ago (kafkajs does not say which): the commits are read again.
    joinCommits.clear();
    const now = Date.now();
    for (const [k, p] of owned) {
      observeLog(k, { kind: 'topicMissing' });
      const reset = readsMarker(logOf(k), mode);
      if (reset === undefined) {
        markerReads.delete(k);
        continue;
      }
      const reads = markerReadDue(markerReads.get(k), reset, now);
      if (reads === undefined) continue;
      markerReads.set(k, reads);
      void commitsOf(p.topic).then((commits) => {
        if (commits !== undefined) observeLog(k, { kind: 'markerRead', reset, stored: commits.get(p.partition) });
      });
    }
  });
  await consumer.connect();
  try {
    for (const topic of options.topics) await subscribe(consumer, topic, options.fromBeginning ?? true);
    // Before the first join: kafkajs may reset (and overwrite) an out-of-range commit a few
    // milliseconds after it. Subscribed: the topics exist.
    if (options.ephemeral !== true) {
      for (const topic of options.topics)
        rememberCommits(topic, await committedOffsets(admin, groupId, topic).catch(() => new Map<number, bigint>()));
    }
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: options.partitionsConsumedConcurrently ?? 1,
      eachBatch,
    });
  } catch (error) {
    // A failed start (a topic not there yet: retried by the service's start-up) must not leave a
    // connected consumer behind, one more per attempt.
    await consumer.disconnect().catch(() => {});
    await admin.close();
    stopResets();
    stopUnknowns();
    throw error;
  }
  // Evaluated on a timer too, so the gauge and the log line appear without anyone asking /healthz.
  const watch = setInterval(
    () => {
      refreshIdle();
      void stalls();
      observeLagAge(Date.now());
    },
    Math.min(5_000, Math.max(100, stallTimeoutMs / 4)),
  );
  watch.unref();

  return {
    async stop() {
      if (stopping) return;
      stopping = true;
      groupMembership.lost(); // from here on this member acts on nothing, before it has left
      clearInterval(watch);
      stopResets();
      stopUnknowns();
      abort.abort();
      // Nothing is fetched again: a deferred partition's commit stays at its deferred record.
      for (const { topic, partition } of [...deferred.values()]) onDeferral(topic, partition, { kind: 'stopping' });
      const leave = async () => {
        // kafkajs waits for the batch in hand to finish before leaving the group.
        try {
          await consumer.disconnect();
        } finally {
          joined = false;
          await admin.close(); // also when the disconnect failed: a second stop() returns at once
        }
        if (options.ephemeral === true)
          await deleteGroup(kafka, groupId).catch((error: unknown) =>
            logger.warn(
              { err: error },
              'could not delete the ephemeral group (it holds no offsets; the broker drops it)',
            ),
          );
      };
      // Bounded: a SIGTERM must not wait on a Kafka that is slow or down (see STOP_DEADLINE_MS).
      const left = await withDeadline(STOP_DEADLINE_MS, (signal) =>
        Promise.race([
          leave(),
          new Promise<never>((_, reject) =>
            signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
          ),
        ]),
      );
      if (left.ok) return;
      if (!left.timedOut) throw left.error;
      joined = false;
      void admin.close();
      logger.warn(
        { stopDeadlineMs: STOP_DEADLINE_MS },
        `stopping did not finish within ${formatDuration(STOP_DEADLINE_MS)} (Kafka slow or unreachable): left without it; a batch still in hand is redelivered, the broker drops this member at its session timeout${options.ephemeral === true ? ' and forgets the empty ephemeral group' : ''}`,
      );
    },
    // Not ready either while the lag of a topic has been unknown for the stall timeout (Kafka slow
    // or blackholed: nothing answers, nothing is consumed), as when it is down (kafkajs crashes out
    // of the group). Readiness restarts nothing; liveness stays true through a Kafka outage.
    ready: () =>
      joined &&
      !stopping &&
      !dead &&
      !crashLooping() &&
      backingOff.size === 0 &&
      stalls().length === 0 &&
      lagKnown.stale(Date.now(), Math.max(stallTimeoutMs, LAG_UNKNOWN_MIN_MS)).length === 0,
    healthy: () => !dead && !crashLooping() && stalls().length === 0,
    stalls,
    positions,
    membership: () => groupMembership.current(),
  };
}

/**
 * Waits until the consumer owns partitions and has processed everything written to them (a reader
 * of a whole topic at start-up: what it rebuilds is complete). False after `timeoutMs`.
 */
export async function untilCaughtUp(
  handle: Pick<ConsumerHandle, 'positions'>,
  timeoutMs: number,
  intervalMs = 200,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const positions = await handle.positions().catch(() => []);
    if (positions.length > 0 && positions.every((p) => p.caughtUp)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
}

/** Subscribes, retrying while a topic created a moment ago is not yet in the broker's metadata. */
export async function subscribe(consumer: Consumer, topic: string, fromBeginning: boolean): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await consumer.subscribe({ topic, fromBeginning });
      return;
    } catch (error) {
      if (!isTransient(error)) throw error;
      if (attempt >= 7) {
        // Bounded (about 12 s): a topic that never appears is a typed, retriable error, not a hang.
        throw new DriftlineError(
          'SOURCE_UNAVAILABLE',
          `subscribing to ${topic} failed after ${attempt + 1} attempts: ${(error as Error).message}`,
          { cause: error, retriable: true },
        );
      }
      await sleep(backoffDelay(adminBackoff, attempt));
    }
  }
}
