// The part of ClickHouse's HTTP interface the host serves, as pure functions: what a request asks
// for (SQL, `param_*` values, settings, database, output format) and how an error is answered.
// What @clickhouse/client sends is the reference (its node_base_connection and client-common's
// url.ts / format_query_params.ts); the engine side is in engine.ts.

/** A ClickHouse error as the host answers it: the number, the name and the HTTP status. */
export class HostError extends Error {
  constructor(
    readonly code: number,
    readonly type: string,
    message: string,
    readonly status = 500,
  ) {
    super(message);
    this.name = 'HostError';
  }
}

export interface HostRequest {
  /** The statement: URL `query` and body joined as the server joins them (INSERT data after a newline). */
  readonly sql: string;
  /** `param_<name>` values exactly as sent (the escaped text ClickHouse parses by the placeholder's type). */
  readonly params: Readonly<Record<string, string>>;
  /** Settings for the engine (HTTP-only ones removed). */
  readonly settings: Readonly<Record<string, string>>;
  readonly database: string | undefined;
  /** Output format when the statement has no FORMAT clause (`default_format`, else TabSeparated). */
  readonly format: string;
  readonly queryId: string | undefined;
  /** `enable_http_compression=1`: the response may be compressed when the client accepts it. */
  readonly compression: boolean;
  /** An INSERT whose data part is empty: the server inserts nothing and answers 200. */
  readonly emptyInsert: boolean;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

// URL keys that are not settings (ClickHouse's HTTPHandler reserves them).
const RESERVED = new Set([
  'query',
  'query_id',
  'database',
  'default_format',
  'user',
  'password',
  'quota_key',
  'session_id',
  'session_timeout',
  'session_check',
  'role',
  'stacktrace',
  'compress',
  'decompress',
  'buffer_size',
  'wait_end_of_query',
  'with_stacktrace',
]);

// Settings of the HTTP layer (no meaning in the engine; chdb refuses some of them), and `readonly`,
// which would make the one shared session read-only for every later client.
const NOT_FOR_ENGINE = new Set([
  'enable_http_compression',
  'send_progress_in_http_headers',
  'http_headers_progress_interval_ms',
  'http_send_progress_interval_ms',
  'http_response_buffer_size',
  'http_zlib_compression_level',
  'http_native_compression_disable_checksumming_on_decompress',
  'http_wait_end_of_query',
  'cancel_http_readonly_queries_on_client_close',
  'add_http_cors_header',
  'readonly',
]);

/**
 * Reads a request the way ClickHouse's HTTP handler does: the query from the URL and/or the body
 * (when both, the body follows the URL's query on a new line: INSERT data), `param_*` values,
 * settings as the other URL keys, `database`, `default_format`.
 */
/** A statement that only reads (what ClickHouse's readonly mode allows a GET). */
const READ_ONLY_STATEMENT = /^[\s(]*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN)\b/i;
/** An INSERT whose rows come after it, in the body: it ends with its FORMAT (or VALUES without rows). */
const INSERT_AWAITING_DATA = /^\s*INSERT\b[\s\S]*\b(FORMAT\s+\w+|VALUES)\s*;?\s*$/i;

export function parseHostRequest(method: string, url: URL, body: string): HostRequest {
  const params: Record<string, string> = {};
  const settings: Record<string, string> = {};
  for (const [key, value] of url.searchParams) {
    if (key.startsWith('param_')) {
      const name = key.slice(6);
      if (!IDENTIFIER.test(name))
        throw new HostError(36, 'BAD_ARGUMENTS', `bad query parameter name ${JSON.stringify(key)}`, 400);
      params[name] = value;
    } else if (!RESERVED.has(key) && !NOT_FOR_ENGINE.has(key)) {
      if (!IDENTIFIER.test(key))
        throw new HostError(115, 'UNKNOWN_SETTING', `Unknown setting ${JSON.stringify(key)}`, 400);
      settings[key] = value;
    }
  }
  const urlQuery = url.searchParams.get('query') ?? '';
  const read = method === 'GET' || method === 'HEAD';
  const text = read ? '' : body;
  const sql = urlQuery === '' ? text : text === '' ? urlQuery : `${urlQuery}\n${text}`;
  if (sql.trim() === '') throw new HostError(62, 'SYNTAX_ERROR', 'Empty query', 400);
  // As ClickHouse's server: a GET only reads. Any page a browser opens can send a GET (an <img>),
  // so a GET that ran DROP TABLE or INSERT INTO FUNCTION file(…) was anyone's (found by a review).
  if (read && !READ_ONLY_STATEMENT.test(sql)) {
    throw new HostError(
      164,
      'READONLY',
      'Cannot execute query in readonly mode: a GET runs reads only (send it as POST)',
      400,
    );
  }
  const database = url.searchParams.get('database') ?? undefined;
  if (database !== undefined && !IDENTIFIER.test(database)) {
    throw new HostError(81, 'UNKNOWN_DATABASE', `Database ${JSON.stringify(database)} is not an identifier`, 404);
  }
  const format = url.searchParams.get('default_format') ?? 'TabSeparated';
  if (!IDENTIFIER.test(format))
    throw new HostError(73, 'UNKNOWN_FORMAT', `Unknown format ${JSON.stringify(format)}`, 400);
  return {
    sql,
    params,
    settings,
    database,
    format,
    queryId: url.searchParams.get('query_id') ?? undefined,
    compression: url.searchParams.get('enable_http_compression') === '1',
    // INSERT … FORMAT X whose data would follow in the body, sent without any; INSERT … SELECT and
    // INSERT … VALUES (…) in the URL run (they were answered 200 and skipped).
    emptyInsert: urlQuery !== '' && INSERT_AWAITING_DATA.test(urlQuery) && text.trim() === '',
  };
}

/** A SQL string literal of `value`: its bytes reach the engine unchanged. */
export function sqlLiteral(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

/** A setting's value in SET: numbers bare (as clickhouse-js's own chdb connection writes them), text quoted. */
function settingValue(value: string): string {
  return /^-?\d+(\.\d+)?$/.test(value) ? value : sqlLiteral(value);
}

/**
 * The one SET statement that puts a request's settings and parameters on the shared session:
 * settings that changed, `DEFAULT` for settings the previous request had and this one has not,
 * every parameter (`SET param_x = '<escaped text>'` is how ClickHouse takes a parameter's text
 * unparsed: the placeholder's type parses it, exactly as the server parses a URL `param_x`).
 * Undefined when there is nothing to set.
 */
export function setStatement(
  request: Pick<HostRequest, 'params' | 'settings'>,
  current: ReadonlyMap<string, string>,
): string | undefined {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(request.settings)) {
    if (current.get(key) !== value) parts.push(`${key} = ${settingValue(value)}`);
  }
  for (const key of current.keys()) {
    if (request.settings[key] === undefined) parts.push(`${key} = DEFAULT`);
  }
  for (const [name, value] of Object.entries(request.params)) parts.push(`param_${name} = ${sqlLiteral(value)}`);
  return parts.length === 0 ? undefined : `SET ${parts.join(', ')}`;
}

// "Code: 60. DB::Exception: Table x doesn't exist. (UNKNOWN_TABLE)", as the engine words its errors.
const ENGINE_ERROR = /^Code: (\d+)\. DB::Exception: (.*?)(?: \(([A-Z][A-Z0-9_]{2,})\))?\s*$/s;

/** The HostError of anything the engine threw: its ClickHouse code, or SYSTEM_ERROR (retriable) without one. */
export function hostErrorFrom(error: unknown): HostError {
  if (error instanceof HostError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const m = ENGINE_ERROR.exec(message);
  const code = (error as { clickhouseCode?: unknown } | null)?.clickhouseCode;
  if (m !== null) return new HostError(Number(m[1]), m[3] ?? 'UNKNOWN', m[2] ?? message);
  if (typeof code === 'number') return new HostError(code, 'UNKNOWN', message);
  // No ClickHouse code: the engine itself failed (closed, aborted). Nothing is wrong with the request.
  return new HostError(425, 'SYSTEM_ERROR', `embedded engine: ${message}`, 503);
}

/**
 * The body of an error response, in the server's words, so @clickhouse/client's parseError (and
 * the warehouse's classification by code) reads it as it reads a server's.
 */
export function exceptionText(error: HostError, version: string): string {
  const text = error.message.replace(/\.?\s*$/, '');
  return `Code: ${error.code}. DB::Exception: ${text}. (${error.type}) (version ${version})\n`;
}

/** Content-Type of a result format (the server's are the same for the formats driftline uses). */
export function contentType(format: string): string {
  if (/^JSON/i.test(format)) return 'application/json; charset=UTF-8';
  if (/^(TabSeparated|TSV)/i.test(format)) return 'text/tab-separated-values; charset=UTF-8';
  if (/^CSV/i.test(format)) return 'text/csv; charset=UTF-8; header=absent';
  return 'text/plain; charset=UTF-8';
}
