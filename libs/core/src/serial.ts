/** Runs jobs one at a time per key (see {@link serialByKey}). */
export interface SerialByKey {
  /** Runs `job` after the jobs given before it for `key`, whatever their outcome; its own outcome is returned. */
  <T>(key: string | number, job: () => Promise<T>): Promise<T>;
  /** Resolves once every job given so far has settled. */
  idle(): Promise<void>;
}

/**
 * Jobs one at a time per key, each after the ones given before it for that key, whatever their
 * outcome; keys run independently. A key with nothing in flight holds nothing.
 */
export function serialByKey(): SerialByKey {
  const chains = new Map<string | number, Promise<void>>();
  const run = <T>(key: string | number, job: () => Promise<T>): Promise<T> => {
    const next = (chains.get(key) ?? Promise.resolve()).then(job);
    const settled = next.then(
      () => {},
      () => {},
    );
    chains.set(key, settled);
    void settled.then(() => {
      if (chains.get(key) === settled) chains.delete(key);
    });
    return next;
  };
  return Object.assign(run, {
    idle: async () => {
      await Promise.all([...chains.values()]);
    },
  });
}
