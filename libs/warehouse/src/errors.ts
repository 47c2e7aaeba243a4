import { STATUS_CODES } from 'node:http';
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
  /**
   * The errno for which the machine refused ClickHouse's system call, when its message says one: a
   * resource that ran out (ENOSPC, EROFS, EMFILE, …), a permission (EACCES, EPERM) or a data
   * directory whose layout is broken (ENOENT, ENOTDIR, EISDIR, ELOOP, ENAMETOOLONG).
   */
  readonly errno?: string;
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

// What either connection throws without a code for its own transport: the client's request
// timeout, an aborted request, a dropped socket; chdb's closed connection. (A proxy's or load
// balancer's page is not listed here: in server mode every answer without a ClickHouse code retries,
// see ANSWER_WITHOUT_CODE.)
const TRANSPORT_MESSAGE =
  /^Timeout error\.|The user aborted a request|socket hang up|Query aborted|ChdbConnection is closed/i;

// Errno values that are the machine's, never the rows': a machine out of a resource (disk, inodes,
// files, memory, processes) or with a failing or read-only disk is `unavailable`; a data directory
// this user may no longer write (a restore or a chown gone wrong) is `environment`: every record
// would fail alike, so the partition pauses. Under a code in no table they were `unknown`, so a full
// inode table, EMFILE or a directory made unwritable dead-lettered every record (found by reviews).
// So is a data directory whose layout is broken — a path of it gone (ENOENT), a file where a
// directory belongs or the reverse (ENOTDIR, EISDIR), a symlink loop (ELOOP), a path longer than the
// system takes (ENAMETOOLONG): driftline never hands the engine a path taken from a record (no
// file() or INTO OUTFILE), and the engine names its parts itself (a partition id is a number or a
// hash, of bounded length), so such a path is always the deployment's. A `store/` replaced by a file
// dead-lettered 300 counted predictions as `unknown` (found by a review).
// Each with the text glibc's strerror gives it, which the engine prints.
const MACHINE_ERRNOS: Readonly<Record<number, MachineErrno>> = {
  1: { name: 'EPERM', text: 'Operation not permitted', category: 'environment' },
  2: { name: 'ENOENT', text: 'No such file or directory', category: 'environment' },
  5: { name: 'EIO', text: 'Input/output error', category: 'unavailable' },
  11: { name: 'EAGAIN', text: 'Resource temporarily unavailable', category: 'unavailable' },
  12: { name: 'ENOMEM', text: 'Cannot allocate memory', category: 'unavailable' },
  13: { name: 'EACCES', text: 'Permission denied', category: 'environment' },
  20: { name: 'ENOTDIR', text: 'Not a directory', category: 'environment' },
  21: { name: 'EISDIR', text: 'Is a directory', category: 'environment' },
  23: { name: 'ENFILE', text: 'Too many open files in system', category: 'unavailable' },
  24: { name: 'EMFILE', text: 'Too many open files', category: 'unavailable' },
  28: { name: 'ENOSPC', text: 'No space left on device', category: 'unavailable' },
  30: { name: 'EROFS', text: 'Read-only file system', category: 'unavailable' },
  36: { name: 'ENAMETOOLONG', text: 'File name too long', category: 'environment' },
  40: { name: 'ELOOP', text: 'Too many levels of symbolic links', category: 'environment' },
  122: { name: 'EDQUOT', text: 'Disk quota exceeded', category: 'unavailable' },
};

interface MachineErrno {
  readonly name: string;
  readonly text: string;
  readonly category: 'unavailable' | 'environment';
}

// The codes ClickHouse raises for a failed system call (its ErrnoException), checked against the
// engine with `errorCodeToName` (26.7). Only under these is an errno in the message the engine's
// own: another code's message may hold a value it was given, whole — a query parameter it cannot
// parse (457 BAD_QUERY_PARAMETER), a regular expression (427 CANNOT_COMPILE_REGEXP), throwIf's text
// (395) — and a value holding ", errno: 28, strerror: No space left on device" made a permanent
// error an outage, retried for ever (found by a review).
const SYSTEM_CALL_CODES: Readonly<Record<number, string>> = {
  74: 'CANNOT_READ_FROM_FILE_DESCRIPTOR',
  75: 'CANNOT_WRITE_TO_FILE_DESCRIPTOR',
  76: 'CANNOT_OPEN_FILE',
  77: 'CANNOT_CLOSE_FILE',
  87: 'CANNOT_SEEK_THROUGH_FILE',
  88: 'CANNOT_TRUNCATE_FILE',
  // open() failing with ENOENT: "Cannot open file /…/data.bin: , errno: 2, strerror: No such file or directory".
  107: 'FILE_DOESNT_EXIST',
  109: 'CANNOT_BLOCK_SIGNAL',
  110: 'CANNOT_UNBLOCK_SIGNAL',
  111: 'CANNOT_MANIPULATE_SIGSET',
  112: 'CANNOT_WAIT_FOR_SIGNAL',
  114: 'CANNOT_CLOCK_GETTIME',
  172: 'CANNOT_CREATE_DIRECTORY',
  173: 'CANNOT_ALLOCATE_MEMORY',
  204: 'CANNOT_FSYNC',
  214: 'CANNOT_STATVFS',
  239: 'CANNOT_MUNMAP',
  240: 'CANNOT_MREMAP',
  272: 'CANNOT_IO_SUBMIT',
  273: 'CANNOT_IO_GETEVENTS',
  274: 'AIO_READ_ERROR',
  275: 'AIO_WRITE_ERROR',
  294: 'CANNOT_WRITE_TO_FILE',
  298: 'CANNOT_PIPE',
  299: 'CANNOT_FORK',
  301: 'CANNOT_CREATE_CHILD_PROCESS',
  303: 'CANNOT_SELECT',
  304: 'CANNOT_WAITPID',
  400: 'CANNOT_STAT',
  402: 'CANNOT_IOSETUP',
  411: 'PTHREAD_ERROR',
  413: 'CANNOT_SET_SIGNAL_HANDLER',
  423: 'CANNOT_GETTIMEOFDAY',
  424: 'CANNOT_LINK',
  425: 'SYSTEM_ERROR',
  445: 'CANNOT_MPROTECT',
  458: 'CANNOT_UNLINK',
  459: 'CANNOT_SET_THREAD_PRIORITY',
  460: 'CANNOT_CREATE_TIMER',
  461: 'CANNOT_SET_TIMER_PERIOD',
  463: 'CANNOT_FCNTL',
  468: 'CANNOT_PTHREAD_ATTR',
  502: 'CANNOT_SIGQUEUE',
  531: 'CANNOT_FSTAT',
  566: 'CANNOT_RMDIR',
  573: 'EPOLL_ERROR',
  586: 'CANNOT_CREATE_FILE',
  590: 'CANNOT_SYSCONF',
  615: 'CANNOT_ADVISE',
  625: 'IO_SETUP_ERROR',
  635: 'CANNOT_POLL',
  641: 'CANNOT_APPEND_TO_FILE',
  661: 'CANNOT_SEND_SIGNAL',
  678: 'IO_URING_INIT_FAILED',
  679: 'IO_URING_SUBMIT_ERROR',
  757: 'CANNOT_GET_THREAD_PRIORITY',
};

// ClickHouse's wording of an errno, appended to the message of the call that failed (26.x: "Cannot
// open file /x: , errno: 24, strerror: Too many open files"; before: "…, errno: 24, strerror: …"),
// the text followed by the end of the message, '.', ':' (context added after) or a line break.
const ERRNO_IN_MESSAGE = /, errno: (\d+), strerror: /g;
const AFTER_STRERROR = /^(?:$|[.:\n])/;

/**
 * The errno a system call's failure names: every `, errno: N, strerror: TEXT` of the message names
 * the same N, with N's own text. ClickHouse appends one errno to an exception; a message naming two,
 * or an errno with another text, holds text from elsewhere (a path, a query echoed), so none is
 * trusted.
 */
function systemCallErrno(message: string): MachineErrno | undefined {
  let found: MachineErrno | undefined;
  for (const m of message.matchAll(ERRNO_IN_MESSAGE)) {
    const errno = MACHINE_ERRNOS[Number(m[1])];
    const rest = message.slice(m.index + m[0].length);
    const worded =
      errno !== undefined && rest.startsWith(errno.text) && AFTER_STRERROR.test(rest.slice(errno.text.length));
    if (!worded || (found !== undefined && found !== errno)) return undefined;
    found = errno;
  }
  return found;
}

const STD_EXCEPTION = 1001;
// libc++'s std::filesystem error, which ClickHouse reports as STD_EXCEPTION (1001) with only the
// errno's text: "filesystem error: in create_directories: No space left on device [\"/path\"]".
const FILESYSTEM_ERROR = /filesystem error: in [^\n[]*?: ([^\n:[]+?)(?: \[|\.?\s*$)/;

// TOO_MANY_PARTS (252) names two failures. "Too many parts (3001 …). Merges are processing
// significantly slower than inserts" is the table's state, which merges clear: retried. "Too many
// partitions for single INSERT block (more than 100)" (newer servers: "for a single INSERT block") is
// the rows' spread, refused again on every retry of the same block: a refusal bisection splits (its
// halves touch fewer partitions, one row touches one), never an outage. Retried as one, a batch over
// more than 100 months stalled its partition for ever (found by a review). Every insert lifts the
// limit (client.ts); this is for a block that still meets it.
const TOO_MANY_PARTS = 252;
const TOO_MANY_PARTITIONS_IN_BLOCK = /Too many partitions for (?:a )?single INSERT block/;

/** The errno a ClickHouse error of `code` says the machine refused the call for, when it says one. */
function machineErrno(code: number, message: string): MachineErrno | undefined {
  if (code === STD_EXCEPTION) {
    const text = FILESYSTEM_ERROR.exec(message)?.[1];
    return Object.values(MACHINE_ERRNOS).find((errno) => errno.text === text);
  }
  return SYSTEM_CALL_CODES[code] === undefined ? undefined : systemCallErrno(message);
}

// "Code: 41. DB::Exception: ... (CANNOT_PARSE_DATETIME)" as either connection words it.
const CODE_IN_MESSAGE = /Code: (\d+)\. DB::Exception: .*?\(([A-Z][A-Z0-9_]{2,})\)/s;

/**
 * ClickHouse before 25.11 writes an exception raised after its 200 went out (a memory or time limit
 * reached mid-result) as plain text after the rows, where the client finds a row that does not parse.
 * That text as an Error, classified by its code; undefined when `text` holds no exception.
 */
export function exceptionInAnswer(text: string): Error | undefined {
  const at = text.lastIndexOf('DB::Exception: ');
  if (at < 0) return undefined;
  const start = text.lastIndexOf('Code: ', at);
  const exception = text.slice(start < 0 ? at : start).trim();
  return CODE_IN_MESSAGE.test(exception) ? new Error(cutText(exception, 4_096)) : undefined;
}

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

/** Which connection a call went through: the rule for an error without a ClickHouse code differs. */
export type ClickHouseConnection = 'server' | 'embedded';

/** `details.clickhouse.name` of a server answer that carries no ClickHouse error code. */
export const ANSWER_WITHOUT_CODE = 'NO_CLICKHOUSE_CODE';
/** `details.clickhouse.name` of a proxy's refusal of a request for its size (HTTP 413). */
export const ANSWER_TOO_LARGE = 'REQUEST_TOO_LARGE';
/** `details.clickhouse.name` of a result longer than a JS string can hold (the client's own error). */
const RESPONSE_TOO_LARGE = 'RESPONSE_TOO_LARGE';
/** `details.clickhouse.name` of a ClickHouse answer that does not parse in the format asked for. */
const UNREADABLE_ANSWER = 'UNREADABLE_ANSWER';
/** `details.clickhouse.name` of an answer compressed with an encoding the client cannot decode. */
const UNSUPPORTED_ENCODING = 'UNSUPPORTED_ENCODING';
/** `details.clickhouse.name` of an error @clickhouse/client raises about the call itself, before sending it. */
const CLIENT_REFUSED = 'CLIENT_REFUSED';
const TOO_LARGE_ANSWER = /\b413\b|Request Entity Too Large|Payload Too Large|Content Too Large|request body too large/i;
/**
 * `details.clickhouse.name` of a server's refusal of a request's URL or headers (HTTP 414, or 431 from
 * a Node server, whose header bound counts the URL): query parameters travel in the URL, so the same
 * query is refused on every retry — never an outage.
 */
export const ANSWER_URL_TOO_LONG = 'REQUEST_URI_TOO_LONG';
// nginx answers an over-long request line 414 and over-large headers 400 with this title.
const URL_TOO_LONG_ANSWER =
  /\b414\b|\b431\b|URI Too Long|Request-URI Too Large|Request Header Fields Too Large|Request Header Or Cookie Too Large/i;

// What @clickhouse/client (1.23) raises itself as a plain Error without a code, by message (its other
// plain Errors are the body of a failed answer: a proxy's page). Each repeats for the same call, so
// none is an outage — except an encoding the client cannot decode, which fails every call alike (a
// proxy compressing answers): the deployment, retried like the environment codes.
// - a result longer than a JS string (result.text(), FORMAT JSON): utils/stream.js getAsText
const CLIENT_RESPONSE_TOO_LARGE = /^The response length exceeds the maximum allowed size of a string/;
// - ClickHouse >= 25.11 reported an exception after the 200 and its trailer is cut: common/utils/stream.js
const CLIENT_UNREADABLE_ANSWER =
  /^there was an error in the stream(, but the last chunk is malformed|; failed to parse the message length)/;
// - a Content-Encoding it does not decode: connection/compression.js
const CLIENT_ENCODING = /^Unexpected encoding: |^Received a zstd-compressed response, but this Node\.js runtime/;
// - the call cannot be built (a parameter or setting value, the values to insert, the format, a result
//   read twice): common/data_formatter/*, utils/encoder.js, result_set.js, common/utils/multipart.js
const CLIENT_REFUSAL =
  /^(Unsupported value in query (parameters|settings): |Cannot encode values of type |Insert expected "values" |Insert for \w+ expected Readable Stream|\w+ format is not streamable\.|The client does not support JSON encoding in |Cannot decode \w+ as JSON|Stream has been already consumed|Invalid multipart part name: |Unsupported request compression codec: )/;

/**
 * Whether an error without a ClickHouse code is the body of an answer that failed: @clickhouse/client
 * drops the HTTP status and turns it into a plain `new Error(body)`. TypeError, RangeError,
 * SyntaxError and errors with a Node code are raised in this process: not an answer.
 */
function isFailedAnswer(error: unknown): boolean {
  if (!(error instanceof Error) || (error as { code?: unknown }).code !== undefined) return false;
  return Object.getPrototypeOf(error) === Error.prototype;
}

/** The client's own errors (the inventory above), on either connection: the same call fails alike. */
function clientOwnError(error: unknown, message: string): Omit<ClickHouseErrorInfo, 'message'> | undefined {
  if (error instanceof SyntaxError || CLIENT_UNREADABLE_ANSWER.test(message)) {
    // ClickHouse's headers are checked before an answer is read (client.ts), so this is ClickHouse's
    // answer and it does not parse: cut short and ended cleanly by something in between, it is cut
    // again when read again. A connection dropped mid-answer fails with a Node code instead.
    return { category: 'rejected', name: UNREADABLE_ANSWER };
  }
  if (!isFailedAnswer(error)) return undefined;
  if (CLIENT_RESPONSE_TOO_LARGE.test(message)) return { category: 'rejected', name: RESPONSE_TOO_LARGE };
  if (CLIENT_ENCODING.test(message)) return { category: 'environment', name: UNSUPPORTED_ENCODING };
  if (CLIENT_REFUSAL.test(message)) return { category: 'unknown', name: CLIENT_REFUSED };
  return undefined;
}

/**
 * A failed answer whose HTTP status refused the request's URL or headers (414, 431), as an error the
 * classification reads: @clickhouse/client drops the status, and Node's 431 has no body. An error
 * with a ClickHouse code keeps it (the code names the failure better).
 */
export function withRefusedUrlStatus(error: unknown, status: number): unknown {
  if (clickhouseCode(error) !== undefined || !isFailedAnswer(error)) return error;
  const body = (error as Error).message;
  return new Error(`HTTP ${status} ${STATUS_CODES[status] ?? ''}${body === '' ? '' : `: ${body}`}`, { cause: error });
}

/** An answer's body as one readable line: a proxy's HTML page without its tags, or that it was empty. */
function answerText(body: string): string {
  const text = body
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return `an answer without a ClickHouse error code (a proxy or load balancer in front of ClickHouse, or not ClickHouse): ${text === '' ? '(empty body)' : text}`;
}

/**
 * Classifies a failed ClickHouse call, from either connection, by ClickHouse error code:
 * unavailable/overloaded/timed out and environment (schema, auth) → retry; a value the server
 * refused → poison. A system call's failure under a code in none of the tables takes its errno's
 * category (`, errno: 28, strerror: No space left on device` under a system call's code, a
 * std::filesystem error's "Read-only file system" under STD_EXCEPTION): a full or read-only disk
 * or EMFILE is an outage, a data directory made unwritable or broken (a path of it gone or replaced
 * by a file) the environment, never a dead letter;
 * the same words under another code are a value echoed, not the machine. Only ClickHouse's own errors carry a
 * code (`Code: N. DB::Exception`, the X-ClickHouse-Exception-Code header), so only they can be
 * poison. Without a code: a transport failure retries; @clickhouse/client's own errors are
 * classified by what they say (an answer too large or unreadable is refused: the same call fails
 * alike); on the server connection, anything else the server (or a proxy, a load balancer, a wrong
 * endpoint) answered retries — an outage page is never the record's fault. Anything else (an embedded-engine failure without a code, a row this
 * process cannot serialize) is `unknown` and not retried, so a genuinely unknown failure cannot
 * pause a partition forever (bisection isolates it, the DLQ keeps the record).
 */
export function classifyClickHouseError(error: unknown, connection: ClickHouseConnection): ClickHouseErrorInfo {
  const message = error instanceof Error ? error.message : String(error);
  const ch = clickhouseCode(error);
  if (ch !== undefined) {
    const known = UNAVAILABLE_CODES[ch.code] ?? ENVIRONMENT_CODES[ch.code] ?? REJECTED_CODES[ch.code];
    const name = ch.name ?? known;
    const base = { code: ch.code, ...(name === undefined ? {} : { name }), message };
    if (ENVIRONMENT_CODES[ch.code] !== undefined) return { category: 'environment', ...base };
    if (REJECTED_CODES[ch.code] !== undefined) return { category: 'rejected', ...base };
    if (ch.code === TOO_MANY_PARTS && TOO_MANY_PARTITIONS_IN_BLOCK.test(message))
      return { category: 'rejected', ...base };
    // A system call's failure (a std::filesystem error's too) names its errno: a code of no table
    // takes the errno's category; a retried code keeps its own.
    const errno = machineErrno(ch.code, message);
    const category = UNAVAILABLE_CODES[ch.code] === undefined ? (errno?.category ?? 'unknown') : 'unavailable';
    return { category, ...base, ...(errno === undefined ? {} : { errno: errno.name }) };
  }
  const transport = transportCode(error);
  if (transport !== undefined) return { category: 'unavailable', name: transport, message };
  const own = clientOwnError(error, message);
  if (own !== undefined) return { ...own, message };
  if (connection === 'server' && isFailedAnswer(error)) {
    // A proxy refusing the request for its size (nginx's client_max_body_size is 1 MiB): a
    // refusal bisection can split, never an outage (retried as one, the same batch forever).
    if (TOO_LARGE_ANSWER.test(message))
      return { category: 'rejected', name: ANSWER_TOO_LARGE, message: answerText(message) };
    if (URL_TOO_LONG_ANSWER.test(message))
      return { category: 'rejected', name: ANSWER_URL_TOO_LONG, message: answerText(message) };
    return { category: 'unavailable', name: ANSWER_WITHOUT_CODE, message: answerText(message) };
  }
  return { category: 'unknown', message };
}

const MAX_MESSAGE = 500;

/**
 * The DriftlineError for a failed call: SinkUnavailableError (retriable) or SINK_REJECTED
 * (not retriable). The ClickHouse name and number lead the message — it becomes the DLQ reason
 * header — and sit in `details.clickhouse`.
 */
export function toWarehouseError(action: string, error: unknown, connection: ClickHouseConnection): DriftlineError {
  if (error instanceof DriftlineError) return error;
  const info = classifyClickHouseError(error, connection);
  const label = info.code === undefined ? (info.name ?? 'unknown error') : `${info.name ?? 'code'} (${info.code})`;
  const text = info.message.length > MAX_MESSAGE ? `${cutText(info.message, MAX_MESSAGE)}…` : info.message;
  const message = `clickhouse ${action}: ${label}: ${text.trim()}`;
  const details = {
    clickhouse: {
      category: info.category,
      ...(info.code === undefined ? {} : { code: info.code }),
      ...(info.name === undefined ? {} : { name: info.name }),
      ...(info.errno === undefined ? {} : { errno: info.errno }),
    },
  };
  if (info.category === 'unavailable' || info.category === 'environment') {
    return new SinkUnavailableError(message, { cause: error, details });
  }
  // A read that fails for good is not the records' fault (an answer too large or unreadable, a query
  // the server refuses): INTERNAL, a processor fault the consumer holds before dead-lettering, where
  // SINK_REJECTED dead-lettered every record of the batch at once (found by a review). A failure
  // one record's value causes (a parameter it supplies) is still isolated by bisection.
  if (action === 'query') return new DriftlineError('INTERNAL', message, { cause: error, details, retriable: false });
  return new DriftlineError('SINK_REJECTED', message, { cause: error, details, retriable: false });
}
