import type { ReferenceSet } from '@driftline/drift';
import type { Progress, ProgressStore, ReferenceStore } from '@driftline/warehouse';

/** A reference store that holds one reference set and names it for every model and version. */
export function storeOf(ref: ReferenceSet): ReferenceStore {
  return {
    save: async () => {},
    latest: async () => ref,
    byId: async () => ref,
    newest: async () => [ref],
    catalog: async () => [{ model: ref.model, version: ref.version, referenceId: ref.referenceId }],
  };
}

/** drift_progress in memory: what a stage saved, loaded again by (stage, group, topic, partition). */
export function memoryProgress(): ProgressStore {
  const saved = new Map<string, Progress>();
  return {
    load: async (s, g, t, p) => saved.get([s, g, t, p].join('/')),
    save: async (s, g, t, p, progress) => {
      saved.set([s, g, t, p].join('/'), progress);
    },
  };
}
