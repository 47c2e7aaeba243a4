import { type LineLimit, lineLimit } from '@driftline/core';

/**
 * The consumer loop's crash streaks (pure): kafkajs crashes and restarts the consumer both when an
 * input topic is missing and while the brokers are unreachable. Only the first is something a
 * restart of the process may cure; failing liveness through a Kafka outage restarted every service.
 */
export interface CrashStreak extends LineLimit {
  /** When the streak began. */
  since: number;
  /** The last crash. */
  last: number;
  count: number;
  /** When the crashes naming a missing topic began (undefined: the last crash named none). */
  missingTopicSince: number | undefined;
}

const MISSING_TOPIC_TYPES = new Set(['UNKNOWN_TOPIC_OR_PARTITION']);
const MISSING_TOPIC_NAMES = new Set(['KafkaJSTopicMetadataNotLoaded']);
const MISSING_TOPIC_MESSAGE = /does not host this topic-partition|topic metadata not loaded|topic not found/i;

/** The error (or one it wraps: kafkajs nests them in `cause`, `originalError`, `errors`) says a topic is missing. */
export function namesMissingTopic(error: unknown, depth = 0): boolean {
  if (error === null || typeof error !== 'object' || depth > 4) return false;
  const e = error as {
    type?: unknown;
    name?: unknown;
    message?: unknown;
    cause?: unknown;
    originalError?: unknown;
    errors?: unknown;
  };
  if (typeof e.type === 'string' && MISSING_TOPIC_TYPES.has(e.type)) return true;
  if (typeof e.name === 'string' && MISSING_TOPIC_NAMES.has(e.name)) return true;
  if (typeof e.message === 'string' && MISSING_TOPIC_MESSAGE.test(e.message)) return true;
  if (Array.isArray(e.errors) && e.errors.some((inner) => namesMissingTopic(inner, depth + 1))) return true;
  return (
    namesMissingTopic(e.cause, depth + 1) ||
    (e.originalError !== e.cause && namesMissingTopic(e.originalError, depth + 1))
  );
}

/** Adds a crash at `now` to the streak (a new one after `quietMs` without a crash). */
export function recordCrash(
  streak: CrashStreak | undefined,
  error: unknown,
  now: number,
  quietMs: number,
): CrashStreak {
  const current =
    streak === undefined || now - streak.last >= quietMs
      ? { since: now, last: now, count: 0, ...lineLimit(), missingTopicSince: undefined }
      : streak;
  current.count++;
  current.last = now;
  // A crash for another reason (brokers unreachable) ends the run of missing-topic crashes.
  current.missingTopicSince = namesMissingTopic(error) ? (current.missingTopicSince ?? now) : undefined;
  return current;
}

/** Crashes naming a missing topic for `stallTimeoutMs`, the last less than `quietMs` ago: unhealthy. */
export function crashLooping(
  streak: CrashStreak | undefined,
  now: number,
  stallTimeoutMs: number,
  quietMs: number,
): boolean {
  return (
    streak?.missingTopicSince !== undefined &&
    now - streak.last < quietMs &&
    streak.last - streak.missingTopicSince >= stallTimeoutMs
  );
}
