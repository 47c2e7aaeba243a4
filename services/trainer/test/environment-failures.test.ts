import { describe, expect, it } from 'vitest';
import {
  ENVIRONMENT_FAILURE_BUDGET_MS,
  type EnvironmentStreak,
  environmentExhausted,
  MIN_ENVIRONMENT_FAILURES,
  parseEnvironmentStreak,
  recordEnvironmentFailure,
} from '../src/environment-failures.js';

const HOUR = ENVIRONMENT_FAILURE_BUDGET_MS;

/** `n` failures of instant attempts, `every` ms apart, from `t0`. */
function streakOf(n: number, every: number, t0 = 1_000): EnvironmentStreak {
  let streak: EnvironmentStreak | undefined;
  for (let i = 0; i < n; i++) streak = recordEnvironmentFailure(streak, t0 + i * every, t0 + i * every);
  return streak!;
}

describe('environment failures of the worker (a longer bound than MAX_WORKER_ATTEMPTS)', () => {
  it('the bound is documented as an hour and ten failures in a row', () => {
    expect(ENVIRONMENT_FAILURE_BUDGET_MS).toBe(60 * 60_000);
    expect(MIN_ENVIRONMENT_FAILURES).toBe(10);
  });

  it('counts failures in a row from the start of the first failing attempt', () => {
    const first = recordEnvironmentFailure(undefined, 5_000, 6_000);
    expect(first).toEqual({ failures: 1, since: 5_000, last: 6_000 });
    expect(recordEnvironmentFailure(first, 16_000, 16_500)).toEqual({ failures: 2, since: 5_000, last: 16_500 });
  });

  it('gives up only when the failures lasted the whole budget and were at least the minimum', () => {
    const step = HOUR / (MIN_ENVIRONMENT_FAILURES - 1);
    expect(environmentExhausted(streakOf(MIN_ENVIRONMENT_FAILURES, step))).toBe(true);
    // One fewer failure, or a moment less than the budget: retried on.
    expect(environmentExhausted(streakOf(MIN_ENVIRONMENT_FAILURES - 1, HOUR / (MIN_ENVIRONMENT_FAILURES - 2)))).toBe(
      false,
    );
    expect(environmentExhausted(streakOf(MIN_ENVIRONMENT_FAILURES, (HOUR - 9) / (MIN_ENVIRONMENT_FAILURES - 1)))).toBe(
      false,
    );
    // Hundreds of quick retries (the loop's backoff is at most 10 s) are no hour: a blip survives them.
    expect(environmentExhausted(streakOf(300, 10_000))).toBe(false);
    expect(environmentExhausted(streakOf(361, 10_000))).toBe(true);
  });

  it('a long attempt counts from its start (exit 75 after a long training)', () => {
    let streak = recordEnvironmentFailure(undefined, 0, 20 * 60_000);
    for (let i = 1; i < MIN_ENVIRONMENT_FAILURES; i++) {
      streak = recordEnvironmentFailure(streak, streak.last + 10_000, streak.last + 10_000 + 20 * 60_000);
    }
    expect(streak.failures).toBe(MIN_ENVIRONMENT_FAILURES);
    expect(environmentExhausted(streak)).toBe(true);
  });

  it('a pause longer than the budget before an attempt (the trainer down) starts a new streak', () => {
    const old = streakOf(MIN_ENVIRONMENT_FAILURES - 1, 60_000);
    const next = recordEnvironmentFailure(old, old.last + HOUR + 1, old.last + HOUR + 2);
    expect(next).toEqual({ failures: 1, since: old.last + HOUR + 1, last: old.last + HOUR + 2 });
    expect(environmentExhausted(next)).toBe(false);
    // A pause of exactly the budget still continues it.
    expect(recordEnvironmentFailure(old, old.last + HOUR, old.last + HOUR).failures).toBe(MIN_ENVIRONMENT_FAILURES);
  });

  it('reads a stored streak back; anything unreadable is no streak', () => {
    const streak = streakOf(3, 1_000);
    expect(parseEnvironmentStreak(JSON.stringify(streak))).toEqual(streak);
    for (const text of [
      '',
      'not json',
      'null',
      '3',
      '{"failures":0,"since":1,"last":2}',
      '{"failures":1.5,"since":1,"last":2}',
      '{"failures":2,"since":"x","last":2}',
    ]) {
      expect(parseEnvironmentStreak(text)).toBeUndefined();
    }
  });
});
