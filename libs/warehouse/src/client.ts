import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type ClickHouseClient, ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { ConfigError, DriftlineError, SinkUnavailableError, withDeadline } from '@driftline/core';
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
    throw toWarehouseError(action, result.error);
  }

  const table = (name: string) => {
    if (!IDENTIFIER.test(name)) throw new DriftlineError('INTERNAL', `not a table identifier: ${name}`);
    return `${config.database}.${name}`;
  };
  return {
    database: config.database,
    mode: config.mode,
    timeoutMs,
    table,
    async insert(name, rows) {
      if (rows.length === 0) return;
      await call(`insert into ${name}`, (abort_signal) =>
        client.insert({ table: table(name), values: [...rows], format: 'JSONEachRow', abort_signal }),
      );
    },
    select<T>(sql: string, params: QueryParams = {}) {
      return call('query', async (abort_signal) => {
        const result = await client.query({
          query: sql,
          query_params: { ...params },
          format: 'JSONEachRow',
          abort_signal,
        });
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
        for await (const rows of result.stream<unknown[]>()) onRows(rows.map((row) => row.json<unknown[]>()));
      });
    },
    selectTyped(sql, params = {}) {
      return call('query', async (abort_signal) => {
        const result = await client.query({ query: sql, query_params: { ...params }, format: 'JSON', abort_signal });
        return (await result.json()) as unknown as TypedResult;
      });
    },
    async command(sql) {
      await call('command', (abort_signal) => client.command({ query: sql, abort_signal }));
    },
    close: async () => {
      if (config.mode === 'server') await client.close();
    },
  };
}
