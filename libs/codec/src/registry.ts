import { setTimeout as sleep } from 'node:timers/promises';
import { DriftlineError, type Logger, PoisonRecordError, silentLogger, withDeadline } from '@driftline/core';

/** Default bound on every Schema Registry call; see DRIFTLINE_SCHEMA_REGISTRY_TIMEOUT. */
export const DEFAULT_REGISTRY_TIMEOUT_MS = 10_000;

export interface RegistryConfig {
  /** Base URL of the Confluent-compatible API (for Apicurio: `http://host:port/apis/ccompat/v7`). */
  readonly url: string;
  readonly username?: string;
  readonly password?: string;
  /** Bound on each call in ms (default 10 s): a call that exceeds it fails as retriable `TIMEOUT`. */
  readonly timeoutMs?: number;
}

/**
 * Confluent's "not found" error codes: subject (40401), version (40402), schema (40403). Confluent
 * answers an unknown schema id with 40403; Apicurio in its legacy id mode
 * (`apicurio.ccompat.legacy-id-mode.enabled`) with 40401. On a schema-id look-up each means the
 * registry answered and does not know the id.
 */
const NOT_FOUND = new Set([40401, 40402, 40403]);
/** Confluent error codes of "subject not found" and "subject has no compatibility config". */
const SUBJECT_NOT_FOUND = new Set([40401, 40408]);
/**
 * What a schema look-up under a subject answers when the schema is not registered there: the
 * subject is not found (40401: none, or deleted for good) or has no such schema (40403; also after a
 * soft delete). Confluent and Apicurio 3.0.9 alike.
 */
const NOT_REGISTERED = new Set([40401, 40403]);
const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';
/**
 * The levels that give at least the guarantee asked for, accepted as they are. driftline's consumers
 * read with the contract (reader) schema whatever schema a producer wrote with, so what keeps a
 * producer from registering a schema they cannot read is FORWARD (a new writer is read by the
 * existing reader); BACKWARD, which driftline asked for before, protects the other side (a new
 * reader reads the old writers) and let a producer drop a field without default, add a union branch
 * or rename a field, every record of that producer then dead-lettered (found by a review).
 */
const AT_LEAST: Readonly<Record<string, ReadonlySet<string>>> = {
  FULL: new Set(['FORWARD', 'FORWARD_TRANSITIVE', 'FULL', 'FULL_TRANSITIVE']),
};
/**
 * Levels raised to the one asked for before registering: no check at all (`NONE`, also what
 * Apicurio answers for a subject without a rule of its own), and the BACKWARD levels an earlier
 * driftline set, which leave the consumers unprotected.
 */
const RAISED: Readonly<Record<string, ReadonlySet<string>>> = {
  FULL: new Set(['NONE', 'BACKWARD', 'BACKWARD_TRANSITIVE']),
};

interface Answer {
  readonly status: number;
  readonly body: unknown;
}

function errorCodeOf(body: unknown): number | undefined {
  const code = (body as { error_code?: unknown } | null)?.error_code;
  return typeof code === 'number' ? code : undefined;
}

function messageOf(answer: Answer): string {
  const message = (answer.body as { message?: unknown } | null)?.message;
  return `HTTP ${answer.status}${typeof message === 'string' ? `: ${message}` : ''}`;
}

/**
 * The few calls of the Confluent-compatible API the codec needs, over fetch, each bounded by a
 * timeout and classified by what went wrong — not by what an HTTP client library makes of it:
 *
 * - no answer (refused, reset, DNS, TLS, any transport failure) → retriable `SOURCE_UNAVAILABLE`;
 * - no answer in time → retriable `TIMEOUT`;
 * - 5xx, 429, 408 and auth failures (401, 403: the record is not at fault) → retriable;
 * - 404 with a Confluent "not found" code (40401, 40402, 40403) on a schema id →
 *   `PoisonRecordError` (`DECODE_FAILED`): the record names a schema the registry does not know; a
 *   404 without a code (a wrong base URL, a proxy) is retriable and says so;
 * - 409 on registration → `SCHEMA_INCOMPATIBLE`; other 4xx on registration or look-up → not retriable.
 *
 * `stop` on a producer's look-up ends it early (the confirmation gave up waiting): an unanswered
 * call otherwise kept the process alive until its timeout. A registration takes none: cut off between
 * its POST and its level, it left a new subject at NONE with the schema registered.
 */
export class RegistryClient {
  private readonly base: string;
  private readonly authorization: string | undefined;
  readonly timeoutMs: number;
  private readonly logger: Logger;

  /** `logger` gets the warning of a subject whose compatibility level a registration raised. */
  constructor(config: RegistryConfig, logger: Logger = silentLogger) {
    this.logger = logger;
    this.base = config.url.replace(/\/+$/, '');
    this.authorization =
      config.username === undefined
        ? undefined
        : `Basic ${Buffer.from(`${config.username}:${config.password ?? ''}`).toString('base64')}`;
    this.timeoutMs = config.timeoutMs ?? DEFAULT_REGISTRY_TIMEOUT_MS;
  }

  /**
   * The writer schema (JSON text) of a schema id. One with schema references (a type another subject
   * defines) comes with them resolved: each referenced type defined in place, where the schema
   * first names it (see {@link inlineReferences}).
   */
  async schemaById(id: number): Promise<string> {
    const action = `fetching schema id ${id}`;
    const answer = await this.call(action, 'GET', `/schemas/ids/${id}`);
    if (answer.status === 200) {
      const schema = (answer.body as { schema?: unknown } | null)?.schema;
      if (typeof schema !== 'string') throw unavailable(`${action}: the registry's answer has no schema`);
      const references = referencesOf(answer.body);
      return references.length === 0 ? schema : this.withReferences(id, schema, references);
    }
    // Only 40403 was taken for "unknown": Apicurio's legacy id mode answers 40401, read as an
    // outage, and one such record held its partition for good.
    if (answer.status === 404 && NOT_FOUND.has(errorCodeOf(answer.body) ?? 0)) {
      throw new PoisonRecordError('DECODE_FAILED', `schema id ${id} is unknown to the registry`, {
        details: { schemaId: id },
      });
    }
    throw failure(action, answer, true);
  }

  /**
   * `schema` (of schema id `id`) with its references resolved: each referenced subject version read
   * (theirs too, at most MAX_REFERENCE_DEPTH deep, MAX_REFERENCES in all, MAX_REFERENCED_CHARS of
   * schema text), then defined in place. A reference the registry does not know, or beyond the
   * bounds, makes the schema poison, saying so; an outage is retriable like any look-up.
   */
  private async withReferences(id: number, schema: string, references: readonly Reference[]): Promise<string> {
    const poison = (why: string, cause?: unknown) =>
      new PoisonRecordError('DECODE_FAILED', `schema id ${id} uses schema references: ${why}`, {
        details: { schemaId: id },
        ...(cause === undefined ? {} : { cause }),
      });
    const definitions = new Map<string, unknown>();
    let count = 0;
    let chars = schema.length;
    const read = async (refs: readonly Reference[], depth: number): Promise<void> => {
      for (const ref of refs) {
        if (definitions.has(ref.name)) continue;
        if (depth > MAX_REFERENCE_DEPTH) throw poison(`references nested deeper than ${MAX_REFERENCE_DEPTH}`);
        if (++count > MAX_REFERENCES) throw poison(`more than ${MAX_REFERENCES} references`);
        const action = `fetching ${ref.subject} version ${ref.version} (a reference of schema id ${id})`;
        const answer = await this.call(
          action,
          'GET',
          `/subjects/${encodeURIComponent(ref.subject)}/versions/${encodeURIComponent(String(ref.version))}`,
        );
        if (answer.status === 404 && NOT_FOUND.has(errorCodeOf(answer.body) ?? 0)) {
          throw poison(`${ref.name} (${ref.subject} version ${ref.version}) is unknown to the registry`);
        }
        if (answer.status !== 200) throw failure(action, answer, true);
        const text = (answer.body as { schema?: unknown } | null)?.schema;
        if (typeof text !== 'string') throw unavailable(`${action}: the registry's answer has no schema`);
        chars += text.length;
        if (chars > MAX_REFERENCED_CHARS) throw poison(`more than ${MAX_REFERENCED_CHARS} characters of schemas`);
        try {
          definitions.set(ref.name, JSON.parse(text));
        } catch (error) {
          throw poison(
            `${ref.name} (${ref.subject} version ${ref.version}) is not JSON: ${(error as Error).message}`,
            error,
          );
        }
        await read(referencesOf(answer.body), depth + 1);
      }
    };
    await read(references, 1);
    try {
      return JSON.stringify(inlineReferences(JSON.parse(schema), definitions));
    } catch (error) {
      throw poison((error as Error).message, error);
    }
  }

  /**
   * The id `schema` has under `subject` (Confluent's `POST /subjects/{subject}`), or undefined when
   * the registry answers that it is not registered there (40401, 40403). Changes nothing: no
   * version, no compatibility level. Apicurio matches the text exactly, as its registration does.
   */
  async lookup(subject: string, schema: string, stop?: AbortSignal): Promise<number | undefined> {
    const action = `looking up ${subject}`;
    const answer = await this.call(action, 'POST', `/subjects/${encodeURIComponent(subject)}`, { schema }, stop);
    const id = (answer.body as { id?: unknown } | null)?.id;
    if (answer.status === 200 && typeof id === 'number') return id;
    if (answer.status === 404 && NOT_REGISTERED.has(errorCodeOf(answer.body) ?? 0)) return undefined;
    throw failure(action, answer, false);
  }

  /**
   * Registers `schema` under `subject` and returns its id. A subject registered for the first time
   * gets `compatibility`; an existing one must have it or a level that gives at least its guarantee
   * (for FULL: FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE), or one that is raised to it
   * first (for FULL: NONE, BACKWARD, BACKWARD_TRANSITIVE; a raise from a level other than NONE is
   * warned about). Each call is bounded by the timeout; none is cancelled.
   */
  async register(subject: string, schema: string, compatibility: string): Promise<number> {
    const action = `registering ${subject}`;
    const path = `/config/${encodeURIComponent(subject)}`;
    const accepted = AT_LEAST[compatibility] ?? new Set([compatibility]);
    const raised = RAISED[compatibility] ?? new Set(['NONE']);
    let config = await this.call(action, 'GET', path);
    // Another client may have registered the subject a moment ago and not yet set its level: give
    // it a moment (up to about a second) before calling the mismatch real.
    for (
      let attempt = 0;
      attempt < 10 &&
      config.status === 200 &&
      !accepted.has(levelOf(config) ?? '') &&
      !raised.has(levelOf(config) ?? '');
      attempt++
    ) {
      await sleep(100);
      config = await this.call(action, 'GET', path);
    }
    // Set the level after the first registration: the subject is new, or has no checks at all
    // (Apicurio answers NONE for a subject without a rule of its own, e.g. created by another tool,
    // or by a client that stopped between its registration and its level).
    let setLevel = false;
    if (config.status === 200) {
      const level = levelOf(config);
      if (level !== undefined && raised.has(level)) {
        // Raised before the registration: at a weaker level the registry takes the schema without
        // the check a publisher's start-up is for.
        await this.putLevel(action, path, compatibility, accepted);
        if (level !== 'NONE') {
          this.logger.warn(
            { subject, from: level, to: compatibility },
            `${subject}: compatibility raised from ${level} to ${compatibility} (at ${level} a producer could register a schema driftline's consumers cannot read)`,
          );
        }
      } else if (level !== undefined && !accepted.has(level)) {
        throw new DriftlineError(
          'SCHEMA_INCOMPATIBLE',
          `${action}: the subject's compatibility is ${level}; driftline needs one of ${[...accepted].join(', ')} (its consumers read every producer's records with driftline's schema, so a new producer schema must be readable by it)`,
        );
      }
    } else if (config.status === 404 && SUBJECT_NOT_FOUND.has(errorCodeOf(config.body) ?? 0)) {
      setLevel = true;
    } else {
      throw failure(action, config, false);
    }
    const registered = await this.call(action, 'POST', `/subjects/${encodeURIComponent(subject)}/versions`, {
      schema,
    });
    const id = (registered.body as { id?: unknown } | null)?.id;
    if (registered.status !== 200 || typeof id !== 'number') throw failure(action, registered, false);
    if (setLevel) await this.putLevel(action, path, compatibility, accepted);
    return id;
  }

  /**
   * The compatibility level the registry checks `subject`'s new schemas with (its own, or the
   * global one: `?defaultToGlobal=true`), upper case; undefined when the subject does not exist.
   */
  async compatibilityOf(subject: string): Promise<string | undefined> {
    const action = `reading the compatibility of ${subject}`;
    const answer = await this.call(action, 'GET', `/config/${encodeURIComponent(subject)}?defaultToGlobal=true`);
    if (answer.status === 200) return levelOf(answer);
    if (answer.status === 404 && SUBJECT_NOT_FOUND.has(errorCodeOf(answer.body) ?? 0)) return undefined;
    throw failure(action, answer, false);
  }

  private async putLevel(action: string, path: string, compatibility: string, accepted: ReadonlySet<string>) {
    const updated = await this.call(action, 'PUT', path, { compatibility });
    // Two clients registering a new subject at once both see 404 and both set the level; the
    // registry refuses the second (Apicurio: 409, rule already exists). That is success when the
    // level now in place is one we accept.
    if (updated.status !== 200 && !(await this.hasCompatibility(action, path, accepted))) {
      throw failure(action, updated, false);
    }
  }

  private async hasCompatibility(action: string, path: string, accepted: ReadonlySet<string>): Promise<boolean> {
    const config = await this.call(action, 'GET', path);
    return config.status === 200 && accepted.has(levelOf(config) ?? '');
  }

  private async call(action: string, method: string, path: string, body?: object, stop?: AbortSignal): Promise<Answer> {
    const headers: Record<string, string> = { accept: CONTENT_TYPE };
    if (this.authorization !== undefined) headers.authorization = this.authorization;
    if (body !== undefined) headers['content-type'] = CONTENT_TYPE;
    const result = await withDeadline(
      this.timeoutMs,
      async (signal) => {
        const response = await fetch(`${this.base}${path}`, {
          method,
          headers,
          signal,
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        const text = await response.text();
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // Not JSON (a proxy's error page): keep the text; the status decides.
        }
        return { status: response.status, body: parsed };
      },
      stop,
    );
    if (!result.ok) throw transportFailure(action, result.error, this.timeoutMs);
    return result.value;
  }
}

function unavailable(message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
  return new DriftlineError('SOURCE_UNAVAILABLE', message, { ...options, retriable: true });
}

/** fetch threw: the registry gave no answer (timeout, refused, reset, DNS, TLS). Always retriable. */
function transportFailure(action: string, error: unknown, timeoutMs: number): DriftlineError {
  const name = (error as { name?: unknown } | null)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new DriftlineError('TIMEOUT', `${action}: no answer from the Schema Registry within ${timeoutMs} ms`, {
      cause: error,
      retriable: true,
    });
  }
  const cause = (error as { cause?: unknown } | null)?.cause;
  const code = (cause as { code?: unknown } | null)?.code;
  const reason = cause instanceof Error ? cause.message : error instanceof Error ? error.message : String(error);
  return unavailable(`${action}: Schema Registry unreachable (${reason})`, {
    cause: error,
    ...(typeof code === 'string' ? { details: { cause: code } } : {}),
  });
}

/** The registry answered with an error status. */
function failure(action: string, answer: Answer, lookup: boolean): DriftlineError {
  const { status } = answer;
  const message = `${action}: ${messageOf(answer)}`;
  const details = { status, errorCode: errorCodeOf(answer.body) };
  if (status === 409) return new DriftlineError('SCHEMA_INCOMPATIBLE', message, { details });
  if (status >= 500 || status === 429 || status === 408 || status === 401 || status === 403) {
    return unavailable(message, { details });
  }
  if (status === 404 && errorCodeOf(answer.body) === undefined) {
    return unavailable(`${message} (not a Schema Registry answer: check DRIFTLINE_SCHEMA_REGISTRY_URL)`, {
      details,
    });
  }
  // A look-up on behalf of a record never blames the record for anything but an unknown id.
  return new DriftlineError(lookup ? 'SOURCE_UNAVAILABLE' : 'INTERNAL', message, { details, retriable: lookup });
}

/** A schema reference: the full name of a type, and the subject version that defines it. */
interface Reference {
  readonly name: string;
  readonly subject: string;
  readonly version: number | string;
}

/** References of a schema more deeply nested than this are refused (poison). */
const MAX_REFERENCE_DEPTH = 4;
/** References of a schema (nested ones counted) beyond this are refused. */
const MAX_REFERENCES = 32;
/** Schema text of a schema and its references beyond this is refused. */
const MAX_REFERENCED_CHARS = 1_000_000;

/** The well-formed references of a registry answer (entries without a name, subject and version are not references). */
function referencesOf(body: unknown): Reference[] {
  const refs = (body as { references?: unknown } | null)?.references;
  if (!Array.isArray(refs)) return [];
  return refs.filter(
    (r): r is Reference =>
      typeof (r as Reference | null)?.name === 'string' &&
      typeof (r as Reference).subject === 'string' &&
      (typeof (r as Reference).version === 'number' || typeof (r as Reference).version === 'string'),
  );
}

/** Avro's primitive type names (codec.ts reads them too). */
export const AVRO_PRIMITIVES: readonly string[] = [
  'null',
  'boolean',
  'int',
  'long',
  'float',
  'double',
  'bytes',
  'string',
];

const NOT_NAMES: ReadonlySet<string> = new Set([
  ...AVRO_PRIMITIVES,
  'record',
  'error',
  'enum',
  'fixed',
  'array',
  'map',
]);

/**
 * A schema (JSON) whose references to the types in `definitions` (by full name) are resolved: the
 * first place that names one gets its definition (resolved too), later ones keep the name, as in
 * an Avro schema written in one piece. Names are resolved against the enclosing namespace.
 */
function inlineReferences(schema: unknown, definitions: ReadonlyMap<string, unknown>): unknown {
  const defined = new Set<string>();
  const fullName = (name: string, namespace: string | undefined) =>
    name.includes('.') || namespace === undefined || namespace === '' ? name : `${namespace}.${name}`;
  const walk = (node: unknown, namespace: string | undefined): unknown => {
    if (typeof node === 'string') {
      if (NOT_NAMES.has(node)) return node;
      const full = fullName(node, namespace);
      const key = definitions.has(full) ? full : definitions.has(node) ? node : undefined;
      if (key === undefined || defined.has(key)) return node;
      defined.add(key);
      return walk(definitions.get(key), undefined);
    }
    if (Array.isArray(node)) return node.map((branch) => walk(branch, namespace));
    if (node === null || typeof node !== 'object') return node;
    const n = node as Record<string, unknown>;
    const type = n.type;
    if (typeof type !== 'string' || !NOT_NAMES.has(type)) return { ...n, type: walk(type, namespace) };
    if (type === 'array') return { ...n, items: walk(n.items, namespace) };
    if (type === 'map') return { ...n, values: walk(n.values, namespace) };
    if (type !== 'record' && type !== 'error' && type !== 'enum' && type !== 'fixed') return n;
    const name = typeof n.name === 'string' ? n.name : '';
    const own = name.includes('.')
      ? name.slice(0, name.lastIndexOf('.'))
      : typeof n.namespace === 'string'
        ? n.namespace
        : namespace;
    defined.add(fullName(name, own));
    if (!Array.isArray(n.fields)) return n;
    return {
      ...n,
      fields: (n.fields as Array<Record<string, unknown>>).map((f) => ({ ...f, type: walk(f.type, own) })),
    };
  };
  return walk(schema, undefined);
}

function levelOf(answer: Answer): string | undefined {
  const level = (answer.body as { compatibilityLevel?: unknown } | null)?.compatibilityLevel;
  return typeof level === 'string' ? level.toUpperCase() : undefined;
}
