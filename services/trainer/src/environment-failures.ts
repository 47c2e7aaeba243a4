/**
 * The bound on failures of the worker's environment (its interpreter cannot be started: ENOENT,
 * EACCES; or it exits 75 on an OSError: a full disk, a file gone). They are retried without counting
 * toward MAX_WORKER_ATTEMPTS — right for a blip (the venv rebuilt by another trainer's start, a disk
 * freed a minute later) — but a venv deleted after start had a request retried for ever, the only
 * sign a readiness of 503. So they count toward a longer bound of their own: a request is given up
 * once they have gone on for ENVIRONMENT_FAILURE_BUDGET_MS and at least
 * MIN_ENVIRONMENT_FAILURES times in a row, with no run reaching the worker in between.
 *
 * Pure: the caller keeps the streak (in the version's directory, so a restart does not reset it) and
 * passes the clock.
 */

/**
 * How long the environment may keep failing one request: far longer than the venv's set-up takes
 * (its script is allowed 15 minutes) or a disk takes to be freed by hand.
 */
export const ENVIRONMENT_FAILURE_BUDGET_MS = 60 * 60_000;

/**
 * Failures in a row needed as well, so a streak of two attempts an hour apart is not given up (the
 * consumer loop retries every 10 s at most, hundreds of times an hour).
 */
export const MIN_ENVIRONMENT_FAILURES = 10;

/** Environment failures in a row of one request: how many, since when, the latest when. */
export interface EnvironmentStreak {
  readonly failures: number;
  /** When the first failing attempt of the streak started (epoch ms). */
  readonly since: number;
  /** When the latest failure was seen (epoch ms). */
  readonly last: number;
}

/**
 * The streak after one more environment failure of an attempt that started at `startedAt` and failed
 * at `now`. A pause longer than the budget between the last failure and this attempt (the trainer
 * down, the partition elsewhere) starts a new streak: the bound is on failing while retrying.
 */
export function recordEnvironmentFailure(
  previous: EnvironmentStreak | undefined,
  startedAt: number,
  now: number,
): EnvironmentStreak {
  if (previous === undefined || startedAt - previous.last > ENVIRONMENT_FAILURE_BUDGET_MS) {
    return { failures: 1, since: startedAt, last: now };
  }
  return { failures: previous.failures + 1, since: previous.since, last: now };
}

/** Whether the request is given up: failing for the whole budget, and often enough. */
export function environmentExhausted(streak: EnvironmentStreak): boolean {
  return streak.failures >= MIN_ENVIRONMENT_FAILURES && streak.last - streak.since >= ENVIRONMENT_FAILURE_BUDGET_MS;
}

/** A streak as stored (JSON); anything unreadable is no streak (counting starts again). */
export function parseEnvironmentStreak(text: string): EnvironmentStreak | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  const { failures, since, last } = value as Record<string, unknown>;
  if (!Number.isSafeInteger(failures) || (failures as number) < 1) return undefined;
  if (!Number.isFinite(since) || !Number.isFinite(last)) return undefined;
  return { failures: failures as number, since: since as number, last: last as number };
}
