import { redactCredentials } from './redact.js';

/**
 * One error hierarchy for driftline. Every error has a stable `code` and a `retriable` flag;
 * the consumer loop decides retry, dead-letter or stop from that flag alone.
 */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'DECODE_FAILED'
  | 'VALIDATION_FAILED'
  | 'SCHEMA_INCOMPATIBLE'
  | 'SINK_UNAVAILABLE'
  /** The sink refused a record (e.g. a value its column type rejects): poison, never retried. */
  | 'SINK_REJECTED'
  | 'SOURCE_UNAVAILABLE'
  | 'TIMEOUT'
  | 'NOT_FOUND'
  | 'BAD_REQUEST'
  /** A request without the credentials it needs (the feature API's bearer token). */
  | 'UNAUTHORIZED'
  /** A server past a bound on the work it holds (request bodies, requests in flight): retry later. */
  | 'OVERLOADED'
  | 'STACK_FAILED'
  | 'INTERNAL';

export interface DriftlineErrorOptions {
  readonly retriable?: boolean;
  readonly cause?: unknown;
  readonly details?: Readonly<Record<string, unknown>>;
}

export class DriftlineError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: DriftlineErrorOptions = {}) {
    // Redacted before the stack is captured: a URL's credentials never reach a message or a log line.
    super(redactCredentials(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DriftlineError';
    this.code = code;
    this.retriable = options.retriable ?? false;
    this.details = options.details ?? {};
  }
}

/** Configuration is wrong; fail at start-up. `field` names the variable or key. */
export class ConfigError extends DriftlineError {
  readonly field: string;
  constructor(field: string, message: string, options: DriftlineErrorOptions = {}) {
    super('CONFIG_INVALID', `${field}: ${message}`, options);
    this.name = 'ConfigError';
    this.field = field;
  }
}

/** The exit code of a configuration error (sysexits' EX_CONFIG): a supervisor shows it as such, not as a crash. */
export const CONFIG_ERROR_EXIT_CODE = 78;

/**
 * The one line a person reads for a configuration error, `configuration error: <field>: <what>`:
 * the CLI's for one found at start-up, the runner's for one found after.
 */
export function configErrorLine(error: DriftlineError): string {
  return `configuration error: ${error.message}`;
}

/** The record itself is bad (undecodable or invalid): dead-letter it, never retry it. */
export class PoisonRecordError extends DriftlineError {
  constructor(code: 'DECODE_FAILED' | 'VALIDATION_FAILED', message: string, options: DriftlineErrorOptions = {}) {
    super(code, message, { ...options, retriable: false });
    this.name = 'PoisonRecordError';
  }
}

/** A downstream store is failing: pause, back off and retry; never commit past it. */
export class SinkUnavailableError extends DriftlineError {
  constructor(message: string, options: DriftlineErrorOptions = {}) {
    super('SINK_UNAVAILABLE', message, { ...options, retriable: true });
    this.name = 'SinkUnavailableError';
  }
}

const RETRIABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTCONN',
  // A full disk or too many open files is an outage of the machine, not a fault of the record: a
  // trainer sent a good retrain request to the DLQ on ENOSPC, and its trigger never re-fires one.
  'ENOSPC',
  'EDQUOT',
  'EIO',
  'EMFILE',
  'ENFILE',
  // The same for a process the machine cannot start now (process or memory limits), a disk the
  // kernel remounted read-only after errors, a file busy being replaced (a deploy swapping a binary).
  'EAGAIN',
  'ENOMEM',
  'EROFS',
  'EBUSY',
  'ETXTBSY',
]);

/**
 * Classifies any thrown value without throwing. Foreign errors become DriftlineErrors;
 * network-level failures and errors that say they are retriable are marked retriable.
 */
export function toDriftlineError(value: unknown): DriftlineError {
  if (value instanceof DriftlineError) return value;
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    const flagged = (value as { retriable?: unknown }).retriable === true;
    const networkish = typeof code === 'string' && RETRIABLE_NODE_CODES.has(code);
    // Clients that reject with a bare Error: ioredis ("Connection is closed.", "Command timed out"), node:http.
    const connectionClosed = /connection is closed|socket hang up|command timed out|ECONNREFUSED/i.test(value.message);
    return new DriftlineError('INTERNAL', value.message, {
      cause: value,
      retriable: flagged || networkish || connectionClosed,
    });
  }
  return new DriftlineError('INTERNAL', String(value), { cause: value });
}

export function isRetriable(value: unknown): boolean {
  return toDriftlineError(value).retriable;
}
