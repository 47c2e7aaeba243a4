import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { type ClickHouseClient, ClickHouseLogLevel, createClient } from '@clickhouse/client';
import {
  ConfigError,
  cutText,
  DriftlineError,
  redactCredentials,
  SinkUnavailableError,
  withDeadline,
} from '@driftline/core';
import { createChdbConnection } from 'chdb/connection';
import { type ClickHouseConfig, DEFAULT_CLICKHOUSE_TIMEOUT_MS } from './config.js';
import { toWarehouseError } from './errors.js';

export type QueryParams = Readonly<Record<string, unknown>>;

/** Column metadata and rows of a `FORMAT JSON` result (dashboards' panel checks need the types). */
export interface TypedResult {
  readonly meta: ReadonlyArray<{ readonly name: string; readonly type: string }>;
  readonly data: ReadonlyArray<Record<string, unknown>>;
}

/**
 * The warehouse's connection: the one place ClickHouse is called. Every call is bounded by the
 * configured timeout and every failure is classified by ClickHouse error code (see errors.ts), so
 * callers get SinkUnavailableError (retry) or SINK_REJECTED (dead-letter) and nothing else.
 */
export interface ClickHouse {
  readonly database: string;
  readonly mode: 'server' | 'embedded';
  readonly timeoutMs: number;
  /** `database.name`, for SQL text. Identifiers only: values always go through query parameters. */
  table(name: string): string;
  /** Inserts rows (JSONEachRow) into `table` (unqualified name). */
  insert(table: string, rows: ReadonlyArray<object>): Promise<void>;
  /** Runs a SELECT with `{name:Type}` parameters; rows as JSON objects. */
  select<T>(sql: string, params?: QueryParams): Promise<T[]>;
  /**
   * Runs a SELECT and hands its rows to `onRows` as they arrive, each row an array of its columns
   * (JSONCompactEachRow): a large result is never held as one text or one array of objects (a
   * server's result streams; the embedded engine's comes as one buffer, outside the JS heap).
   */
  selectEach(sql: string, params: QueryParams, onRows: (rows: readonly unknown[][]) => void): Promise<void>;
  /** Runs a SELECT and returns its column types too (FORMAT JSON). */
  selectTyped(sql: string, params?: QueryParams): Promise<TypedResult>;
  /** DDL and other statements without a result. */
  command(sql: string): Promise<void>;
  /**
   * Server connection: checks that the URL answers as ClickHouse (`SELECT version()`), before
   * anything is written. Embedded: nothing to check. See `verifyServer` below.
   */
  verify(): Promise<void>;
  close(): Promise<void>;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

// The embedded engine binds one data directory per process, so its connection is shared by every
// ClickHouse of the process and lives as long as the process.
let embedded: { path: string; client: ClickHouseClient } | undefined;

function embeddedClient(path: string): ClickHouseClient {
  const absolute = resolve(path);
  if (embedded !== undefined) {
    if (embedded.path !== absolute) {
      throw new DriftlineError(
        'CONFIG_INVALID',
        `DRIFTLINE_CLICKHOUSE_PATH: the embedded engine of this process is bound to ${embedded.path}, not ${absolute}`,
      );
    }
    return embedded.client;
  }
  mkdirSync(absolute, { recursive: true });
  // Checked before the engine opens: it prints its own "Cannot lock file" line on stderr and throws
  // a bare "Failed to create connection", which the CLI showed as an internal error to report.
  let holder = lockHolder(absolute);
  if (holder !== undefined) throw inUse(absolute, holder);
  let connection: ReturnType<typeof createChdbConnection>;
  try {
    connection = createChdbConnection({ path: absolute });
  } catch (error) {
    holder = lockHolder(absolute); // another process took it since the check
    throw holder === undefined ? error : inUse(absolute, holder, error);
  }
  // The connection hook is typed against client-common's Connection; chdb implements that interface.
  const client = createClient({ connection } as unknown as Parameters<typeof createClient>[0]);
  embedded = { path: absolute, client };
  return client;
}

/**
 * The process holding the engine's lock on `path`: the pid the engine writes in its `status` file,
 * when that file is locked — by /proc/locks where there is one (a crashed holder leaves the file
 * behind, and its pid may belong to another process by now), else when that pid is alive.
 */
function lockHolder(path: string): number | undefined {
  const status = join(path, 'status');
  let text: string;
  let file: { dev: number; ino: number };
  try {
    text = readFileSync(status, 'utf8');
    file = statSync(status);
  } catch {
    return undefined;
  }
  const pid = Number(/^PID: (\d+)$/m.exec(text)?.[1]);
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  const locked = isLocked(file);
  if (locked !== undefined) return locked ? pid : undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined; // alive, another user's
  }
}

/** Whether /proc/locks lists a lock on the file (Linux: "MAJ:MIN:INODE", device numbers in hex); undefined without /proc/locks. */
function isLocked(file: { dev: number; ino: number }): boolean | undefined {
  let locks: string;
  try {
    locks = readFileSync('/proc/locks', 'utf8');
  } catch {
    return undefined;
  }
  const major = (file.dev >>> 8) & 0xfff;
  const minor = (file.dev & 0xff) | ((file.dev >>> 12) & 0xfff00);
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  const id = ` ${hex(major)}:${hex(minor)}:${file.ino} `;
  return locks.split('\n').some((line) => line.includes(id));
}

function inUse(path: string, pid: number, cause?: unknown): ConfigError {
  return new ConfigError(
    'DRIFTLINE_CLICKHOUSE_PATH',
    `${path} is in use by another process (pid ${pid}): the embedded engine opens a directory in one process only; point DRIFTLINE_CLICKHOUSE_URL at \`driftline clickhouse serve\` instead`,
    cause === undefined ? {} : { cause },
  );
}

/**
 * One code path, two connections: `@clickhouse/client` over HTTP to a ClickHouse server, or over the
 * embedded chdb engine through the client's connection hook. Nothing is sent until the first call
 * (`migrate` creates the database), so a handle to an unreachable server can be made and fails per call.
 */
export async function createClickHouse(config: ClickHouseConfig): Promise<ClickHouse> {
  if (!IDENTIFIER.test(config.database)) {
    throw new DriftlineError(
      'CONFIG_INVALID',
      `DRIFTLINE_CLICKHOUSE_DATABASE: ${JSON.stringify(config.database)} is not an identifier`,
    );
  }
  const timeoutMs = config.timeoutMs ?? DEFAULT_CLICKHOUSE_TIMEOUT_MS;
  const client =
    config.mode === 'embedded'
      ? embeddedClient(config.path)
      : createClient({
          url: config.url,
          // The abort signal below bounds each call; this is the client's own socket-level bound.
          request_timeout: timeoutMs,
          // Failures are classified and raised to the caller (which logs them once); the client's
          // own console logging would print every retried one again.
          log: { level: ClickHouseLogLevel.OFF },
          // The embedded engine returns 64-bit integers as JSON numbers; make the server agree.
          clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
          ...(config.username === undefined ? {} : { username: config.username }),
          ...(config.password === undefined ? {} : { password: config.password }),
        });

  // Every call goes through here: bounded by an abort signal (the chdb connection honours it too,
  // unlike request_timeout) and classified by ClickHouse error code.
  async function call<T>(action: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const result = await withDeadline(timeoutMs, fn);
    if (result.ok) return result.value;
    if (result.timedOut) {
      throw new SinkUnavailableError(`clickhouse ${action}: timed out after ${timeoutMs} ms`, {
        cause: result.error,
        details: { clickhouse: { category: 'unavailable', name: 'TIMEOUT' } },
      });
    }
    throw toWarehouseError(action, result.error, config.mode);
  }

  // On the server connection an answer counts only when ClickHouse gave it: a proxy or another
  // service that answers 200 to anything would otherwise "acknowledge" inserts that never landed.
  // A query's unread result is closed, so its socket goes back to the pool.
  const fromClickHouse = (action: string, answer: { response_headers: ResponseHeaders; close?: () => void }): void => {
    if (config.mode !== 'server') return;
    try {
      requireClickHouseHeaders(action, answer.response_headers);
    } catch (error) {
      answer.close?.();
      throw error;
    }
  };

  const table = (name: string) => {
    if (!IDENTIFIER.test(name)) throw new DriftlineError('INTERNAL', `not a table identifier: ${name}`);
    return `${config.database}.${name}`;
  };
  // The table's column types as the engine has them (migrations included), by name.
  const columnTypes = async (name: string): Promise<Map<string, string>> => {
    table(name);
    const rows = await call('query', async (abort_signal) => {
      const result = await client.query({
        query: 'SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {table:String}',
        query_params: { db: config.database, table: name },
        format: 'JSONEachRow',
        abort_signal,
      });
      fromClickHouse('query', result);
      return result.json<{ name: string; type: string }>();
    });
    return new Map(rows.map((r) => [r.name, r.type]));
  };
  return {
    database: config.database,
    mode: config.mode,
    timeoutMs,
    table,
    async insert(name, rows) {
      if (rows.length === 0) return;
      const action = `insert into ${name}`;
      // JSON has no NaN or ±Infinity: they are sent as null, which ClickHouse stores as 0 in a
      // column that is not Nullable. Column types are looked up only when such a number is present.
      const nonFinite = nonFiniteValues(rows);
      if (nonFinite.size > 0) {
        const types = await columnTypes(name);
        for (const [column, value] of nonFinite) rejectNonFinite(action, column, value, types.get(column));
      }
      await call(action, async (abort_signal) => {
        const result = await client.insert({
          table: table(name),
          values: [...rows],
          format: 'JSONEachRow',
          abort_signal,
        });
        fromClickHouse(action, result);
      });
    },
    select<T>(sql: string, params: QueryParams = {}) {
      return call('query', async (abort_signal) => {
        const result = await client.query({
          query: sql,
          query_params: { ...params },
          format: 'JSONEachRow',
          abort_signal,
        });
        fromClickHouse('query', result);
        return result.json<T>();
      });
    },
    selectEach(sql, params, onRows) {
      return call('query', async (abort_signal) => {
        const result = await client.query({
          query: sql,
          query_params: { ...params },
          format: 'JSONCompactEachRow',
          abort_signal,
        });
        fromClickHouse('query', result);
        for await (const rows of result.stream<unknown[]>()) onRows(rows.map((row) => row.json<unknown[]>()));
      });
    },
    selectTyped(sql, params = {}) {
      return call('query', async (abort_signal) => {
        const result = await client.query({ query: sql, query_params: { ...params }, format: 'JSON', abort_signal });
        fromClickHouse('query', result);
        return (await result.json()) as unknown as TypedResult;
      });
    },
    async command(sql) {
      await call('command', async (abort_signal) => {
        const result = await client.command({ query: sql, abort_signal });
        fromClickHouse('command', result);
      });
    },
    async verify() {
      if (config.mode !== 'server') return;
      // The error answer is read here, not thrown by the client, which would drop its status and headers.
      const answer = await call('connect', async (abort_signal) => {
        const result = await client.exec({
          query: 'SELECT version() FORMAT JSONEachRow',
          ignore_error_response: true,
          abort_signal,
        });
        return {
          status: result.http_status_code ?? 0,
          headers: result.response_headers,
          body: await readText(result.stream, MAX_PROBE_BYTES),
        };
      });
      verifyServer(config.url, answer);
    },
    close: async () => {
      if (config.mode === 'server') await client.close();
    },
  };
}

type ResponseHeaders = Readonly<Record<string, string | string[] | undefined>>;

/**
 * ClickHouse (and `driftline clickhouse serve`) answers every query with X-ClickHouse-Query-Id and
 * X-ClickHouse-Summary. An answer with neither came from something else — a proxy's page, another
 * service on that port — so it acknowledges nothing: retriable, nothing is committed past it.
 */
function requireClickHouseHeaders(action: string, headers: ResponseHeaders): void {
  if (headers['x-clickhouse-query-id'] !== undefined || headers['x-clickhouse-summary'] !== undefined) return;
  throw new SinkUnavailableError(
    `clickhouse ${action}: NOT_CLICKHOUSE: the answer carries no X-ClickHouse-Query-Id or X-ClickHouse-Summary header, so it is not ClickHouse's (DRIFTLINE_CLICKHOUSE_URL, or a proxy in front of it): not counted as done`,
    { details: { clickhouse: { category: 'unavailable', name: 'NOT_CLICKHOUSE' } } },
  );
}

/** The probe reads at most this much of an answer: a version, or the start of an error page. */
const MAX_PROBE_BYTES = 16 * 1024;

async function readText(stream: Readable, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    chunks.push(bytes);
    size += bytes.length;
    if (size >= limit) break; // leaving the loop destroys the stream
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

/** `{"version()":"24.8.1.1"}`, nothing else: what ClickHouse answers to the probe. */
// A release's digits, then whatever a build appends (`23.8.16.42.altinitystable`, `25.3.2.39-lts`).
const VERSION_ROW = /^\{"version\(\)":"(\d+\.\d+[^"\\]*)"\}\n?$/;

export interface ProbeAnswer {
  readonly status: number;
  readonly headers: ResponseHeaders;
  readonly body: string;
}

/**
 * Whether the answer to `SELECT version()` is ClickHouse's. Any X-ClickHouse-* header: ClickHouse
 * (a 2xx must carry the version; an error, e.g. bad credentials, is classified by its code as every
 * call's is). Without them: a 5xx, 408 or 429 is a proxy in front of a ClickHouse that is down —
 * retriable, a starting service waits for it — and anything else (200 to everything, a 404, another
 * service's redirect) is the wrong URL: a ConfigError naming DRIFTLINE_CLICKHOUSE_URL, at once.
 */
export function verifyServer(url: string, answer: ProbeAnswer): void {
  const where = redactCredentials(url);
  const text = cutText(answer.body.replace(/\s+/g, ' ').trim(), 120);
  const excerpt = text === '' ? '(empty body)' : JSON.stringify(text);
  const fromClickHouse = Object.keys(answer.headers).some((h) => h.toLowerCase().startsWith('x-clickhouse-'));
  const ok = answer.status >= 200 && answer.status < 300;
  if (fromClickHouse) {
    if (ok && VERSION_ROW.test(answer.body)) return;
    if (!ok) throw toWarehouseError('connect', new Error(answer.body), 'server');
  } else if (answer.status >= 500 || answer.status === 408 || answer.status === 429) {
    throw new SinkUnavailableError(
      `clickhouse connect: DRIFTLINE_CLICKHOUSE_URL ${where} answered HTTP ${answer.status} without ClickHouse's headers (a proxy whose ClickHouse is down?): ${excerpt}`,
      { details: { clickhouse: { category: 'unavailable', name: 'NOT_CLICKHOUSE' } } },
    );
  }
  throw new ConfigError(
    'DRIFTLINE_CLICKHOUSE_URL',
    `${where} is not a ClickHouse server: SELECT version() was answered with HTTP ${answer.status}${fromClickHouse ? '' : ' and no X-ClickHouse-* header'}: ${excerpt}`,
  );
}

/** Columns holding NaN or ±Infinity in some row (top level or inside an array or map), with the first such value. */
function nonFiniteValues(rows: ReadonlyArray<object>): Map<string, number> {
  const found = new Map<string, number>();
  const scan = (column: string, value: unknown, depth: number): void => {
    if (typeof value === 'number') {
      if (!Number.isFinite(value) && !found.has(column)) found.set(column, value);
    } else if (value !== null && typeof value === 'object' && depth < 4) {
      for (const inner of Object.values(value)) scan(column, inner, depth + 1);
    }
  };
  for (const row of rows) for (const [column, value] of Object.entries(row)) scan(column, value, 0);
  return found;
}

/**
 * A non-finite number can only be a NULL: fine where the column (or, inside an array or map, its
 * element) is Nullable; anywhere else ClickHouse would store 0 — poison, it can never succeed.
 * An unknown column or table is left to ClickHouse (which skips the key, or refuses the table).
 */
function rejectNonFinite(action: string, column: string, value: number, type: string | undefined): void {
  if (type === undefined || /Nullable\(/.test(type)) return;
  throw new DriftlineError(
    'SINK_REJECTED',
    `clickhouse ${action}: NON_FINITE_NUMBER: column ${column} (${type}) got ${value}, which it cannot hold (ClickHouse would store 0)`,
    { retriable: false, details: { clickhouse: { category: 'rejected', name: 'NON_FINITE_NUMBER', column } } },
  );
}
