/**
 * CPU-bound work written as a generator that yields between slices (the dataset, its Arrow file,
 * the reference profiles). Run at once it is a plain function; run by {@link runYielding} it gives
 * the event loop a turn every few milliseconds, so the heartbeats, /healthz and /metrics keep
 * running. (Built in one go, a window at MAX_DATASET_CELLS held the event loop about 100 s: past
 * the group's session timeout, so the member was dropped and the request redelivered.)
 */
export type Steps<T> = Generator<void, T, void>;

/** Runs `steps` to the end without yielding (tests, small inputs). */
export function runNow<T>(steps: Steps<T>): T {
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value;
  }
}

/** Longest stretch of work between two turns of the event loop, by default. */
export const SLICE_MS = 20;

/** Runs `steps`, letting the event loop run (setImmediate) whenever `sliceMs` of work have passed. */
export async function runYielding<T>(steps: Steps<T>, sliceMs = SLICE_MS): Promise<T> {
  let since = performance.now();
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value;
    if (performance.now() - since >= sliceMs) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      since = performance.now();
    }
  }
}
