import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { type BatchSource, drainToEnd, type SourceBatch } from '../src/read-to-end.js';
import type { InboundRecord } from '../src/records.js';

function recordAt(partition: number, offset: number): InboundRecord {
  return { topic: 't', partition, offset: String(offset), key: null, value: null, headers: {}, timestamp: 0 };
}

/** A source that hands over the given batches one after the other, awaiting each (as kafkajs does). */
function sourceOf(batches: ReadonlyArray<{ partition: number; offsets: number[] }>): BatchSource {
  return {
    onCrash: () => {},
    run: async (eachBatch) => {
      for (const b of batches) {
        const batch: SourceBatch = {
          partition: b.partition,
          lastOffset: String(b.offsets.at(-1)),
          records: b.offsets.map((o) => recordAt(b.partition, o)),
          resolveOffset: () => {},
          heartbeat: async () => {},
        };
        await eachBatch(batch);
      }
    },
  };
}

describe('drainToEnd (readToEnd)', () => {
  it('does not count a slow handler as idleness: every batch is read', async () => {
    const source = sourceOf([
      { partition: 0, offsets: [0, 1] },
      { partition: 1, offsets: [0, 1] },
    ]);
    const seen: string[] = [];
    const { unreached } = await drainToEnd(
      source,
      new Map([
        [0, 2n],
        [1, 2n],
      ]),
      async (records) => {
        await sleep(300); // far longer than the idle limit: a DLQ replay's send
        for (const r of records) seen.push(`${r.partition}:${r.offset}`);
      },
      50,
    );
    expect(unreached).toEqual([]);
    expect(seen).toEqual(['0:0', '0:1', '1:0', '1:1']);
  });

  it('still ends a partition that never delivers its end after the idle limit', async () => {
    const source = sourceOf([{ partition: 0, offsets: [0, 1] }]);
    const { unreached } = await drainToEnd(
      source,
      new Map([
        [0, 2n],
        [1, 5n],
      ]),
      async () => {},
      50,
    );
    expect(unreached).toEqual([1]);
  });
});
