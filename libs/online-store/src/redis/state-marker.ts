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
/**
 * `kept`: the marker was there; `fresh`: a first start; `adopted`: state but no marker (the first
 * start of a version that writes markers); `lost`: no state, no marker, and the group consumed before.
 */
export type MarkerAtStart = 'kept' | 'fresh' | 'adopted' | 'lost';

/** How often a running service checks that the marker is still there. */
export const STATE_MARKER_INTERVAL_MS = 10_000;

/** Sets the marker unless it exists; true when this call wrote it. */
async function writeMarker(redis: RedisClient, key: string): Promise<boolean> {
  return (await redis.set(key, new Date().toISOString(), 'NX')) === 'OK';
}

/** A running service's view of its marker. */
export interface StateMarker {
  /** How the marker was found at start-up. */
  readonly atStart: MarkerAtStart;
  /**
   * Checks the marker before a batch writes state (one `SET NX`): missing, the state was lost since
   * the last check — reported, the marker written again. A service that checks before every write
   * never writes state without the marker, so an instance starting meanwhile cannot take the state
   * written after a loss for state of an older version. Redis errors are swallowed: the batch's own
   * write fails with its classified error.
   */
  check(): Promise<void>;
  stop(): void;
}

/**
 * Checks the marker at start-up and then before every batch (`check`) and every
 * STATE_MARKER_INTERVAL_MS; a loss is one error line and `driftline_redis_state_lost_total{store}`
 * (alert DriftlineRedisStateLost). At start-up nothing is written before the decision: a failed
 * look-up (Kafka down) leaves the marker missing, so the next attempt decides again. The write that
 * recreates the marker reports the loss, so instances report one loss once. Processing goes on —
 * what is lost is lost; new state is kept from now on — and the operator replays from Kafka to
 * rebuild it.
 */
export async function watchStateMarker(
  redis: RedisClient,
  options: StateMarkerOptions,
  intervalMs = STATE_MARKER_INTERVAL_MS,
): Promise<StateMarker> {
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
  if ((await redis.exists(options.key)) === 0) {
    // Decided before the marker is written: a look-up that fails leaves it missing for the retry.
    const held = await options.stateExists();
    const consumed = held ? false : await options.consumedBefore();
    if (await writeMarker(redis, options.key)) {
      if (held) atStart = 'adopted';
      else if (consumed) {
        atStart = 'lost';
        report('at start-up, while the consumer group has committed offsets');
      } else atStart = 'fresh';
    }
  }
  const check = async () => {
    try {
      if (await writeMarker(redis, options.key)) report('while running');
    } catch {
      // Redis down: the batch's own write reports it; the next check looks again.
    }
  };
  let checking = false;
  const timer = setInterval(() => {
    if (checking) return;
    checking = true;
    void check().finally(() => {
      checking = false;
    });
  }, intervalMs);
  timer.unref();
  return { atStart, check, stop: () => clearInterval(timer) };
}
