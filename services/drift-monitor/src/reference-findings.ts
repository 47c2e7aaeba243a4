import type { Logger } from '@driftline/core';
import { logReferenceFindings, type ReferenceSet } from '@driftline/drift';

/** Reference ids whose findings were logged, remembered at most (then forgotten oldest first). */
export const REFERENCE_FINDINGS_REMEMBERED = 10_000;

/**
 * What the drift monitor does with each reference set it loads (`ReferenceCache`'s `loaded`): logs
 * its findings (`logReferenceFindings` of @driftline/drift) once per reference id — an error for a
 * set whose partials the partials topic would refuse (every window of its version lost), a
 * warning per categorical column whose tail sketch hides new categories. Before, the first said
 * nothing until a window closed, then one error line per window; the second nothing at all.
 */
export function referenceFindingsLog(logger: Logger): (set: ReferenceSet) => void {
  const seen = new Set<string>();
  return (set) => {
    if (seen.has(set.referenceId)) return;
    seen.add(set.referenceId);
    if (seen.size > REFERENCE_FINDINGS_REMEMBERED) seen.delete(seen.values().next().value as string);
    logReferenceFindings(logger, set);
  };
}
