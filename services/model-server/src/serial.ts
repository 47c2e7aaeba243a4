/**
 * Runs jobs one at a time per key, each after the ones given before it for that key, whatever
 * their outcome; keys run independently. Idle keys hold nothing.
 */
export function serialByKey(): (key: string, job: () => Promise<void>) => Promise<void> {
  const chains = new Map<string, Promise<void>>();
  return (key, job) => {
    const next = (chains.get(key) ?? Promise.resolve()).then(job);
    const settled = next.catch(() => {});
    chains.set(key, settled);
    void settled.then(() => {
      if (chains.get(key) === settled) chains.delete(key);
    });
    return next;
  };
}
