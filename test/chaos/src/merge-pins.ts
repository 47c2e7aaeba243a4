// Whether the merge stage's commit on the partials topic is pinned, or held on purpose.

import type { PartialsMessage } from '@driftline/drift';

/** One record of the partials topic, decoded. */
export interface PartialsRecord {
  readonly partition: number;
  readonly offset: bigint;
  readonly message: PartialsMessage;
}

/** A partition of the partials topic: the merge group's commit (-1 when none) and its end. */
export interface PartialsEnd {
  readonly partition: number;
  readonly committed: bigint;
  readonly high: bigint;
}

/**
 * The partitions whose merge commit is pinned (`pinned`) and those held on purpose (`held`).
 *
 * The merge commits no further than the first record of its oldest pending window
 * (`MergeState.commitOffset`): a window some source has not reported yet (no `closed` marker for
 * it, no marker whose `closedUntil` passed its end) keeps its records uncommitted until that source
 * reports it, which is no pin. Stage one's source idleness writes an empty marker for every window
 * the processing-time clock passes, from every source, for as long as the services run: the last
 * window one source reported while the others are about to is held at any moment after the drain.
 * Pinned: the first uncommitted record is of a window every source reported — the merge had what
 * it needed and did not complete it (or a partial its markers list is missing from the log: a
 * partial lost between the stages holds the commit until a later window drops it as stale).
 */
export function mergePins(
  records: readonly PartialsRecord[],
  ends: readonly PartialsEnd[],
): { pinned: string[]; held: string[] } {
  const pinned: string[] = [];
  const held: string[] = [];
  for (const { partition, committed, high } of ends) {
    if (high <= 0n || committed >= high) continue;
    const log = records.filter((r) => r.partition === partition);
    let first: PartialsRecord | undefined;
    for (const r of log) if (r.offset >= committed && (first === undefined || r.offset < first.offset)) first = r;
    const at = `[${partition}] committed ${committed} of ${high}`;
    if (first === undefined) {
      pinned.push(`${at}: no record at or after the commit was read`);
      continue;
    }
    const { windowStart, windowEnd } = first.message;
    let sources = 0;
    for (const r of log) sources = Math.max(sources, r.message.source.partitions);
    const waiting: number[] = [];
    for (let s = 0; s < sources; s++) {
      const reported = log.some(
        (r) => r.message.type === 'closed' && r.message.source.partition === s && r.message.closedUntil >= windowEnd,
      );
      if (!reported) waiting.push(s);
    }
    const window = `window ${new Date(windowStart).toISOString()}`;
    if (waiting.length > 0) {
      held.push(`${at}: ${window} waits for source partitions ${waiting.join(', ')}`);
      continue;
    }
    const missing: string[] = [];
    for (const r of log) {
      const m = r.message;
      if (m.type !== 'closed' || m.windowStart !== windowStart) continue;
      for (const { model, version } of m.models) {
        const sent = log.some(
          (p) =>
            p.message.type === 'partial' &&
            p.message.source.partition === m.source.partition &&
            p.message.windowStart === windowStart &&
            p.message.model === model &&
            p.message.version === version,
        );
        if (!sent) missing.push(`${model}/${version} of source ${m.source.partition}`);
      }
    }
    pinned.push(
      missing.length > 0
        ? `${at}: ${window} reported by every source, its partials ${missing.join(', ')} missing from the log`
        : `${at}: ${window} reported by every source, not completed`,
    );
  }
  return { pinned, held };
}
