import { HttpError } from '@driftline/service/http';

/** The 503 of a full prediction log. */
export const backlogFull = (maxBuffered: number, waitedMs = 0) =>
  new HttpError(
    503,
    'SINK_UNAVAILABLE',
    `prediction log backlog full (${maxBuffered} records not yet acknowledged by Kafka${waitedMs > 0 ? ` after waiting ${waitedMs} ms` : ''}); retry later`,
  );

/** The 503 of a prediction log that is closing or whose thread has exited. */
export const logNotRunning = () => new HttpError(503, 'SINK_UNAVAILABLE', 'prediction log is not running; retry later');

export interface Admission<R> {
  /**
   * Enqueues a request's records at once when they fit under the bound and nobody waits before
   * them; else waits, first come first served, until acknowledgements make room, and rejects with
   * a 503 after `maxWaitMs` (at once when it is 0). More records than the bound fit an empty backlog.
   */
  admit(records: readonly R[]): Promise<void>;
  /** Call when the backlog shrank (a send acknowledged): admits the waiters that now fit, in order. */
  release(): void;
  /** Rejects every waiter (the log closes or its thread died). */
  refuseAll(error: Error): void;
}

/**
 * The bound of a prediction log as back-pressure: under a backlog, requests wait for room (their
 * answers slow down to what Kafka acknowledges) before any is refused. A client that sends as fast
 * as it can then settles at the log's pace instead of getting 503s; only a backlog that does not
 * move for `maxWaitMs` refuses. Waiting records sit outside the bound, one request's worth each.
 */
export function createAdmission<R>(options: {
  readonly maxBuffered: number;
  readonly maxWaitMs: number;
  readonly backlog: () => number;
  readonly enqueue: (records: readonly R[]) => void;
}): Admission<R> {
  const { maxBuffered, maxWaitMs, backlog, enqueue } = options;
  const waiters: Array<{
    readonly events: readonly R[];
    readonly resolve: () => void;
    readonly reject: (e: Error) => void;
    readonly timer: NodeJS.Timeout;
  }> = [];
  // A request with more records than the bound (a full batch times its shadows) could never fit:
  // it is admitted alone, once the backlog is empty, rather than refused every time.
  const fits = (n: number) => {
    const held = backlog();
    return held + n <= maxBuffered || held === 0;
  };

  const release = () => {
    while (waiters.length > 0 && fits(waiters[0]!.events.length)) {
      const w = waiters.shift()!;
      clearTimeout(w.timer);
      enqueue(w.events);
      w.resolve();
    }
  };

  return {
    admit(events) {
      if (waiters.length === 0 && fits(events.length)) {
        enqueue(events);
        return Promise.resolve();
      }
      if (maxWaitMs <= 0) return Promise.reject(backlogFull(maxBuffered));
      return new Promise<void>((resolve, reject) => {
        const waiter = {
          events,
          resolve,
          reject,
          timer: setTimeout(() => {
            waiters.splice(waiters.indexOf(waiter), 1);
            reject(backlogFull(maxBuffered, maxWaitMs));
            release(); // those behind it may fit now
          }, maxWaitMs),
        };
        waiters.push(waiter);
      });
    },
    release,
    refuseAll(error) {
      for (const w of waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(error);
      }
    },
  };
}
