import { DriftlineError, SinkUnavailableError } from '@driftline/core';

/**
 * Error replies that can never succeed on a retry: a key of another type at our name (WRONGTYPE),
 * or a script Redis refuses to compile or that fails while running (a bug, the same on every
 * attempt; Redis 7 suffixes such replies with `script: <sha>, on @user_script:<line>.`). Replies
 * that name a transient server state stay retriable even from inside a script; so do connection
 * refused/reset/closed and command timeouts.
 */
const SCRIPT_ERROR = /^ERR (user_script|Error (running|compiling) script)|@user_script:\d+/;
const TRANSIENT = /^(OOM|BUSY|LOADING|READONLY|MASTERDOWN|NOAUTH|WRONGPASS|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|MISCONF)\b/;

/** Replies of a Redis Cluster: driftline's scripts take keys of several slots (standalone Redis only). */
const CLUSTER = /^(CROSSSLOT|MOVED|ASK)\b/;

/**
 * Classifies any Redis failure at the adapter: an outage is a retriable SinkUnavailableError; a
 * script error is a non-retriable INTERNAL error; a keyspace or server driftline cannot use
 * (WRONGTYPE: another type at a key it writes; a cluster's CROSSSLOT/MOVED) is CONFIG_INVALID. The
 * last two are processor faults to the consumer loop: a key that only one entity's records touch
 * still dead-letters just those records (the rest of their batch passes), while a shared key (the
 * join's pending counts, schedule, watermarks) fails every record and is held, not a topic drained
 * into its DLQ as poison (found by a review). Cluster replies were retried as an outage for ever.
 */
export function classifyRedisError(error: unknown, action: string): DriftlineError {
  if (error instanceof DriftlineError) return error;
  const message = error instanceof Error ? error.message : String(error);
  // Redis 7 replies WRONGTYPE as is from inside a script; older servers wrap it in a script error.
  if (message.includes('WRONGTYPE')) {
    return new DriftlineError(
      'CONFIG_INVALID',
      `Redis refused ${action}: ${message} (a key driftline writes holds another type: another tool or deployment sharing the key prefix?)`,
      { cause: error },
    );
  }
  if (CLUSTER.test(message)) {
    return new DriftlineError(
      'CONFIG_INVALID',
      `Redis refused ${action}: ${message} (a Redis Cluster: driftline needs a standalone Redis, or a primary with replicas behind one address)`,
      { cause: error },
    );
  }
  if (!TRANSIENT.test(message) && SCRIPT_ERROR.test(message)) {
    return new DriftlineError('INTERNAL', `Redis script failed during ${action}: ${message}`, {
      cause: error,
      retriable: false,
    });
  }
  return new SinkUnavailableError(`Redis ${action} failed: ${message}`, { cause: error });
}
