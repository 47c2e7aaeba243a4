import { createHash } from 'node:crypto';
import { EVENT_TIME_MAX_FUTURE_LIMIT_MS, type Logger, type RedisConnectionConfig } from '@driftline/core';
import {
  copyDigest,
  type EntityWrite,
  type FeatureView,
  MAX_EVENT_ID_LENGTH,
  MAX_STRING_FEATURE_LENGTH,
} from '@driftline/features';
import { Command } from 'ioredis';
import { DEFAULT_READ_BYTES_IN_FLIGHT, DEFAULT_READ_ENTITIES_IN_FLIGHT } from '../env.js';
import { rowKey, v1RowKey, WINDOW_SUFFIX, windowKey } from '../keys.js';
import {
  type FeatureRow,
  type OnlineStore,
  ReadAbortedError,
  type ReadBatchOptions,
  type RowRequest,
  StoreOverloadedError,
  throwIfReadAborted,
  type WriteStats,
} from '../port.js';
import {
  checkBatchSize,
  checkedProjection,
  checkRowBytes,
  DAMAGED_ROW,
  type DecodedRow,
  decodeProjectedRow,
  decodeStoredRow,
  parseStoredRow,
  type RowProjection,
  withinTtl,
} from '../rows.js';
import { bulkBytes, type CallResult, ChunkedPipeline, type PipelineRunner } from './chunked-pipeline.js';
import {
  COMMAND_TIMED_OUT,
  createRedisClient,
  type RedisClient,
  type RedisClientPolicy,
  StallWatch,
} from './client.js';
import { classifyRedisError } from './errors.js';
import {
  FEATURE_READ_SCRIPT,
  FEATURE_V1_READ_SCRIPT,
  FEATURE_V1_SIZE_SCRIPT,
  FEATURE_WRITE_SCRIPT,
} from './feature-script.js';

type ScriptArg = string | number;
type ScriptCall = (...args: ScriptArg[]) => unknown;

/**
 * One entity's part of a write call (see RedisOnlineStore.entityCall): its arguments as strings,
 * RESP-framed only when the call is queued.
 */
interface EntityCall {
  readonly view: FeatureView;
  /** Its row key and layout-v1 hash key; window sets: `windowKey` of each. */
  readonly row: string;
  readonly v1: string;
  /** UTF-8 bytes of `row` and `v1`. */
  readonly rowBytes: number;
  readonly v1Bytes: number;
  readonly write: EntityWrite;
  readonly time: string;
  readonly copy: string;
  readonly mask: string;
  /** Windowed views: nev, then (t, id, copy, packed values) per window event. */
  readonly window: readonly string[] | undefined;
  /** Request bytes of its arguments (keys and values). */
  readonly bytes: number;
}

/** Per-view constants of the script call, computed once. */
interface ViewPlan {
  /** ttl, nf, field names, aggregate header: the head of every call's ARGV, RESP-framed. */
  readonly head: string;
  /** Arguments in `head`. */
  readonly headArgs: number;
  readonly slotIndexes: readonly number[];
  readonly allPresent: string;
}

/** `\r\n$<bytes>\r\n`: ends the previous bulk string of a command and starts one of `bytes` bytes. */
const BULK_HEADS: string[] = [];
function bulkHead(bytes: number): string {
  if (bytes >= 4096) return `\r\n$${bytes}\r\n`;
  let head = BULK_HEADS[bytes];
  if (head === undefined) {
    head = `\r\n$${bytes}\r\n`;
    BULK_HEADS[bytes] = head;
  }
  return head;
}

/** Appends `arg` as one bulk string (of `bytes` UTF-8 bytes) to `parts`. */
function pushBulk(parts: string[], arg: string, bytes: number): void {
  parts.push(bulkHead(bytes), arg);
}

/** Connections (sockets) the write script was sent to as EVAL: EVALSHA on them after. */
const WRITE_SCRIPT_SENT = new WeakSet<object>();
const WRITE_SCRIPT_SHA = createHash('sha1').update(FEATURE_WRITE_SCRIPT).digest('hex');
const WRITE_SCRIPT_BYTES = Buffer.byteLength(FEATURE_WRITE_SCRIPT);

/**
 * One call of the write script, its RESP built by the store from strings (ioredis' own command
 * building copied, converted and framed every argument: ~17% of the materializer's CPU). Sent as
 * EVAL the first time on a connection and EVALSHA after, and again as EVAL after a NOSCRIPT (a
 * Redis restarted or its scripts flushed), as ioredis' defineCommand does.
 */
class WriteScriptCommand extends Command {
  constructor(
    /** Arguments after the script or its SHA. */
    private readonly argCount: number,
    /** Those arguments, RESP-framed (each led by the CRLF ending the one before). */
    private readonly body: string,
  ) {
    super('evalsha', []);
  }

  override toWritable(socket: object): string {
    const reject = this.reject;
    this.reject = (error: Error) => {
      if (error.message.includes('NOSCRIPT')) WRITE_SCRIPT_SENT.delete(socket);
      reject.call(this, error);
    };
    if (WRITE_SCRIPT_SENT.has(socket)) {
      this.name = 'evalsha';
      return `*${this.argCount + 2}\r\n$7\r\nevalsha\r\n$40\r\n${WRITE_SCRIPT_SHA}${this.body}\r\n`;
    }
    WRITE_SCRIPT_SENT.add(socket);
    this.name = 'eval';
    return `*${this.argCount + 2}\r\n$4\r\neval\r\n$${WRITE_SCRIPT_BYTES}\r\n${FEATURE_WRITE_SCRIPT}${this.body}\r\n`;
  }
}

const READ_COMMAND = 'driftlineReadRows';
const V1_READ_COMMAND = 'driftlineReadV1Rows';
const V1_SIZE_COMMAND = 'driftlineSizeV1Rows';

/**
 * Hash fields one round trip of the bounded layout-v1 fallback (`readBytesPerCall`) probes or reads
 * at most (a key with a hash counts its projected fields, one without 1; the first key always
 * goes): a script keeps Redis from every other client while it runs, ~0.5–1 µs a field here.
 */
const V1_FIELDS_PER_CALL = 10_000;

/**
 * Consecutive ranges [from, to) of items, each of at most `maxBytes` and V1_FIELDS_PER_CALL
 * fields, its first item always (a larger item alone).
 */
function boundedRanges(bytes: readonly number[], fields: readonly number[], maxBytes: number): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  for (let from = 0; from < bytes.length; ) {
    let to = from + 1;
    let b = bytes[from]!;
    let f = fields[from]!;
    while (to < bytes.length && b + bytes[to]! <= maxBytes && f + fields[to]! <= V1_FIELDS_PER_CALL) {
      b += bytes[to]!;
      f += fields[to++]!;
    }
    ranges.push([from, to]);
    from = to;
  }
  return ranges;
}

/** Runs [a, b) of consecutive positions of `items` (indexes into `absent`) of one request. */
function requestRuns(items: readonly number[], absent: ReadonlyArray<{ request: number }>): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  for (let a = 0; a < items.length; ) {
    const request = absent[items[a]!]!.request;
    let b = a + 1;
    while (b < items.length && absent[items[b]!]!.request === request) b++;
    runs.push([a, b]);
    a = b;
  }
  return runs;
}

/**
 * Row bytes one read command of `readBatch` answers at most by default (`readBytesPerCall`): a
 * reply Redis builds in about a millisecond, other clients' commands running between two.
 */
export const DEFAULT_READ_BYTES_PER_CALL = 1 << 20;

/**
 * Rows a sized batch read sizes and reads in one script call (FEATURE_READ_SCRIPT: one round trip,
 * ~4–11 µs of Redis a key on this loaded VM, ~20 times an MGET's, during which it serves no one
 * else; its `unpack` of the keys needs them few); more are sized with a pipeline of
 * STRLEN (one more round trip, Redis serving others between its commands).
 */
const READ_SCRIPT_MAX_KEYS = 1_000;

/** FEATURE_READ_SCRIPT's reply: `[total]` over the bound, else `[total, read, lengths of the rest, values read]`. */
type ReadScriptReply = [number] | [number, number, number[], Array<string | null>];

/**
 * Bytes a stored row of `view` (cjson of strings: time, event id, copy digest, each feature and
 * aggregate) can take at most as written by this release: every character of a string or event id
 * escaped (`\u0000`: 6 bytes), numbers (times, doubles, aggregates: `String(double)` is at most 24
 * characters), booleans and the hex digest at most 32 characters, never escaped. ~2 KB for ten
 * doubles (the event id's bound is most of it); ~400 KB more a string feature.
 */
const WORST_ROW_BYTES = new WeakMap<FeatureView, number>();
function worstRowBytes(view: FeatureView): number {
  let bytes = WORST_ROW_BYTES.get(view);
  if (bytes === undefined) {
    const escaped = (chars: number) => 6 * chars + 2;
    const plain = 32 + 2;
    // {"_t":…,"_id":…,"_c":…}: braces, names, colons and commas in the 64.
    bytes = 64 + plain + escaped(MAX_EVENT_ID_LENGTH) + plain;
    for (const f of view.features) {
      bytes += f.name.length + 4 + (f.type === 'string' ? escaped(MAX_STRING_FEATURE_LENGTH) : plain);
    }
    for (const a of view.aggregates) bytes += a.name.length + 4 + plain;
    WORST_ROW_BYTES.set(view, bytes);
  }
  return bytes;
}

/**
 * What reads learned of a view's rows: the largest seen (bytes), and whether a sized read found
 * rows of it, all within worstRowBytes (`fits`). A row over worstRowBytes (fields of an older
 * definition of the view, another writer) makes it `oversized`: its batches are sized from then on.
 */
interface LearnedRows {
  largest: number;
  fits: boolean;
  oversized: boolean;
}

/**
 * A batch read in one MGET (unsized) answers at most this many times `readBytesPerCall` even were
 * every row at its view's worstRowBytes (1,000 rows of ten doubles: ~2.1 MB at most, ~230 KB
 * as written by the materializer).
 */
const UNSIZED_WORST_FACTOR = 4;

/**
 * Refold work of one write call of a windowed view (window members read, plus events carried and
 * one per entity): ~10–25 ms of Redis on this machine (1–2.5 µs a member: a 2-core VM shared with
 * Kafka). A call stops before an entity that would exceed it (the first always goes: at most
 * `max_events` ≤ 10,000 members), and goes alone in its round trip: readers wait for one such call
 * at most. 100 hot entities of 1,000 members were one call of ~0.2 s; of 100,000, seconds, then BUSY.
 */
const WRITE_REFOLD_BUDGET = 10_000;

/** Longest a read waits for room among the reads in flight by default: half the command timeout, at most 1 s. */
const MAX_READ_WAIT_MS = 1_000;

/**
 * Weight of the latest read in a view's bytes-per-entity estimate (an exponential moving average:
 * a view's rows grown or shrunk are weighed right within a few reads).
 */
const ROW_BYTES_WEIGHT = 0.25;

/**
 * A semaphore of entities and bytes: a read of `n` entities expected to answer `b` bytes of rows
 * takes `min(n, maxEntities)` and `min(b, maxBytes)` (a larger read goes alone), first come first
 * served; one that finds no room within `waitMs` fails with a StoreOverloadedError, one whose
 * signal aborts while it waits with a ReadAbortedError.
 */
class ReadGate {
  private entities = 0;
  private bytes = 0;
  private readonly waiters: Array<{
    readonly n: number;
    readonly b: number;
    readonly start: () => void;
    readonly fail: (error: Error) => void;
  }> = [];

  constructor(
    readonly maxEntities: number,
    readonly maxBytes: number,
    readonly waitMs: number,
  ) {}

  /** Resolves with the release of the room taken once `entities` and `bytes` fit. */
  acquire(entities: number, bytes: number, signal: AbortSignal | undefined): Promise<() => void> {
    throwIfReadAborted(signal);
    const n = Math.min(Math.max(1, entities), this.maxEntities);
    const b = Math.min(Math.max(0, bytes), this.maxBytes);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.entities -= n;
      this.bytes -= b;
      this.drain();
    };
    if (this.waiters.length === 0 && this.fits(n, b)) {
      this.entities += n;
      this.bytes += b;
      return Promise.resolve(release);
    }
    return new Promise((resolve, reject) => {
      const leave = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const at = this.waiters.indexOf(waiter);
        if (at !== -1) this.waiters.splice(at, 1);
      };
      const waiter = {
        n,
        b,
        start: () => {
          leave();
          this.entities += n;
          this.bytes += b;
          resolve(release);
        },
        fail: (error: Error) => {
          leave();
          reject(error);
          this.drain(); // those behind it may fit now
        },
      };
      const timer = setTimeout(
        () =>
          waiter.fail(
            new StoreOverloadedError(
              `online store overloaded: ${this.entities} entities (~${this.bytes} bytes of rows) being read or awaited from Redis (at most ${this.maxEntities} entities, ${this.maxBytes} bytes), no room for ${entities} more (~${b} bytes) within ${this.waitMs} ms; retry later`,
              {
                entitiesInFlight: this.entities,
                maxEntitiesInFlight: this.maxEntities,
                bytesInFlight: this.bytes,
                maxBytesInFlight: this.maxBytes,
              },
            ),
          ),
        this.waitMs,
      );
      const onAbort = () => waiter.fail(new ReadAbortedError());
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private fits(n: number, b: number): boolean {
    return (
      (this.entities === 0 && this.bytes === 0) ||
      (this.entities + n <= this.maxEntities && this.bytes + b <= this.maxBytes)
    );
  }

  private drain(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.n, this.waiters[0]!.b)) this.waiters[0]!.start();
  }
}

export interface RedisOnlineStoreOptions {
  /** First part of every key (isolates deployments and tests sharing one Redis). */
  readonly keyPrefix: string;
  /**
   * Entities of one view per script call (default 100; 500 for a view with window aggregates,
   * whose calls the refold budget bounds: fewer round trips, each such call being alone in one).
   * Each entity's keys share a hash tag, but driftline needs a standalone Redis (a cluster's
   * replies are CONFIG_INVALID).
   */
  readonly entitiesPerCall?: number;
  /**
   * Refold work one write call of a windowed view may do, in window members read (plus events
   * carried and one per entity): default {@link WRITE_REFOLD_BUDGET}. Redis serves no other
   * client while a script runs.
   */
  readonly refoldBudget?: number;
  /**
   * Look up entities a read finds absent in key layout v1 too (default true): rows written before
   * the upgrade and not since. Off once none remain (all writers upgraded at least the longest
   * view TTL ago, or no `<prefix>:v1:*` key left): a read that finds an entity absent is then one
   * round trip instead of two.
   */
  readonly readV1?: boolean;
  /**
   * A read found a value at a row's key that is not a driftline row (written by something else, or
   * damaged). Given, the entity reads as absent and this is called with the key (log it:
   * {@link corruptRowReporter}): the feature API, where one such key failed a batch of 1,000
   * entities with a 500 and logged an error per request. Absent, the read fails with WRONGTYPE (a
   * poison error, a server fault): the model server, which must not answer "no features" (a
   * client error) nor score without them.
   */
  readonly onCorruptRow?: (key: string) => void;
  /**
   * Most row bytes one read command of `readBatch` answers, a row larger than it alone (default
   * {@link DEFAULT_READ_BYTES_PER_CALL}, 1 MiB; the skew monitor sets the same). A view's first
   * batches are sized; once a sized read found its rows within worstRowBytes, a batch whose rows
   * fit the bound by the largest row seen (twice it) and, at their worst, 4 times the bound (1,000
   * rows of ten doubles) is one pipeline of one MGET per request, as before (a view found with a
   * larger row is sized from then on). Any other batch is sized first: up to READ_SCRIPT_MAX_KEYS
   * rows by one script call that reads the leading rows within the bound in the same round trip,
   * more (or with `entitiesPerCall` 1) by a pipeline of STRLEN; the rest in sequential MGETs
   * (pipelines of GETs when `entitiesPerCall` is 1) of at most this many bytes. Before, a batch was
   * one MGET per request whatever the rows weighed, and only the skew monitor bounded its reads:
   * 1,000 rows of 512 KB were one 512 MB reply, Redis serving no one else for ~1–2 s (reviews: the
   * skew monitor's partition wedged; one 7 KB feature-API request made the API answer 503 to
   * everyone). The layout-v1 fallback (`readV1`) is bounded by it too (readV1Bounded).
   */
  readonly readBytesPerCall?: number;
  /**
   * Entities the store's reads (`read`, `readBatch`) have in flight at most (default
   * {@link DEFAULT_READ_ENTITIES_IN_FLIGHT}), and bytes of rows (default
   * {@link DEFAULT_READ_BYTES_IN_FLIGHT}): a read is weighed by its distinct entities times the
   * bytes per entity its views' reads answered so far (a moving average; a view not read yet
   * weighs the whole byte bound: it goes alone, once), a read of more than either bound goes alone.
   * A read's room is held until Redis answered its commands: one whose command timed out on the
   * client keeps it until a PING sent after it on the connection is answered (or the connection
   * closes), as Redis still works on what it was sent. A read finding no room waits for it, first
   * come first served, up to `readWaitMs` (default half the command timeout, at most 1 s), then
   * fails with a retriable StoreOverloadedError (a 503 with Retry-After): the connection is not
   * dropped, readiness holds.
   */
  readonly maxReadEntitiesInFlight?: number;
  readonly maxReadBytesInFlight?: number;
  readonly readWaitMs?: number;
  /** Disconnect the client on close (true when the store created it). */
  readonly ownsClient?: boolean;
}

export interface CreateRedisOnlineStoreOptions extends Omit<RedisOnlineStoreOptions, 'ownsClient'> {
  /** `online-write` for the materializer, `online-read` for the feature API (see REDIS_POLICIES). */
  readonly use: 'online-write' | 'online-read';
  /** Connection name (CLIENT LIST). */
  readonly name?: string;
  readonly policy?: Partial<RedisClientPolicy>;
  /** Connection errors (the client reconnects by itself); log them. */
  readonly onConnectionError?: (error: Error) => void;
}

/** A Redis online store on its own client, with the policy of its use. */
export function createRedisOnlineStore(
  config: RedisConnectionConfig,
  options: CreateRedisOnlineStoreOptions,
): RedisOnlineStore {
  const client = createRedisClient(config, options.use, {
    ...(options.name === undefined ? {} : { name: options.name }),
    ...(options.policy === undefined ? {} : { policy: options.policy }),
  });
  client.on('error', options.onConnectionError ?? (() => {}));
  return new RedisOnlineStore(client, {
    keyPrefix: options.keyPrefix,
    ...(options.entitiesPerCall === undefined ? {} : { entitiesPerCall: options.entitiesPerCall }),
    ...(options.refoldBudget === undefined ? {} : { refoldBudget: options.refoldBudget }),
    ...(options.readV1 === undefined ? {} : { readV1: options.readV1 }),
    ...(options.onCorruptRow === undefined ? {} : { onCorruptRow: options.onCorruptRow }),
    ...(options.readBytesPerCall === undefined ? {} : { readBytesPerCall: options.readBytesPerCall }),
    ...(options.maxReadEntitiesInFlight === undefined
      ? {}
      : { maxReadEntitiesInFlight: options.maxReadEntitiesInFlight }),
    ...(options.maxReadBytesInFlight === undefined ? {} : { maxReadBytesInFlight: options.maxReadBytesInFlight }),
    ...(options.readWaitMs === undefined ? {} : { readWaitMs: options.readWaitMs }),
    ownsClient: true,
  });
}

/**
 * The Redis adapter of {@link OnlineStore} (key layout v2, see keys.ts).
 * Writes: one EVALSHA of {@link FEATURE_WRITE_SCRIPT} per chunk of entities of a view, pipelined in
 * sequential chunks sized to what Redis answers within the command timeout (ChunkedPipeline);
 * a windowed view's call stops at the refold budget and goes alone in its round trip, the rest
 * following in the next call; resolves only when Redis acknowledged every command.
 * Reads: GET of the row's JSON; a batch of views sized once and whose rows fit `readBytesPerCall`
 * (and `maxRowBytes`) by the rows seen is one pipeline of one MGET per request; any other is sized first (STRLEN, by
 * FEATURE_READ_SCRIPT for up to READ_SCRIPT_MAX_KEYS rows, reading in the same call), refused
 * over `maxRowBytes`, then read in sequential MGETs of at most `readBytesPerCall` bytes. Entities found absent are looked up once
 * more in layout v1 (rows not written since an upgrade), in one more round trip that sizes their
 * hashes (then read within the bound, counted against `maxRowBytes`), unless `readV1` is off.
 * Errors are classified here (classifyRedisError): an outage or timeout is a retriable
 * SinkUnavailableError, WRONGTYPE a CONFIG_INVALID fault (not ours at that key), a script error non-retriable. A read of a key
 * holding something that is not a row answers the entity absent when onCorruptRow is given.
 */
/** Pages of 1,000 keys `holdsRows` looks through at most. */
const FEATURE_SCAN_PAGES = 100;

export class RedisOnlineStore implements OnlineStore {
  /**
   * By the view itself, not its name: a view of the same name defined again (another type) must
   * not be framed with the plan of the old one.
   */
  private readonly plans = new WeakMap<FeatureView, ViewPlan>();
  /** callOf's scratch list of RESP pieces (kept: it grows to a call's size once). */
  private readonly parts: string[] = [];
  private readonly entitiesPerCall: number;
  private readonly windowedEntitiesPerCall: number;
  private readonly refoldBudget: number;
  private readonly readBytesPerCall: number;
  /** What reads learned of each view's rows (see LearnedRows): whether a batch may skip sizing. */
  private readonly learned = new WeakMap<FeatureView, LearnedRows>();
  private readonly keyPrefix: string;
  private readonly stall: StallWatch;
  private readonly chunks: ChunkedPipeline;
  private readonly writeRunner: PipelineRunner<ReturnType<RedisClient['pipeline']>>;
  private readonly readGate: ReadGate;
  /**
   * Bytes of rows per entity asked that reads of each view answered (a moving average, absent
   * rows counting 0): the weight of a read in the gate. Unknown until a read of the view ended.
   */
  private readonly rowBytesPerEntity = new WeakMap<FeatureView, number>();

  constructor(
    readonly client: RedisClient,
    private readonly options: RedisOnlineStoreOptions,
  ) {
    this.keyPrefix = options.keyPrefix;
    this.entitiesPerCall = Math.max(1, options.entitiesPerCall ?? 100);
    this.windowedEntitiesPerCall = Math.max(1, options.entitiesPerCall ?? 500);
    this.refoldBudget = Math.max(1, options.refoldBudget ?? WRITE_REFOLD_BUDGET);
    this.readBytesPerCall = Math.max(1, options.readBytesPerCall ?? DEFAULT_READ_BYTES_PER_CALL);
    client.defineCommand(READ_COMMAND, { lua: FEATURE_READ_SCRIPT });
    client.defineCommand(V1_READ_COMMAND, { lua: FEATURE_V1_READ_SCRIPT });
    client.defineCommand(V1_SIZE_COMMAND, { lua: FEATURE_V1_SIZE_SCRIPT });
    this.stall = new StallWatch(client);
    this.chunks = new ChunkedPipeline({ timeoutMs: client.options.commandTimeout ?? Number.POSITIVE_INFINITY });
    this.readGate = new ReadGate(
      Math.max(1, options.maxReadEntitiesInFlight ?? DEFAULT_READ_ENTITIES_IN_FLIGHT),
      Math.max(1, options.maxReadBytesInFlight ?? DEFAULT_READ_BYTES_IN_FLIGHT),
      Math.max(0, options.readWaitMs ?? Math.min(MAX_READ_WAIT_MS, (client.options.commandTimeout ?? 2_000) / 2)),
    );
    this.writeRunner = {
      open: () => this.client.pipeline(),
      exec: (pipeline) => this.execResults(pipeline, 'write'),
      failure: (error) => classifyRedisError(error, 'write'),
    };
  }

  /** Runs one command, its outcome counted by the stall watch. */
  private async command<T>(sent: Promise<T>): Promise<T> {
    try {
      const reply = await sent;
      this.stall.observe(null);
      return reply;
    } catch (error) {
      this.stall.observe(error);
      throw error;
    }
  }

  /** Runs a pipeline: every command's outcome, counted once by the stall watch (as its first error). */
  private async execResults(pipeline: ReturnType<RedisClient['pipeline']>, action: string): Promise<CallResult[]> {
    let results: CallResult[] | null;
    try {
      results = await pipeline.exec();
    } catch (error) {
      this.stall.observe(error);
      throw classifyRedisError(error, action);
    }
    if (results === null) throw classifyRedisError(new Error('pipeline discarded'), action);
    // Its commands time out one by one: a pipeline counts once, as its first error.
    const failed = results.find(([error]) => error !== null);
    this.stall.observe(failed === undefined ? null : failed[0]);
    return results;
  }

  /** Runs a pipeline; the first failed command fails the whole step (every step is idempotent). */
  private async execPipeline(pipeline: ReturnType<RedisClient['pipeline']>, action: string): Promise<unknown[]> {
    return (await this.execResults(pipeline, action)).map(([error, value]) => {
      if (error !== null) throw classifyRedisError(error, action);
      return value;
    });
  }
  /**
   * Whether Redis holds feature rows of this prefix, for the state marker: a SCAN bounded to
   * FEATURE_SCAN_PAGES pages (in a Redis shared with millions of other keys, rows found nowhere in
   * them count as none).
   */
  async holdsRows(): Promise<boolean> {
    let cursor = '0';
    for (let page = 0; page < FEATURE_SCAN_PAGES; page++) {
      const [next, keys] = await this.command(
        this.client.scan(cursor, 'MATCH', `${this.keyPrefix}:v*:{*`, 'COUNT', 1000),
      );
      if (keys.length > 0) return true;
      cursor = next;
      if (cursor === '0') return false;
    }
    return false;
  }

  /**
   * The entity of a key holding a value that is not a driftline row: absent and reported when
   * onCorruptRow is given, else a WRONGTYPE (CONFIG_INVALID) error. The one treatment of every
   * damaged row, of either layout.
   */
  private damaged(key: string): undefined {
    const report = this.options.onCorruptRow;
    if (report === undefined) {
      throw classifyRedisError(new Error(`WRONGTYPE the value at ${key} is not a driftline row`), 'read');
    }
    report(key);
    return undefined;
  }

  /** The row a read answers for a decoded value at `key`: damaged ones handled, the view's TTL applied. */
  private served(view: FeatureView, key: string, decoded: DecodedRow, now: number): FeatureRow | undefined {
    return decoded === DAMAGED_ROW ? this.damaged(key) : withinTtl(view, decoded, now);
  }

  /** Decodes a stored layout-v2 row (a JSON object). */
  private decodeStored(projection: RowProjection, stored: string): DecodedRow {
    const row = parseStoredRow(stored);
    return row === undefined ? DAMAGED_ROW : decodeStoredRow(projection, row);
  }

  private plan(view: FeatureView): ViewPlan {
    let plan = this.plans.get(view);
    if (plan === undefined) {
      const slots = view.aggregatedFeatures;
      const head: ScriptArg[] = [view.ttlMs, view.features.length, ...view.features.map((f) => f.name)];
      if (view.aggregates.length === 0) head.push(0);
      else {
        head.push(view.aggregates.length, view.horizonMs, view.maxWindowEvents, this.refoldBudget, slots.length);
        for (const a of view.aggregates) head.push(a.name, a.function, a.windowMs, slots.indexOf(a.feature) + 1);
      }
      const parts: string[] = [];
      for (const arg of head) {
        const text = String(arg);
        pushBulk(parts, text, Buffer.byteLength(text));
      }
      plan = {
        head: parts.join(''),
        headArgs: head.length,
        slotIndexes: slots.map((f) => view.featureIndex.get(f)!),
        allPresent: '1'.repeat(view.features.length),
      };
      this.plans.set(view, plan);
    }
    return plan;
  }

  /** One entity's part of a script call: its keys, and its values (the ARGV after the view's head). */
  private entityCall(view: FeatureView, plan: ViewPlan, w: EntityWrite): EntityCall {
    const windowed = view.aggregates.length > 0;
    const row = rowKey(this.keyPrefix, view.name, w.entity);
    const v1 = v1RowKey(row);
    // Every length is counted from the bytes (never assumed from a type): a length short of the
    // bytes written lets Redis read the rest of a value as protocol — another command.
    const rowBytes = Buffer.byteLength(row);
    const v1Bytes = Buffer.byteLength(v1);
    let bytes = bulkBytes(rowBytes) + bulkBytes(v1Bytes);
    if (windowed) bytes += bulkBytes(rowBytes + WINDOW_SUFFIX.length) + bulkBytes(v1Bytes + WINDOW_SUFFIX.length);
    const { winner } = w;
    const time = String(winner.eventTime);
    const copy = copyDigest(winner);
    const nf = view.features.length;
    let mask = plan.allPresent;
    for (let i = 0; i < nf; i++) {
      const value = winner.values[i];
      if (value === undefined) {
        if (mask === plan.allPresent) mask = mask.slice(0, i);
        mask += '0';
        bytes += bulkBytes(0);
      } else {
        if (mask !== plan.allPresent) mask += '1';
        bytes += bulkBytes(Buffer.byteLength(value));
      }
    }
    bytes +=
      bulkBytes(time.length) + bulkBytes(Buffer.byteLength(winner.eventId)) + bulkBytes(copy.length) + bulkBytes(nf);
    let window: string[] | undefined;
    if (windowed) {
      window = [String(w.windowEvents.length)];
      for (const e of w.windowEvents) {
        let packed = '';
        for (let s = 0; s < plan.slotIndexes.length; s++) {
          if (s > 0) packed += ',';
          packed += e.values[plan.slotIndexes[s]!] ?? '';
        }
        window.push(String(e.eventTime), e.eventId, copyDigest(e), packed);
      }
      for (const arg of window) bytes += bulkBytes(Buffer.byteLength(arg));
    }
    return { view, row, v1, rowBytes, v1Bytes, write: w, time, copy, mask, window, bytes };
  }

  /** The RESP-framed arguments (numkeys first) of one call writing entities [from, to) of one view. */
  private callOf(entities: readonly EntityCall[], from: number, to: number): { args: number; body: string } {
    const view = entities[from]!.view;
    const plan = this.plan(view);
    const windowed = view.aggregates.length > 0;
    const n = to - from;
    const parts = this.parts;
    parts.length = 0;
    const numkeys = String(n * (windowed ? 4 : 2));
    pushBulk(parts, numkeys, numkeys.length);
    for (let i = from; i < to; i++) {
      const { row, v1, rowBytes, v1Bytes } = entities[i]!;
      pushBulk(parts, row, rowBytes);
      pushBulk(parts, v1, v1Bytes);
      if (windowed) {
        pushBulk(parts, windowKey(row), rowBytes + WINDOW_SUFFIX.length);
        pushBulk(parts, windowKey(v1), v1Bytes + WINDOW_SUFFIX.length);
      }
    }
    parts.push(plan.head);
    const ceiling = String(Date.now() + EVENT_TIME_MAX_FUTURE_LIMIT_MS);
    pushBulk(parts, ceiling, ceiling.length);
    pushBulk(parts, String(n), String(n).length);
    let args = 1 + Number(numkeys) + plan.headArgs + 2;
    const nf = view.features.length;
    for (let i = from; i < to; i++) {
      const e = entities[i]!;
      const { winner } = e.write;
      pushBulk(parts, e.time, e.time.length);
      pushBulk(parts, winner.eventId, Buffer.byteLength(winner.eventId));
      pushBulk(parts, e.copy, e.copy.length);
      pushBulk(parts, e.mask, e.mask.length);
      for (let f = 0; f < nf; f++) {
        const value = winner.values[f] ?? '';
        pushBulk(parts, value, Buffer.byteLength(value));
      }
      args += 4 + nf;
      if (e.window !== undefined) {
        for (const arg of e.window) pushBulk(parts, arg, Buffer.byteLength(arg));
        args += e.window.length;
      }
    }
    const body = parts.join('');
    parts.length = 0;
    return { args, body };
  }

  /**
   * One EVALSHA per up to `entitiesPerCall` entities of a view, sent in sequential chunks
   * (ChunkedPipeline): a batch Redis cannot take within the command timeout at once still passes
   * on a retry, in smaller chunks.
   */
  async write(writes: readonly EntityWrite[]): Promise<WriteStats> {
    if (writes.length === 0)
      return { entities: 0, rowsApplied: 0, aggregatesUpdated: 0, rowsRepaired: 0, rowsExpired: 0 };
    const byView = new Map<FeatureView, EntityWrite[]>();
    for (const w of writes) {
      const list = byView.get(w.view);
      if (list === undefined) byView.set(w.view, [w]);
      else list.push(w);
    }
    // Arguments first (a bad entity id throws here, before anything is sent).
    const entities: EntityCall[] = [];
    const itemBytes: number[] = [];
    const runEnds: number[] = [];
    const windowedRuns: boolean[] = [];
    for (const [view, list] of byView) {
      const plan = this.plan(view);
      for (const w of list) {
        const call = this.entityCall(view, plan, w);
        entities.push(call);
        itemBytes.push(call.bytes);
      }
      runEnds.push(entities.length);
      windowedRuns.push(view.aggregates.length > 0);
    }
    const replies = await this.chunks.send(
      {
        runEnds,
        itemBytes,
        itemsPerCall: this.entitiesPerCall,
        // A windowed view's call refolds at most refoldBudget members and says how many entities
        // it wrote (the 5th element of its reply); the rest go in the next call.
        budgeted: {
          runs: windowedRuns,
          itemsPerCall: this.windowedEntitiesPerCall,
          itemsDone: (reply) => (reply as number[])[4]!,
        },
        queue: (pipeline, from, to) => {
          const { args, body } = this.callOf(entities, from, to);
          const command = new WriteScriptCommand(args, body);
          // A NOSCRIPT (the script cache emptied): sent again, as EVAL, on the connection.
          command.promise = command.promise.catch((error: Error) => {
            if (!error.message.includes('NOSCRIPT')) throw error;
            return this.client.sendCommand(new WriteScriptCommand(args, body));
          });
          (pipeline as unknown as { sendCommand(command: Command): unknown }).sendCommand(command);
        },
      },
      this.writeRunner,
    );
    let rowsApplied = 0;
    let aggregatesUpdated = 0;
    let rowsRepaired = 0;
    let rowsExpired = 0;
    for (const value of replies) {
      const [rows, aggregates, repaired, expired] = value as [number, number, number, number, number];
      rowsApplied += rows;
      aggregatesUpdated += aggregates;
      rowsRepaired += repaired;
      rowsExpired += expired;
    }
    return { entities: writes.length, rowsApplied, aggregatesUpdated, rowsRepaired, rowsExpired };
  }

  async read(view: FeatureView, entity: string, features?: readonly string[]): Promise<FeatureRow | undefined> {
    const projection = checkedProjection(view, features);
    const release = await this.readGate.acquire(1, this.expectedBytes(view, 1), undefined);
    return this.holdingRoom(release, () => this.readOne(view, projection, rowKey(this.keyPrefix, view.name, entity)));
  }

  /**
   * Bytes a read of `entities` entities of `view` is expected to answer: the view's bytes per
   * entity so far times `entities`; a view no read has ended for weighs every byte of the bound
   * (its first read goes alone, and teaches the rest).
   */
  private expectedBytes(view: FeatureView, entities: number): number {
    const perEntity = this.rowBytesPerEntity.get(view);
    return perEntity === undefined ? Number.POSITIVE_INFINITY : perEntity * entities;
  }

  /** Counts a read of `view` that answered `bytes` of rows for `entities` distinct entities asked. */
  private noteRowBytes(view: FeatureView, bytes: number, entities: number): void {
    if (entities <= 0) return;
    const seen = bytes / entities;
    const before = this.rowBytesPerEntity.get(view);
    this.rowBytesPerEntity.set(view, before === undefined ? seen : before + ROW_BYTES_WEIGHT * (seen - before));
  }

  /** Runs `read` in the room `release` gives back: at once, or once Redis answers a read the client timed out. */
  private async holdingRoom<T>(release: () => void, read: () => Promise<T>): Promise<T> {
    let timedOut = false;
    try {
      return await read();
    } catch (error) {
      timedOut = commandTimedOut(error);
      throw error;
    } finally {
      if (timedOut) this.releaseOnceAnswered(release);
      else release();
    }
  }

  /**
   * Releases a read's room once Redis answered what the read sent: a command that timed out on the
   * client is still in Redis's queue, and its reply still crosses the connection. Freeing its room
   * at the timeout let new reads pile onto a connection already behind (a review: 1,000-row reads
   * of 8 KB rows, 128 clients: 0 reads answered in 8 s, the connection dropped 7 times). A PING
   * sent now is answered after them (one connection, answered in order); it is sent again while
   * it times out, and the room is released once it is answered, fails otherwise, or the
   * connection is not up (its commands failed with it). Its answer counts in the stall watch, not
   * its timeout: the read's own timeouts were counted, and a process too busy to read its socket
   * in time would count one more for each read held (the watch's readiness probe still drives a
   * silent connection to its reconnect, which fails these PINGs and releases the room).
   */
  private releaseOnceAnswered(release: () => void): void {
    const probe = () => {
      if (this.client.status !== 'ready') {
        release();
        return;
      }
      this.client.ping().then(
        () => {
          this.stall.observe(null);
          release();
        },
        (error: unknown) => {
          if (commandTimedOut(error)) probe();
          else release();
        },
      );
    };
    probe();
  }

  private async readOne(view: FeatureView, projection: RowProjection, key: string): Promise<FeatureRow | undefined> {
    let stored: string | null;
    try {
      stored = await this.command(this.client.get(key));
    } catch (error) {
      const classified = classifyRedisError(error, 'read');
      // A key of another type (a hash, a list) at the row's name: damaged, as a batch's MGET says.
      if (!classified.retriable && /WRONGTYPE/.test(classified.message)) return this.damaged(key);
      throw classified;
    }
    this.noteRowBytes(view, stored === null ? 0 : stored.length, 1);
    if (stored !== null) return this.served(view, key, this.decodeStored(projection, stored), Date.now());
    if (this.options.readV1 === false) return undefined;
    const rows: Array<Array<FeatureRow | undefined>> = [[undefined]];
    await this.readV1([{ view, projection, keys: [key] }], [{ request: 0, entity: 0 }], rows, 'read');
    return rows[0]![0];
  }

  async readBatch(
    requests: readonly RowRequest[],
    options: ReadBatchOptions = {},
  ): Promise<Array<Array<FeatureRow | undefined>>> {
    checkBatchSize(requests);
    const resolved = requests.map((r) => ({
      view: r.view,
      projection: checkedProjection(r.view, r.features),
      keys: r.entities.map((e) => rowKey(this.keyPrefix, r.view.name, e)),
    }));
    // Each distinct key is read once per call, the rows mapped back by index: a batch naming one
    // entity 1,000 times read its row 1,000 times (64 MB from Redis for one 64 KB row; found by a review).
    const seen = new Set<string>();
    const fresh = resolved.map((r) => {
      const keys: string[] = [];
      for (const key of r.keys) {
        if (seen.has(key)) continue;
        seen.add(key);
        keys.push(key);
      }
      return keys;
    });
    let entities = 0;
    let bytes = 0;
    resolved.forEach((r, i) => {
      const n = fresh[i]!.length;
      entities += n;
      if (n > 0) bytes += this.expectedBytes(r.view, n);
    });
    const release = await this.readGate.acquire(entities, bytes, options.signal);
    return this.holdingRoom(release, () => this.readResolved(resolved, fresh, options));
  }

  /** readBatch's reads of `fresh` (the distinct keys of each request), within the room the gate gave them. */
  private async readResolved(
    resolved: ReadonlyArray<{ view: FeatureView; projection: RowProjection; keys: string[] }>,
    fresh: ReadonlyArray<readonly string[]>,
    options: ReadBatchOptions,
  ): Promise<Array<Array<FeatureRow | undefined>>> {
    // A batch is read at once (one MGET per request, as before) when every view in it was sized
    // once and found to hold rows as this release writes them, and its rows fit the bounds by the
    // largest seen (twice that, within worstRowBytes) and, even at their worst, a few times
    // readBytesPerCall. Any other batch (a view not sized yet, one found with larger rows, long
    // rows) is sized first.
    const bound = Math.min(this.readBytesPerCall, options.maxRowBytes ?? Number.POSITIVE_INFINITY);
    let expected = 0;
    let worst = 0;
    let known = true;
    resolved.forEach((r, i) => {
      const n = fresh[i]!.length;
      if (n === 0) return;
      const learned = this.learned.get(r.view);
      if (learned === undefined || !learned.fits || learned.oversized) known = false;
      else {
        const w = worstRowBytes(r.view);
        worst += n * w;
        expected += n * Math.min(w, 2 * learned.largest);
      }
    });
    const sized = !known || expected > bound || worst > UNSIZED_WORST_FACTOR * this.readBytesPerCall;
    const keys = sized ? fresh.flat() : [];
    const stored = !sized
      ? await this.readStored(fresh)
      : this.entitiesPerCall === 1 || keys.length > READ_SCRIPT_MAX_KEYS
        ? await this.readStoredBounded(keys, options.maxRowBytes)
        : await this.readStoredScripted(keys, options.maxRowBytes);
    const now = Date.now();
    const rows: Array<Array<FeatureRow | undefined>> = [];
    const absent: Array<{ request: number; entity: number }> = [];
    /** Repeats of an entity within a request: filled from its first occurrence's row. */
    const repeats: Array<{ request: number; entity: number; first: number }> = [];
    /** Bytes of each distinct row read (UTF-8, as stored), and their total. */
    const sizes = new Map<string, number>();
    let total = 0;
    /** Bytes and distinct entities read per view (the gate's weights). */
    const readOfView = new Map<FeatureView, { bytes: number; entities: number }>();
    resolved.forEach((r, i) => {
      const firstOf = new Map<string, number>();
      const largest = worstRowBytes(r.view);
      let seen = 0;
      let viewBytes = 0;
      rows.push(
        r.keys.map((key, j) => {
          const first = firstOf.get(key);
          if (first !== undefined) {
            repeats.push({ request: i, entity: j, first });
            return undefined;
          }
          firstOf.set(key, j);
          const value = stored.get(key) ?? null;
          if (value !== null) {
            let bytes = sizes.get(key);
            if (bytes === undefined) {
              bytes = Buffer.byteLength(value);
              sizes.set(key, bytes);
              total += bytes;
              viewBytes += bytes;
            }
            if (bytes > seen) seen = bytes;
            return this.served(r.view, key, this.decodeStored(r.projection, value), now);
          }
          absent.push({ request: i, entity: j });
          return undefined;
        }),
      );
      this.learn(r.view, seen, largest, sized);
      const read = readOfView.get(r.view);
      if (read === undefined) readOfView.set(r.view, { bytes: viewBytes, entities: fresh[i]!.length });
      else {
        read.bytes += viewBytes;
        read.entities += fresh[i]!.length;
      }
    });
    for (const [view, read] of readOfView) this.noteRowBytes(view, read.bytes, read.entities);
    // Unsized, the rows were read before they could be counted (rows larger than any seen so far).
    if (!sized) checkRowBytes(total, options.maxRowBytes);
    if (absent.length > 0 && this.options.readV1 !== false) {
      // One more round trip: not for a caller gone meanwhile.
      throwIfReadAborted(options.signal);
      await this.readV1Bounded(resolved, absent, rows, this.readBytesPerCall, options.maxRowBytes, total);
    }
    // A copy of the row each (its features object too: a caller may change one row's features).
    for (const { request, entity, first } of repeats) {
      const row = rows[request]![first];
      rows[request]![entity] = row === undefined ? undefined : { ...row, features: { ...row.features } };
    }
    return rows;
  }

  /**
   * Records what a read found of `view`'s rows: `seen` the largest row read (0: none), `largest`
   * the view's worstRowBytes, `sized` whether the read sized them first. A sized read finding rows,
   * all within worstRowBytes, lets the view's later batches skip sizing; a row over it, never again.
   */
  private learn(view: FeatureView, seen: number, largest: number, sized: boolean): void {
    let learned = this.learned.get(view);
    if (learned === undefined) {
      if (seen === 0) return;
      learned = { largest: 0, fits: false, oversized: false };
      this.learned.set(view, learned);
    }
    if (seen > largest) learned.oversized = true;
    if (seen > learned.largest) learned.largest = seen;
    if (sized && seen > 0) learned.fits = true;
  }

  /**
   * The stored values of `fresh` (distinct keys per request): one pipeline of one MGET per request
   * (GETs when `entitiesPerCall` is 1), for batches whose rows fit the bounds at their largest.
   */
  private async readStored(fresh: ReadonlyArray<readonly string[]>): Promise<Map<string, string | null>> {
    const perKey = this.entitiesPerCall === 1;
    const pipeline = this.client.pipeline();
    for (const keys of fresh) {
      if (perKey) for (const key of keys) pipeline.get(key);
      else if (keys.length > 0) pipeline.mget(...keys);
    }
    const replies = await this.execPipeline(pipeline, 'batch read');
    const stored = new Map<string, string | null>();
    let k = 0;
    for (const keys of fresh) {
      const values = perKey
        ? keys.map(() => replies[k++] as string | null)
        : ((keys.length > 0 ? replies[k++] : []) as Array<string | null>);
      for (let j = 0; j < keys.length; j++) stored.set(keys[j]!, values[j] ?? null);
    }
    return stored;
  }

  /**
   * The stored values of `keys` (distinct, at most READ_SCRIPT_MAX_KEYS): one call of
   * FEATURE_READ_SCRIPT, which sizes them all, refuses them over `maxRowBytes` and reads the leading
   * ones within `readBytesPerCall`; the rest, if any, in sequential MGETs within it (readSized).
   */
  private async readStoredScripted(
    keys: readonly string[],
    maxRowBytes: number | undefined,
  ): Promise<Map<string, string | null>> {
    const stored = new Map<string, string | null>();
    if (keys.length === 0) return stored;
    const limit = maxRowBytes === undefined || !Number.isFinite(maxRowBytes) ? -1 : Math.max(0, maxRowBytes);
    const script = (this.client as unknown as Record<string, ScriptCall>)[READ_COMMAND]!.bind(this.client);
    let reply: ReadScriptReply;
    try {
      reply = await this.command(
        script(keys.length, ...keys, this.readBytesPerCall, limit) as Promise<ReadScriptReply>,
      );
    } catch (error) {
      throw classifyRedisError(error, 'batch read');
    }
    checkRowBytes(reply[0], limit < 0 ? undefined : limit);
    const [, read, rest, values] = reply as [number, number, number[], Array<string | null>];
    for (let j = 0; j < read; j++) stored.set(keys[j]!, values[j] ?? null);
    await this.readSized(keys, read, rest, stored);
    return stored;
  }

  /**
   * The stored values of `keys` (distinct), each read command answering at most `readBytesPerCall`
   * bytes: their lengths first (a pipeline of STRLEN; a key of another type, which MGET answers
   * nil, counts 0), the batch refused when they total more than `maxRowBytes`, then sequential
   * reads within the bound (readSized).
   */
  private async readStoredBounded(
    keys: readonly string[],
    maxRowBytes: number | undefined,
  ): Promise<Map<string, string | null>> {
    const stored = new Map<string, string | null>();
    if (keys.length === 0) return stored;
    const sizing = this.client.pipeline();
    for (const key of keys) sizing.strlen(key);
    const lengths = (await this.execResults(sizing, 'batch read')).map(([error, value]) => {
      if (error === null) return Number(value);
      const classified = classifyRedisError(error, 'batch read');
      if (!classified.retriable && /WRONGTYPE/.test(classified.message)) return 0;
      throw classified;
    });
    checkRowBytes(
      lengths.reduce((a, b) => a + b, 0),
      maxRowBytes,
    );
    await this.readSized(keys, 0, lengths, stored);
    return stored;
  }

  /**
   * Reads keys[from…] (of `lengths`, in order) into `stored` in sequential reads of consecutive
   * keys answering at most `readBytesPerCall` bytes, a longer row alone: MGETs, or pipelines of GETs
   * when `entitiesPerCall` is 1. A row written larger since it was sized only makes its read larger
   * than planned.
   */
  private async readSized(
    keys: readonly string[],
    from: number,
    lengths: readonly number[],
    stored: Map<string, string | null>,
  ): Promise<void> {
    const perKey = this.entitiesPerCall === 1;
    const maxBytes = this.readBytesPerCall;
    for (let i = 0; i < lengths.length; ) {
      let to = i + 1;
      let bytes = lengths[i]!;
      while (to < lengths.length && bytes + lengths[to]! <= maxBytes) bytes += lengths[to++]!;
      const group = keys.slice(from + i, from + to);
      let values: Array<string | null>;
      if (perKey) {
        const pipeline = this.client.pipeline();
        for (const key of group) pipeline.get(key);
        values = (await this.execPipeline(pipeline, 'batch read')) as Array<string | null>;
      } else {
        try {
          values = await this.command(this.client.mget(...group));
        } catch (error) {
          throw classifyRedisError(error, 'batch read');
        }
      }
      for (let j = 0; j < group.length; j++) stored.set(group[j]!, values[j] ?? null);
      i = to;
    }
  }

  /**
   * Fills the entities a read found absent from their layout-v1 hashes, if any is left (rows of
   * entities not written since the upgrade): one more round trip, only on a miss. The
   * rows are read again after the hashes, in the same pipeline: a write that migrates an entity
   * between the batch's MGET and this read deletes its hash, and the row it wrote is then found.
   * A v1 key holding anything but a hash is a damaged row, as at a v2 key (it failed the batch).
   */
  private async readV1(
    resolved: ReadonlyArray<{ view: FeatureView; projection: RowProjection; keys: readonly string[] }>,
    absent: ReadonlyArray<{ request: number; entity: number }>,
    rows: Array<Array<FeatureRow | undefined>>,
    action: string,
  ): Promise<void> {
    const pipeline = this.client.pipeline();
    // One key per script call on a cluster (the keys of a request live in different slots).
    const perKey = this.entitiesPerCall === 1;
    const groups = new Map<number, number[]>();
    for (const { request, entity } of absent) {
      const group = groups.get(request);
      if (group === undefined) groups.set(request, [entity]);
      else group.push(entity);
    }
    const read = (pipeline as unknown as Record<string, ScriptCall>)[V1_READ_COMMAND]!.bind(pipeline);
    for (const [request, entities] of groups) {
      const { projection, keys } = resolved[request]!;
      const v1Keys = entities.map((j) => v1RowKey(keys[j]!));
      const again = entities.map((j) => keys[j]!);
      if (perKey) {
        for (const key of v1Keys) read(1, key, ...projection.fields);
        for (const key of again) pipeline.get(key);
      } else {
        read(v1Keys.length, ...v1Keys, ...projection.fields);
        pipeline.mget(...again);
      }
    }
    const replies = await this.execPipeline(pipeline, action);
    const now = Date.now();
    let k = 0;
    for (const [request, entities] of groups) {
      const { view, projection, keys } = resolved[request]!;
      const old = (perKey ? entities.map(() => (replies[k++] as V1Reply[])[0]) : replies[k++]) as V1Reply[];
      const again = (perKey ? entities.map(() => replies[k++]) : replies[k++]) as Array<string | null>;
      entities.forEach((j, at) => {
        const stored = again[at];
        rows[request]![j] =
          stored !== null && stored !== undefined
            ? this.served(view, keys[j]!, this.decodeStored(projection, stored), now)
            : this.served(view, v1RowKey(keys[j]!), decodeV1(projection, old[at]), now);
      });
    }
  }

  /**
   * readV1 within `maxBytes` (`readBytesPerCall`): the absent entities' v1 hashes sized first
   * (FEATURE_V1_SIZE_SCRIPT: the bytes of their projected fields), their rows read again in the
   * same round trip after the sizes: an entity with no v1 hash (or another type) is settled there,
   * so a batch finding no hash costs one round trip, as readV1. The hashes found are counted with
   * the v2 rows read (`readBytes`) against `maxRowBytes` (refused before any is read), then read in
   * sequential round trips answering at most `maxBytes` of fields each, a larger hash alone, each
   * reading its entities' rows again after their hashes (as readV1: an entity a write migrates
   * meanwhile is found; such a row is read unplanned, as in readStoredBounded). Probes and reads
   * stop at V1_FIELDS_PER_CALL fields a round trip. Before, one call read every absent entity's
   * hash: 200 v1 rows of 8 × 64 KiB were one 105 MB reply, 320 past the 2 s read timeout on every
   * retry (a review); and this was used only when `readBytesPerCall` was given, `maxRowBytes` not
   * counting v1 rows (the feature API: 400 such rows were one 211 MB reply, another review).
   */
  private async readV1Bounded(
    resolved: ReadonlyArray<{ view: FeatureView; projection: RowProjection; keys: readonly string[] }>,
    absent: ReadonlyArray<{ request: number; entity: number }>,
    rows: Array<Array<FeatureRow | undefined>>,
    maxBytes: number,
    maxRowBytes: number | undefined,
    readBytes: number,
  ): Promise<void> {
    const action = 'batch read';
    // One key per script call on a cluster (the keys of a request live in different slots).
    const perKey = this.entitiesPerCall === 1;
    const keysOf = absent.map(({ request, entity }) => resolved[request]!.keys[entity]!);
    const fieldsOf = (i: number) => resolved[absent[i]!.request]!.projection.fields;
    const script = (pipeline: ReturnType<RedisClient['pipeline']>, name: string) =>
      (pipeline as unknown as Record<string, ScriptCall>)[name]!.bind(pipeline);
    const settle = (i: number, stored: string | null | undefined, old: V1Reply | undefined, now: number) => {
      const { request, entity } = absent[i]!;
      const { view, projection } = resolved[request]!;
      rows[request]![entity] =
        stored !== null && stored !== undefined
          ? this.served(view, keysOf[i]!, this.decodeStored(projection, stored), now)
          : this.served(view, v1RowKey(keysOf[i]!), decodeV1(projection, old), now);
    };
    /** Reads the layout-v2 rows of `items` again into the pipeline (after what it holds). */
    const again = (pipeline: ReturnType<RedisClient['pipeline']>, items: readonly number[]) => {
      for (const [a, b] of requestRuns(items, absent)) {
        if (perKey) for (let x = a; x < b; x++) pipeline.get(keysOf[items[x]!]!);
        else pipeline.mget(...items.slice(a, b).map((i) => keysOf[i]!));
      }
    };
    const takeAgain = (replies: unknown[], k: number, items: readonly number[]) => {
      const values: Array<string | null> = [];
      for (const [a, b] of requestRuns(items, absent)) {
        if (perKey) for (let x = a; x < b; x++) values.push(replies[k++] as string | null);
        else values.push(...(replies[k++] as Array<string | null>));
      }
      return { values, k };
    };

    // Sizes: -1 no key, -2 another type, else the bytes of the projected fields. The same round
    // trips read the rows again after the sizes: an entity with no v1 hash is settled there (an
    // entity a write migrated since the batch's read is found), so a batch finding no v1 hash
    // costs one round trip, as readV1.
    const sizes: number[] = new Array<number>(absent.length);
    const all = absent.map((_, i) => i);
    const probeFields = all.map((i) => fieldsOf(i).length);
    const pending: number[] = [];
    for (const [from, to] of boundedRanges(
      probeFields.map(() => 0),
      probeFields,
      maxBytes,
    )) {
      const items = all.slice(from, to);
      const pipeline = this.client.pipeline();
      const size = script(pipeline, V1_SIZE_COMMAND);
      for (const [a, b] of requestRuns(items, absent)) {
        const fields = fieldsOf(items[a]!);
        if (perKey) for (let x = a; x < b; x++) size(1, v1RowKey(keysOf[items[x]!]!), ...fields);
        else size(b - a, ...items.slice(a, b).map((i) => v1RowKey(keysOf[i]!)), ...fields);
      }
      again(pipeline, items);
      const replies = await this.execPipeline(pipeline, action);
      let k = 0;
      let x = 0;
      for (const [a, b] of requestRuns(items, absent)) {
        const counts = perKey
          ? items.slice(a, b).map(() => (replies[k++] as number[])[0]!)
          : (replies[k++] as number[]);
        for (const n of counts) sizes[items[x++]!] = Number(n);
      }
      const reread = takeAgain(replies, k, items);
      const now = Date.now();
      items.forEach((i, x) => {
        const stored = reread.values[x];
        if (sizes[i]! >= 0 && (stored === null || stored === undefined)) pending.push(i);
        else settle(i, stored, sizes[i] === -2 ? 0 : null, now);
      });
    }
    if (pending.length === 0) return;
    // Counted against maxRowBytes with the layout-v2 rows read, before any hash is read.
    checkRowBytes(readBytes + pending.reduce((sum, i) => sum + sizes[i]!, 0), maxRowBytes);

    const bytes = pending.map((i) => sizes[i]!);
    const fields = pending.map((i) => fieldsOf(i).length);
    for (const [from, to] of boundedRanges(bytes, fields, maxBytes)) {
      const items = pending.slice(from, to);
      const pipeline = this.client.pipeline();
      const read = script(pipeline, V1_READ_COMMAND);
      for (const [a, b] of requestRuns(items, absent)) {
        const fields = fieldsOf(items[a]!);
        if (perKey) for (let x = a; x < b; x++) read(1, v1RowKey(keysOf[items[x]!]!), ...fields);
        else read(b - a, ...items.slice(a, b).map((i) => v1RowKey(keysOf[i]!)), ...fields);
      }
      // The rows again, after the hashes.
      again(pipeline, items);
      const replies = await this.execPipeline(pipeline, action);
      const now = Date.now();
      const old: V1Reply[] = [];
      let k = 0;
      for (const [a, b] of requestRuns(items, absent)) {
        if (perKey) for (let x = a; x < b; x++) old.push((replies[k++] as V1Reply[])[0]!);
        else old.push(...(replies[k++] as V1Reply[]));
      }
      const reread = takeAgain(replies, k, items);
      items.forEach((i, x) => {
        settle(i, reread.values[x], old[x], now);
      });
    }
  }

  /** The connection is up and its commands are answered (false while they time out: see StallWatch). */
  ready(): boolean {
    return this.stall.ready();
  }

  async close(): Promise<void> {
    if (this.options.ownsClient === true) this.client.disconnect();
  }
}

/** Whether `error` (or what it wraps: classifyRedisError keeps it as its cause) is ioredis' command timeout. */
function commandTimedOut(error: unknown): boolean {
  let e: unknown = error;
  for (let depth = 0; depth < 4 && e instanceof Error; depth++) {
    if (e.message === COMMAND_TIMED_OUT) return true;
    e = e.cause;
  }
  return false;
}

/** One key's answer of FEATURE_V1_READ_SCRIPT: the hash's fields, null (no key), or 0 (another type). */
type V1Reply = Array<string | null> | null | number;

function decodeV1(projection: RowProjection, reply: V1Reply | undefined): DecodedRow {
  if (reply === null || reply === undefined) return undefined;
  return typeof reply === 'number' ? DAMAGED_ROW : decodeProjectedRow(projection, reply);
}

/**
 * An `onCorruptRow` that logs a warning naming the key, at most once per `everyMs` (with how many
 * such reads there were since the last line): a damaged key read by every request must not
 * flood the log.
 */
export function corruptRowReporter(
  logger: Logger,
  everyMs = 60_000,
  now: () => number = Date.now,
): (key: string) => void {
  let last = Number.NEGATIVE_INFINITY;
  let since = 0;
  return (key) => {
    since++;
    if (now() - last < everyMs) return;
    logger.warn(
      { key, reads: since },
      'online store: a key holds a value that is not a driftline row; its entity reads as absent (delete or rewrite the key)',
    );
    last = now();
    since = 0;
  };
}
