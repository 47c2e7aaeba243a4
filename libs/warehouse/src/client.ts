import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import {
  type ClickHouseClient,
  ClickHouseLogLevel,
  createClient,
  type Logger,
  type LogParams,
} from '@clickhouse/client';
import {
  ConfigError,
  cutText,
  DriftlineError,
  redactCredentials,
  SinkUnavailableError,
  withDeadline,
} from '@driftline/core';
import { drainPending } from 'chdb';
import { createChdbConnection } from 'chdb/connection';
import { type ClickHouseConfig, DEFAULT_CLICKHOUSE_TIMEOUT_MS } from './config.js';
import { openEngineDirectory } from './engine-directory.js';
import { exceptionInAnswer, toWarehouseError, withRefusedUrlStatus } from './errors.js';

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

// ClickHouse refuses an insert block whose rows fall in more than `max_partitions_per_insert_block`
// (default 100) partitions: TOO_MANY_PARTS (252), the same rows on every retry. A month-partitioned
// table gets one from a batch over more than 100 months (a backfill, a producer's bad clock: event
// times from 2000 on are valid); the label-joiner retried it for ever and nothing expired (found by
// a review). An insert's rows bound its partitions (a part per partition touched, merged with that
// partition's other parts as usual), so every insert lifts the limit: one rule, no partition key in
// code. `max_partitions_per_insert_block = 0` (unlimited), not `throw_on_max_partitions_per_insert_block
// = 0`: this one is old (19.x), that one newer, and unknown to an older server (UNKNOWN_SETTING on
// every insert). A server profile forbidding the change: SETTING_CONSTRAINT_VIOLATION (452), retried
// as the deployment's (error-codes.ts). The embedded connection sends a call's settings as `SET …;` on
// the process's one session, where this one stays: it concerns inserts only, and every insert sends it.
const INSERT_SETTINGS = { max_partitions_per_insert_block: '0' } as const;

// The embedded engine binds one data directory per process, so its connection is shared by every
// ClickHouse of the process and lives as long as the process.
let embedded: { path: string; client: ClickHouseClient } | undefined;

/**
 * Closes this process's embedded engine, once nothing native is left running (an aborted call's
 * query goes on computing), so its data directory can be removed: the engine otherwise keeps it
 * open until the process ends and can recreate folders under one removed (the demo's run folder).
 * Every ClickHouse of the process must be done with; a later one opens the engine again. A no-op
 * without an embedded engine.
 */
export async function closeEmbeddedEngine(): Promise<void> {
  const open = embedded;
  if (open === undefined) return;
  embedded = undefined;
  await open.client.close();
  await drainPending();
}

/**
 * Whether a call to this process's embedded engine timed out and its query may still be running.
 * chdb cannot interrupt a query (no interrupt in its C ABI): the call rejects at its deadline and
 * the engine computes on to the end, and the process cannot exit before it does — `process.exit`
 * waits in the engine's exit hook (`driftline report` on 7 days of a 9.5 M-row warehouse printed
 * its timeout and then ran on for minutes at 1.4 GB; found by a review). A command that is done
 * ends the process another way when this is true (services/cli with-warehouse.ts). False again once
 * nothing native is left running.
 */
export function embeddedQueryAbandoned(): boolean {
  return abandoned !== undefined;
}

let abandoned: symbol | undefined;

/** Marks a timed-out embedded call as abandoned until every native operation has finished. */
function abandonEmbeddedCall(): void {
  const mark = Symbol('abandoned');
  abandoned = mark;
  void drainPending().then(() => {
    if (abandoned === mark) abandoned = undefined;
  });
}

function embeddedClient(path: string, createDirectory: boolean): ClickHouseClient {
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
  const connection = openEngineDirectory(
    absolute,
    () => createChdbConnection({ path: absolute }),
    'point DRIFTLINE_CLICKHOUSE_URL at `driftline clickhouse serve` instead',
    { create: createDirectory },
  );
  // The connection hook is typed against client-common's Connection; chdb implements that interface.
  const client = createClient({ connection } as unknown as Parameters<typeof createClient>[0]);
  embedded = { path: absolute, client };
  return client;
}

/**
 * One code path, two connections: `@clickhouse/client` over HTTP to a ClickHouse server, or over the
 * embedded chdb engine through the client's connection hook. Nothing is sent until the first call
 * (`migrate` creates the database), so a handle to an unreachable server can be made and fails per call.
 * `createDirectory` (embedded; default true): create the engine's data directory when it is missing.
 * False for a reader: a missing directory, or one holding no engine data, is a ConfigError naming
 * DRIFTLINE_CLICKHOUSE_PATH, and nothing is created (see openEngineDirectory).
 */
export async function createClickHouse(
  config: ClickHouseConfig,
  options: { readonly createDirectory?: boolean } = {},
): Promise<ClickHouse> {
  if (!IDENTIFIER.test(config.database)) {
    throw new DriftlineError(
      'CONFIG_INVALID',
      `DRIFTLINE_CLICKHOUSE_DATABASE: ${JSON.stringify(config.database)} is not an identifier`,
    );
  }
  const timeoutMs = config.timeoutMs ?? DEFAULT_CLICKHOUSE_TIMEOUT_MS;
  const refusedUrls = new Map<string, number>();
  const client =
    config.mode === 'embedded'
      ? embeddedClient(config.path, options.createDirectory ?? true)
      : createClient({
          url: config.url,
          // The abort signal below bounds each call; this is the client's own socket-level bound.
          request_timeout: timeoutMs,
          // Failures are classified and raised to the caller (which logs them once); the client's
          // own console logging would print every retried one again. Its DEBUG line per answer is
          // read for one thing only: the status of an answer refusing the URL (see urlRefusalLog).
          log: { LoggerClass: urlRefusalLog(refusedUrls), level: ClickHouseLogLevel.DEBUG },
          // The embedded engine returns 64-bit integers as JSON numbers; make the server agree.
          clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
          ...(config.username === undefined ? {} : { username: config.username }),
          ...(config.password === undefined ? {} : { password: config.password }),
        });

  // Every call goes through here: bounded by an abort signal (the chdb connection honours it too,
  // unlike request_timeout) and classified by ClickHouse error code.
  // Each call has its own query id, by which a refused URL's status is found.
  async function call<T>(action: string, fn: (signal: AbortSignal, queryId: string) => Promise<T>): Promise<T> {
    const queryId = randomUUID();
    const result = await withDeadline(timeoutMs, (signal) => fn(signal, queryId));
    const refusedStatus = refusedUrls.get(queryId);
    refusedUrls.delete(queryId);
    if (result.ok) return result.value;
    if (result.timedOut) {
      if (config.mode === 'embedded') abandonEmbeddedCall();
      throw new SinkUnavailableError(`clickhouse ${action}: timed out after ${timeoutMs} ms`, {
        cause: result.error,
        details: { clickhouse: { category: 'unavailable', name: 'TIMEOUT' } },
      });
    }
    const error = refusedStatus === undefined ? result.error : withRefusedUrlStatus(result.error, refusedStatus);
    throw toWarehouseError(action, error, config.mode);
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
    const rows = await call('query', async (abort_signal, query_id) => {
      const result = await client.query({
        query: 'SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {table:String}',
        query_params: { db: config.database, table: name },
        format: 'JSONEachRow',
        abort_signal,
        query_id,
      });
      fromClickHouse('query', result);
      return readRows<{ name: string; type: string }>(result.stream());
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
      // JSON has no NaN or ±Infinity: they are sent as null, which ClickHouse stores as its default
      // (0, '') where the type at that place is not Nullable. Column types are looked up only when
      // such a number is present.
      const nonFinite = columnsWithNonFinite(rows);
      if (nonFinite.size > 0) rejectNonFinite(action, rows, nonFinite, await columnTypes(name));
      await call(action, async (abort_signal, query_id) => {
        const result = await client.insert({
          table: table(name),
          values: [...rows],
          format: 'JSONEachRow',
          clickhouse_settings: INSERT_SETTINGS,
          abort_signal,
          query_id,
        });
        fromClickHouse(action, result);
      });
    },
    select<T>(sql: string, params: QueryParams = {}) {
      return call('query', async (abort_signal, query_id) => {
        const result = await client.query({
          query: sql,
          query_params: { ...params },
          format: 'JSONEachRow',
          abort_signal,
          query_id,
        });
        fromClickHouse('query', result);
        return readRows<T>(result.stream());
      });
    },
    selectEach(sql, params, onRows) {
      return call('query', async (abort_signal, query_id) => {
        const result = await client.query({
          query: sql,
          query_params: { ...params },
          format: 'JSONCompactEachRow',
          abort_signal,
          query_id,
        });
        fromClickHouse('query', result);
        for await (const rows of result.stream<unknown[]>()) onRows(rows.map((row) => rowOf<unknown[]>(row)));
      });
    },
    selectTyped(sql, params = {}) {
      return call('query', async (abort_signal, query_id) => {
        const result = await client.query({
          query: sql,
          query_params: { ...params },
          format: 'JSON',
          abort_signal,
          query_id,
        });
        fromClickHouse('query', result);
        const text = await result.text();
        try {
          return JSON.parse(text) as TypedResult;
        } catch (error) {
          throw exceptionInAnswer(text.slice(-MAX_EXCEPTION_CHARS)) ?? error;
        }
      });
    },
    async command(sql) {
      await call('command', async (abort_signal, query_id) => {
        const result = await client.command({ query: sql, abort_signal, query_id });
        fromClickHouse('command', result);
      });
    },
    async verify() {
      if (config.mode !== 'server') return;
      // The error answer is read here, not thrown by the client, which would drop its status and headers.
      const answer = await call('connect', async (abort_signal, query_id) => {
        const result = await client.exec({
          query: 'SELECT version() FORMAT JSONEachRow',
          ignore_error_response: true,
          abort_signal,
          query_id,
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

// Entries left by calls that timed out before their answer came: bounded, never read.
const MAX_REFUSED_URLS = 1_000;

/**
 * A logger for @clickhouse/client that records, by query id, the status of an answer refusing a
 * request's URL or headers (414; 431 from a Node server, whose header bound counts the URL) into
 * `statuses`, and prints nothing. The client drops a failed answer's status (it raises
 * `new Error(body)`) and Node's 431 has no body, so its DEBUG line "got a response" (1.23,
 * socket_pool.js: `args.query_id`, `args.response_status`) is the one place the status is seen.
 */
function urlRefusalLog(statuses: Map<string, number>): new () => Logger {
  return class UrlRefusalLog implements Logger {
    debug({ args }: LogParams): void {
      const status = args?.response_status;
      const queryId = args?.query_id;
      if ((status !== 414 && status !== 431) || typeof queryId !== 'string') return;
      if (statuses.size >= MAX_REFUSED_URLS) statuses.clear();
      statuses.set(queryId, status);
    }
    trace(): void {}
    info(): void {}
    warn(): void {}
    error(): void {}
  };
}

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

/** How deep a row value is searched for NaN or ±Infinity (a column of arrays of tuples of maps is 3). */
const MAX_VALUE_DEPTH = 8;
const NO_COLUMNS: ReadonlySet<string> = new Set();

/** Columns holding NaN or ±Infinity in some row, at the top level or inside an array, map or tuple. */
function columnsWithNonFinite(rows: ReadonlyArray<object>): ReadonlySet<string> {
  let found: Set<string> | undefined;
  for (const row of rows) {
    for (const column of Object.keys(row)) {
      const value: unknown = (row as Record<string, unknown>)[column];
      if (typeof value === 'number' ? !Number.isFinite(value) : holdsNonFinite(value, 1)) {
        found ??= new Set();
        found.add(column);
      }
    }
  }
  return found ?? NO_COLUMNS;
}

function holdsNonFinite(value: unknown, depth: number): boolean {
  if (value === null || typeof value !== 'object' || depth > MAX_VALUE_DEPTH) return false;
  for (const inner of Array.isArray(value) ? value : Object.values(value)) {
    if (typeof inner === 'number' ? !Number.isFinite(inner) : holdsNonFinite(inner, depth + 1)) return true;
  }
  return false;
}

/**
 * A column type as far as a NULL goes: where JSON's null (what NaN and ±Infinity are sent as) lands.
 * `nullable` and `open` (Variant, Dynamic, JSON) keep it as NULL; a `plain` type stores its default
 * (0, '', the first enum value), as do an array, a map and a tuple sent null whole ([], {}, (0, '')).
 */
type NullTarget = { readonly text: string } & (
  | { readonly kind: 'plain' | 'open' }
  | { readonly kind: 'nullable'; readonly inner: NullTarget }
  | { readonly kind: 'array'; readonly element: NullTarget }
  | { readonly kind: 'map'; readonly value: NullTarget }
  | {
      readonly kind: 'tuple';
      readonly elements: ReadonlyArray<{ readonly name: string | undefined; readonly type: NullTarget }>;
    }
);

const TYPE_CALL = /^(\w+)\((.*)\)$/s;
// `name Type` in a named Tuple or Nested; a type itself never has a space right after its first word.
const NAMED_ELEMENT = /^(`(?:[^`\\]|\\.)*`|[A-Za-z_][A-Za-z0-9_]*)\s+(\S.*)$/s;

/** Parses a type as `system.columns` spells it (Tuple elements may be named and span lines). */
function nullTarget(type: string): NullTarget {
  const text = type.trim();
  const call = TYPE_CALL.exec(text);
  const name = call?.[1] ?? text;
  const args = call?.[2] === undefined ? [] : typeArguments(call[2]);
  const tupleOf = (elements: string[]): NullTarget => ({
    text,
    kind: 'tuple',
    elements: elements.map((element) => {
      const named = NAMED_ELEMENT.exec(element);
      return named === null
        ? { name: undefined, type: nullTarget(element) }
        : { name: named[1]!.replace(/^`|`$/g, '').replace(/\\(.)/g, '$1'), type: nullTarget(named[2]!) };
    }),
  });
  switch (name) {
    case 'Nullable':
      return { text, kind: 'nullable', inner: nullTarget(args[0] ?? '') };
    case 'LowCardinality':
      return { ...nullTarget(args[0] ?? ''), text };
    case 'SimpleAggregateFunction':
      return { ...nullTarget(args[1] ?? ''), text };
    case 'Array':
      return { text, kind: 'array', element: nullTarget(args[0] ?? '') };
    case 'Map':
      return { text, kind: 'map', value: nullTarget(args[1] ?? '') };
    case 'Tuple':
      return tupleOf(args);
    case 'Nested':
      return { text, kind: 'array', element: tupleOf(args) };
    case 'Variant':
    case 'Dynamic':
    case 'JSON':
    case 'Object':
      return { text, kind: 'open' };
    default:
      return { text, kind: 'plain' };
  }
}

/** A type's arguments: split at the commas outside parentheses, quotes and backquotes. */
function typeArguments(args: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let start = 0;
  for (let i = 0; i < args.length; i++) {
    const c = args[i];
    if (quote !== undefined) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === "'" || c === '`') quote = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      out.push(args.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(args.slice(start).trim());
  return out;
}

interface MisplacedNonFinite {
  readonly value: number;
  readonly path: string;
  readonly type: NullTarget;
}

/**
 * The first NaN or ±Infinity in `value` at a place of `type` that cannot hold a NULL. A value that
 * does not fit the type (an array for a named Tuple, an object for an Array) is left to ClickHouse,
 * which refuses it by code.
 */
function misplacedNonFinite(value: unknown, type: NullTarget, path: string, depth = 0): MisplacedNonFinite | undefined {
  if (type.kind === 'open' || depth > MAX_VALUE_DEPTH) return undefined;
  if (typeof value === 'number') {
    return Number.isFinite(value) || type.kind === 'nullable' ? undefined : { value, path, type };
  }
  if (value === null || typeof value !== 'object') return undefined;
  const at = (inner: unknown, innerType: NullTarget, key: string | number) =>
    misplacedNonFinite(inner, innerType, `${path}[${JSON.stringify(key)}]`, depth + 1);
  switch (type.kind) {
    case 'nullable':
      return misplacedNonFinite(value, type.inner, path, depth);
    case 'array':
      if (!Array.isArray(value)) return undefined;
      for (let i = 0; i < value.length; i++) {
        const found = at(value[i], type.element, i);
        if (found !== undefined) return found;
      }
      return undefined;
    case 'map':
      if (Array.isArray(value)) return undefined;
      for (const [key, inner] of Object.entries(value)) {
        const found = at(inner, type.value, key);
        if (found !== undefined) return found;
      }
      return undefined;
    case 'tuple':
      for (const [i, element] of type.elements.entries()) {
        // JSONEachRow takes a named Tuple as an object (an array is refused), an unnamed one as an array.
        const inner: unknown = Array.isArray(value)
          ? element.name === undefined
            ? value[i]
            : undefined
          : element.name === undefined
            ? undefined
            : (value as Record<string, unknown>)[element.name];
        const found = at(inner, element.type, element.name ?? i);
        if (found !== undefined) return found;
      }
      return undefined;
    default:
      return undefined;
  }
}

/**
 * A non-finite number can only be a NULL: fine where the type at its place is Nullable (also inside
 * LowCardinality) or Variant, Dynamic, JSON; anywhere else ClickHouse would store a default —
 * poison, it can never succeed. An unknown column or table is left to ClickHouse (which skips the
 * key, or refuses the table).
 */
function rejectNonFinite(
  action: string,
  rows: ReadonlyArray<object>,
  columns: ReadonlySet<string>,
  types: ReadonlyMap<string, string>,
): void {
  for (const column of columns) {
    const typeText = types.get(column);
    if (typeText === undefined) continue;
    const type = nullTarget(typeText);
    for (const row of rows) {
      const found = misplacedNonFinite((row as Record<string, unknown>)[column], type, '');
      if (found === undefined) continue;
      const where = found.path === '' ? '' : ` at ${column}${found.path} (${found.type.text})`;
      throw new DriftlineError(
        'SINK_REJECTED',
        `clickhouse ${action}: NON_FINITE_NUMBER: column ${column} (${type.text}) got ${found.value}${where}, which it cannot hold (ClickHouse would store ${found.type.kind === 'plain' ? 'its default, e.g. 0' : 'an empty value'})`,
        { retriable: false, details: { clickhouse: { category: 'rejected', name: 'NON_FINITE_NUMBER', column } } },
      );
    }
  }
}

type AnswerRow = { readonly text: string; json<T>(): T };

/** The most of an answer's end searched for ClickHouse's exception text. */
const MAX_EXCEPTION_CHARS = 64 * 1024;

/** A row of a JSON…EachRow answer; one that does not parse may be ClickHouse's exception text (errors.ts). */
function rowOf<T>(row: AnswerRow): T {
  try {
    return row.json<T>();
  } catch (error) {
    throw exceptionInAnswer(row.text.slice(-MAX_EXCEPTION_CHARS)) ?? error;
  }
}

async function readRows<T>(batches: AsyncIterable<ReadonlyArray<AnswerRow>>): Promise<T[]> {
  const rows: T[] = [];
  for await (const batch of batches) for (const row of batch) rows.push(rowOf<T>(row));
  return rows;
}
