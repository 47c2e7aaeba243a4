import {
  cutText,
  DriftlineError,
  type KeyedLineLimit,
  keyedLineLimit,
  type Logger,
  PoisonRecordError,
  silentLogger,
  toDriftlineError,
} from '@driftline/core';
import { type Contract, valueSubject } from '@driftline/schemas';
import avro from 'avsc';
import { type AvroBoundsCheck, AvroBoundsError, compileBoundsCheck } from './bounds.js';
import { RegistryClient, type RegistryConfig } from './registry.js';

/** Confluent wire format: magic byte 0, a 4-byte big-endian schema id, then the Avro body. */
const MAGIC_BYTE = 0;
const HEADER_BYTES = 5;
/**
 * Encoded values are written one after another into slabs of this size and returned as views:
 * one allocation per slab instead of two per value (avsc's buffer, then the framed copy). A view
 * keeps its slab alive, as Node's own pooled Buffers do; a value larger than a slab gets its own.
 */
const SLAB_BYTES = 64 * 1024;

/** A writer schema: its avsc type, and its JSON (avsc drops the logical types it has no class for). */
interface Writer {
  readonly type: avro.Type;
  readonly schema: unknown;
  /** The schema as the registry answered it: a reading again compares it. */
  readonly text: string;
}

/** The largest schema id: registries number schemas with a Java int (Confluent answers a larger id with a bare 404). */
const MAX_SCHEMA_ID = 0x7fffffff;
/**
 * avsc matches named types by full name; Avro's Java reader (and so a Java producer's idea of
 * compatible) by unqualified name: a producer in its own namespace is read as the same record.
 * Fresh per call: avsc keeps its resolvers by type name in the options object it is given, and a
 * shared one handed a resolver of another reader back ("invalid resolver").
 */
const resolveOptions = () => ({ ignoreNamespaces: true });
/** The symbol a relaxed reader maps an enum symbol it does not know to (never a valid value). */
const UNKNOWN_SYMBOL = 'DRIFTLINE_UNKNOWN_SYMBOL';
/**
 * Time units a writer may declare on a field this reader reads as `timestamp-millis`, with the
 * divisor to milliseconds. Not `local-timestamp-micros`: a wall-clock time in the producer's zone is
 * no instant (left as is, the event-time bound refuses it with its µs hint).
 */
const TO_MILLIS: Readonly<Record<string, number>> = { 'timestamp-micros': 1_000 };

/** Encodes and decodes one topic's values; encode validates before anything is sent. */
export interface TopicCodec<T> {
  readonly topic: string;
  readonly subject: string;
  /** Registers the reader schema under the topic's value subject (BACKWARD compatibility). */
  register(): Promise<number>;
  /**
   * The schema id `encode` frames a value with now: registered on first use, then confirmed at most
   * every schemaIdRecheckMs by a look-up (behind the call on a busy topic; the first call after the
   * topic was idle that long waits up to SCHEMA_ID_RECHECK_WAIT_MS). For writers that frame values themselves.
   */
  schemaIdToWrite(): Promise<number>;
  encode(value: T): Promise<Buffer>;
  /** Decodes with the writer schema named in the message and resolves into this code's reader schema. */
  decode(buffer: Buffer | null): Promise<T>;
}

/**
 * The registry calls the codec makes: {@link RegistryClient} in production; a fixed set of schemas
 * where no registry runs (the decode path's property tests). An unknown id must reject with
 * PoisonRecordError `DECODE_FAILED`, as the client does for the registry's 404.
 */
/** How long a schema id the registry does not know is answered from memory. */
export const UNKNOWN_ID_TTL_MS = 60_000;
/** Unknown schema ids remembered at most (the oldest forgotten first). */
const UNKNOWN_IDS_KEPT = 10_000;
/**
 * How long unknown ids just above the newest one this codec knows are retried before they are
 * poison: a schema registered a moment ago that the registry node answering has not read yet (a
 * follower of a multi-node registry lags its leader). Ids are allocated in rising order. One
 * window for all such ids, not one per id: a batch of many distinct ids, reached one at a time
 * by the consumer's retries, had waited 30 s for each (20 ids: a partition held for days).
 */
export const NEW_ID_GRACE_MS = 30_000;
/**
 * After a grace window, the next one opens only this much later, or once a newer id becomes
 * known (a schema registered since): producers of ids that never resolve (another registry, a
 * hostile frame) hold a partition at most NEW_ID_GRACE_MS per NEW_ID_GRACE_GAP_MS.
 */
export const NEW_ID_GRACE_GAP_MS = 30 * 60_000;
/** How far above the newest known id an unknown one may be and still be taken for new (a random id is far beyond). */
export const NEW_ID_SPAN = 1_000;

/**
 * How often a producer confirms the schema id it frames values with, by looking its schema up
 * under the subject (registered again only when the registry no longer has it). On a busy topic the
 * look-up runs behind the encodes, which keep the cached id until it answers; the first encode
 * after the topic was idle this long waits for it, up to SCHEMA_ID_RECHECK_WAIT_MS: a subject
 * deleted since, or a registry that lost its schemas and numbered them anew, is found by the first
 * value of a rarely written topic, however late it comes.
 */
export const SCHEMA_ID_RECHECK_MS = 60_000;
/**
 * How long the first encode after an idle interval waits for its producer's id to be confirmed
 * before it frames with the cached one (an outage, a registry that does not answer); the look-up is
 * then cancelled, so it holds up neither later encodes nor the process's exit. A registration
 * already under way (the look-up found the schema gone) is not: it finishes and sets its subject's
 * level, and the encodes after it take its id.
 */
export const SCHEMA_ID_RECHECK_WAIT_MS = 2_000;
/**
 * A record that does not decode with the writer schema cached for its id has that id's schema read
 * again, at most once per this long per id (whatever the registry answered): after a registry
 * reset, an id may name another schema.
 */
const WRITER_REREAD_MS = 60_000;
/**
 * How long, from the start of a reading again, records wait for it before they are poison with
 * their own reason: a consumer does not need the registry to dead-letter a bad record (a re-read that
 * failed was retriable, and held the partition for the whole outage, 10 s per retry when hung).
 */
const WRITER_REREAD_WAIT_MS = 2_000;
/** After a re-read that failed for an outage, how soon the next failing record may read again. */
const WRITER_REREAD_AFTER_OUTAGE_MS = 1_000;

export interface SchemaSource {
  schemaById(id: number): Promise<string>;
  /** Never cancelled: a registration cut off after its POST left a new subject without its level. */
  register(subject: string, schema: string, compatibility: string): Promise<number>;
  /**
   * The id `schema` has under `subject`, or undefined when it is not registered there; changes
   * nothing (no version, no compatibility level). How a producer confirms its id.
   */
  lookup(subject: string, schema: string, stop?: AbortSignal): Promise<number | undefined>;
}

/** What a SchemaRegistryCodec is given besides its registry. */
export interface CodecOptions {
  /**
   * Where a producer's failed id confirmation (the registry's refusal or no answer) and a replaced
   * id are warned about; silent by default.
   */
  readonly logger?: Logger;
  /** How often a producer confirms its schema id (default SCHEMA_ID_RECHECK_MS, 1 ms to 1 day). */
  readonly schemaIdRecheckMs?: number;
}

/**
 * Avro codec over a Confluent-compatible Schema Registry. Registration and schema look-ups go
 * through RegistryClient (bounded, classified); compiled avsc types and their bounds checks are
 * cached per schema id so the hot path does no I/O.
 */
export class SchemaRegistryCodec {
  readonly registry: SchemaSource;
  readonly logger: Logger;
  /** How often a producer confirms its schema id. */
  readonly schemaIdRecheckMs: number;
  private readonly writers = new Map<number, Promise<Writer>>();
  /** Per schema id: its last reading again (at most one per WRITER_REREAD_MS), shared by the records that failed meanwhile. */
  private readonly rereads = new Map<number, Reread>();
  /**
   * Per subject: one warning of a failed confirmation per interval (from the start of the one
   * warned about), however many codecs write it. Not bounded: the subjects are those this
   * process's producers write (one per topic), not names from input.
   */
  private readonly recheckWarnings: KeyedLineLimit<string>;
  /**
   * Schema ids the registry said it does not know, remembered UNKNOWN_ID_TTL_MS (at most
   * UNKNOWN_IDS_KEPT): a partition of records naming one unknown id (70,000 fit in one fetch) cost a
   * registry round trip each — minutes for one batch, past the stall timeout, and a restart loop.
   */
  private readonly unknown = new Map<number, { error: unknown; until: number }>();
  /** The newest schema id this codec has read or registered (0: none yet). */
  private newestKnown = 0;
  /** The grace window for unknown ids just above the newest known: when it ends, and the newest known then. */
  private grace: { readonly until: number; readonly newest: number } | undefined;

  constructor(config: RegistryConfig | SchemaSource, options: CodecOptions = {}) {
    this.registry = 'schemaById' in config ? config : new RegistryClient(config);
    this.logger = options.logger ?? silentLogger;
    const recheckMs = options.schemaIdRecheckMs ?? SCHEMA_ID_RECHECK_MS;
    if (!Number.isInteger(recheckMs) || recheckMs < 1 || recheckMs > 86_400_000) {
      throw new DriftlineError(
        'CONFIG_INVALID',
        `schemaIdRecheckMs must be a whole number of ms from 1 to 86400000, got ${String(recheckMs)}`,
      );
    }
    this.schemaIdRecheckMs = recheckMs;
    this.recheckWarnings = keyedLineLimit({ intervalMs: recheckMs, maxKeys: Number.POSITIVE_INFINITY });
  }

  forTopic<T>(contract: Contract<T>, topic: string = contract.defaultTopic): TopicCodec<T> {
    return new AvroTopicCodec<T>(this, contract.schema, topic);
  }

  /** Codec for an explicit schema (used for evolution tests and tools). */
  forSchema<T>(schema: object, topic: string): TopicCodec<T> {
    return new AvroTopicCodec<T>(this, schema, topic);
  }

  writer(id: number): Promise<Writer> {
    const refused = this.unknown.get(id);
    if (refused !== undefined) {
      if (Date.now() < refused.until) return Promise.reject(refused.error);
      this.unknown.delete(id);
    }
    let writer = this.writers.get(id);
    if (writer === undefined) {
      writer = this.read(id, false);
      this.writers.set(id, writer);
    }
    return writer;
  }

  /**
   * The schema of `id` read again, after a record failed to decode with the one cached for it: a
   * registry that lost its schemas and numbered them anew gives the id another schema, and a
   * consumer that kept the old one dead-lettered every new record until it restarted. At most once
   * per WRITER_REREAD_MS per id when the registry answered (within that, the last reading is
   * answered); a reading that failed for an outage may be tried again a second after it failed.
   * Undefined when the registry gave no usable answer within WRITER_REREAD_WAIT_MS of the reading's
   * start (an outage, no answer: later records do not wait for it either) or no longer knows the id.
   */
  async reread(id: number): Promise<Writer | undefined> {
    const now = Date.now();
    let last = this.rereads.get(id);
    // After an outage (not an answer), the next failing record may read again a second later:
    // kept for the minute, one refused request dead-lettered every record of a renumbered id.
    const afterOutage = last?.outageAt !== undefined && now - last.outageAt >= WRITER_REREAD_AFTER_OUTAGE_MS;
    if (last === undefined || now - last.at >= WRITER_REREAD_MS || afterOutage) {
      const reread: Reread = { at: now, fresh: undefined, done: false, answered: Promise.resolve() };
      reread.answered = this.read(id, true).then(
        (fresh) => {
          this.writers.set(id, Promise.resolve(fresh));
          reread.fresh = fresh;
          reread.done = true;
        },
        (error: unknown) => {
          reread.done = true;
          if (!(error instanceof PoisonRecordError)) reread.outageAt = Date.now();
        },
      );
      this.rereads.delete(id);
      this.rereads.set(id, reread);
      if (this.rereads.size > UNKNOWN_IDS_KEPT) this.rereads.delete(this.rereads.keys().next().value as number);
      last = reread;
    }
    const left = last.at + WRITER_REREAD_WAIT_MS - now;
    if (last.done || left <= 0) return last.fresh;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      last.answered,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, left);
      }),
    ]);
    clearTimeout(timer);
    return last.fresh;
  }

  /**
   * Reads the writer schema of `id` from the registry (`again`: to replace the one cached). An
   * answer that is no usable Avro schema (an empty or broken text from the registry or a proxy in
   * front of it) is poison like an unknown id, remembered UNKNOWN_ID_TTL_MS: parsed in the success
   * handler, its error never reached the eviction, and the rejected reading stayed cached, every
   * record of the id dead-lettered until a restart (found by a review). A reading again that gets
   * one keeps the schema it had.
   */
  private read(id: number, again: boolean): Promise<Writer> {
    const refuse = (error: PoisonRecordError): never => {
      if (again) throw error;
      this.writers.delete(id);
      this.unknown.set(id, { error, until: Date.now() + UNKNOWN_ID_TTL_MS });
      if (this.unknown.size > UNKNOWN_IDS_KEPT) this.unknown.delete(this.unknown.keys().next().value as number);
      throw error;
    };
    return this.registry.schemaById(id).then(
      (text) => {
        this.known(id);
        try {
          const schema: unknown = JSON.parse(text);
          return { type: avro.Type.forSchema(schema as avro.Schema), schema, text };
        } catch (error) {
          return refuse(
            new PoisonRecordError('DECODE_FAILED', `schema id ${id} is not a usable Avro schema`, { cause: error }),
          );
        }
      },
      (error: unknown) => {
        // An outage is not cached: the next record asks again (a reading again keeps the schema it
        // had). An unknown id is, for a while (an id registered since is found once that passes).
        if (!again || error instanceof PoisonRecordError) this.writers.delete(id);
        if (error instanceof PoisonRecordError) {
          const waiting = this.stillNew(id);
          if (waiting !== undefined) throw waiting;
          this.unknown.set(id, { error, until: Date.now() + UNKNOWN_ID_TTL_MS });
          if (this.unknown.size > UNKNOWN_IDS_KEPT) this.unknown.delete(this.unknown.keys().next().value as number);
        }
        throw error;
      },
    );
  }

  /** Notes an id the registry knows (read or registered). */
  known(id: number): void {
    if (id > this.newestKnown) this.newestKnown = id;
  }

  /**
   * Warns that the confirmation of `subject`'s id that started at `startedAt` failed: once per
   * interval per subject, however many topic codecs write it. Says whether the registry refused
   * (an answer: a level made weaker, a conflict, credentials) or did not answer (an outage).
   */
  recheckFailed(subject: string, schemaId: number, startedAt: number, error: unknown): void {
    if (this.recheckWarnings.admit(subject, startedAt) === undefined) return;
    const e = toDriftlineError(error);
    const status = e.details.status;
    const refused = !e.retriable || (typeof status === 'number' && status < 500 && status !== 408 && status !== 429);
    this.logger.warn(
      { subject, schemaId, code: e.code, ...(typeof status === 'number' ? { status } : {}), reason: e.message },
      `${subject}: could not confirm schema id ${schemaId}: ${refused ? 'the Schema Registry refused' : 'no answer from the Schema Registry'} (${e.message}); values are still framed with it, and it is confirmed again in ${Math.round(this.schemaIdRecheckMs / 1000)} s`,
    );
  }

  /**
   * A retriable error while an unknown `id` may be a schema registered a moment ago (just above
   * the newest known id, unknown for less than NEW_ID_GRACE_MS); undefined once it is poison.
   */
  private stillNew(id: number): DriftlineError | undefined {
    if (this.newestKnown === 0 || id <= this.newestKnown || id > this.newestKnown + NEW_ID_SPAN) return undefined;
    const now = Date.now();
    const g = this.grace;
    const open = g === undefined || now >= g.until + NEW_ID_GRACE_GAP_MS || this.newestKnown > g.newest;
    if (open && (g === undefined || now >= g.until)) {
      this.grace = { until: now + NEW_ID_GRACE_MS, newest: this.newestKnown };
    }
    if (this.grace === undefined || now >= this.grace.until) return undefined;
    return new DriftlineError(
      'SOURCE_UNAVAILABLE',
      `schema id ${id} is unknown to the registry yet, just above the newest known (${this.newestKnown}): a schema registered a moment ago? retried for up to ${NEW_ID_GRACE_MS / 1000} s before it is poison`,
      { retriable: true },
    );
  }
}

/** A reading again of an id's schema: when it started, and what it found (undefined: nothing usable, or not yet). */
interface Reread {
  readonly at: number;
  answered: Promise<void>;
  fresh: Writer | undefined;
  done: boolean;
  /** When it failed for an outage (no answer, a retriable error): another may start 1 s after. */
  outageAt?: number;
}

/**
 * How values of one writer schema are read: the bounds check of its bytes (longs beyond ±2^53
 * refused only where this reader reads them), the type that decodes and the resolver into it
 * (null: the reader's own schema), whether values must be checked for enum symbols this reader
 * does not know (read through a relaxed reader), and top-level fields whose writer declares
 * another time unit than the reader's milliseconds.
 */
interface Reading {
  readonly check: AvroBoundsCheck;
  readonly type: avro.Type;
  readonly resolver: avro.Resolver | null;
  readonly relaxed: boolean;
  readonly rescale: ReadonlyArray<readonly [field: string, divisor: number]>;
}

/** A writer schema of an id, and how its values are read or why they cannot be. */
interface ReadingOf {
  readonly writer: Writer;
  readonly reading: Reading | PoisonRecordError;
}

class AvroTopicCodec<T> implements TopicCodec<T> {
  readonly subject: string;
  private readonly readerType: avro.Type;
  /** The reader with a default on each enum, built on first need (a newer writer's extra symbols). */
  private relaxedReader: avro.Type | undefined;
  /**
   * Per writer schema id: the schema it was read with, and how its values are read or why they
   * cannot be (the same for every record, until the schema is read again).
   */
  private readonly readings = new Map<number, ReadingOf>();
  /**
   * Per writer schema id: how its values would be read with the schema the registry answers now,
   * when that is another one; adopted into `readings` only by a record that decodes with it.
   */
  private readonly candidates = new Map<number, ReadingOf>();
  /** The id values are framed with, once registered; confirmed every schemaIdRecheckMs. */
  private schemaId: number | undefined;
  /** When the id was last confirmed, or a confirmation last started (an outage waits a whole interval too). */
  private checkedAt = 0;
  /** When a value was last framed (or the id registered): a topic idle for an interval waits for its confirmation. */
  private lastFramedAt = 0;
  /**
   * The registration under way, shared: a cold start's concurrent encodes each registered on their
   * own (up to a dozen calls each, every one waiting out the timeout in an outage).
   */
  private registering: Promise<number> | undefined;
  /**
   * The confirmation the first encode after an idle interval waits for: encodes meanwhile wait for
   * it too (bounded), and go on in order.
   */
  private confirming: Promise<number> | undefined;
  private slab = Buffer.allocUnsafe(0);
  private slabPos = 0;

  constructor(
    private readonly codec: SchemaRegistryCodec,
    private readonly schema: object,
    readonly topic: string,
  ) {
    this.subject = valueSubject(topic);
    this.readerType = avro.Type.forSchema(schema as avro.Schema);
  }

  register(): Promise<number> {
    this.registering ??= this.codec.registry.register(this.subject, JSON.stringify(this.schema), 'BACKWARD').then(
      (id) => {
        this.registering = undefined;
        this.codec.known(id);
        this.schemaId = id;
        this.checkedAt = Date.now();
        this.lastFramedAt = this.checkedAt;
        return id;
      },
      (error: unknown) => {
        this.registering = undefined;
        throw error;
      },
    );
    return this.registering;
  }

  schemaIdToWrite(): Promise<number> {
    const id = this.idToWrite();
    return typeof id === 'number' ? Promise.resolve(id) : id;
  }

  /**
   * The id to frame a value with: registered on first use; afterwards the cached id, confirmed at
   * most every schemaIdRecheckMs. On a busy topic (a value framed within the interval) the
   * confirmation runs behind the encode that finds it due, and the encodes after it take the new id
   * once it lands; after an idle interval that encode (and those that come meanwhile) waits for it,
   * up to SCHEMA_ID_RECHECK_WAIT_MS. It was cached for the process's life, then confirmed in the
   * background: a topic written once in hours (models.v1, retrain) still framed its next value with
   * the lost id, however late that came. Then every due encode waited: a hung registry stalled a
   * busy producer 2 s a minute (the model server's log: requests waited, some refused with 503).
   */
  private idToWrite(): number | Promise<number> {
    const id = this.schemaId;
    if (id === undefined) return this.register();
    const now = Date.now();
    const idle = now - this.lastFramedAt >= this.codec.schemaIdRecheckMs;
    this.lastFramedAt = now;
    if (this.confirming !== undefined) return this.confirming;
    if (this.registering !== undefined || now - this.checkedAt < this.codec.schemaIdRecheckMs) return id;
    this.checkedAt = now;
    const confirming = this.confirm(id, now);
    if (!idle) return id;
    this.confirming = confirming;
    const done = () => {
      if (this.confirming === confirming) this.confirming = undefined;
    };
    confirming.then(done, done);
    return confirming;
  }

  /**
   * Looks the schema up under the subject; registers it only when the registry no longer has it. It
   * re-registered every time: that set a subject an operator had put at NONE (a migration step)
   * back to BACKWARD each minute. Resolves with the id to write: the cached one when the registry
   * refuses or has not answered within SCHEMA_ID_RECHECK_WAIT_MS. Then a look-up still waiting is
   * cancelled (one left waiting held the process's exit up to the registry timeout); a registration
   * under way is not (cut off, a registration the registry had made left the new subject without its
   * level, and the look-ups after it found the schema, so nothing set it): it finishes, sets the
   * level, and its id is taken by the encodes after it.
   */
  private async confirm(id: number, startedAt: number): Promise<number> {
    const stop = new AbortController();
    const checked = this.lookUpOrRegister(stop.signal).then(
      (found) => {
        this.adopt(id, found);
        return found;
      },
      (error: unknown) => {
        this.codec.recheckFailed(this.subject, id, startedAt, error);
        return this.schemaId ?? id;
      },
    );
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), SCHEMA_ID_RECHECK_WAIT_MS);
    });
    const found = await Promise.race([checked, gaveUp]);
    clearTimeout(timer);
    if (found !== undefined) return found;
    stop.abort();
    this.codec.recheckFailed(
      this.subject,
      id,
      startedAt,
      new DriftlineError('TIMEOUT', `no answer within ${SCHEMA_ID_RECHECK_WAIT_MS} ms`, { retriable: true }),
    );
    return this.schemaId ?? id;
  }

  /** Takes the id a confirmation found; warns when it is another (values framed since the loss are dead letters). */
  private adopt(id: number, found: number): void {
    this.codec.known(found);
    if (found !== id) {
      this.codec.logger.warn(
        { subject: this.subject, previousSchemaId: id, schemaId: found },
        `${this.subject}: the Schema Registry no longer has schema id ${id} for this schema (subject deleted, or the registry lost its schemas); values are framed with ${found} from now on, those framed since the loss name ${id} (dead letters)`,
      );
    }
    this.schemaId = found;
  }

  /** The look-up takes `stop`; the registration, which only follows an answer, never does. */
  private async lookUpOrRegister(stop: AbortSignal): Promise<number> {
    const text = JSON.stringify(this.schema);
    const found = await this.codec.registry.lookup(this.subject, text, stop);
    return found ?? (await this.codec.registry.register(this.subject, text, 'BACKWARD'));
  }

  async encode(value: T): Promise<Buffer> {
    // The hot path checks without a hook (no closure per value); only an invalid value is walked
    // again to name its paths.
    if (!this.readerType.isValid(value)) {
      const invalid: string[] = [];
      this.readerType.isValid(value, {
        errorHook: (path, v) => invalid.push(`${path.join('.') || '(root)'}=${shownValue(v)}`),
      });
      throw new DriftlineError(
        'VALIDATION_FAILED',
        `${this.subject}: value does not match schema at ${invalid.join(', ')}`,
        {
          details: { paths: invalid },
        },
      );
    }
    const known = this.idToWrite();
    return this.frame(typeof known === 'number' ? known : await known, value);
  }

  /** Writes the Confluent frame of a valid value into the slab; returns its view. */
  private frame(id: number, value: T): Buffer {
    const start = this.slabPos;
    const end = this.readerType.encode(value, this.slab, start + HEADER_BYTES);
    if (end < 0 || start + HEADER_BYTES > this.slab.length) {
      // avsc answers a negative count of the bytes missing: a fresh slab, large enough.
      const needed = HEADER_BYTES + (this.slab.length - start - HEADER_BYTES) - Math.min(end, 0);
      this.slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, needed));
      this.slabPos = 0;
      return this.frame(id, value);
    }
    this.slab.writeUInt8(MAGIC_BYTE, start);
    this.slab.writeUInt32BE(id, start + 1);
    this.slabPos = end;
    return this.slab.subarray(start, end);
  }

  async decode(buffer: Buffer | null): Promise<T> {
    if (buffer === null || buffer.length < HEADER_BYTES) {
      throw new PoisonRecordError(
        'DECODE_FAILED',
        `${this.topic}: value is ${buffer === null ? 'null' : 'too short'} for the Confluent wire format`,
      );
    }
    if (buffer.readUInt8(0) !== MAGIC_BYTE) {
      throw new PoisonRecordError(
        'DECODE_FAILED',
        `${this.topic}: magic byte ${buffer.readUInt8(0)} is not the Confluent wire format`,
      );
    }
    const id = buffer.readUInt32BE(1);
    if (id > MAX_SCHEMA_ID) {
      // Confluent's registry answers such an id with a 404 lacking its "not found" code, which reads
      // as a wrong URL (retriable): one hostile record held its partition for ever.
      throw new PoisonRecordError('DECODE_FAILED', `${this.topic}: schema id ${id} is beyond any registry's ids`);
    }
    let cached = this.readings.get(id);
    if (cached === undefined) {
      const writer = await this.codec.writer(id);
      cached = { writer, reading: this.readingOf(id, writer) };
      this.readings.set(id, cached);
    }
    try {
      return this.decodeBody(id, cached.reading, buffer);
    } catch (refusal) {
      return this.decodeAgain(id, cached.writer, buffer, refusal);
    }
  }

  /**
   * A record that does not decode with the schema cached for its id (the bytes or the writer do not
   * fit): a registry that lost its schemas and numbered them anew gave the id to another schema, so
   * the id is read again (once a minute at most) before the record is called poison. The new schema
   * replaces the cached one only when this record decodes with it: one bad record (cut off, hostile,
   * a newer producer's enum symbol) had switched the reading, and the records still written with the
   * old schema behind it were dead-lettered with a reason naming the wrong cause. Otherwise, and when
   * the registry does not answer in time or no longer knows the id, the record is poison with its
   * own reason, as it was before re-reads, and the cached schema stays.
   */
  private async decodeAgain(id: number, cached: Writer, buffer: Buffer, refusal: unknown): Promise<T> {
    const fresh = await this.codec.reread(id);
    if (fresh === undefined || fresh.text === cached.text) throw refusal;
    let candidate = this.candidates.get(id);
    if (candidate?.writer !== fresh) {
      candidate = { writer: fresh, reading: this.readingOf(id, fresh) };
      this.candidates.set(id, candidate);
    }
    let value: T;
    try {
      value = this.decodeBody(id, candidate.reading, buffer);
    } catch {
      throw refusal;
    }
    this.readings.set(id, candidate);
    this.candidates.delete(id);
    return value;
  }

  /** Decodes the body of a frame of writer `id`; every failure is a PoisonRecordError. */
  private decodeBody(id: number, reading: Reading | PoisonRecordError, buffer: Buffer): T {
    if (reading instanceof PoisonRecordError) throw reading;
    const body = buffer.subarray(HEADER_BYTES);
    let value: T;
    try {
      // Bounds first: avsc trusts block counts and lengths, and loops or allocates on a hostile one.
      reading.check(body);
      value = (
        reading.resolver === null ? reading.type.fromBuffer(body) : reading.type.fromBuffer(body, reading.resolver)
      ) as T;
    } catch (error) {
      const reason = error instanceof AvroBoundsError ? error.describe() : (error as Error).message;
      throw new PoisonRecordError(
        'DECODE_FAILED',
        `${this.topic}: Avro body does not decode with schema ${id}: ${reason}`,
        {
          cause: error,
          details: { schemaId: id },
        },
      );
    }
    if (reading.relaxed && !this.readerType.isValid(value)) {
      const invalid: string[] = [];
      this.readerType.isValid(value, { errorHook: (path) => invalid.push(path.join('.') || '(root)') });
      throw new PoisonRecordError(
        'DECODE_FAILED',
        `${this.topic}: schema ${id} writes a symbol this reader does not know at ${invalid.join(', ')} (a newer producer: upgrade this consumer)`,
        { details: { schemaId: id } },
      );
    }
    const record = value as Record<string, unknown>;
    for (const [field, divisor] of reading.rescale) {
      const v = record[field];
      if (typeof v === 'number') record[field] = Math.floor(v / divisor);
    }
    return value;
  }

  /** How values of writer `id` are read into this reader, or the poison every such record is. */
  private readingOf(id: number, writer: Writer): Reading | PoisonRecordError {
    const check = compileBoundsCheck(writer.type, this.readerType);
    const rescale = rescaledFields(writer.schema, this.schema);
    if (writer.type.equals(this.readerType))
      return { check, type: this.readerType, resolver: null, relaxed: false, rescale };
    let refusal: unknown;
    try {
      return {
        check,
        type: this.readerType,
        resolver: this.readerType.createResolver(writer.type, resolveOptions()),
        relaxed: false,
        rescale,
      };
    } catch (error) {
      refusal = error;
    }
    // A writer with enum symbols this reader lacks (a newer producer's alert kind): read through a
    // reader whose enums default to a symbol no value may hold, so only records that carry a new
    // symbol are poison, not every record of the newer schema.
    try {
      this.relaxedReader ??= avro.Type.forSchema(withEnumDefaults(this.schema) as avro.Schema);
      return {
        check,
        type: this.relaxedReader,
        resolver: this.relaxedReader.createResolver(writer.type, resolveOptions()),
        relaxed: true,
        rescale,
      };
    } catch {
      return new PoisonRecordError(
        'DECODE_FAILED',
        `${this.topic}: writer schema ${id} cannot be read as ${this.subject}: ${(refusal as Error).message}`,
        { cause: refusal, details: { schemaId: id } },
      );
    }
  }
}

/** A copy of a schema (JSON) whose enums without a default get UNKNOWN_SYMBOL as one. */
function withEnumDefaults(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(withEnumDefaults);
  if (schema === null || typeof schema !== 'object') return schema;
  const node = schema as Record<string, unknown>;
  const copy: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) copy[k] = k === 'default' ? v : withEnumDefaults(v);
  if (node.type === 'enum' && node.default === undefined && Array.isArray(node.symbols)) {
    copy.symbols = [...(node.symbols as string[]), UNKNOWN_SYMBOL];
    copy.default = UNKNOWN_SYMBOL;
  }
  return copy;
}

/**
 * Top-level fields the reader reads as `timestamp-millis` whose writer declares another unit
 * (a Java producer's `timestamp-micros`): avsc compares schemas without logical types and read
 * microseconds as milliseconds — event times 1000× in the future, every record dead-lettered.
 */
function rescaledFields(writer: unknown, reader: unknown): Array<readonly [string, number]> {
  const fieldsOf = (schema: unknown) =>
    Array.isArray((schema as { fields?: unknown } | null)?.fields)
      ? (schema as { fields: Array<{ name?: unknown; type?: unknown; aliases?: unknown }> }).fields
      : [];
  const logicalOf = (type: unknown) => (type as { logicalType?: unknown } | null)?.logicalType;
  const out: Array<readonly [string, number]> = [];
  for (const r of fieldsOf(reader)) {
    if (typeof r.name !== 'string' || logicalOf(r.type) !== 'timestamp-millis') continue;
    const names = [r.name, ...(Array.isArray(r.aliases) ? r.aliases : [])];
    const w = fieldsOf(writer).find((f) => names.includes(f.name));
    const unit = logicalOf(w?.type);
    const divisor = typeof unit === 'string' ? TO_MILLIS[unit] : undefined;
    if (divisor !== undefined) out.push([r.name, divisor]);
  }
  return out;
}

/** Most characters of an invalid value an error message shows. */
const SHOWN_VALUE_CHARS = 100;

/**
 * An invalid value as an error shows it: JSON, cut to SHOWN_VALUE_CHARS. A BigInt (an int64 from a
 * database driver) or a circular object made JSON.stringify throw a bare TypeError instead of the
 * VALIDATION_FAILED naming the field; and a huge value made the message as large.
 */
function shownValue(v: unknown): string {
  let text: string;
  try {
    text =
      typeof v === 'bigint'
        ? `${v}n`
        : (JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x)) ?? String(v));
  } catch {
    text = `[unserializable ${Object.prototype.toString.call(v)}]`;
  }
  return text.length > SHOWN_VALUE_CHARS ? `${cutText(text, SHOWN_VALUE_CHARS)}…` : text;
}
