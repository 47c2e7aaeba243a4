import { DriftlineError, type RedisConnectionConfig } from '@driftline/core';
import {
  type Applied,
  backstopTtl,
  type ExpiredRow,
  type ExpireOutcome,
  type ExpireSummary,
  expiryCutoff,
  type JoinConfig,
  type Joined,
  type JoinStore,
  type LabelInput,
  type LabelOutcome,
  labelWaitUntil,
  type PredictionInput,
  type PredictionOutcome,
} from '@driftline/join';
import type { ChainableCommander } from 'ioredis';
import { createRedisClient, type RedisClient, type RedisClientPolicy } from './client.js';
import { classifyRedisError } from './errors.js';
import { ACK_SCRIPT, CLEAR_DIRTY_SCRIPT, EXPIRE_SCRIPT, LABEL_SCRIPT, PREDICTION_SCRIPT } from './join-scripts.js';

type Arg = string | number | Buffer;

/** Records per script call: big enough to amortise the call, small enough not to stall Redis. */
const SCRIPT_CHUNK = 500;
type ScriptCommand = (...args: Arg[]) => ChainableCommander;
interface ScriptPipeline {
  djPredictionBuffer: ScriptCommand;
  djLabelBuffer: ScriptCommand;
  djExpire: ScriptCommand;
  djAck: ScriptCommand;
}

export interface RedisKeys {
  state(id: string): string;
  /** `state(id) === statePrefix + id`. */
  readonly statePrefix: string;
  readonly schedule: string;
  readonly pending: string;
  readonly dirty: string;
  readonly watermark: string;
  readonly outbox: string;
  alerted(id: string): string;
}

/** Every key of the joiner starts with `prefix` (isolates deployments and tests on one Redis). */
export function redisKeys(prefix: string): RedisKeys {
  return {
    state: (id) => `${prefix}s:${id}`,
    statePrefix: `${prefix}s:`,
    schedule: `${prefix}schedule`,
    pending: `${prefix}pending`,
    dirty: `${prefix}dirty`,
    watermark: `${prefix}watermark`,
    outbox: `${prefix}outbox`,
    alerted: (id) => `${prefix}alerted:${id}`,
  };
}

function unavailable(action: string, error: unknown): DriftlineError {
  return classifyRedisError(error, action);
}

/** Runs a pipeline; the first failed command fails the whole step (every step is idempotent). */
async function execAll(pipeline: ChainableCommander, action: string): Promise<unknown[]> {
  let results: Array<[Error | null, unknown]> | null;
  try {
    results = await pipeline.exec();
  } catch (error) {
    throw unavailable(action, error);
  }
  if (results === null) throw unavailable(action, new Error('pipeline discarded'));
  return results.map(([error, value]) => {
    if (error !== null) throw unavailable(action, error);
    return value;
  });
}

/** A fresh join's reply leaves out the side the caller sent (`own`), to spare the transfer. */
function joinedOf(
  id: string,
  reply: Buffer[],
  own: { side: 'prediction' | 'label'; payload: Buffer } | undefined,
): Joined<Buffer, Buffer> {
  const [, prediction, label, joinedAt] = reply;
  if (prediction === undefined || label === undefined || joinedAt === undefined) {
    throw new DriftlineError('INTERNAL', `join script returned an incomplete row for ${id}`);
  }
  return {
    id,
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
 * batch so a batch costs one round trip per step. Values are the raw Kafka record bytes, so the
 * pending state is as compact as the Avro on the wire.
 */
export class RedisJoinStore implements JoinStore<Buffer, Buffer> {
  readonly keys: RedisKeys;

  constructor(
    readonly redis: RedisClient,
    prefix: string,
    readonly config: JoinConfig,
    private readonly ownsClient = false,
  ) {
    this.keys = redisKeys(prefix);
    // Batch scripts take their number of keys as first argument (one state key per record).
    redis.defineCommand('djPrediction', { lua: PREDICTION_SCRIPT });
    redis.defineCommand('djLabel', { lua: LABEL_SCRIPT });
    redis.defineCommand('djExpire', { numberOfKeys: 4, lua: EXPIRE_SCRIPT });
    redis.defineCommand('djAck', { lua: ACK_SCRIPT });
    redis.defineCommand('djClearDirty', { numberOfKeys: 1, lua: CLEAR_DIRTY_SCRIPT });
  }

  private pipeline(): ChainableCommander & ScriptPipeline {
    return this.redis.pipeline() as ChainableCommander & ScriptPipeline;
  }

  async applyPredictions(
    inputs: readonly PredictionInput<Buffer>[],
    now: number,
  ): Promise<Array<Applied<Buffer, Buffer, PredictionOutcome>>> {
    const ttl = backstopTtl(this.config);
    return this.batched(inputs, 'djPredictionBuffer', 'prediction', 'join (predictions)', now, ttl, (i, args) => {
      args.push(i.id, i.eventTime + this.config.maxDelayMs, i.windowKey, i.payload);
    });
  }

  async applyLabels(
    inputs: readonly LabelInput<Buffer>[],
    now: number,
  ): Promise<Array<Applied<Buffer, Buffer, LabelOutcome>>> {
    const ttl = backstopTtl(this.config);
    return this.batched(inputs, 'djLabelBuffer', 'label', 'join (labels)', now, ttl, (i, args) => {
      args.push(i.id, i.eventTime, labelWaitUntil(i.eventTime, this.config), i.payload);
    });
  }

  /** One script call per chunk of records, all chunks in one pipeline (one round trip). */
  private async batched<I extends { id: string; eventTime: number; payload: Buffer }, O extends string>(
    inputs: readonly I[],
    command: 'djPredictionBuffer' | 'djLabelBuffer',
    side: 'prediction' | 'label',
    action: string,
    now: number,
    ttl: number,
    add: (input: I, args: Arg[]) => void,
  ): Promise<Array<Applied<Buffer, Buffer, O>>> {
    if (inputs.length === 0) return [];
    const k = this.keys;
    const p = this.pipeline();
    for (let from = 0; from < inputs.length; from += SCRIPT_CHUNK) {
      const chunk = inputs.slice(from, from + SCRIPT_CHUNK);
      const args: Arg[] = [4, k.schedule, k.pending, k.dirty, k.watermark, now, ttl, 0, k.statePrefix];
      let maxEventTime = Number.NEGATIVE_INFINITY;
      for (const input of chunk) {
        if (input.eventTime > maxEventTime) maxEventTime = input.eventTime;
        add(input, args);
      }
      args[7] = maxEventTime;
      p[command](...args);
    }
    const replies = ((await execAll(p, action)) as Buffer[][][]).flat();
    return replies.map((reply, n) => {
      const outcome = reply[0]?.toString() as O;
      const input = inputs[n] as I;
      if (outcome === 'joined') return { outcome, emit: joinedOf(input.id, reply, { side, payload: input.payload }) };
      if (outcome === 'replayed') return { outcome, emit: joinedOf(input.id, reply, undefined) };
      return { outcome };
    });
  }

  private async ack(ids: readonly string[], now: number, tag: 'K' | 'E'): Promise<void> {
    if (ids.length === 0) return;
    const p = this.pipeline();
    for (let from = 0; from < ids.length; from += SCRIPT_CHUNK) {
      const chunk = ids.slice(from, from + SCRIPT_CHUNK);
      p.djAck(2, this.keys.dirty, this.keys.outbox, now, this.config.tombstoneMs, tag, this.keys.statePrefix, ...chunk);
    }
    await execAll(p, 'ack');
  }

  ackJoined(ids: readonly string[], now: number): Promise<void> {
    return this.ack(ids, now, 'K');
  }

  ackExpired(ids: readonly string[], now: number): Promise<void> {
    return this.ack(ids, now, 'E');
  }

  async watermark(): Promise<number | undefined> {
    try {
      const v = await this.redis.get(this.keys.watermark);
      return v === null ? undefined : Number(v);
    } catch (error) {
      throw unavailable('watermark', error);
    }
  }

  async expireDue(now: number, limit: number): Promise<ExpireSummary> {
    const cutoff = expiryCutoff(now, await this.watermark(), this.config.graceMs);
    const counts: Record<ExpireOutcome, number> = { expiring: 0, 'orphan-label': 0, stale: 0, 'not-due': 0 };
    let ids: string[];
    try {
      ids = await this.redis.zrangebyscore(this.keys.schedule, '-inf', cutoff, 'LIMIT', 0, limit);
    } catch (error) {
      throw unavailable('expiry scan', error);
    }
    if (ids.length === 0) return { cutoff, counts };
    const p = this.pipeline();
    const ttl = backstopTtl(this.config);
    for (const id of ids) {
      p.djExpire(this.keys.state(id), this.keys.schedule, this.keys.pending, this.keys.outbox, id, cutoff, now, ttl);
    }
    for (const outcome of (await execAll(p, 'expire')) as ExpireOutcome[]) counts[outcome]++;
    return { cutoff, counts };
  }

  async unackedExpired(limit: number): Promise<Array<ExpiredRow<Buffer>>> {
    let ids: string[];
    try {
      ids = await this.redis.zrange(this.keys.outbox, 0, limit - 1);
    } catch (error) {
      throw unavailable('outbox', error);
    }
    if (ids.length === 0) return [];
    const p = this.redis.pipeline();
    for (const id of ids) p.getBuffer(this.keys.state(id));
    const values = (await execAll(p, 'outbox read')) as Array<Buffer | null>;
    const out: Array<ExpiredRow<Buffer>> = [];
    const gone: string[] = [];
    values.forEach((v, n) => {
      const id = ids[n] as string;
      if (v === null || v[0] !== 0x45 /* E */) {
        gone.push(id);
        return;
      }
      const a = v.indexOf(0x0a, 1);
      const b = v.indexOf(0x0a, a + 1);
      out.push({ id, expiredAt: Number(v.subarray(1, a).toString()), prediction: v.subarray(b + 1) });
    });
    // An outbox entry whose state was already acknowledged (or vanished) has nothing left to send.
    if (gone.length > 0) await this.ack(gone, Date.now(), 'E');
    return out;
  }

  async pendingCount(windowKey: string): Promise<number> {
    try {
      return Number((await this.redis.hget(this.keys.pending, windowKey)) ?? 0);
    } catch (error) {
      throw unavailable('pending count', error);
    }
  }

  async dirtyWindows(limit: number): Promise<Array<{ key: string; markedAt: number }>> {
    let flat: string[];
    try {
      flat = await this.redis.zrange(this.keys.dirty, 0, limit - 1, 'WITHSCORES');
    } catch (error) {
      throw unavailable('dirty windows', error);
    }
    const out: Array<{ key: string; markedAt: number }> = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ key: flat[i] as string, markedAt: Number(flat[i + 1]) });
    return out;
  }

  async clearDirty(key: string, markedAt: number): Promise<boolean> {
    try {
      const cleared = await (this.redis as unknown as { djClearDirty: (...a: Arg[]) => Promise<number> }).djClearDirty(
        this.keys.dirty,
        key,
        markedAt,
      );
      return cleared === 1;
    } catch (error) {
      throw unavailable('clear dirty', error);
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
