import type { Logger } from '@driftline/core';
import { counter, type Registry } from '@driftline/observability';
import type { RedisClient } from './client.js';

/**
 * Redis losing the state a service keeps in it (a restart without persistence, a failover to a
 * replica that had none of it, FLUSHALL, eviction) was silent: the label-joiner's pending
 * predictions never got their labels, its performance windows kept stale counts, and online
 * features were gone until their entities' next events — while the offsets that wrote them were
 * committed, so nothing replays them by itself. A marker key, written once and never expiring,
 * tells: missing while the service has consumed before, the state is gone.
 */
export interface StateMarkerOptions {
  /** The marker's key (under the service's key prefix). */
  readonly key: string;
  /** The state's name in the metric's `store` label and the log line: `join`, `features`. */
  readonly store: string;
  /** Whether the service consumed before (its group has committed offsets). */
  readonly consumedBefore: () => Promise<boolean>;
  /**
   * Whether Redis holds state of the service already: the marker is missing because the version
   * that wrote the state did not write markers yet, not because the state is gone.
   */
  readonly stateExists: () => Promise<boolean>;
  /** What to do about a loss (the README's recovery), for the log line. */
  readonly recovery: string;
  readonly logger: Logger;
  readonly registry: Registry;
}

/** How the marker was found at start-up. */
export type MarkerAtStart = 'kept' | 'fresh' | 'adopted' | 'lost';

/** How often a running service checks that the marker is still there. */
export const STATE_MARKER_INTERVAL_MS = 10_000;

/** Sets the marker unless it exists; true when it was missing. */
async function markerWasMissing(redis: RedisClient, key: string): Promise<boolean> {
  return (await redis.set(key, new Date().toISOString(), 'NX')) === 'OK';
}

/**
 * Checks the marker at start-up (writing it when missing) and then every
 * STATE_MARKER_INTERVAL_MS; a loss is one error line and `driftline_redis_state_lost_total{store}`
 * (alert DriftlineRedisStateLost). Among several instances the one whose write recreates the
 * marker reports the loss, once. Redis errors are left to the service's own handling: the start-up
 * check throws them, the periodic one tries again at its next tick. Processing goes on — what is
 * lost is lost; new state is kept from now on — and the operator replays from Kafka to rebuild it.
 */
export async function watchStateMarker(
  redis: RedisClient,
  options: StateMarkerOptions,
  intervalMs = STATE_MARKER_INTERVAL_MS,
): Promise<{ readonly atStart: MarkerAtStart; stop(): void }> {
  const lost = counter(
    options.registry,
    'driftline_redis_state_lost_total',
    'Times Redis was found to have lost the state a service keeps there (its marker key missing)',
    ['store'],
  );
  const report = (when: string) => {
    lost.inc({ store: options.store });
    options.logger.error(
      { store: options.store, marker: options.key, when },
      `Redis lost the ${options.store} state (its marker key was missing ${when}): ${options.recovery}`,
    );
  };
  let atStart: MarkerAtStart = 'kept';
  if (await markerWasMissing(redis, options.key)) {
    if (await options.stateExists()) atStart = 'adopted';
    else if (await options.consumedBefore()) {
      atStart = 'lost';
      report('at start-up, while the consumer group has committed offsets');
    } else atStart = 'fresh';
  }
  let checking = false;
  const timer = setInterval(() => {
    if (checking) return;
    checking = true;
    markerWasMissing(redis, options.key)
      .then((missing) => {
        if (missing) report('while running');
      })
      .catch(() => {}) // Redis down: the service's own calls report it; the next tick checks again
      .finally(() => {
        checking = false;
      });
  }, intervalMs);
  timer.unref();
  return { atStart, stop: () => clearInterval(timer) };
}
