/** How one receiver's message is retried: bounded in attempts and in total time. */
export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly initialMs: number;
  readonly maxDelayMs: number;
  /** Total time from the first attempt after which no new attempt starts. */
  readonly budgetMs: number;
  /** 0..1: share of each delay randomised (subtracted), so receivers are not retried in lockstep. */
  readonly jitter: number;
}

/** What an attempt's outcome means: done, try again, or give up now. */
export type AttemptVerdict = 'delivered' | 'retry' | 'failed';

/**
 * 2xx delivered; 408, 425, 429 and 5xx (and no answer at all: `undefined`) are retried; any
 * other status (400, 401, 403, 404, 410, 413, …) would fail the same way again: failed at once.
 */
export function verdictOf(status: number | undefined): AttemptVerdict {
  if (status === undefined) return 'retry';
  if (status >= 200 && status < 300) return 'delivered';
  if (status === 408 || status === 425 || status === 429 || status >= 500) return 'retry';
  return 'failed';
}

/**
 * The delay before the next attempt after `attempts` attempts (1-based) and `elapsedMs` since the
 * first one, or undefined when the budget is spent (attempts, or the time the next would start).
 * Exponential (`initialMs · 2^(attempts−1)`, capped at `maxDelayMs`) minus up to `jitter` of it.
 */
export function nextRetryDelay(
  policy: RetryPolicy,
  attempts: number,
  elapsedMs: number,
  random: () => number = Math.random,
  /** The receiver's own wait (`Retry-After`), honoured even beyond `maxDelayMs`, never beyond the budget. */
  askedMs?: number,
): number | undefined {
  if (attempts >= policy.maxAttempts) return undefined;
  const base = Math.min(policy.maxDelayMs, policy.initialMs * 2 ** Math.max(0, attempts - 1));
  const delay = Math.max(askedMs ?? 0, Math.round(base * (1 - policy.jitter * random())));
  if (elapsedMs + delay > policy.budgetMs) return undefined;
  return delay;
}

/**
 * A `Retry-After` header in ms: delay-seconds or an HTTP-date (RFC 9110 §10.2.3); undefined when
 * absent or not one of those.
 */
export function retryAfterMs(header: string | null | undefined, now: number): number | undefined {
  if (header === null || header === undefined) return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1_000;
  // IMF-fixdate only (what senders must send): Date.parse alone reads "1.5" as a date.
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * What a message still failing transiently after its retry budget means, from the evidence that
 * its receiver is up meanwhile:
 * - `receiver-up`: another message was delivered to the receiver after this one was first sent
 *   (`deliveredSince` > 0), or a delivery check sent after its failures was answered 2xx: the
 *   receiver takes messages but not this one. It gets one more attempt, then is given up.
 * - `check`: no evidence yet (nothing else was sent: the message is alone in its batch, or last):
 *   send a delivery check, then ask again with its verdict.
 * - `outage`: the check failed too (no answer, 5xx, or any other non-2xx): the receiver is not
 *   shown up, so nothing is given up; the batch is retried.
 * So a message is given up only on a 2xx of the same receiver after its own failures began, and a
 * receiver that fails everything never loses one.
 */
export function failingMessageVerdict(
  deliveredSince: number,
  check?: AttemptVerdict,
): 'receiver-up' | 'check' | 'outage' {
  if (deliveredSince > 0 || check === 'delivered') return 'receiver-up';
  return check === undefined ? 'check' : 'outage';
}
