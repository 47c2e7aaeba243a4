import { DriftlineError, PoisonRecordError } from '@driftline/core';
import { type Contract, valueSubject } from '@driftline/schemas';
import { COMPATIBILITY, SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import avro from 'avsc';

/** Confluent wire format: magic byte 0, a 4-byte big-endian schema id, then the Avro body. */
const MAGIC_BYTE = 0;
const HEADER_BYTES = 5;

export interface RegistryConfig {
  /** Base URL of the Confluent-compatible API (for Apicurio: `http://host:port/apis/ccompat/v7`). */
  readonly url: string;
  readonly username?: string;
  readonly password?: string;
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

function statusOf(error: unknown): number | undefined {
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status === 'number' ? status : undefined;
}

function registryError(action: string, error: unknown): DriftlineError {
  const status = statusOf(error);
  const message = error instanceof Error ? error.message : String(error);
  if (status === 409) {
    return new DriftlineError('SCHEMA_INCOMPATIBLE', `${action}: schema refused as incompatible: ${message}`, {
      cause: error,
    });
  }
  const retriable = status === undefined || status >= 500 || status === 429;
  return new DriftlineError(retriable ? 'SOURCE_UNAVAILABLE' : 'INTERNAL', `${action}: ${message}`, {
    cause: error,
    retriable,
  });
}

/**
 * Avro codec over a Confluent-compatible Schema Registry. Registration and schema look-ups go
 * through @kafkajs/confluent-schema-registry; compiled avsc types are cached per schema id so
 * the hot path does no I/O.
 */
export class SchemaRegistryCodec {
  readonly registry: SchemaRegistry;
  private readonly writerTypes = new Map<number, Promise<avro.Type>>();

  constructor(config: RegistryConfig) {
    const auth =
      config.username === undefined ? undefined : { username: config.username, password: config.password ?? '' };
    this.registry = new SchemaRegistry({
      host: config.url,
      ...(auth === undefined ? {} : { auth }),
      retry: { retries: 2, initialRetryTimeInSecs: 0.1, maxRetryTimeInSecs: 2 },
    });
  }

  forTopic<T>(contract: Contract<T>, topic: string = contract.defaultTopic): TopicCodec<T> {
    return new AvroTopicCodec<T>(this, contract.schema, topic);
  }

  /** Codec for an explicit schema (used for evolution tests and tools). */
  forSchema<T>(schema: object, topic: string): TopicCodec<T> {
    return new AvroTopicCodec<T>(this, schema, topic);
  }

  writerType(id: number): Promise<avro.Type> {
    let type = this.writerTypes.get(id);
    if (type === undefined) {
      type = this.registry.getSchema(id).then(
        (schema) => avro.Type.forSchema(JSON.parse(JSON.stringify(schema)) as avro.Schema),
        (error: unknown) => {
          this.writerTypes.delete(id);
          if (statusOf(error) === 404) {
            throw new PoisonRecordError('DECODE_FAILED', `schema id ${id} is unknown to the registry`, {
              cause: error,
            });
          }
          throw registryError(`fetching schema id ${id}`, error);
        },
      );
      this.writerTypes.set(id, type);
    }
    return type;
  }
}

class AvroTopicCodec<T> implements TopicCodec<T> {
  readonly subject: string;
  private readonly readerType: avro.Type;
  private readonly resolvers = new Map<number, avro.Resolver | null>();
  private schemaId: number | undefined;

  constructor(
    private readonly codec: SchemaRegistryCodec,
    private readonly schema: object,
    readonly topic: string,
  ) {
    this.subject = valueSubject(topic);
    this.readerType = avro.Type.forSchema(schema as avro.Schema);
  }

  async register(): Promise<number> {
    try {
      const { id } = await this.codec.registry.register(
        { type: SchemaType.AVRO, schema: JSON.stringify(this.schema) },
        { subject: this.subject, compatibility: COMPATIBILITY.BACKWARD },
      );
      this.schemaId = id;
      return id;
    } catch (error) {
      throw registryError(`registering ${this.subject}`, error);
    }
  }

  async encode(value: T): Promise<Buffer> {
    const invalid: string[] = [];
    const ok = this.readerType.isValid(value, {
      errorHook: (path, v) => invalid.push(`${path.join('.') || '(root)'}=${JSON.stringify(v) ?? 'undefined'}`),
    });
    if (!ok) {
      throw new DriftlineError(
        'VALIDATION_FAILED',
        `${this.subject}: value does not match schema at ${invalid.join(', ')}`,
        {
          details: { paths: invalid },
        },
      );
    }
    const id = this.schemaId ?? (await this.register());
    const body = this.readerType.toBuffer(value);
    const out = Buffer.allocUnsafe(HEADER_BYTES + body.length);
    out.writeUInt8(MAGIC_BYTE, 0);
    out.writeUInt32BE(id, 1);
    body.copy(out, HEADER_BYTES);
    return out;
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
    let resolver = this.resolvers.get(id);
    if (resolver === undefined) {
      const writer = await this.codec.writerType(id);
      try {
        resolver = writer.equals(this.readerType) ? null : this.readerType.createResolver(writer);
      } catch (error) {
        throw new PoisonRecordError(
          'DECODE_FAILED',
          `${this.topic}: writer schema ${id} cannot be read as ${this.subject}`,
          {
            cause: error,
          },
        );
      }
      this.resolvers.set(id, resolver);
    }
    try {
      return (
        resolver === null
          ? this.readerType.fromBuffer(buffer.subarray(HEADER_BYTES))
          : this.readerType.fromBuffer(buffer.subarray(HEADER_BYTES), resolver)
      ) as T;
    } catch (error) {
      throw new PoisonRecordError(
        'DECODE_FAILED',
        `${this.topic}: Avro body does not decode with schema ${id}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  }
}
