import { CONFIG_ERROR_EXIT_CODE, ConfigError, configErrorLine, DriftlineError } from '@driftline/core';

/** Exit codes of the command (documented in the CLI README and `driftline --help`). */
export const EXIT = { ok: 0, internal: 1, usage: 2, data: 3, config: CONFIG_ERROR_EXIT_CODE } as const;

export class UsageError extends Error {}

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

/** One line for a person, and the exit code, for an error a command threw; `help` names its help. */
export function describeError(error: unknown, help: string): { line: string; code: number } {
  if (error instanceof UsageError) return { line: error.message, code: EXIT.usage };
  // Command-line options (the field is the option) are usage errors; environment variables are configuration.
  if (error instanceof ConfigError && error.field.startsWith('-')) {
    return { line: withHint(error.message, `see ${help}`), code: EXIT.usage };
  }
  if (error instanceof DriftlineError && error.code === 'CONFIG_INVALID') {
    return { line: configErrorLine(error), code: EXIT.config };
  }
  // The message names the file or path (Node's: "EMFILE: too many open files, open '…'").
  const resource = exhaustedResource(error);
  if (resource !== undefined) {
    return { line: withHint((error as Error).message, RESOURCE_HINTS[resource]!), code: EXIT.internal };
  }
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
