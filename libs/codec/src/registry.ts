import { setTimeout as sleep } from 'node:timers/promises';
import { DriftlineError, PoisonRecordError, withDeadline } from '@driftline/core';

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
 * The levels that give at least the guarantee asked for: an owner who made a subject stricter
 * (FULL_TRANSITIVE) stopped every publisher from starting.
 */
const AT_LEAST: Readonly<Record<string, ReadonlySet<string>>> = {
  BACKWARD: new Set(['BACKWARD', 'BACKWARD_TRANSITIVE', 'FULL', 'FULL_TRANSITIVE']),
  FULL: new Set(['FULL', 'FULL_TRANSITIVE']),
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

  constructor(config: RegistryConfig) {
    this.base = config.url.replace(/\/+$/, '');
    this.authorization =
      config.username === undefined
        ? undefined
        : `Basic ${Buffer.from(`${config.username}:${config.password ?? ''}`).toString('base64')}`;
    this.timeoutMs = config.timeoutMs ?? DEFAULT_REGISTRY_TIMEOUT_MS;
  }

  /** The writer schema (JSON text) of a schema id. */
  async schemaById(id: number): Promise<string> {
    const action = `fetching schema id ${id}`;
    const answer = await this.call(action, 'GET', `/schemas/ids/${id}`);
    if (answer.status === 200) {
      const schema = (answer.body as { schema?: unknown } | null)?.schema;
      if (typeof schema === 'string') return schema;
      throw unavailable(`${action}: the registry's answer has no schema`);
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
   * gets `compatibility`; an existing subject must already have it. Each call is bounded by the
   * timeout; none is cancelled.
   */
  async register(subject: string, schema: string, compatibility: string): Promise<number> {
    const action = `registering ${subject}`;
    const path = `/config/${encodeURIComponent(subject)}`;
    const accepted = AT_LEAST[compatibility] ?? new Set([compatibility]);
    let config = await this.call(action, 'GET', path);
    // Another client may have registered the subject a moment ago and not yet set its level: give
    // it a moment (up to about a second) before calling the mismatch real.
    for (
      let attempt = 0;
      attempt < 10 && config.status === 200 && !accepted.has(levelOf(config) ?? '') && levelOf(config) !== 'NONE';
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
      if (level === 'NONE') {
        // Raised before the registration: at NONE the registry takes any schema unchecked, the very
        // check a publisher's start-up is for.
        await this.putLevel(action, path, compatibility, accepted);
      } else if (level !== undefined && !accepted.has(level)) {
        throw new DriftlineError(
          'SCHEMA_INCOMPATIBLE',
          `${action}: the subject's compatibility is ${level}; driftline needs ${[...accepted].join(', ')} (a weaker level lets a producer register a schema the consumers cannot read)`,
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

function levelOf(answer: Answer): string | undefined {
  const level = (answer.body as { compatibilityLevel?: unknown } | null)?.compatibilityLevel;
  return typeof level === 'string' ? level.toUpperCase() : undefined;
}
