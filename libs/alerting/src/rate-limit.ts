import { type AlertMessage, digestOf } from './group.js';
import type { RateLimit } from './routes.js';

/** A token bucket's state: tokens at time `at` (ms). Plain data, kept per receiver by the caller. */
export interface TokenBucket {
  readonly tokens: number;
  readonly at: number;
}

export const fullBucket = (limit: RateLimit, now: number): TokenBucket => ({ tokens: limit.burst, at: now });

/** The bucket at `now`: refilled at `perMs` tokens a millisecond, never above `burst`. */
export function refill(bucket: TokenBucket, limit: RateLimit, now: number): TokenBucket {
  const elapsed = Math.max(0, now - bucket.at);
  return { tokens: Math.min(limit.burst, bucket.tokens + elapsed * limit.perMs), at: Math.max(now, bucket.at) };
}

export interface SendPlan {
  /** Messages to send now (each takes one token); empty when the caller must wait. */
  readonly send: readonly AlertMessage[];
  readonly bucket: TokenBucket;
  /** When `send` is empty: how long until one token is available. */
  readonly waitMs: number;
}

/**
 * Spends tokens on messages. With enough tokens every message goes out as is; with k < n tokens
 * the first k − 1 go out as they are and the rest are merged into one digest (the k-th message):
 * excess is grouped, never dropped. With no whole token, nothing is sent and `waitMs` says how
 * long until there is one (the caller waits: delivery slows down, nothing is lost).
 */
export function planSends(
  messages: readonly AlertMessage[],
  bucket: TokenBucket,
  limit: RateLimit,
  now: number,
): SendPlan {
  const current = refill(bucket, limit, now);
  if (messages.length === 0) return { send: [], bucket: current, waitMs: 0 };
  const whole = Math.floor(current.tokens);
  if (whole < 1) return { send: [], bucket: current, waitMs: Math.ceil((1 - current.tokens) / limit.perMs) };
  const send =
    messages.length <= whole ? messages : [...messages.slice(0, whole - 1), digestOf(messages.slice(whole - 1))];
  return { send, bucket: { tokens: current.tokens - send.length, at: current.at }, waitMs: 0 };
}
