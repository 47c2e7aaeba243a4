import { type ClosedMessage, PARTIALS_FORMAT, type PartialMessage } from '@driftline/drift';
import { describe, expect, it } from 'vitest';
import { mergePins, type PartialsRecord } from '../src/merge-pins.js';

const W = 10_000;
const T0 = Date.UTC(2026, 11, 7, 20, 7, 0);
const source = (partition: number) => ({ topic: 'p.predictions.v1', partition, partitions: 3 });

/** Source `s` closed window `i` (T0 + i·W), listing `models` (their partials precede it). */
const marker = (s: number, i: number, models: ClosedMessage['models'] = []): ClosedMessage => ({
  type: 'closed',
  format: PARTIALS_FORMAT,
  source: source(s),
  windowStart: T0 + i * W,
  windowEnd: T0 + (i + 1) * W,
  closedUntil: T0 + (i + 1) * W,
  models,
});
const partial = (s: number, i: number): PartialMessage => ({
  type: 'partial',
  format: PARTIALS_FORMAT,
  source: source(s),
  model: 'chaos',
  version: 'v1',
  referenceId: 'r',
  windowStart: T0 + i * W,
  windowEnd: T0 + (i + 1) * W,
  events: 10,
  late: 0,
  summaries: {},
});
const log = (...messages: Array<ClosedMessage | PartialMessage>): PartialsRecord[] =>
  messages.map((message, i) => ({ partition: 0, offset: BigInt(i), message }));

describe('mergePins (no_commit_pinned of the merge group)', () => {
  it('holds, not pins, a window one source reported while the others have not yet (the run-10 seed-5 failure)', () => {
    // Every source closed windows 0 and 1 (the merge completed them); source 1's idle advance then
    // announced window 2, empty, and the merge keeps it pending until sources 0 and 2 announce it.
    const records = log(
      marker(0, 0),
      marker(1, 0),
      marker(2, 0),
      marker(0, 1),
      marker(1, 1),
      marker(2, 1),
      marker(1, 2),
    );
    expect(mergePins(records, [{ partition: 0, committed: 6n, high: 7n }])).toEqual({
      pinned: [],
      held: ['[0] committed 6 of 7: window 2026-12-07T20:07:20.000Z waits for source partitions 0, 2'],
    });
  });

  it('pins a window every source reported that the merge did not complete', () => {
    const records = log(marker(0, 0), marker(1, 0), marker(2, 0), marker(1, 1), marker(0, 1), marker(2, 1));
    expect(mergePins(records, [{ partition: 0, committed: 3n, high: 6n }]).pinned).toEqual([
      '[0] committed 3 of 6: window 2026-12-07T20:07:10.000Z reported by every source, not completed',
    ]);
  });

  it('counts a later marker of a source (its closedUntil past the window) as its report', () => {
    const later: ClosedMessage = { ...marker(2, 1), closedUntil: T0 + 3 * W };
    const records = log(marker(0, 1), marker(1, 1), later);
    expect(mergePins(records, [{ partition: 0, committed: 0n, high: 3n }]).pinned).toHaveLength(1);
  });

  it('pins a window whose markers list a partial missing from the log', () => {
    const records = log(partial(0, 0), marker(0, 0, [{ model: 'chaos', version: 'v1' }]), marker(1, 0), marker(2, 0));
    expect(mergePins(records, [{ partition: 0, committed: 0n, high: 4n }]).pinned).toEqual([
      '[0] committed 0 of 4: window 2026-12-07T20:07:00.000Z reported by every source, not completed',
    ]);
    const lost = log(marker(0, 0, [{ model: 'chaos', version: 'v1' }]), marker(1, 0), marker(2, 0));
    expect(mergePins(lost, [{ partition: 0, committed: 0n, high: 3n }]).pinned).toEqual([
      '[0] committed 0 of 3: window 2026-12-07T20:07:00.000Z reported by every source, its partials chaos/v1 of source 0 missing from the log',
    ]);
  });

  it('passes a partition at its end, an empty one, and pins one whose commit is past what was read', () => {
    const records = log(marker(0, 0), marker(1, 0), marker(2, 0));
    expect(
      mergePins(records, [
        { partition: 0, committed: 3n, high: 3n },
        { partition: 1, committed: -1n, high: 0n },
        { partition: 2, committed: 0n, high: 5n },
      ]),
    ).toEqual({ pinned: ['[2] committed 0 of 5: no record at or after the commit was read'], held: [] });
  });
});
