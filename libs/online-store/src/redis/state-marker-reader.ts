import type { Logger } from '@driftline/core';
import { gauge, type Registry } from '@driftline/observability';
import type { RedisClient } from './client.js';
import { STATE_MARKER_INTERVAL_MS } from './state-marker.js';

/**
 * The feature-materializer's state marker under a key prefix (DRIFTLINE_FEATURE_KEY_PREFIX): written
 * when it starts on a Redis and again within 10 s of Redis losing it (`watchStateMarker`).
 */
export function featuresStateMarkerKey(keyPrefix: string): string {
  return `${keyPrefix}:state-marker:features`;
}

/** What one check found that differs from the one before: worth one log line. */
export type MarkerChange = 'none' | 'missing' | 'found' | 'rewritten';

/**
 * The change from the marker value seen before (`undefined`: never checked; `null`: missing) to
 * the one seen now. A different value means the writer wrote it again: the state was lost between.
 */
export function markerChange(before: string | null | undefined, now: string | null): MarkerChange {
  if (now === null) return before === null ? 'none' : 'missing';
  if (before === null) return 'found';
  return before === undefined || before === now ? 'none' : 'rewritten';
}

export interface StateMarkerReaderOptions {
  /** The writer's marker key (`featuresStateMarkerKey`). */
  readonly key: string;
  /** The state's name in the gauge's `store` label and the log lines: `features`. */
  readonly store: string;
  /**
   * The reading service, the gauge's `reader` label: the services of one process (`driftline run
   * all`) share a registry, and one series of theirs flipped every check between an idle model
   * server's 0 and the feature-api's 1, so the alert's 5 minutes never held.
   */
  readonly reader: string;
  /** What a missing marker means for this reader's answers and the likely causes, for the log line. */
  readonly whenMissing: string;
  readonly logger: Logger;
  readonly registry: Registry;
  /**
   * Whether this reader reads the store now (`storeInUse`); absent, always. While it does not, no
   * GET and the gauge 0: a reader that needs no store (a model server whose requests carry every
   * feature) kept a missing marker at 1, a critical alert for ever.
   */
  readonly inUse?: () => boolean;
}

/**
 * How long after its last read of the store a reader still reports a missing marker: under the
 * alert's 5 minute hold, so one burst of reads and then none never fires it (a review: equal to the
 * hold, it could fire for one evaluation).
 */
const STORE_IN_USE_MS = 4 * 60_000;

/**
 * Whether the store was read within the last `windowMs`, from a count of reads that only grows
 * (each call looks at the count; a read is seen at the call after it).
 */
export function storeInUse(reads: () => number, windowMs = STORE_IN_USE_MS, now: () => number = Date.now) {
  let last = reads();
  let lastReadAt: number | undefined;
  return (): boolean => {
    const count = reads();
    if (count !== last) {
      last = count;
      lastReadAt = now();
    }
    return lastReadAt !== undefined && now() - lastReadAt < windowMs;
  };
}

export interface StateMarkerReader {
  /** One GET of the marker; the gauge and a log line on a change. Redis errors are left to the reads. */
  check(): Promise<void>;
  stop(): void;
}

/**
 * A reader's view of a writer's state marker (read-only: it never writes the marker). After Redis
 * restarted empty, or with a key prefix other than the writer's, readers answered "not found" for
 * every entity while healthy, and nothing told. Now: one GET once the client is ready (and after
 * each reconnection) and every STATE_MARKER_INTERVAL_MS, off the request path; `driftline_online_store_state_missing{store,reader}` 1
 * while the marker is missing (alert DriftlineOnlineStoreStateMissing), and one log line per
 * change, not per check. Readiness stays: a fresh deployment has no marker until the writer's first
 * start, and failing readiness then would block the rollout.
 */
export function watchStateMarkerAsReader(
  redis: RedisClient,
  options: StateMarkerReaderOptions,
  intervalMs = STATE_MARKER_INTERVAL_MS,
): StateMarkerReader {
  const missing = gauge(
    options.registry,
    'driftline_online_store_state_missing',
    "1 while the writer's state marker is missing in Redis: the state is gone or the key prefix is not the writer's",
    ['store', 'reader'],
  );
  const series = { store: options.store, reader: options.reader };
  const fields = { store: options.store, marker: options.key };
  let seen: string | null | undefined;
  const check = async () => {
    if (options.inUse !== undefined && !options.inUse()) {
      if (seen === null) {
        options.logger.info(
          fields,
          `the ${options.store} state marker is no longer checked: no read of the store lately`,
        );
      }
      // Reads resuming with the marker still missing warn again.
      seen = undefined;
      missing.set(series, 0);
      return;
    }
    let value: string | null;
    try {
      value = await redis.get(options.key);
    } catch {
      // Redis down or slow: the reads fail and say so (503); the next check looks again.
      return;
    }
    missing.set(series, value === null ? 1 : 0);
    const change = markerChange(seen, value);
    seen = value;
    if (change === 'missing') {
      options.logger.warn(fields, `the ${options.store} state marker is missing in Redis: ${options.whenMissing}`);
    } else if (change === 'found') {
      options.logger.info(fields, `the ${options.store} state marker is in Redis again`);
    } else if (change === 'rewritten') {
      options.logger.warn(
        fields,
        `the ${options.store} state marker was written again since the last check: Redis lost the ${options.store} state meanwhile`,
      );
    }
  };
  let checking = false;
  const tick = () => {
    if (checking) return;
    checking = true;
    void check().finally(() => {
      checking = false;
    });
  };
  // The first check once the client is ready, and again after each reconnection (a Redis restarted
  // empty is seen at once): a GET on a client still connecting failed ("Stream isn't writeable",
  // no offline queue), and the gauge appeared only at the second check, 10 s later.
  redis.on('ready', tick);
  if (redis.status === 'ready') tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return {
    check,
    stop: () => {
      clearInterval(timer);
      redis.off('ready', tick);
    },
  };
}

/**
 * A reader of online features (the feature API, the model server) watching the materializer's
 * marker; `consequence` says what the reader answers meanwhile.
 */
export function watchFeaturesStateMarker(
  redis: RedisClient,
  options: {
    readonly keyPrefix: string;
    /** The reading service (the gauge's `reader` label). */
    readonly reader: string;
    readonly consequence: string;
    readonly logger: Logger;
    readonly registry: Registry;
    /**
     * The reader's reads of the store so far, when it may serve without them (the model server):
     * the marker is then checked only within STORE_IN_USE_MS of a read (`storeInUse`).
     */
    readonly storeReads?: () => number;
  },
  intervalMs = STATE_MARKER_INTERVAL_MS,
): StateMarkerReader {
  return watchStateMarkerAsReader(
    redis,
    {
      key: featuresStateMarkerKey(options.keyPrefix),
      store: 'features',
      reader: options.reader,
      whenMissing: `${options.consequence}. Redis lost the online features (an empty restart, FLUSHALL, eviction) and no feature-materializer has written since, none has started on this Redis yet, or DRIFTLINE_FEATURE_KEY_PREFIX differs from the materializer's`,
      logger: options.logger,
      registry: options.registry,
      ...(options.storeReads === undefined ? {} : { inUse: storeInUse(options.storeReads) }),
    },
    intervalMs,
  );
}
