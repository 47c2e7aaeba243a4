import { test } from 'vitest';

/** Undo steps of one test (consumers stopped, producers disconnected, proxies closed). */
export type Cleanup = Array<() => Promise<void> | void>;

/**
 * `it` with a `cleanup` of the test's own, run once it ends, last step first, a failing step
 * ignored. The tests of a file run at once: a file-wide list emptied after each test stopped the
 * consumers of the others still running.
 */
export const it = test.extend<{ cleanup: Cleanup }>({
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
  cleanup: async ({}, use) => {
    const steps: Cleanup = [];
    await use(steps);
    for (const step of steps.splice(0).reverse())
      await Promise.resolve()
        .then(step)
        .catch(() => {});
  },
});
