import { CONFIG_ERROR_EXIT_CODE, ConfigError, configErrorLine, cutText, DriftlineError } from '@driftline/core';

/**
 * Exit codes of the command (documented in the CLI README and `driftline --help`). `unavailable` is
 * sysexits' EX_UNAVAILABLE, as `config` is its EX_CONFIG: a server the command needs did not answer,
 * so a script can tell "try again later" from a bug (1) or a wrong setting (78).
 */
export const EXIT = { ok: 0, internal: 1, usage: 2, data: 3, unavailable: 69, config: CONFIG_ERROR_EXIT_CODE } as const;

export class UsageError extends Error {}

/** A server the command needs could not be reached; the message is the whole line (exit 69). */
export class UnavailableError extends Error {}

// Why a ClickHouse server did not answer at all (`details.clickhouse.name` of a transport failure on
// the server connection, or a proxy's page: NO_CLICKHOUSE_CODE, libs/warehouse's
// ANSWER_WITHOUT_CODE, on any call — it was 69 on the first call and 1 on the next, found by a
// review): unreachable, not a bug to report.
const CLICKHOUSE_UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'NOT_CLICKHOUSE',
  'NO_CLICKHOUSE_CODE',
]);

function unreachableClickHouse(error: DriftlineError): boolean {
  const clickhouse = error.details.clickhouse as { category?: unknown; name?: unknown } | undefined;
  if (clickhouse?.category !== 'unavailable') return false;
  // The first call's deadline (DRIFTLINE_CLICKHOUSE_TIMEOUT) passed: a server that never answered.
  if (clickhouse.name === 'TIMEOUT') return error.message.startsWith('clickhouse connect:');
  return CLICKHOUSE_UNREACHABLE.has(String(clickhouse.name));
}

const DATA_CODES = new Set(['BAD_REQUEST', 'VALIDATION_FAILED', 'DECODE_FAILED', 'NOT_FOUND']);

// The machine out of a resource: what to do about each, never "internal error … report it" (found
// by a review: `ulimit -n 64` failed loading a module, a full disk failed opening ClickHouse).
const RESOURCE_HINTS: Readonly<Record<string, string>> = {
  EMFILE:
    'too many open files for this process: raise its limit (ulimit -n; LimitNOFILE= under systemd; --ulimit nofile= under Docker) and start again',
  ENFILE:
    "the system's table of open files is full: raise fs.file-max (sysctl) or stop what holds the files, and start again",
  ENOSPC: 'no space left on that file system: free space or inodes (df -h, df -i) and start again',
  EDQUOT: "this user's disk quota is used up: free space or raise the quota, and start again",
  // A write's EIO: a failing disk, or a network or FUSE file system out of space that says so.
  EIO: 'the disk or file system failed the write (an I/O error; a full network file system says so too): free space (df -h), check dmesg, and start again',
  EFBIG:
    "the file is over this process's file size limit (ulimit -f) or the file system's largest file: raise the limit or write elsewhere, and start again",
  EROFS:
    'that file system is read-only: remount it read-write (a disk the kernel remounted read-only after errors: check dmesg) or use a path on a writable one',
};

/**
 * The resource a failure ran out of: a Node system error's code in its cause chain, or the errno
 * ClickHouse named (`details.clickhouse.errno`: a command that hit ENOSPC inside ClickHouse printed
 * its line without a hint, found by a review).
 */
function exhaustedResource(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && RESOURCE_HINTS[code] !== undefined) return code;
    const errno =
      e instanceof DriftlineError ? (e.details.clickhouse as { errno?: unknown } | undefined)?.errno : undefined;
    if (typeof errno === 'string' && RESOURCE_HINTS[errno] !== undefined) return errno;
  }
  return undefined;
}

/** Characters kept of a word cut by {@link cutLongWords}. */
const WORD_SHOWN = 128;

/**
 * The line with every word (a run without blanks) longer than 200 characters cut to its first
 * 128 and `…`: a value echoed from the command line (a 100,000-character `--model`) made a 100 KB
 * error line (found by a review). Names from data are cut to 80 where they are quoted.
 */
function cutLongWords(line: string): string {
  return line.replace(/\S{201,}/g, (word) => `${cutText(word, WORD_SHOWN)}…`);
}

/** One line for a person, and the exit code, for an error a command threw; `help` names its help. */
export function describeError(error: unknown, help: string): { line: string; code: number } {
  const described = describeWhole(error, help);
  return { line: cutLongWords(described.line), code: described.code };
}

function describeWhole(error: unknown, help: string): { line: string; code: number } {
  if (error instanceof UsageError) return { line: error.message, code: EXIT.usage };
  // Command-line options (the field is the option) are usage errors; environment variables are configuration.
  if (error instanceof ConfigError && error.field.startsWith('-')) {
    return { line: withHint(error.message, `see ${help}`), code: EXIT.usage };
  }
  if (error instanceof DriftlineError && error.code === 'CONFIG_INVALID') {
    return { line: configErrorLine(error), code: EXIT.config };
  }
  // The message names the file or path (Node's: "EMFILE: too many open files, open '…'"). Before
  // "unavailable": `run` giving up on a full disk after DRIFTLINE_STARTUP_TIMEOUT is the disk's.
  const resource = exhaustedResource(error);
  if (resource !== undefined) {
    return { line: withHint((error as Error).message, RESOURCE_HINTS[resource]!), code: EXIT.internal };
  }
  if (error instanceof UnavailableError) return { line: error.message, code: EXIT.unavailable };
  if (error instanceof DriftlineError && DATA_CODES.has(error.code)) {
    // NOT_FOUND names a model, version or reference the warehouse does not hold: no file to check.
    const hint = error.code === 'NOT_FOUND' ? 'check the names given' : 'check the input file';
    return { line: withHint(error.message, hint), code: EXIT.data };
  }
  // node:util parseArgs: an unknown option, a missing value, a stray argument.
  const nodeCode = (error as { code?: unknown } | null)?.code;
  if (typeof nodeCode === 'string' && nodeCode.startsWith('ERR_PARSE_ARGS_')) {
    return {
      line: withHint((error as Error).message.replace(/\. To specify .*$/s, ''), `see ${help}`),
      code: EXIT.usage,
    };
  }
  if (error instanceof DriftlineError && unreachableClickHouse(error)) {
    return {
      line: withHint(error.message, 'check DRIFTLINE_CLICKHOUSE_URL and that the ClickHouse server is running'),
      code: EXIT.unavailable,
    };
  }
  if (error instanceof DriftlineError) return { line: error.message, code: EXIT.internal };
  const message = error instanceof Error ? error.message : String(error);
  return {
    line: `internal error: ${message} — rerun with --debug for the stack trace and report it`,
    code: EXIT.internal,
  };
}

function withHint(message: string, hint: string): string {
  return message.includes(' — ') ? message : `${message} — ${hint}`;
}
