import { DriftlineError, PoisonRecordError, SinkUnavailableError } from '@driftline/core';

/**
 * Error replies that can never succeed on a retry: a key of another type at our name (WRONGTYPE),
 * or a script Redis refuses to compile or that fails while running (a bug, the same on every
 * attempt; Redis 7 suffixes such replies with `script: <sha>, on @user_script:<line>.`). Replies
 * that name a transient server state stay retriable even from inside a script; so do connection
 * refused/reset/closed and command timeouts.
 */
const SCRIPT_ERROR = /^ERR (user_script|Error (running|compiling) script)|@user_script:\d+/;
const TRANSIENT = /^(OOM|BUSY|LOADING|READONLY|MASTERDOWN|NOAUTH|WRONGPASS|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|MISCONF)\b/;

/**
 * Classifies any Redis failure at the adapter: an outage is a retriable SinkUnavailableError;
 * WRONGTYPE is a poison record (VALIDATION_FAILED: the record cannot be stored under its key); a
 * script error is a non-retriable INTERNAL error. The consumer loop decides from `retriable` alone.
 */
export function classifyRedisError(error: unknown, action: string): DriftlineError {
  if (error instanceof DriftlineError) return error;
  const message = error instanceof Error ? error.message : String(error);
  // Redis 7 replies WRONGTYPE as is from inside a script; older servers wrap it in a script error.
  if (message.includes('WRONGTYPE')) {
    return new PoisonRecordError('VALIDATION_FAILED', `Redis refused ${action}: ${message}`, { cause: error });
  }
  if (!TRANSIENT.test(message) && SCRIPT_ERROR.test(message)) {
    return new DriftlineError('INTERNAL', `Redis script failed during ${action}: ${message}`, {
      cause: error,
      retriable: false,
    });
  }
  return new SinkUnavailableError(`Redis ${action} failed: ${message}`, { cause: error });
}
