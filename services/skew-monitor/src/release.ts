import type { Logger } from '@driftline/core';
import { releaseMarginMs } from '@driftline/skew';

/**
 * How often held alerts are looked for: a quarter of the release margin (15 s with the default
 * 1 h event-time bound), between 1 s and 15 s. An alert goes out at most this long after its
 * window's end came within the bound, less the margin; each look is one small ClickHouse query.
 */
export const releaseIntervalMs = (maxFutureMs: number): number =>
  Math.min(15_000, Math.max(1_000, releaseMarginMs(maxFutureMs) / 4));

export interface ReleaseLoopOptions {
  readonly intervalMs: number;
  /** The topics this instance owns partitions of now (none: another instance raises them). */
  readonly ownedTopics: () => Promise<readonly string[]>;
  /** One release sweep of a topic (`SkewProcessor.releaseDue`). */
  readonly release: (topic: string) => Promise<number>;
  readonly logger: Logger;
}

export interface ReleaseLoop {
  /** A sweep now (a partition assignment), unless one is running. */
  trigger(): void;
  /** No sweep after this; resolves once the one running has ended. */
  stop(): Promise<void>;
}

/**
 * Runs release sweeps on a timer, one at a time. A failed sweep (ClickHouse or Kafka down) is
 * logged once per outage (a line again when it recovers), never thrown: the next tick retries it.
 */
export function startReleaseLoop(options: ReleaseLoopOptions): ReleaseLoop {
  const { logger } = options;
  let running: Promise<void> | undefined;
  let stopped = false;
  let failing = false;

  async function sweep(): Promise<void> {
    try {
      for (const topic of await options.ownedTopics()) {
        if (stopped) return;
        await options.release(topic);
      }
      if (failing) logger.info({}, 'releasing held skew alerts works again');
      failing = false;
    } catch (error) {
      const log = { err: error instanceof Error ? error.message : String(error), retryInMs: options.intervalMs };
      if (failing) logger.debug(log, 'releasing held skew alerts failed again');
      else logger.warn(log, 'releasing held skew alerts failed; retried on the next tick');
      failing = true;
    }
  }

  const trigger = () => {
    if (stopped || running !== undefined) return;
    running = sweep().finally(() => {
      running = undefined;
    });
  };
  const timer = setInterval(trigger, options.intervalMs);
  timer.unref();

  return {
    trigger,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
