export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly multiplier: number;
  /** 0..1: share of the delay randomised, so many consumers do not retry in lockstep. */
  readonly jitter: number;
}

export const defaultBackoff: BackoffPolicy = { initialMs: 100, maxMs: 10_000, multiplier: 2, jitter: 0.2 };

/** Delay before retry number `attempt` (0-based): exponential, capped, with bounded jitter. */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * policy.multiplier ** Math.max(0, attempt));
  const spread = base * policy.jitter;
  return Math.max(0, Math.round(base - spread + 2 * spread * random()));
}
