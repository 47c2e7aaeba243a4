import { DriftlineError, PoisonRecordError, SinkUnavailableError } from '@driftline/core';
import { type EntityWrite, type FeatureView, type RedisConnectionConfig, rowKey, windowKey } from '@driftline/features';
import { Redis } from 'ioredis';
import { WRITE_SCRIPT } from './lua.js';

export interface WriteStats {
  readonly entities: number;
  /** Rows whose last-write-wins winner changed. */
  readonly rowsApplied: number;
  /** Entities whose window aggregates changed. */
  readonly aggregatesUpdated: number;
}

type ScriptArg = string | number;
type ScriptCall = (...args: ScriptArg[]) => unknown;

/** Per-view constants of the script call, computed once. */
interface ViewPlan {
  /** ttl, nf, field names, aggregate header: the head of every call's ARGV. */
  readonly head: readonly ScriptArg[];
  readonly slotIndexes: readonly number[];
  readonly allPresent: string;
}

const COMMAND = 'driftlineWriteRows';

/**
 * Redis client for the materializer: fail fast instead of queueing while disconnected (the consumer
 * loop backs off and retries the whole batch, which is idempotent), and never resend half-sent
 * commands on its own after a reconnect.
 */
export function createWriterRedis(config: RedisConnectionConfig, name = 'driftline-feature-materializer'): Redis {
  return new Redis(config.url, {
    ...(config.password === undefined ? {} : { password: config.password }),
    ...(config.tls ? { tls: {} } : {}),
    connectionName: name,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(50 * times, 500),
    reconnectOnError: () => false,
  });
}

export interface WriterOptions {
  /**
   * Entities of one view per script call (default 100). Keys of different entities live in
   * different cluster slots: use 1 against a Redis Cluster.
   */
  readonly entitiesPerCall?: number;
  readonly timeoutMs?: number;
}

/**
 * The online store's writer: one pipeline per batch, one EVALSHA of {@link WRITE_SCRIPT} per
 * chunk of entities of a view. Resolves only when Redis acknowledged every command; any failure
 * but a WRONGTYPE (someone else's key at our name) is a retriable SinkUnavailableError.
 */
export class RedisFeatureWriter {
  private readonly plans = new Map<string, ViewPlan>();
  private readonly entitiesPerCall: number;
  private readonly timeoutMs: number;

  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    options: WriterOptions = {},
  ) {
    this.entitiesPerCall = Math.max(1, options.entitiesPerCall ?? 100);
    this.timeoutMs = options.timeoutMs ?? 10_000;
    redis.defineCommand(COMMAND, { lua: WRITE_SCRIPT });
  }

  private plan(view: FeatureView): ViewPlan {
    let plan = this.plans.get(view.name);
    if (plan === undefined) {
      const slots = view.aggregatedFeatures;
      const head: ScriptArg[] = [view.ttlMs, view.features.length, ...view.features.map((f) => f.name)];
      if (view.aggregates.length === 0) head.push(0);
      else {
        head.push(view.aggregates.length, view.horizonMs, slots.length);
        for (const a of view.aggregates) head.push(a.name, a.function, a.windowMs, slots.indexOf(a.feature) + 1);
      }
      plan = {
        head,
        slotIndexes: slots.map((f) => view.featureIndex.get(f)!),
        allPresent: '1'.repeat(view.features.length),
      };
      this.plans.set(view.name, plan);
    }
    return plan;
  }

  /** Script arguments (numkeys first) of one call writing entities of one view. */
  argsOf(view: FeatureView, writes: readonly EntityWrite[]): ScriptArg[] {
    const plan = this.plan(view);
    const windowed = view.aggregates.length > 0;
    const args: ScriptArg[] = [windowed ? writes.length * 2 : writes.length];
    for (const w of writes) {
      const row = rowKey(this.keyPrefix, view.name, w.entity);
      args.push(row);
      if (windowed) args.push(windowKey(row));
    }
    for (const a of plan.head) args.push(a);
    args.push(writes.length);
    const nf = view.features.length;
    for (const w of writes) {
      const { winner } = w;
      args.push(winner.eventTime, winner.eventId, plan.allPresent);
      const maskAt = args.length - 1;
      let mask = '';
      let complete = true;
      for (let i = 0; i < nf; i++) {
        const value = winner.values[i];
        if (value === undefined) {
          complete = false;
          mask += '0';
          args.push('');
        } else {
          mask += '1';
          args.push(value);
        }
      }
      if (!complete) args[maskAt] = mask;
      if (windowed) {
        args.push(w.windowEvents.length);
        for (const e of w.windowEvents) {
          let packed = '';
          for (let s = 0; s < plan.slotIndexes.length; s++) {
            if (s > 0) packed += ',';
            packed += e.values[plan.slotIndexes[s]!] ?? '';
          }
          args.push(e.eventTime, e.eventId, packed);
        }
      }
    }
    return args;
  }

  async write(writes: readonly EntityWrite[]): Promise<WriteStats> {
    if (writes.length === 0) return { entities: 0, rowsApplied: 0, aggregatesUpdated: 0 };
    const byView = new Map<FeatureView, EntityWrite[]>();
    for (const w of writes) {
      const list = byView.get(w.view);
      if (list === undefined) byView.set(w.view, [w]);
      else list.push(w);
    }
    const pipeline = this.redis.pipeline();
    const call = (pipeline as unknown as Record<string, ScriptCall>)[COMMAND]!.bind(pipeline);
    for (const [view, list] of byView) {
      for (let i = 0; i < list.length; i += this.entitiesPerCall) {
        call(...this.argsOf(view, list.slice(i, i + this.entitiesPerCall)));
      }
    }
    let timer: NodeJS.Timeout | undefined;
    let results: Array<[Error | null, unknown]> | null;
    try {
      results = await Promise.race([
        pipeline.exec(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new SinkUnavailableError(`Redis did not answer a pipeline within ${this.timeoutMs} ms`)),
            this.timeoutMs,
          );
        }),
      ]);
    } catch (error) {
      throw asSinkError(error);
    } finally {
      clearTimeout(timer);
    }
    if (results === null) throw new SinkUnavailableError('Redis pipeline was discarded');
    let rowsApplied = 0;
    let aggregatesUpdated = 0;
    for (const [error, value] of results) {
      if (error !== null) throw asSinkError(error);
      const [rows, aggregates] = value as [number, number];
      rowsApplied += rows;
      aggregatesUpdated += aggregates;
    }
    return { entities: writes.length, rowsApplied, aggregatesUpdated };
  }
}

function asSinkError(error: unknown): DriftlineError {
  if (error instanceof DriftlineError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (message.startsWith('WRONGTYPE')) {
    return new PoisonRecordError('VALIDATION_FAILED', `Redis refused the write: ${message}`, { cause: error });
  }
  return new SinkUnavailableError(`Redis write failed: ${message}`, { cause: error });
}
