import { DriftlineError, type RedisConnectionConfig } from '@driftline/core';
import {
  type Applied,
  backstopTtl,
  batchWatermark,
  type ExpiredRow,
  type ExpireOutcome,
  type ExpireSummary,
  type JoinConfig,
  type Joined,
  type JoinRef,
  type JoinStateReader,
  type JoinStore,
  type JoinTag,
  joinKey,
  type LabelInput,
  type LabelOutcome,
  labelReachMs,
  labelWaitUntil,
  type OffsetSpan,
  type Positioned,
  type PredictionInput,
  type PredictionOutcome,
  parseJoinKey,
  type SlotTally,
  type SourceProgress,
  type SourceReport,
  type TakenTallies,
} from '@driftline/join';
import type { ChainableCommander } from 'ioredis';
import { argBytes, argsBytes, type CallResult, ChunkedPipeline, type PipelineRunner } from './chunked-pipeline.js';
import { createRedisClient, type RedisClient, type RedisClientPolicy } from './client.js';
import { classifyRedisError } from './errors.js';
import {
  ACK_SCRIPT,
  ACK_TALLIES_SCRIPT,
  CLEAR_DIRTY_SCRIPT,
  EXPIRE_SCRIPT,
  LABEL_SCRIPT,
  MIGRATE_V1_SCRIPT,
  PREDICTION_SCRIPT,
  REPORT_SOURCES_SCRIPT,
  REQUEUE_DIRTY_SCRIPT,
  TAKE_TALLIES_SCRIPT,
} from './join-scripts.js';

type Arg = string | number | Buffer;

/**
 * Records per script call: big enough to amortise the call, small enough not to stall Redis. The
 * calls of a batch go out in sequential chunks (ChunkedPipeline), smaller ones when Redis is slow.
 */
const SCRIPT_CHUNK = 500;
type ScriptCommand = (...args: Arg[]) => ChainableCommander;
interface ScriptPipeline {
  djPredictionBuffer: ScriptCommand;
  djLabelBuffer: ScriptCommand;
  djExpire: ScriptCommand;
  djAck: ScriptCommand;
}

/**
 * Version of the join store's key layout. v2 keys state by (model, prediction id); v1 (no version
 * segment, `<prefix>s:<prediction id>`, `<prefix>schedule`, `<prefix>outbox`) keyed it by prediction
 * id alone, so two models sharing an id stole each other's labels. See the package README for the
 * migration (`migrateLegacy`).
 */
export const JOIN_KEY_VERSION = 'v2';

export interface RedisKeys {
  /** State of one (model, prediction id): `statePrefix + joinKey(ref)`. */
  state(ref: JoinRef): string;
  readonly statePrefix: string;
  readonly schedule: string;
  readonly pending: string;
  readonly dirty: string;
  /** Counter the dirty marks are numbered from (INCR: no two marks share a number). */
  readonly dirtySeq: string;
  /** Greatest event time applied from a source (a partition): `watermarkPrefix + source`. */
  watermark(source: string): string;
  /** A source's applied-through marker (applied.ts of @driftline/join): `from,through,greatest Kafka timestamp`. */
  applied(source: string): string;
  readonly watermarkPrefix: string;
  /** Hash: source → `reportedAt,caughtUpAt` (see SourceProgress). */
  readonly sources: string;
  readonly outbox: string;
  alerted(id: string): string;
  /** Hash of a tally group's counts (`c<slot>`) and sums (`s<slot>`): `tallyPrefix + group`. */
  readonly tallyPrefix: string;
  readonly tallies: string;
  readonly tallyFlight: string;
  readonly tallyTaken: string;
  readonly tallyTakenPrefix: string;
}

/**
 * Every key of the joiner starts with `prefix` (isolates deployments and tests on one Redis).
 * Keys that hold (model, prediction id) pairs carry the layout version; their members are
 * {@link joinKey} strings. The per-window counts, dirty marks and alert marks hold window keys
 * (which include the model) and alert ids, unchanged since v1, so they are shared.
 *
 *   <prefix>v2:s:<joinKey>   string: the state (tag byte + fields, see join-scripts.ts)
 *   <prefix>v2:schedule      sorted set: joinKey → expiry score (pending predictions, waiting labels)
 *   <prefix>v2:outbox        sorted set: joinKey → expired at (expired rows the sink may not have)
 *   <prefix>pending          hash: window key → pending predictions
 *   <prefix>dirty            sorted set: window key → mark (a number of dirty-seq, unique per mark)
 *   <prefix>dirty-seq        string: the last mark number given
 *   <prefix>wm:<source>      string: a source's watermark (the least event time of its last batch, never lowered)
 *   <prefix>applied:<source> string: offsets applied from a source, "from,through,greatest Kafka timestamp"
 *   <prefix>sources          hash: source → "reportedAt,caughtUpAt" (its owner's last report)
 *   <prefix>alerted:<id>     string with TTL: a performance alert was raised
 *   <prefix>tally:<group>    hash: c<slot> → count, s<slot> → sum, counted since the last take
 *   <prefix>tallies          set: the groups with a tally hash
 *   <prefix>tally-flight     string: id of the tally batch in flight (taken, not acknowledged)
 *   <prefix>tally-taken:<g>  hash: group g's counts in the batch in flight
 *   <prefix>tally-taken      set: the groups of the batch in flight
 */
export function redisKeys(prefix: string): RedisKeys {
  const v = `${prefix}${JOIN_KEY_VERSION}:`;
  return {
    state: (ref) => `${v}s:${joinKey(ref)}`,
    statePrefix: `${v}s:`,
    schedule: `${v}schedule`,
    pending: `${prefix}pending`,
    dirty: `${prefix}dirty`,
    dirtySeq: `${prefix}dirty-seq`,
    watermark: (source) => `${prefix}wm:${source}`,
    watermarkPrefix: `${prefix}wm:`,
    applied: (source) => `${prefix}applied:${source}`,
    sources: `${prefix}sources`,
    outbox: `${v}outbox`,
    alerted: (id) => `${prefix}alerted:${id}`,
    tallyPrefix: `${prefix}tally:`,
    tallies: `${prefix}tallies`,
    tallyFlight: `${prefix}tally-flight`,
    tallyTaken: `${prefix}tally-taken`,
    tallyTakenPrefix: `${prefix}tally-taken:`,
  };
}

/** The record a v1 state holds, to find its model: the prediction (P, K, E) or the label (L). */
function legacyPayload(v: Buffer): { side: 'prediction' | 'label'; bytes: Buffer } | undefined {
  const tag = String.fromCharCode(v[0] ?? 0);
  const nl = (from: number) => v.indexOf(0x0a, from);
  if (tag === 'L') return { side: 'label', bytes: v.subarray(nl(1) + 1) };
  if (tag === 'P' || tag === 'E') return { side: 'prediction', bytes: v.subarray(nl(nl(1) + 1) + 1) };
  if (tag === 'K') {
    const a = nl(1);
    const b = nl(a + 1);
    const c = nl(b + 1);
    const length = Number(v.subarray(b + 1, c).toString());
    return { side: 'prediction', bytes: v.subarray(c + 1, c + 1 + length) };
  }
  return undefined;
}

function refOf(key: string): JoinRef {
  const ref = parseJoinKey(key);
  if (ref === undefined)
    throw new DriftlineError('INTERNAL', `join store member ${JSON.stringify(key)} is not a join key`);
  return ref;
}

function unavailable(action: string, error: unknown): DriftlineError {
  return classifyRedisError(error, action);
}

/** Runs a pipeline: every command's outcome (throws when the pipeline fails as a whole). */
async function execResults(pipeline: ChainableCommander, action: string): Promise<CallResult[]> {
  let results: CallResult[] | null;
  try {
    results = await pipeline.exec();
  } catch (error) {
    throw unavailable(action, error);
  }
  if (results === null) throw unavailable(action, new Error('pipeline discarded'));
  return results;
}

/** Runs a pipeline; the first failed command fails the whole step (every step is idempotent). */
async function execAll(pipeline: ChainableCommander, action: string): Promise<unknown[]> {
  return (await execResults(pipeline, action)).map(([error, value]) => {
    if (error !== null) throw unavailable(action, error);
    return value;
  });
}

/** A record's offset and Kafka timestamp as the join scripts take them ('' for none). */
function position(input: Positioned): [Arg, Arg] {
  const offset = input.offset !== undefined && Number.isSafeInteger(input.offset) && input.offset >= 0;
  const time = input.appendTime !== undefined && Number.isFinite(input.appendTime) && input.appendTime >= 0;
  return [offset ? input.offset! : '', time ? input.appendTime! : ''];
}

/**
 * The part of a batch's span one chunk (inputs[from, to)) covers, as the scripts' arguments: the
 * first chunk from the span's first offset, each next one from after the previous chunk's last
 * record, the last one to the span's last offset (records the join skips in between — shadow
 * predictions — are covered by the chunk they fall in). Every chunk carries the span's greatest
 * Kafka timestamp (at most one batch more than its own: the guard is that much more lenient).
 */
function chunkSpan(span: OffsetSpan | undefined, inputs: readonly Positioned[], from: number, to: number): Arg[] {
  if (span === undefined) return ['', '', '', ''];
  const first = from === 0 ? span.first : (inputs[from - 1]?.offset ?? span.first - 1) + 1;
  const last = to >= inputs.length ? span.last : (inputs[to - 1]?.offset ?? span.last);
  const time = span.maxAppendTime;
  const timed = time !== undefined && Number.isFinite(time) && time >= 0;
  // Dropping the marker is for the first chunk only: the next ones build on what it wrote.
  return [first, last, timed ? time : '', from === 0 && span.restart === true ? '1' : ''];
}

/** A fresh join's reply leaves out the side the caller sent (`own`), to spare the transfer. */
function joinedOf(
  ref: JoinRef,
  reply: Buffer[],
  own: { side: 'prediction' | 'label'; payload: Buffer } | undefined,
): Joined<Buffer, Buffer> {
  const [, prediction, label, joinedAt] = reply;
  if (prediction === undefined || label === undefined || joinedAt === undefined) {
    throw new DriftlineError('INTERNAL', `join script returned an incomplete row for ${joinKey(ref)}`);
  }
  return {
    model: ref.model,
    id: ref.id,
    prediction: own?.side === 'prediction' ? own.payload : prediction,
    label: own?.side === 'label' ? own.payload : label,
    joinedAt: Number(joinedAt.toString()),
  };
}

export interface CreateRedisJoinStoreOptions {
  /** First part of every key of the joiner. */
  readonly prefix: string;
  readonly join: JoinConfig;
  readonly name?: string;
  readonly policy?: Partial<RedisClientPolicy>;
  /** Connection errors (the client reconnects by itself); log them. */
  readonly onConnectionError?: (error: Error) => void;
}

/** A tally slot as the scripts take it: a non-negative integer, or the call is a bug. */
function tallySlot(slot: number): number {
  if (!Number.isSafeInteger(slot) || slot < 0) {
    throw new DriftlineError('VALIDATION_FAILED', `tally slot must be a non-negative integer, got ${slot}`);
  }
  return slot;
}

/** A tally value as the scripts take it: finite, in the shortest decimal that reads back the same. */
function tallyValue(value: number): string {
  if (!Number.isFinite(value)) {
    throw new DriftlineError('VALIDATION_FAILED', `tally value must be finite, got ${value}`);
  }
  return String(value);
}

/** A tally hash (HGETALL, flat: field, value, …) as slots. */
function slotsOf(flat: readonly string[]): Map<number, SlotTally> {
  const counts = new Map<number, number>();
  const sums = new Map<number, number>();
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const field = String(flat[i]);
    const slot = Number(field.slice(1));
    (field[0] === 'c' ? counts : sums).set(slot, Number(String(flat[i + 1])));
  }
  const out = new Map<number, SlotTally>();
  for (const [slot, count] of counts) out.set(slot, { count, sum: sums.get(slot) ?? 0 });
  return out;
}

/** A Redis join store on its own client with the `join-store` policy (fail fast, bounded commands). */
export function createRedisJoinStore(
  config: RedisConnectionConfig,
  options: CreateRedisJoinStoreOptions,
): RedisJoinStore {
  const client = createRedisClient(config, 'join-store', {
    name: options.name ?? 'driftline-label-joiner',
    ...(options.policy === undefined ? {} : { policy: options.policy }),
  });
  client.on('error', options.onConnectionError ?? (() => {}));
  return new RedisJoinStore(client, options.prefix, options.join, true);
}

/**
 * The Redis adapter of {@link JoinStore}: one Lua script per transition (atomic), pipelined per
 * batch so a batch costs one round trip per step when Redis is quick, and goes out in sequential
 * chunks that fit the command timeout when it is slow (ChunkedPipeline). Values are the raw Kafka
 * record bytes, so the pending state is as compact as the Avro on the wire.
 */
const JOIN_TAGS: ReadonlySet<string> = new Set<JoinTag>(['P', 'L', 'K', 'J', 'E', 'X']);

export class RedisJoinStore implements JoinStore<Buffer, Buffer>, JoinStateReader {
  readonly keys: RedisKeys;
  private readonly chunks: ChunkedPipeline;

  constructor(
    readonly redis: RedisClient,
    readonly prefix: string,
    readonly config: JoinConfig,
    private readonly ownsClient = false,
  ) {
    this.keys = redisKeys(prefix);
    this.chunks = new ChunkedPipeline({ timeoutMs: redis.options.commandTimeout ?? Number.POSITIVE_INFINITY });
    // Batch scripts take their number of keys as first argument (one state key per record).
    redis.defineCommand('djPrediction', { lua: PREDICTION_SCRIPT });
    redis.defineCommand('djLabel', { lua: LABEL_SCRIPT });
    redis.defineCommand('djExpire', { numberOfKeys: 4, lua: EXPIRE_SCRIPT });
    redis.defineCommand('djAck', { lua: ACK_SCRIPT });
    redis.defineCommand('djClearDirty', { numberOfKeys: 1, lua: CLEAR_DIRTY_SCRIPT });
    redis.defineCommand('djRequeueDirty', { numberOfKeys: 2, lua: REQUEUE_DIRTY_SCRIPT });
    redis.defineCommand('djMigrateV1', { numberOfKeys: 6, lua: MIGRATE_V1_SCRIPT });
    redis.defineCommand('djTakeTallies', { numberOfKeys: 3, lua: TAKE_TALLIES_SCRIPT });
    redis.defineCommand('djAckTallies', { numberOfKeys: 4, lua: ACK_TALLIES_SCRIPT });
    redis.defineCommand('djReportSources', { numberOfKeys: 1, lua: REPORT_SOURCES_SCRIPT });
  }

  /**
   * The tags of join states (JoinStateReader of @driftline/join): the first byte of each state
   * value, `GETRANGE key 0 0` per ref in one pipeline, so one round trip and one byte per ref
   * whatever the stored payloads. A key that holds something else (another type, a value driftline
   * did not write) reads as absent: the sink is then asked (labelAsksSink), and the join step
   * reports the key. An outage throws (retriable) before the batch applies anything.
   */
  async stateTags(refs: readonly JoinRef[]): Promise<Array<JoinTag | undefined>> {
    if (refs.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const ref of refs) pipeline.getrange(this.keys.state(ref), 0, 0);
    let results: Array<[Error | null, unknown]> | null;
    try {
      results = await pipeline.exec();
    } catch (error) {
      throw classifyRedisError(error, 'join state read');
    }
    if (results === null) throw classifyRedisError(new Error('pipeline discarded'), 'join state read');
    return results.map(([error, value]) => {
      if (error !== null && !error.message.includes('WRONGTYPE')) throw classifyRedisError(error, 'join state read');
      return error === null && typeof value === 'string' && JOIN_TAGS.has(value) ? (value as JoinTag) : undefined;
    });
  }

  /**
   * Whether Redis holds join state of this prefix, written by this release or an older one (for the
   * state marker: missing with no state left, the state was lost). Every release leaves a key
   * without TTL once it applied a batch, written in the batch's own step and never deleted: the one
   * `<prefix>watermark` (v1 and v2 before per-partition watermarks) or `<prefix>wm:<source>`; with
   * nothing pending, the schedule and pending counts are gone and older releases had no `dirty-seq`.
   * State keys (`v2:s:*` rows and tombstones) never exist without one of those watermarks, so no
   * SCAN: a bounded one sees a few pages of a keyspace the feature rows may fill (a joiner key found
   * by chance), an unbounded one is O(keyspace). The reported sources only name the per-source keys
   * to look at; they are not state (every expiry pass writes them, even on an empty state).
   */
  async holdsState(): Promise<boolean> {
    const k = this.keys;
    const fixed = [k.schedule, k.outbox, k.pending, k.dirty, k.dirtySeq, k.tallies, k.tallyFlight, k.tallyTaken];
    const p = this.redis.pipeline();
    p.exists(...fixed, `${this.prefix}watermark`);
    p.hkeys(k.sources);
    const [held, sources] = (await execAll(p, 'join state look-up')) as [number, string[]];
    if (held > 0) return true;
    if (sources.length === 0) return false;
    try {
      return (await this.redis.exists(sources.flatMap((s) => [k.watermark(s), k.applied(s)]))) > 0;
    } catch (error) {
      throw unavailable('join state look-up', error);
    }
  }

  private pipeline(): ChainableCommander & ScriptPipeline {
    return this.redis.pipeline() as ChainableCommander & ScriptPipeline;
  }

  /** Runs the script pipelines of one write step (see ChunkedPipeline). */
  private runner(action: string): PipelineRunner<ChainableCommander & ScriptPipeline> {
    return {
      open: () => this.pipeline(),
      exec: (pipeline) => execResults(pipeline, action),
      failure: (error) => unavailable(action, error),
    };
  }

  async applyPredictions(
    inputs: readonly PredictionInput<Buffer>[],
    now: number,
    source: string,
    span?: OffsetSpan,
  ): Promise<Array<Applied<Buffer, Buffer, PredictionOutcome>>> {
    const ttl = backstopTtl(this.config);
    const k = this.keys;
    const head = {
      keys: [k.schedule, k.pending, k.dirty, k.watermark(source), k.tallies, k.dirtySeq, k.applied(source)],
      extra: [k.tallyPrefix, labelReachMs(this.config)],
    };
    const p = 'djPredictionBuffer';
    return this.batched(inputs, p, 'prediction', 'join (predictions)', now, ttl, head, span, (i, args) => {
      const t = i.tally;
      args.push(joinKey(i), i.eventTime + this.config.maxDelayMs, i.windowKey, i.payload);
      if (t === undefined) args.push('', 0, 0);
      else args.push(t.group, tallySlot(t.slot), tallyValue(t.value));
      args.push(...position(i));
    });
  }

  async applyLabels(
    inputs: readonly LabelInput<Buffer>[],
    now: number,
    source: string,
    span?: OffsetSpan,
  ): Promise<Array<Applied<Buffer, Buffer, LabelOutcome>>> {
    const ttl = backstopTtl(this.config);
    const k = this.keys;
    const head = {
      keys: [k.schedule, k.pending, k.dirty, k.watermark(source), k.applied(source)],
      extra: [labelReachMs(this.config)],
    };
    const seen = new Set<string>();
    return this.batched(inputs, 'djLabelBuffer', 'label', 'join (labels)', now, ttl, head, span, (i, args) => {
      const key = joinKey(i);
      const repeated = seen.has(key);
      seen.add(key);
      args.push(key, i.eventTime, labelWaitUntil(i.eventTime, this.config), i.payload, repeated ? 1 : 0);
      args.push(...position(i));
    });
  }

  /** One script call per up to SCRIPT_CHUNK records, sent in sequential chunks (one round trip when Redis is quick). */
  private async batched<I extends JoinRef & Positioned & { eventTime: number; payload: Buffer }, O extends string>(
    inputs: readonly I[],
    command: 'djPredictionBuffer' | 'djLabelBuffer',
    side: 'prediction' | 'label',
    action: string,
    now: number,
    ttl: number,
    head: { readonly keys: readonly string[]; readonly extra: readonly Arg[] },
    span: OffsetSpan | undefined,
    add: (input: I, args: Arg[]) => void,
  ): Promise<Array<Applied<Buffer, Buffer, O>>> {
    if (inputs.length === 0 && span === undefined) return [];
    // Every call raises the watermark to the least event time of the whole batch (batchWatermark).
    // No inputs but a span (records the join skips): one call of none writes the marker alone.
    const watermark = inputs.length === 0 ? '' : batchWatermark(inputs);
    const records = inputs.map((input) => {
      const args: Arg[] = [];
      add(input, args);
      return args;
    });
    const callHead: Arg[] = [head.keys.length, ...head.keys, now, ttl, watermark, this.keys.statePrefix, ...head.extra];
    const calls = await this.chunks.send(
      {
        runEnds: [inputs.length],
        itemBytes: records.map(argsBytes),
        itemsPerCall: SCRIPT_CHUNK,
        queue: (pipeline, from, to) => {
          // A call's span follows its own records, wherever a chunk cuts the batch.
          const args = [...callHead, ...chunkSpan(span, inputs, from, to)];
          for (let n = from; n < to; n++) for (const arg of records[n]!) args.push(arg);
          pipeline[command](...args);
        },
      },
      this.runner(action),
    );
    const replies = (calls as Buffer[][][]).flat();
    return replies.map((reply, n) => {
      const outcome = reply[0]?.toString() as O;
      const input = inputs[n] as I;
      if (outcome === 'joined') return { outcome, emit: joinedOf(input, reply, { side, payload: input.payload }) };
      // A replay without payloads: an earlier record of this batch emits the row (LABEL_SCRIPT).
      if (outcome === 'replayed' && reply.length === 1) return { outcome };
      if (outcome === 'replayed') return { outcome, emit: joinedOf(input, reply, undefined) };
      return { outcome };
    });
  }

  /** `keys` are join keys (schedule and outbox members). */
  private async ack(keys: readonly string[], tag: 'K' | 'E'): Promise<void> {
    if (keys.length === 0) return;
    const k = this.keys;
    await this.chunks.send(
      {
        runEnds: [keys.length],
        itemBytes: keys.map(argBytes),
        itemsPerCall: SCRIPT_CHUNK,
        queue: (pipeline, from, to) => {
          pipeline.djAck(
            3,
            k.dirty,
            k.outbox,
            k.dirtySeq,
            this.config.tombstoneMs,
            tag,
            k.statePrefix,
            ...keys.slice(from, to),
          );
        },
      },
      this.runner('ack'),
    );
  }

  ackJoined(refs: readonly JoinRef[]): Promise<void> {
    return this.ack(refs.map(joinKey), 'K');
  }

  ackExpired(refs: readonly JoinRef[]): Promise<void> {
    return this.ack(refs.map(joinKey), 'E');
  }

  async reportSources(reports: readonly SourceReport[], now: number): Promise<void> {
    if (reports.length === 0) return;
    const args = reports.flatMap((r) => [r.source, r.caughtUp ? 1 : 0]);
    try {
      await (this.redis as unknown as { djReportSources(...a: Arg[]): Promise<number> }).djReportSources(
        this.keys.sources,
        now,
        ...args,
      );
    } catch (error) {
      throw unavailable('source report', error);
    }
  }

  async sources(): Promise<SourceProgress[]> {
    try {
      const reports = Object.entries(await this.redis.hgetall(this.keys.sources));
      if (reports.length === 0) return [];
      const watermarks = await this.redis.mget(reports.map(([source]) => this.keys.watermark(source)));
      return reports.map(([source, value], i) => {
        const [reportedAt = '', caughtUpAt = ''] = value.split(',');
        const watermark = watermarks[i];
        return {
          source,
          reportedAt: Number(reportedAt),
          ...(caughtUpAt === '' ? {} : { caughtUpAt: Number(caughtUpAt) }),
          ...(watermark === null || watermark === undefined ? {} : { watermark: Number(watermark) }),
        };
      });
    } catch (error) {
      throw unavailable('source progress', error);
    }
  }

  async expireDue(cutoff: number, now: number, limit: number): Promise<ExpireSummary> {
    const counts: Record<ExpireOutcome, number> = { expiring: 0, 'orphan-label': 0, stale: 0, 'not-due': 0 };
    if (!Number.isFinite(cutoff)) return { cutoff, counts }; // the clock is unknown: nothing is due
    let members: string[];
    try {
      members = await this.redis.zrangebyscore(this.keys.schedule, '-inf', cutoff, 'LIMIT', 0, limit);
    } catch (error) {
      throw unavailable('expiry scan', error);
    }
    if (members.length === 0) return { cutoff, counts };
    const ttl = backstopTtl(this.config);
    const k = this.keys;
    const callOf = (key: string): Arg[] => [
      k.statePrefix + key,
      k.schedule,
      k.pending,
      k.outbox,
      key,
      cutoff,
      now,
      ttl,
    ];
    const outcomes = await this.chunks.send(
      {
        runEnds: [members.length],
        itemBytes: members.map((key) => argsBytes(callOf(key))),
        itemsPerCall: 1,
        queue: (pipeline, from) => {
          pipeline.djExpire(...callOf(members[from]!));
        },
      },
      this.runner('expire'),
    );
    for (const outcome of outcomes as ExpireOutcome[]) counts[outcome]++;
    return { cutoff, counts };
  }

  async unackedExpired(limit: number, maxBytes = Number.POSITIVE_INFINITY): Promise<Array<ExpiredRow<Buffer>>> {
    let members: string[];
    try {
      members = await this.redis.zrange(this.keys.outbox, 0, limit - 1);
    } catch (error) {
      throw unavailable('outbox', error);
    }
    if (members.length === 0) return [];
    if (Number.isFinite(maxBytes)) {
      // Sizes first (a state holds its prediction's bytes, up to a Kafka record each): the rows
      // read are cut at maxBytes, so one pass never copies a thousand large predictions at once.
      const sizes = this.redis.pipeline();
      for (const key of members) sizes.strlen(this.keys.statePrefix + key);
      const lengths = (await execAll(sizes, 'outbox sizes')) as number[];
      let total = 0;
      let take = 0;
      while (take < members.length && (take === 0 || total + (lengths[take] ?? 0) <= maxBytes)) {
        total += lengths[take] ?? 0;
        take++;
      }
      members = members.slice(0, take);
    }
    const p = this.redis.pipeline();
    for (const key of members) p.getBuffer(this.keys.statePrefix + key);
    const values = (await execAll(p, 'outbox read')) as Array<Buffer | null>;
    const out: Array<ExpiredRow<Buffer>> = [];
    const gone: string[] = [];
    values.forEach((v, n) => {
      const key = members[n] as string;
      if (v === null || v[0] !== 0x45 /* E */) {
        gone.push(key);
        return;
      }
      const a = v.indexOf(0x0a, 1);
      const b = v.indexOf(0x0a, a + 1);
      out.push({ ...refOf(key), expiredAt: Number(v.subarray(1, a).toString()), prediction: v.subarray(b + 1) });
    });
    // An outbox entry whose state was already acknowledged (or vanished) has nothing left to send.
    if (gone.length > 0) await this.ack(gone, 'E');
    return out;
  }

  async pendingCount(windowKey: string): Promise<number> {
    try {
      return Number((await this.redis.hget(this.keys.pending, windowKey)) ?? 0);
    } catch (error) {
      throw unavailable('pending count', error);
    }
  }

  async dirtyWindows(limit: number): Promise<Array<{ key: string; mark: number }>> {
    let flat: string[];
    try {
      flat = await this.redis.zrange(this.keys.dirty, 0, limit - 1, 'WITHSCORES');
    } catch (error) {
      throw unavailable('dirty windows', error);
    }
    const out: Array<{ key: string; mark: number }> = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ key: flat[i] as string, mark: Number(flat[i + 1]) });
    return out;
  }

  async requeueDirty(key: string, mark: number): Promise<void> {
    try {
      await (this.redis as unknown as { djRequeueDirty: (...a: Arg[]) => Promise<number> }).djRequeueDirty(
        this.keys.dirty,
        this.keys.dirtySeq,
        key,
        mark,
      );
    } catch (error) {
      throw unavailable('requeue dirty', error);
    }
  }

  async clearDirty(key: string, mark: number): Promise<boolean> {
    try {
      const cleared = await (this.redis as unknown as { djClearDirty: (...a: Arg[]) => Promise<number> }).djClearDirty(
        this.keys.dirty,
        key,
        mark,
      );
      return cleared === 1;
    } catch (error) {
      throw unavailable('clear dirty', error);
    }
  }

  /**
   * Moves the states of the v1 layout (`<prefix>s:<prediction id>`, keyed without the model) to
   * the v2 layout. The model of a v1 state is read from its payload by `modelOf` (the service
   * decodes the stored record: the prediction for `P`, `K` and `E`, the label for `L`); `J`/`X`
   * tombstones carry no payload and are left to expire by their TTL. Idempotent and resumable:
   * each state moves in one atomic step, so a crash mid-way leaves v1 keys that the next start
   * moves. Returns how many states moved.
   */
  async migrateV1(
    modelOf: (side: 'prediction' | 'label', payload: Buffer) => Promise<string>,
    batch = 500,
  ): Promise<number> {
    const prefix = this.prefix;
    const v1 = { statePrefix: `${prefix}s:`, schedule: `${prefix}schedule`, outbox: `${prefix}outbox` };
    let moved = 0;
    let cursor = '0';
    do {
      let keys: string[];
      try {
        [cursor, keys] = await this.redis.scan(cursor, 'MATCH', `${v1.statePrefix}*`, 'COUNT', batch);
      } catch (error) {
        throw unavailable('v1 migration scan', error);
      }
      if (keys.length === 0) continue;
      const read = this.redis.pipeline();
      for (const key of keys) read.getBuffer(key);
      const values = (await execAll(read, 'v1 migration read')) as Array<Buffer | null>;
      const move = this.redis.pipeline() as ChainableCommander & { djMigrateV1: ScriptCommand };
      let n = 0;
      for (const [i, v] of values.entries()) {
        const payload = v === null ? undefined : legacyPayload(v);
        if (payload === undefined) continue;
        const id = (keys[i] as string).slice(v1.statePrefix.length);
        const ref = { model: await modelOf(payload.side, payload.bytes), id };
        move.djMigrateV1(
          keys[i] as string,
          this.keys.state(ref),
          v1.schedule,
          this.keys.schedule,
          v1.outbox,
          this.keys.outbox,
          id,
          joinKey(ref),
        );
        n++;
      }
      if (n > 0) for (const r of (await execAll(move, 'v1 migration')) as number[]) moved += r;
    } while (cursor !== '0');
    return moved;
  }

  async takeTallies(flushId: string): Promise<TakenTallies> {
    const k = this.keys;
    let reply: Array<string | Buffer[] | number>;
    try {
      reply = await (this.redis as unknown as { djTakeTallies: (...a: Arg[]) => Promise<typeof reply> }).djTakeTallies(
        k.tallies,
        k.tallyFlight,
        k.tallyTaken,
        flushId,
        k.tallyPrefix,
        k.tallyTakenPrefix,
      );
    } catch (error) {
      throw unavailable('take tallies', error);
    }
    const id = String(reply[0]);
    const buffered = Number(reply[1]);
    if (id === '') return { buffered };
    const groups = [];
    for (let i = 2; i + 1 < reply.length; i += 2) {
      groups.push({ group: String(reply[i]), slots: slotsOf(reply[i + 1] as unknown as string[]) });
    }
    return { batch: { flushId: id, groups }, buffered };
  }

  async ackTallies(flushId: string, dirty: readonly string[]): Promise<void> {
    const k = this.keys;
    try {
      await (this.redis as unknown as { djAckTallies: (...a: Arg[]) => Promise<number> }).djAckTallies(
        k.tallyFlight,
        k.tallyTaken,
        k.dirty,
        k.dirtySeq,
        flushId,
        k.tallyTakenPrefix,
        ...dirty,
      );
    } catch (error) {
      throw unavailable('acknowledge tallies', error);
    }
  }

  /** Whether a PERFORMANCE alert with this id was already raised (see markAlerted). */
  async wasAlerted(id: string): Promise<boolean> {
    try {
      return (await this.redis.exists(this.keys.alerted(id))) === 1;
    } catch (error) {
      throw unavailable('alert mark read', error);
    }
  }

  /** Remembers a raised alert for `ttlMs` (as long as labels can still change its window). */
  async markAlerted(id: string, ttlMs: number): Promise<void> {
    try {
      await this.redis.set(this.keys.alerted(id), '1', 'PX', ttlMs);
    } catch (error) {
      throw unavailable('alert mark', error);
    }
  }

  ready(): boolean {
    return this.redis.status === 'ready';
  }

  async close(): Promise<void> {
    if (this.ownsClient) this.redis.disconnect();
  }

  async scheduledCount(): Promise<number> {
    try {
      return await this.redis.zcard(this.keys.schedule);
    } catch (error) {
      throw unavailable('schedule size', error);
    }
  }
}
