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
import { AVRO_PRIMITIVES, RegistryClient, type RegistryConfig } from './registry.js';

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
 * divisor to milliseconds.
 */
const TO_MILLIS: Readonly<Record<string, number>> = { 'timestamp-micros': 1_000 };
/**
 * Logical types of a wall-clock time in the producer's zone, with no zone: no instant. Read as
 * `timestamp-millis` they were shifted by the producer's UTC offset (found by a review), so a writer
 * that declares one on a field this reader reads as an instant is refused.
 */
const NOT_INSTANTS: ReadonlySet<string> = new Set(['local-timestamp-millis', 'local-timestamp-micros']);
/** The compatibility level driftline registers its subjects with (see RegistryClient.register). */
const COMPATIBILITY = 'FULL';

/** Encodes and decodes one topic's values; encode validates before anything is sent. */
export interface TopicCodec<T> {
  readonly topic: string;
  readonly subject: string;
  /**
   * Registers the reader schema under the topic's value subject (FULL compatibility; FORWARD,
   * FORWARD_TRANSITIVE and FULL_TRANSITIVE accepted as they are; NONE and BACKWARD(_TRANSITIVE) raised).
   */
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
  /**
   * The level the registry checks `subject`'s new schemas with (its own or the global one), or
   * undefined when the subject does not exist. Optional: without it inputs are not checked.
   */
  compatibilityOf?(subject: string): Promise<string | undefined>;
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
  /** Input subjects whose compatibility level was read (or is being read): one warning each at most. */
  private readonly inputsChecked = new Set<string>();
  /** The grace window for unknown ids just above the newest known: when it ends, and the newest known then. */
  private grace: { readonly until: number; readonly newest: number } | undefined;

  constructor(config: RegistryConfig | SchemaSource, options: CodecOptions = {}) {
    this.logger = options.logger ?? silentLogger;
    this.registry = 'schemaById' in config ? config : new RegistryClient(config, this.logger);
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
          // The cause in the reason: the dead letter carries only the message.
          return refuse(
            new PoisonRecordError(
              'DECODE_FAILED',
              `schema id ${id} is not a usable Avro schema: ${(error as Error).message}`,
              { cause: error, details: { schemaId: id } },
            ),
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

  /**
   * Warns, once per subject, when the value subject of `topic` (an input of a consumer) is checked
   * at NONE: the registry then takes any schema from a producer, one this consumer cannot read
   * included (every record it writes dead-lettered). Only a warning: the consumer changes no level
   * of a subject other clients write. A registry that does not answer is not warned about here (the
   * records' decoding will say).
   */
  async checkInput(topic: string): Promise<void> {
    const subject = valueSubject(topic);
    const read = this.registry.compatibilityOf?.bind(this.registry);
    if (read === undefined || this.inputsChecked.has(subject)) return;
    this.inputsChecked.add(subject);
    let level: string | undefined;
    try {
      level = await read(subject);
    } catch {
      this.inputsChecked.delete(subject);
      return;
    }
    if (level !== 'NONE') return;
    this.logger.warn(
      { subject, compatibility: level },
      `${subject}: the Schema Registry checks no new schema of this input (compatibility NONE): a producer can register one this consumer cannot read, every record it writes then dead-lettered; set FULL (or FORWARD) on the subject or as the registry's global level`,
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
  /** Whether avsc wraps a union of the reader (then a relaxed reader keeps avsc's choice, and its unions are not widened). */
  private readonly readerWraps: boolean;
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
    this.readerWraps = wrapsUnions(this.readerType);
  }

  register(): Promise<number> {
    this.registering ??= this.codec.registry.register(this.subject, JSON.stringify(this.schema), COMPATIBILITY).then(
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
   * back to the required level each minute. Resolves with the id to write: the cached one when the registry
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
    return found ?? (await this.codec.registry.register(this.subject, text, COMPATIBILITY));
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
      let writer: Writer;
      try {
        writer = await this.codec.writer(id);
      } catch (error) {
        // The registry's reasons (an unknown id, no usable schema) are the codec's, shared by its
        // topics: named here like every other reason of a record.
        if (!(error instanceof PoisonRecordError)) throw error;
        throw new PoisonRecordError('DECODE_FAILED', `${this.topic}: ${error.message}`, {
          cause: error,
          details: error.details,
        });
      }
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
        `${this.topic}: schema ${id} writes a symbol or union branch this reader does not know at ${invalid.join(', ')} (a newer producer: upgrade this consumer)`,
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
    const local = localTimestampField(writer.schema, this.schema);
    if (local !== undefined) {
      return new PoisonRecordError(
        'DECODE_FAILED',
        `${this.topic}: writer schema ${id} declares ${local.logicalType} on ${local.field}, not an instant (a wall-clock time in the producer's zone): this reader reads it as timestamp-millis, and would shift it by the producer's UTC offset`,
        { details: { schemaId: id } },
      );
    }
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
    // A writer with enum symbols or union branches this reader lacks (a newer producer's alert
    // kind, a union that gained a branch): read through a reader whose enums default to a symbol no
    // value may hold and whose unions also take the writer's extra branches, so only the records
    // that carry a new symbol or branch are poison (each value is checked against the reader), not
    // every record of the newer schema, as Avro Java resolves unions per record.
    try {
      const relaxed = this.readerWraps
        ? avro.Type.forSchema(withEnumDefaults(this.schema) as avro.Schema)
        : avro.Type.forSchema(withEnumDefaults(widenUnions(this.schema, writer.schema)) as avro.Schema, {
            wrapUnions: false,
          });
      return {
        check,
        type: relaxed,
        resolver: relaxed.createResolver(writer.type, resolveOptions()),
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

/** Whether an avsc type holds a wrapped union (avsc wraps one whose branches it cannot tell apart). */
function wrapsUnions(type: avro.Type, seen = new Set<avro.Type>()): boolean {
  if (seen.has(type)) return false;
  seen.add(type);
  const t = type as avro.Type & {
    typeName: string;
    fields?: Array<{ type: avro.Type }>;
    itemsType?: avro.Type;
    valuesType?: avro.Type;
    types?: avro.Type[];
  };
  if (t.typeName === 'union:wrapped') return true;
  const inner = [...(t.fields?.map((f) => f.type) ?? []), t.itemsType, t.valuesType, ...(t.types ?? [])];
  return inner.some((x) => x !== undefined && wrapsUnions(x, seen));
}

/** The kind of a schema (JSON) as resolution matches it: a primitive's name, `named:<unqualified name>`, `array`, `map`, `union`. */
function kindOf(schema: unknown): string {
  if (Array.isArray(schema)) return 'union';
  const node = typeof schema === 'string' ? { type: schema } : (schema as { type?: unknown; name?: unknown } | null);
  const type = node?.type;
  if (typeof type !== 'string') return kindOf(type);
  if (!UNNAMED.has(type)) {
    const name = typeof node?.name === 'string' ? node.name : type;
    return `named:${name.slice(name.lastIndexOf('.') + 1)}`;
  }
  return type;
}
/** The kinds of schema without a name. */
const UNNAMED: ReadonlySet<string> = new Set([...AVRO_PRIMITIVES, 'array', 'map']);
/** Writer kinds each reader kind reads (Avro's promotions). */
const READS: Readonly<Record<string, readonly string[]>> = {
  long: ['int'],
  float: ['int', 'long'],
  double: ['int', 'long', 'float'],
  string: ['bytes'],
  bytes: ['string'],
};
const reads = (reader: unknown, writer: unknown): boolean => {
  const r = kindOf(reader);
  const w = kindOf(writer);
  return r === w || (READS[r]?.includes(w) ?? false);
};

/**
 * A copy of the reader schema (JSON) whose unions also take the branches of the writer's unions
 * that no reader branch reads (appended, so defaults still match the first branch), and where the
 * reader has one type the writer has a union of it and more, that union. Records are matched field
 * by field (by name or alias), arrays by items, maps by values. A value decoded into an added
 * branch is invalid for the reader: the record is poison, the others of that writer decode.
 */
function widenUnions(reader: unknown, writer: unknown): unknown {
  if (Array.isArray(writer)) {
    const branches: unknown[] = Array.isArray(reader) ? [...reader] : [reader];
    for (const w of writer) {
      const at = branches.findIndex((r) => reads(r, w));
      if (at === -1) branches.push(w);
      else branches[at] = widenUnions(branches[at], w);
    }
    return !Array.isArray(reader) && branches.length === 1 ? branches[0] : branches;
  }
  if (Array.isArray(reader)) {
    const at = reader.findIndex((r) => reads(r, writer));
    return at === -1 ? reader : reader.map((r, i) => (i === at ? widenUnions(r, writer) : r));
  }
  if (reader === null || typeof reader !== 'object' || writer === null || typeof writer !== 'object') return reader;
  const r = reader as Record<string, unknown>;
  const w = writer as Record<string, unknown>;
  if (
    (r.type === 'record' || r.type === 'error') &&
    r.type === w.type &&
    Array.isArray(r.fields) &&
    Array.isArray(w.fields)
  ) {
    const writerFields = w.fields as Array<{ name?: unknown; type?: unknown }>;
    return {
      ...r,
      fields: (r.fields as Array<{ name?: unknown; aliases?: unknown; type?: unknown }>).map((f) => {
        const names = [f.name, ...(Array.isArray(f.aliases) ? f.aliases : [])];
        const match = writerFields.find((x) => names.includes(x.name));
        return match === undefined ? f : { ...f, type: widenUnions(f.type, match.type) };
      }),
    };
  }
  if (r.type === 'array' && w.type === 'array') return { ...r, items: widenUnions(r.items, w.items) };
  if (r.type === 'map' && w.type === 'map') return { ...r, values: widenUnions(r.values, w.values) };
  return reader;
}

/**
 * The first top-level field the reader reads as `timestamp-millis` whose writer declares a local
 * timestamp (no instant) on it.
 */
function localTimestampField(writer: unknown, reader: unknown): { field: string; logicalType: string } | undefined {
  for (const [r, w] of matchedFields(writer, reader)) {
    const unit = logicalOf(w.type);
    if (logicalOf(r.type) === 'timestamp-millis' && typeof unit === 'string' && NOT_INSTANTS.has(unit)) {
      return { field: String(r.name), logicalType: unit };
    }
  }
  return undefined;
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
  const out: Array<readonly [string, number]> = [];
  for (const [r, w] of matchedFields(writer, reader)) {
    if (typeof r.name !== 'string' || logicalOf(r.type) !== 'timestamp-millis') continue;
    const unit = logicalOf(w.type);
    const divisor = typeof unit === 'string' ? TO_MILLIS[unit] : undefined;
    if (divisor !== undefined) out.push([r.name, divisor]);
  }
  return out;
}

interface FieldSchema {
  readonly name?: unknown;
  readonly type?: unknown;
  readonly aliases?: unknown;
}

/** The top-level fields of the reader with the writer's field each reads (by name or alias). */
function matchedFields(writer: unknown, reader: unknown): Array<readonly [FieldSchema, FieldSchema]> {
  const fieldsOf = (schema: unknown): FieldSchema[] =>
    Array.isArray((schema as { fields?: unknown } | null)?.fields) ? (schema as { fields: FieldSchema[] }).fields : [];
  const out: Array<readonly [FieldSchema, FieldSchema]> = [];
  for (const r of fieldsOf(reader)) {
    const names = [r.name, ...(Array.isArray(r.aliases) ? r.aliases : [])];
    const w = fieldsOf(writer).find((f) => names.includes(f.name));
    if (w !== undefined) out.push([r, w]);
  }
  return out;
}

function logicalOf(type: unknown): unknown {
  return (type as { logicalType?: unknown } | null)?.logicalType;
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
