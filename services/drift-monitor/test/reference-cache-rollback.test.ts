import { decodePartials, referenceSet, windowStartOf } from '@driftline/drift';
import type { DecodedRecord } from '@driftline/kafka';
import type { DatedStageEvent } from '@driftline/policy';
import type { PredictionEvent } from '@driftline/schemas';
import { buildNumericProfile } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import { ReferenceCache } from '../src/reference-cache.js';
import { batchPairs, memoryReferenceStore, minuteStageOne, predictionRecord } from './support.js';

const profiles = (shift: number) =>
  new Map([['x', buildNumericProfile(Array.from({ length: 100 }, (_, i) => i + shift))]]);

const MINUTE = 60_000;
const NOW = Date.UTC(2024, 11, 2, 12, 0, 0);
const v1 = referenceSet('m', 'v1', profiles(0));
const v2 = referenceSet('m', 'v2', profiles(0.5));
const own = [referenceSet('o', 'a', profiles(0)), referenceSet('o', 'b', profiles(0))];
const promotedAt = NOW - 20 * MINUTE;
const rolledBackAt = NOW - 10 * MINUTE;
/** models.v1 of model m in topic order: v2 promoted, rolled back to v1, then v2's promotion re-published (stale). */
const modelEvents: DatedStageEvent[] = [
  { kind: 'PROMOTED', version: 'v1', event_time: NOW - 24 * 60 * MINUTE },
  { kind: 'PROMOTED', version: 'v2', event_time: promotedAt, previous_version: 'v1' },
  { kind: 'ROLLED_BACK', version: 'v2', event_time: rolledBackAt, previous_version: 'v1' },
  { kind: 'PROMOTED', version: 'v2', event_time: promotedAt, previous_version: 'v1' },
];
const before = windowStartOf(rolledBackAt - 2 * MINUTE, MINUTE); // opened while v2 served
const after = windowStartOf(rolledBackAt + 2 * MINUTE, MINUTE);
const name = (id: string | undefined) => (id === v1.referenceId ? 'v1' : id === v2.referenceId ? 'v2' : id);

async function cache(): Promise<ReferenceCache> {
  const { store } = memoryReferenceStore([v1, v2, ...own]);
  // Three sets: the LRU evicts a lender to hold o/a and o/b.
  const references = new ReferenceCache(store, () => NOW, { maxEntries: 3 });
  await references.preload();
  return references;
}

/** Stage one over `batches` of predictions on `references`: each canary window's events and the reference it was measured on. */
async function measured(
  references: ReferenceCache,
  batches: ReadonlyArray<ReadonlyArray<readonly [string, string, number]>>,
  between: (batch: number) => Promise<void> = async () => {},
) {
  // `before` is still open when its late events come.
  const { stageOne, sent } = minuteStageOne(references, { latenessMs: 5 * MINUTE, now: () => NOW });
  let offset = 0;
  for (const [i, batch] of batches.entries()) {
    await between(i);
    const items: DecodedRecord<PredictionEvent>[] = batch.map(([model, version, t]) =>
      predictionRecord(model, version, t, offset++),
    );
    const result = await stageOne.process(items, { topic: 'p', partition: 0, highWatermark: '0' });
    expect(result?.deadLetters ?? []).toEqual([]);
  }
  return sent
    .map((m) => decodePartials(m.value))
    .flatMap((p) =>
      p.type === 'partial' && p.model === 'm' && p.version === 'canary'
        ? [[p.windowStart - after, p.events, name(p.referenceId)] as const]
        : [],
    )
    .sort((a, b) => a[0] - b[0]);
}

/** The canary of the window after the rollback (with two own references: the LRU evicts v2), then late events of the window before it, then one that closes both. */
const batches: ReadonlyArray<ReadonlyArray<readonly [string, string, number]>> = [
  [
    ['m', 'canary', after + 1_000],
    ['o', 'a', after + 2_000],
    ['o', 'b', after + 3_000],
  ],
  [
    ['m', 'canary', before + 1_000],
    ['m', 'canary', before + 2_000],
  ],
  [['o', 'a', NOW]],
];

describe('ReferenceCache: a rollback on models.v1', () => {
  it('a borrowing version is measured on the version serving instead from the rollback on, on the rolled-back one before', async () => {
    // As after a start: models.v1 read whole first, then the predictions.
    const references = await cache();
    for (const e of modelEvents) await references.modelEvent('m', e);
    expect(await measured(references, batches)).toEqual([
      [before - after, 2, 'v2'],
      [0, 1, 'v1'],
    ]);

    // Read while the predictions stream, the window before opened before the rollback was read:
    // the same references.
    const live = await cache();
    const models = async (i: number) => {
      if (i > 1) return;
      for (const e of i === 0 ? modelEvents.slice(0, 2) : modelEvents.slice(2)) await live.modelEvent('m', e);
    };
    expect(await measured(live, [[['m', 'canary', before + 500]], ...batches], models)).toEqual([
      [before - after, 3, 'v2'],
      [0, 1, 'v1'],
    ]);
  });

  it('resolve names the serving version per window start; the rolled-back version never borrows for its own events', async () => {
    const { store } = memoryReferenceStore([v1]); // v2 stored no reference
    const references = new ReferenceCache(store, () => NOW);
    await references.preload();
    for (const e of modelEvents) await references.modelEvent('m', e);
    await references.ensure(batchPairs([['m', 'canary']], promotedAt));
    // v2 has no reference: v1 stays in force while it served, and serves again after the rollback.
    expect(name(references.resolve('m', 'canary', promotedAt)?.referenceId)).toBe('v1');
    expect(name(references.resolve('m', 'canary', after)?.referenceId)).toBe('v1');
    expect(references.resolve('m', 'v2', after)).toBeUndefined();
  });

  it('RETIRED of the serving version changes nothing; a PROMOTED of the older version is stale while it is watched', async () => {
    const references = await cache();
    await references.modelEvent('m', modelEvents[0]!);
    await references.modelEvent('m', modelEvents[1]!);
    const retired = await references.modelEvent('m', { kind: 'RETIRED', version: 'v2', event_time: rolledBackAt });
    const again = await references.modelEvent('m', { kind: 'PROMOTED', version: 'v1', event_time: rolledBackAt });
    expect([retired.outcome, again.outcome]).toEqual(['ignored', 'ignored']);
    await references.ensure(batchPairs([['m', 'canary']], after));
    expect(name(references.resolve('m', 'canary', after)?.referenceId)).toBe('v2');
  });
});
