import { describe, expect, it } from 'vitest';
import { type PartitionPosition, untilCaughtUp } from '../src/consumer.js';

const at = (...caughtUp: boolean[]): PartitionPosition[] =>
  caughtUp.map((c, partition) => ({ topic: 't', partition, caughtUp: c }));

describe('untilCaughtUp', () => {
  it('waits for partitions to be owned and every one of them caught up', async () => {
    const answers = [at(), at(false, true), at(true, true)];
    let calls = 0;
    const handle = { positions: async () => answers[Math.min(calls++, answers.length - 1)]! };
    expect(await untilCaughtUp(handle, 5_000, 1)).toBe(true);
    expect(calls).toBe(3);
  });

  it('gives up after the timeout, and a failing read counts as not caught up', async () => {
    const never = { positions: async () => at(true, false) };
    const t0 = Date.now();
    expect(await untilCaughtUp(never, 50, 5)).toBe(false);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
    const failing = {
      positions: async (): Promise<PartitionPosition[]> => {
        throw new Error('kafka down');
      },
    };
    expect(await untilCaughtUp(failing, 20, 5)).toBe(false);
  });
});
