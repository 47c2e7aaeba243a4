import { parseRoutesText, type RetryPolicy, type RoutingTable } from '@driftline/alerting';
import { ConfigError, envField, MAX_TIMER_MS, readConfigFile } from '@driftline/core';
import { z } from 'zod';

export const alertRouterEnvShape = {
  /** YAML or JSON routes file: receivers, routes, default receivers, group window. Without it the router is idle. */
  DRIFTLINE_ALERT_ROUTES_FILE: envField.name().optional(),
  DRIFTLINE_ALERT_ROUTER_GROUP: envField.name().default('driftline-alert-router'),
  /**
   * Where a receiver's new consumer group starts when it has no delivery record and no other group
   * says where the router was (a receiver with records reads from the start; see receiver-groups.ts):
   * `latest` (the end of the topic: alerts published from now on) or `earliest` (the topic's
   * history, sent once). See receiver-groups.ts.
   */
  DRIFTLINE_ALERT_ROUTER_START: z
    .enum(['latest', 'earliest'], { message: 'must be latest or earliest' })
    .default('latest'),
  /** Bound on one HTTP request to a receiver (connect, send, answer headers). */
  DRIFTLINE_ALERT_ROUTER_TIMEOUT: envField
    .timeout()
    .pipe(z.number().max(120_000, 'must be at most 2m'))
    .default(10_000),
  DRIFTLINE_ALERT_ROUTER_MAX_ATTEMPTS: envField.int(1, 100).default(8),
  DRIFTLINE_ALERT_ROUTER_RETRY_INITIAL: envField.duration(10, MAX_TIMER_MS).default(1_000),
  DRIFTLINE_ALERT_ROUTER_RETRY_MAX_DELAY: envField.duration(10, MAX_TIMER_MS).default(30_000),
  /** Time from a message's first attempt after which no new attempt starts: it is recorded failed. */
  DRIFTLINE_ALERT_ROUTER_RETRY_BUDGET: envField.duration(0).default(120_000),
};

export type AlertRouterEnv = z.infer<z.ZodObject<typeof alertRouterEnvShape>>;

export interface AlertRouterConfig {
  /** Undefined without a routes file: the service starts idle (one warning), so `run all` needs no routes. */
  readonly routes: RoutingTable | undefined;
  readonly routesSource: string;
  readonly group: string;
  readonly start: 'latest' | 'earliest';
  readonly timeoutMs: number;
  readonly retry: RetryPolicy;
}

/** Reads and validates the routes file; errors name the variable or the field inside the file. */
export function loadRoutes(file: string): RoutingTable {
  const text = readConfigFile('DRIFTLINE_ALERT_ROUTES_FILE', file);
  return parseRoutesText(text, file);
}

export function toAlertRouterConfig(env: AlertRouterEnv): AlertRouterConfig {
  // Every delay is capped at _RETRY_MAX_DELAY: a larger first delay is a mistake, not a wish.
  if (env.DRIFTLINE_ALERT_ROUTER_RETRY_INITIAL > env.DRIFTLINE_ALERT_ROUTER_RETRY_MAX_DELAY) {
    throw new ConfigError(
      'DRIFTLINE_ALERT_ROUTER_RETRY_INITIAL',
      `${env.DRIFTLINE_ALERT_ROUTER_RETRY_INITIAL} ms is more than DRIFTLINE_ALERT_ROUTER_RETRY_MAX_DELAY (${env.DRIFTLINE_ALERT_ROUTER_RETRY_MAX_DELAY} ms), which caps every delay`,
    );
  }
  return {
    routes: env.DRIFTLINE_ALERT_ROUTES_FILE === undefined ? undefined : loadRoutes(env.DRIFTLINE_ALERT_ROUTES_FILE),
    routesSource: env.DRIFTLINE_ALERT_ROUTES_FILE ?? '(none)',
    group: env.DRIFTLINE_ALERT_ROUTER_GROUP,
    start: env.DRIFTLINE_ALERT_ROUTER_START,
    timeoutMs: env.DRIFTLINE_ALERT_ROUTER_TIMEOUT,
    retry: {
      maxAttempts: env.DRIFTLINE_ALERT_ROUTER_MAX_ATTEMPTS,
      initialMs: env.DRIFTLINE_ALERT_ROUTER_RETRY_INITIAL,
      maxDelayMs: env.DRIFTLINE_ALERT_ROUTER_RETRY_MAX_DELAY,
      budgetMs: env.DRIFTLINE_ALERT_ROUTER_RETRY_BUDGET,
      jitter: 0.5,
    },
  };
}

/**
 * Checked at start-up against DRIFTLINE_STALL_TIMEOUT (common config, not the router's own): the
 * router heartbeats after every failed attempt and around delivery checks, so its longest silence
 * is one delay and one request. Longer than the stall timeout, the partition is marked stalled,
 * /healthz fails and the pod is restarted in a loop (found by a review).
 */
export function checkAgainstStallTimeout(
  config: Pick<AlertRouterConfig, 'retry' | 'timeoutMs'>,
  stallTimeoutMs: number,
): void {
  const silentMs = config.retry.maxDelayMs + config.timeoutMs;
  if (silentMs >= stallTimeoutMs) {
    throw new ConfigError(
      'DRIFTLINE_ALERT_ROUTER_RETRY_MAX_DELAY',
      `${config.retry.maxDelayMs} ms plus DRIFTLINE_ALERT_ROUTER_TIMEOUT (${config.timeoutMs} ms) must be less than DRIFTLINE_STALL_TIMEOUT (${stallTimeoutMs} ms): a wait that long without a heartbeat marks the partition stalled`,
    );
  }
}
