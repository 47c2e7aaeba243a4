import { type Logger, redactCredentials } from '@driftline/core';
import { pino } from 'pino';

/**
 * Keys whose values never reach a log line, wherever they appear (one to three levels deep for
 * the names of secrets; the runner logs `connections.kafka.sasl.password`-shaped config).
 */
const REDACT = [
  'password',
  'token',
  'secret',
  'authorization',
  '*.password',
  '*.token',
  '*.secret',
  '*.authorization',
  '*.*.password',
  '*.*.token',
  '*.*.secret',
  'sasl.password',
  '*.sasl.password',
  '*.*.sasl.password',
  'connections.kafka.sasl.password',
  '*.headers.authorization',
  '*.headers.Authorization',
  'headers.Authorization',
  'url',
  '*.url',
];

/** A URL keeps its host and path with its user-info and secret query parameters masked; any other listed key is hidden. */
function censor(value: unknown, path: string[]): unknown {
  if (path.at(-1) !== 'url') return '[redacted]';
  if (typeof value === 'string') return redactCredentials(value);
  return value instanceof URL ? redactCredentials(value.href) : '[redacted]';
}

/** Levels of nested objects an error's properties are scrubbed to (pino's own serializer cuts cycles). */
const SCRUB_DEPTH = 4;

/**
 * Properties of a client's error that echo what was sent: ioredis' `command` (a refused AUTH's
 * `args` are [user, password]), an HTTP client's `config` or `request` (their headers).
 */
const DROPPED_ERROR_KEYS = new Set(['command', 'config', 'request']);

function scrub(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactCredentials(value);
  if (value === null || typeof value !== 'object' || depth >= SCRUB_DEPTH) return value;
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (!DROPPED_ERROR_KEYS.has(k)) out[k] = scrub(v, depth + 1);
  }
  return out;
}

/**
 * pino's error serializer writes every enumerable property of an error; this one drops those that
 * echo a request (an ioredis ReplyError's `command`, an HTTP client's `config`) and redacts URL
 * credentials in every string left (message, stack, causes). A string (`{ err: e.message }`) is
 * redacted too.
 */
function serializeError(err: unknown): unknown {
  const serialized: unknown = err instanceof Error ? pino.stdSerializers.err(err) : err;
  return scrub(serialized, 0);
}

/** Structured JSON logs on stdout (or a given destination), with secrets redacted. */
export function createLogger(options: {
  service: string;
  level?: string;
  destination?: NodeJS.WritableStream;
}): Logger {
  const base = { service: options.service };
  const opts = {
    level: options.level ?? process.env.DRIFTLINE_LOG_LEVEL ?? 'info',
    base,
    redact: { paths: REDACT, censor },
    serializers: { err: serializeError, error: serializeError },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return (options.destination === undefined ? pino(opts) : pino(opts, options.destination)) as unknown as Logger;
}
