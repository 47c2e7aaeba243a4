import { describe, expect, it } from 'vitest';
import { arrowSteps, datasetSteps, type LabeledRow } from '../src/dataset.js';
import { referenceSteps } from '../src/reference.js';
import { runNow, runYielding, type Steps } from '../src/steps.js';

/** The longest the event loop went without a turn while `work` ran (a 1 ms interval's largest gap). */
async function longestStall(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let longest = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  try {
    last = performance.now();
    await work();
    longest = Math.max(longest, performance.now() - last);
  } finally {
    clearInterval(tick);
  }
  return longest;
}

describe('the dataset, its Arrow file and its reference are built without holding the event loop (found by a review)', () => {
  // 60,000 rows × 40 features: 2.4 M cells, about 1 s in one go on the reviewer's machine.
  let seed = 1;
  const rnd = () => {
    seed = (seed * 16_807) % 2_147_483_647;
    return seed / 2_147_483_647;
  };
  const rows: LabeledRow[] = Array.from({ length: 60_000 }, (_, i) => ({
    predictionId: `p${i}`,
    time: i,
    features: Object.fromEntries(Array.from({ length: 40 }, (_, k) => [`f${k}`, k % 10 === 0 ? `c${i % 7}` : rnd()])),
    prediction: rnd(),
    label: rnd() < 0.3 ? 1 : 0,
  }));

  it('gives the event loop a turn at least every few tens of milliseconds, with the same result as at once', async () => {
    const atOnce = await longestStall(async () => {
      runNow(arrowSteps(runNow(datasetSteps(rows, 0.2))));
    });
    let built: Uint8Array | undefined;
    const sliced = await longestStall(async () => {
      const ds = await runYielding(datasetSteps(rows, 0.2));
      built = await runYielding(arrowSteps(ds));
      await runYielding(
        referenceSteps(
          'm',
          'v',
          ds,
          Float64Array.from(ds.time, () => 0.5),
        ),
      );
    });
    // Slices are ≤ 20 ms; what remains is the garbage collector's (tens of ms on a loaded machine).
    // Relative to the same work at once, measured in the same run (shared, noisy machines).
    expect(sliced).toBeLessThan(Math.max(150, atOnce / 2));
    const again = runNow(arrowSteps(runNow(datasetSteps(rows, 0.2))));
    expect(Buffer.from(built!).equals(Buffer.from(again))).toBe(true);
  }, 60_000);

  it('runYielding returns what the steps return, and passes their errors on', async () => {
    function* steps(fail: boolean): Steps<number> {
      yield;
      if (fail) throw new Error('boom');
      return 42;
    }
    expect(await runYielding(steps(false), 0)).toBe(42);
    await expect(runYielding(steps(true), 0)).rejects.toThrow('boom');
    expect(runNow(steps(false))).toBe(42);
  });
});
