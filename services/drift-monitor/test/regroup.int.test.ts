// A new DRIFTLINE_DRIFT_GROUP merges afresh (found by a review, /tmp/r3/regroup.mts): every group
// shared one partials topic and the merge identifies a partial by source partition, model and
// version, so a new group of 2 s windows read the default group's 1 s partials from the start of the
// topic, rewrote its six 1 s windows and dropped its own 2 s partials as duplicates — no 2 s window
// at all, no log line. The README's remedies (a new group to recompute, a new group for a new size)
// relied on it.
import { eventually, uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it } from 'vitest';
import { driftDatabase, sendPredictions } from './deployment.js';
import { driftEnv, driftMonitors } from './runner.js';
import { EXACT, psiWindows, SOURCE_PARTITIONS, scaleStream, T0 } from './scale-stream.js';

const stack = inject('stack');

describe('drift-monitor: a new DRIFTLINE_DRIFT_GROUP merges its own partials only', () => {
  const monitors = driftMonitors();

  it('a group of 2 s windows after the default group of 1 s writes 2 s windows of every event, and leaves the 1 s rows alone', async () => {
    const { reference, stream } = scaleStream(42);
    const { ch, database, path } = await driftDatabase('regroup', [reference]);
    const prefix = `${uniqueName('drift-regroup')}.`;
    const env = (overrides: Record<string, string> = {}) =>
      driftEnv(
        stack,
        { prefix, partitions: SOURCE_PARTITIONS, database, path },
        { DRIFTLINE_DRIFT_PARTIALS_PARTITIONS: '2', ...overrides },
      );

    const first = await monitors.start(env());
    await sendPredictions(stack, `${prefix}predictions.v1`, stream);
    const oneSecond = await eventually(
      async () => {
        const rows = await psiWindows(ch);
        return rows.length >= EXACT.length ? rows : undefined;
      },
      60_000,
      250,
    );
    expect(oneSecond).toEqual(EXACT);
    await first.stop();

    const secondStart = Date.now();
    await monitors.start(env({ DRIFTLINE_DRIFT_GROUP: 'drift-monitor-2s', DRIFTLINE_DRIFT_WINDOW: '2s' }));
    // Before: none ever came (the new merge read the old group's partials and dropped its own).
    const twoSecond = await eventually(
      async () => {
        const rows = (await psiWindows(ch)).filter(([start, end]) => end - start === 2000);
        return rows.length >= 3 ? rows : undefined;
      },
      60_000,
      250,
    );
    expect(twoSecond).toEqual([
      [0, 2000, 800],
      [2000, 4000, 800],
      [4000, 6000, 800],
    ]);
    // No 1 s window written again by the new group (before: all six, at the new group's start).
    const [rewritten] = await ch.select<{ n: string }>(
      `SELECT count() AS n FROM ${ch.table('drift_windows')}
       WHERE toUnixTimestamp64Milli(window_end) - toUnixTimestamp64Milli(window_start) = 1000
         AND toUnixTimestamp64Milli(window_start) >= ${T0}
         AND toUnixTimestamp64Milli(computed_at) >= ${secondStart}`,
    );
    expect(Number(rewritten?.n)).toBe(0);
    await ch.close();
  }, 180_000);
});
