import { cutText, DriftlineError, SinkUnavailableError } from '@driftline/core';
import { ENVIRONMENT_CODES, REJECTED_CODES, UNAVAILABLE_CODES } from './error-codes.js';

/** How a failed ClickHouse call is treated: retry the batch, or isolate the record into the DLQ. */
export type ClickHouseErrorCategory = 'unavailable' | 'environment' | 'rejected' | 'unknown';

export interface ClickHouseErrorInfo {
  readonly category: ClickHouseErrorCategory;
  /** ClickHouse's numeric error code, when the error carries one. */
  readonly code?: number;
  /** ClickHouse's error name (e.g. CANNOT_PARSE_DATETIME), or the Node/chdb code for transport errors. */
  readonly name?: string;
  readonly message: string;
}

// Transport-level failures of either connection with a code SYSTEM_CODE (below) does not cover:
// getaddrinfo's, undici's, and chdb's own (embedded: a closed or busy engine). Node's socket codes
// (ECONNREFUSED, ECONNRESET, EPIPE, ETIMEDOUT, …) are all SYSTEM_CODE's.
const TRANSPORT_CODES = new Set([
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'CHDB_CONNECTION',
  'CHDB_CLOSED',
  'CHDB_TIMEOUT',
  'CHDB_ABORT',
]);

// Every code of Node's system errors (ECONNRESET, EMFILE, ENFILE, EPROTO, EADDRNOTAVAIL, …) and of its
// TLS layer (an expired, untrusted or misnamed certificate): the connection, never the rows. They
// were `unknown`, so an expired certificate dead-lettered every record for as long as it lasted.
const SYSTEM_CODE =
  /^(E[A-Z0-9]+|ERR_TLS_[A-Z0-9_]+|ERR_SSL_[A-Z0-9_]+|CERT_[A-Z0-9_]+|UNABLE_TO_[A-Z0-9_]+|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH)$/;

// What @clickhouse/client throws without a code: its request timeout, an aborted request, a
// dropped socket, and the bodies proxies/load balancers answer with on 401/403/429/502/503/504
// (the client turns a non-2xx body without a ClickHouse code into `new Error(body)`); chdb's
// closed connection.
const TRANSPORT_MESSAGE =
  /^Timeout error\.|The user aborted a request|socket hang up|Query aborted|Bad Gateway|Service (Temporarily )?Unavailable|Gateway Time-?out|upstream connect error|no healthy upstream|^\s*(401 )?Unauthorized|^\s*(403 )?Forbidden|Too Many Requests|ChdbConnection is closed/i;

// "Code: 41. DB::Exception: ... (CANNOT_PARSE_DATETIME)" as either connection words it.
const CODE_IN_MESSAGE = /Code: (\d+)\. DB::Exception: .*?\(([A-Z][A-Z0-9_]{2,})\)/s;

function clickhouseCode(error: unknown): { code: number; name?: string } | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const o = e as { code?: unknown; type?: unknown; clickhouseCode?: unknown };
    // @clickhouse/client's ClickHouseError: `code` is the number as a string, `type` the name.
    if (typeof o.code === 'string' && /^\d+$/.test(o.code)) {
      return { code: Number(o.code), ...(typeof o.type === 'string' ? { name: o.type } : {}) };
    }
    // chdb's ChdbError: `clickhouseCode` is the number.
    if (typeof o.clickhouseCode === 'number') {
      const m = CODE_IN_MESSAGE.exec(e.message);
      return { code: o.clickhouseCode, ...(m?.[2] === undefined ? {} : { name: m[2] }) };
    }
    const m = CODE_IN_MESSAGE.exec(e.message);
    if (m !== null) return { code: Number(m[1]), name: m[2]! };
  }
  return undefined;
}

function transportCode(error: unknown): string | undefined {
  const chain: Error[] = [];
  for (let e: unknown = error; e instanceof Error && chain.length < 5; e = e.cause) chain.push(e);
  // A code anywhere in the chain names the failure better than a message does.
  for (const e of chain) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (TRANSPORT_CODES.has(code) || SYSTEM_CODE.test(code))) return code;
  }
  return chain.some((e) => TRANSPORT_MESSAGE.test(e.message)) ? 'TRANSPORT' : undefined;
}

/**
 * Classifies a failed ClickHouse call, from either connection, by ClickHouse error code:
 * unavailable/overloaded/timed out and environment (schema, auth) → retry; a value the server
 * refused → poison. Without a ClickHouse code, a transport failure retries; anything else is
 * `unknown` and is not retried, so a genuinely unknown failure cannot pause a partition forever
 * (bisection isolates it, the DLQ keeps the record).
 */
export function classifyClickHouseError(error: unknown): ClickHouseErrorInfo {
  const message = error instanceof Error ? error.message : String(error);
  const ch = clickhouseCode(error);
  if (ch !== undefined) {
    const known = UNAVAILABLE_CODES[ch.code] ?? ENVIRONMENT_CODES[ch.code] ?? REJECTED_CODES[ch.code];
    const name = ch.name ?? known;
    const base = { code: ch.code, ...(name === undefined ? {} : { name }), message };
    if (UNAVAILABLE_CODES[ch.code] !== undefined) return { category: 'unavailable', ...base };
    if (ENVIRONMENT_CODES[ch.code] !== undefined) return { category: 'environment', ...base };
    if (REJECTED_CODES[ch.code] !== undefined) return { category: 'rejected', ...base };
    return { category: 'unknown', ...base };
  }
  const transport = transportCode(error);
  if (transport !== undefined) return { category: 'unavailable', name: transport, message };
  return { category: 'unknown', message };
}

const MAX_MESSAGE = 500;

/**
 * The DriftlineError for a failed call: SinkUnavailableError (retriable) or SINK_REJECTED
 * (not retriable). The ClickHouse name and number lead the message — it becomes the DLQ reason
 * header — and sit in `details.clickhouse`.
 */
export function toWarehouseError(action: string, error: unknown): DriftlineError {
  if (error instanceof DriftlineError) return error;
  const info = classifyClickHouseError(error);
  const label = info.code === undefined ? (info.name ?? 'unknown error') : `${info.name ?? 'code'} (${info.code})`;
  const text = info.message.length > MAX_MESSAGE ? `${cutText(info.message, MAX_MESSAGE)}…` : info.message;
  const message = `clickhouse ${action}: ${label}: ${text.trim()}`;
  const details = {
    clickhouse: {
      category: info.category,
      ...(info.code === undefined ? {} : { code: info.code }),
      ...(info.name === undefined ? {} : { name: info.name }),
    },
  };
  if (info.category === 'unavailable' || info.category === 'environment') {
    return new SinkUnavailableError(message, { cause: error, details });
  }
  return new DriftlineError('SINK_REJECTED', message, { cause: error, details, retriable: false });
}
