import { cutText, DriftlineError, PoisonRecordError } from '@driftline/core';
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

/** A writer schema as the hot path needs it: the avsc type and the bounds check of its bytes. */
interface Writer {
  readonly type: avro.Type;
  readonly check: AvroBoundsCheck;
}

/** Encodes and decodes one topic's values; encode validates before anything is sent. */
export interface TopicCodec<T> {
  readonly topic: string;
  readonly subject: string;
  /** Registers the reader schema under the topic's value subject (BACKWARD compatibility). */
  register(): Promise<number>;
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

export interface SchemaSource {
  schemaById(id: number): Promise<string>;
  register(subject: string, schema: string, compatibility: string): Promise<number>;
}

/**
 * Avro codec over a Confluent-compatible Schema Registry. Registration and schema look-ups go
 * through RegistryClient (bounded, classified); compiled avsc types and their bounds checks are
 * cached per schema id so the hot path does no I/O.
 */
export class SchemaRegistryCodec {
  readonly registry: SchemaSource;
  private readonly writers = new Map<number, Promise<Writer>>();
  /**
   * Schema ids the registry said it does not know, remembered UNKNOWN_ID_TTL_MS (at most
   * UNKNOWN_IDS_KEPT): a partition of records naming one unknown id (70,000 fit in one fetch) cost a
   * registry round trip each — minutes for one batch, past the stall timeout, and a restart loop.
   */
  private readonly unknown = new Map<number, { error: unknown; until: number }>();

  constructor(config: RegistryConfig | SchemaSource) {
    this.registry = 'schemaById' in config ? config : new RegistryClient(config);
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
      writer = this.registry.schemaById(id).then(
        (text) => {
          try {
            const type = avro.Type.forSchema(JSON.parse(text) as avro.Schema);
            return { type, check: compileBoundsCheck(type) };
          } catch (error) {
            throw new PoisonRecordError('DECODE_FAILED', `schema id ${id} is not a usable Avro schema`, {
              cause: error,
            });
          }
        },
        (error: unknown) => {
          // An outage is not cached: the next record asks again. An unknown id is, for a while (an
          // id registered since is found once that passes).
          this.writers.delete(id);
          if (error instanceof PoisonRecordError) {
            this.unknown.set(id, { error, until: Date.now() + UNKNOWN_ID_TTL_MS });
            if (this.unknown.size > UNKNOWN_IDS_KEPT) this.unknown.delete(this.unknown.keys().next().value as number);
          }
          throw error;
        },
      );
      this.writers.set(id, writer);
    }
    return writer;
  }
}

class AvroTopicCodec<T> implements TopicCodec<T> {
  readonly subject: string;
  private readonly readerType: avro.Type;
  /** Per writer schema id: the bounds check of its bytes and the resolver into the reader (null: same schema). */
  private readonly readings = new Map<number, { check: AvroBoundsCheck; resolver: avro.Resolver | null }>();
  private schemaId: number | undefined;
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

  async register(): Promise<number> {
    const id = await this.codec.registry.register(this.subject, JSON.stringify(this.schema), 'BACKWARD');
    this.schemaId = id;
    return id;
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
    const id = this.schemaId ?? (await this.register());
    return this.frame(id, value);
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
    let reading = this.readings.get(id);
    if (reading === undefined) {
      const writer = await this.codec.writer(id);
      try {
        reading = {
          check: writer.check,
          resolver: writer.type.equals(this.readerType) ? null : this.readerType.createResolver(writer.type),
        };
      } catch (error) {
        throw new PoisonRecordError(
          'DECODE_FAILED',
          `${this.topic}: writer schema ${id} cannot be read as ${this.subject}`,
          {
            cause: error,
          },
        );
      }
      this.readings.set(id, reading);
    }
    const body = buffer.subarray(HEADER_BYTES);
    try {
      // Bounds first: avsc trusts block counts and lengths, and loops or allocates on a hostile one.
      reading.check(body);
      return (
        reading.resolver === null
          ? this.readerType.fromBuffer(body)
          : this.readerType.fromBuffer(body, reading.resolver)
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
  }
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
